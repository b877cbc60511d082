//! Response bodies in the representation the client negotiated: objects and lists as stored
//! JSON (spliced, not re-serialized), YAML, `Table`s with the kind's printer columns, and
//! `PartialObjectMetadata`.

use super::error::{ApiError, ApiResult};
use super::negotiation::Output;
use crate::field_error::FieldError;
use crate::kinds::{Column, Resource};
use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{Map, Value, json};

/// A rendered body with its content type.
pub struct Body {
    /// `Content-Type`.
    pub content_type: &'static str,
    /// The bytes.
    pub bytes: Bytes,
}

const JSON: &str = "application/json";
const YAML: &str = "application/yaml";

/// `includeObject` of a Table request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncludeObject {
    /// No object in rows.
    None,
    /// `PartialObjectMetadata` in rows (the default).
    Metadata,
    /// The whole object in rows.
    Object,
}

impl IncludeObject {
    /// Parses `includeObject` (422 when unknown, as `ValidateTableOptions`).
    pub fn parse(raw: Option<&str>) -> ApiResult<IncludeObject> {
        match raw.unwrap_or("") {
            "" | "Metadata" => Ok(IncludeObject::Metadata),
            "None" => Ok(IncludeObject::None),
            "Object" => Ok(IncludeObject::Object),
            other => Err(ApiError::invalid(
                "meta.k8s.io",
                "TableOptions",
                "",
                &[FieldError::invalid(
                    "includeObject",
                    &Value::String(other.into()),
                    "must be 'Metadata', 'Object', 'None', or empty",
                )],
            )),
        }
    }
}

fn parse(bytes: &[u8]) -> ApiResult<Value> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::internal(format!("stored object is not JSON: {e}")))
}

fn to_yaml(value: &Value) -> ApiResult<Bytes> {
    serde_yaml_ng::to_string(value)
        .map(Bytes::from)
        .map_err(|e| ApiError::internal(format!("cannot render YAML: {e}")))
}

fn json_bytes(value: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

/// `PartialObjectMetadata` of an object.
pub fn partial_metadata(obj: &Value, beta: bool) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": if beta { "meta.k8s.io/v1beta1" } else { "meta.k8s.io/v1" },
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// Kubernetes' `duration.HumanDuration`: the AGE column's wording.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

fn age(timestamp: &str) -> Value {
    match timestamp.parse::<jiff::Timestamp>() {
        Ok(t) => {
            let seconds = jiff::Timestamp::now().as_second() - t.as_second();
            Value::String(human_duration(seconds))
        }
        Err(_) => Value::Null,
    }
}

fn lookup<'a>(obj: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(obj, |v, p| v.get(*p))
}

/// A cell as the CRD table convertor renders it for the column's type.
fn cell(column: &Column, obj: &Value) -> Value {
    let Some(value) = lookup(obj, column.path) else {
        return Value::Null;
    };
    match column.type_ {
        "date" => value.as_str().map_or(Value::Null, age),
        "integer" => match value {
            Value::Number(n) if n.is_i64() || n.is_u64() => value.clone(),
            Value::Number(n) => n.as_f64().map_or(Value::Null, |f| json!(f as i64)),
            _ => Value::Null,
        },
        "number" | "boolean" => value.clone(),
        _ => match value {
            Value::String(s) => Value::String(s.clone()),
            Value::Null => Value::Null,
            other => Value::String(other.to_string()),
        },
    }
}

/// The column definitions of a kind's Table: the name column, then the kind's columns.
pub fn column_definitions(resource: &Resource) -> Value {
    let mut defs = vec![json!({
        "name": "Name",
        "type": "string",
        "format": "name",
        "description": "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
        "priority": 0,
    })];
    for c in resource.kind.columns {
        defs.push(json!({
            "name": c.name,
            "type": c.type_,
            "format": c.format,
            "description": c.description,
            "priority": c.priority,
        }));
    }
    Value::Array(defs)
}

/// One Table row for an object.
pub fn table_row(resource: &Resource, obj: &Value, include: IncludeObject, beta: bool) -> Value {
    let mut cells = vec![Value::String(crate::object::meta::name(obj).to_string())];
    cells.extend(resource.kind.columns.iter().map(|c| cell(c, obj)));
    let mut row = Map::new();
    row.insert("cells".into(), Value::Array(cells));
    match include {
        IncludeObject::None => {}
        IncludeObject::Metadata => {
            row.insert("object".into(), partial_metadata(obj, beta));
        }
        IncludeObject::Object => {
            row.insert("object".into(), obj.clone());
        }
    }
    Value::Object(row)
}

/// A Table of objects; `columns: false` leaves the definitions out (watch events after the first).
pub fn table(
    resource: &Resource,
    objects: &[Value],
    list_meta: Value,
    include: IncludeObject,
    beta: bool,
    columns: bool,
) -> Value {
    json!({
        "kind": "Table",
        "apiVersion": if beta { "meta.k8s.io/v1beta1" } else { "meta.k8s.io/v1" },
        "metadata": list_meta,
        "columnDefinitions": if columns { column_definitions(resource) } else { Value::Null },
        "rows": objects.iter().map(|o| table_row(resource, o, include, beta)).collect::<Vec<_>>(),
    })
}

/// One object in the negotiated representation.
pub fn object(
    resource: &Resource,
    stored: &Bytes,
    output: Output,
    include: IncludeObject,
) -> ApiResult<Body> {
    match output {
        Output::Json => Ok(Body {
            content_type: JSON,
            bytes: stored.clone(),
        }),
        Output::Yaml => Ok(Body {
            content_type: YAML,
            bytes: to_yaml(&parse(stored)?)?,
        }),
        Output::Table { beta } => {
            let obj = parse(stored)?;
            let rv = crate::object::meta::resource_version(&obj).to_string();
            let t = table(
                resource,
                std::slice::from_ref(&obj),
                json!({"resourceVersion": rv}),
                include,
                beta,
                true,
            );
            Ok(Body {
                content_type: JSON,
                bytes: json_bytes(&t),
            })
        }
        Output::Metadata { beta } => Ok(Body {
            content_type: JSON,
            bytes: json_bytes(&partial_metadata(&parse(stored)?, beta)),
        }),
    }
}

/// List metadata: `resourceVersion`, `continue`, `remainingItemCount`.
pub fn list_meta(revision: u64, continue_token: Option<&str>, remaining: Option<u64>) -> Value {
    let mut m = Map::new();
    if let Some(c) = continue_token {
        m.insert("continue".into(), Value::String(c.to_string()));
        if let Some(r) = remaining.filter(|r| *r > 0) {
            m.insert("remainingItemCount".into(), json!(r));
        }
    }
    m.insert(
        "resourceVersion".into(),
        Value::String(revision.to_string()),
    );
    Value::Object(m)
}

/// The metadata of a list of custom objects: kube-apiserver sets `continue` on the unstructured
/// list it serves even when there is no next page (`"continue": ""`); typed lists (Tables,
/// `PartialObjectMetadataList`) leave it out.
fn unstructured_list_meta(mut meta: Value) -> Value {
    if let Value::Object(m) = &mut meta {
        m.entry("continue")
            .or_insert_with(|| Value::String(String::new()));
    }
    meta
}

/// Objects per chunk of a streamed list.
const STREAMED_ITEMS_PER_CHUNK: usize = 64;

/// Where a streamed list is.
enum Streamed<I> {
    /// The opening (`{"apiVersion":...,"items":[`) is next.
    Head(Bytes, I, Bytes),
    /// Items are next (`true` once one was sent: the next needs a comma), then the closing.
    Items(I, bool, Bytes),
    /// Nothing more.
    Done,
}

/// While writes are being served, a streamed list sends at most one chunk per this long (64
/// objects a millisecond, about 50 MB/s): sending a chunk costs several times what producing
/// it does (encryption, system calls, and the client's reading on a shared machine), and the
/// writes get that time, as kube's priority and fairness puts large lists behind them.
const PACING_TICK: std::time::Duration = std::time::Duration::from_millis(1);

/// A JSON list produced while it is sent, a chunk of objects at a time (kube-apiserver 1.33+
/// streams large JSON lists too): memory stays bounded by a chunk rather than the list, and the
/// request workers run other requests between chunks. `serve` turns a stored object into the
/// object served; a failure ends the stream (the connection is cut, as kube's would be). While
/// `writes_waiting` says writes are being served, the stream paces itself (`PACING_TICK`).
pub fn json_list_stream(
    resource: &Resource,
    api_version: &str,
    items: Vec<storage::KeyValue>,
    meta: Value,
    serve: impl Fn(&Bytes) -> ApiResult<Bytes> + Send + 'static,
    writes_waiting: impl Fn() -> bool + Send + Sync + 'static,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let mut head = BytesMut::with_capacity(64);
    head.put_slice(b"{\"apiVersion\":\"");
    head.put_slice(api_version.as_bytes());
    head.put_slice(b"\",\"items\":[");
    let mut tail = BytesMut::with_capacity(128);
    tail.put_slice(b"],\"kind\":\"");
    tail.put_slice(resource.kind.list_kind.as_bytes());
    tail.put_slice(b"\",\"metadata\":");
    tail.put_slice(&serde_json::to_vec(&unstructured_list_meta(meta)).unwrap_or_default());
    tail.put_u8(b'}');
    let start = Streamed::Head(head.freeze(), items.into_iter(), tail.freeze());
    futures_util::stream::unfold(start, move |state| {
        let (chunk, next) = match state {
            Streamed::Head(head, items, tail) => {
                (Some(Ok(head)), Streamed::Items(items, false, tail))
            }
            Streamed::Items(mut items, mut sent, tail) => {
                let mut out = BytesMut::new();
                let mut failed = None;
                for kv in items.by_ref().take(STREAMED_ITEMS_PER_CHUNK) {
                    match serve(&kv.value) {
                        Ok(item) => {
                            if sent {
                                out.put_u8(b',');
                            }
                            out.put_slice(&item);
                            sent = true;
                        }
                        Err(e) => {
                            failed = Some(std::io::Error::other(e.message().to_string()));
                            break;
                        }
                    }
                }
                match failed {
                    Some(e) => (Some(Err(e)), Streamed::Done),
                    None if out.is_empty() => (Some(Ok(tail)), Streamed::Done),
                    None => (Some(Ok(out.freeze())), Streamed::Items(items, sent, tail)),
                }
            }
            Streamed::Done => (None, Streamed::Done),
        };
        let paced = writes_waiting();
        async move {
            // Let the other requests of this worker run between chunks, and the writes being
            // served have the CPU for a while.
            tokio::task::yield_now().await;
            if paced {
                tokio::time::sleep(PACING_TICK).await;
            }
            chunk.map(|c| (c, next))
        }
    })
}

/// A collection in the negotiated representation, of objects already in the served version
/// `api_version`. JSON lists are spliced from the objects' bytes.
pub fn list(
    resource: &Resource,
    api_version: &str,
    items: &[Bytes],
    meta: Value,
    output: Output,
    include: IncludeObject,
) -> ApiResult<Body> {
    match output {
        Output::Json => {
            let meta = unstructured_list_meta(meta);
            let size: usize = items.iter().map(|b| b.len() + 1).sum();
            let mut out = BytesMut::with_capacity(size + 160);
            out.put_slice(b"{\"apiVersion\":\"");
            out.put_slice(api_version.as_bytes());
            out.put_slice(b"\",\"items\":[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.put_u8(b',');
                }
                out.put_slice(item);
            }
            out.put_slice(b"],\"kind\":\"");
            out.put_slice(resource.kind.list_kind.as_bytes());
            out.put_slice(b"\",\"metadata\":");
            out.put_slice(&serde_json::to_vec(&meta).unwrap_or_default());
            out.put_u8(b'}');
            Ok(Body {
                content_type: JSON,
                bytes: out.freeze(),
            })
        }
        Output::Yaml => {
            let objects = items
                .iter()
                .map(|b| parse(b))
                .collect::<ApiResult<Vec<_>>>()?;
            let list = json!({
                "apiVersion": api_version,
                "items": objects,
                "kind": resource.kind.list_kind,
                "metadata": unstructured_list_meta(meta),
            });
            Ok(Body {
                content_type: YAML,
                bytes: to_yaml(&list)?,
            })
        }
        Output::Table { beta } => {
            let objects = items
                .iter()
                .map(|b| parse(b))
                .collect::<ApiResult<Vec<_>>>()?;
            Ok(Body {
                content_type: JSON,
                bytes: json_bytes(&table(resource, &objects, meta, include, beta, true)),
            })
        }
        Output::Metadata { beta } => {
            let objects = items
                .iter()
                .map(|b| parse(b).map(|o| partial_metadata(&o, beta)))
                .collect::<ApiResult<Vec<_>>>()?;
            let list = json!({
                "kind": "PartialObjectMetadataList",
                "apiVersion": if beta { "meta.k8s.io/v1beta1" } else { "meta.k8s.io/v1" },
                "metadata": meta,
                "items": objects,
            });
            Ok(Body {
                content_type: JSON,
                bytes: json_bytes(&list),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (119, "119s"),
            (120, "2m"),
            (150, "2m30s"),
            (600, "10m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 60 * 5, "3h5m"),
            (20 * 3600, "20h"),
            (3 * 86400 + 3600, "3d1h"),
            (30 * 86400, "30d"),
            (3 * 365 * 86400 + 86400, "3y1d"),
            (10 * 365 * 86400, "10y"),
        ];
        for (s, want) in cases {
            assert_eq!(human_duration(s), want, "{s}");
        }
    }

    #[test]
    fn table_rows_follow_the_crd_convertor() {
        let app = crate::kinds::load()
            .unwrap()
            .into_iter()
            .find(|r| r.kind.kind == "App")
            .unwrap();
        let obj = json!({"metadata": {"name": "a1", "creationTimestamp": "2020-01-01T00:00:00Z"}, "spec": {"version": "v1.0.0", "replicas": 1}});
        let row = table_row(&app, &obj, IncludeObject::None, false);
        let cells = row["cells"].as_array().unwrap();
        assert_eq!(
            cells[..4],
            [json!("a1"), json!("v1.0.0"), json!(1), Value::Null]
        );
        assert!(cells[4].as_str().unwrap().starts_with('6'), "{}", cells[4]);
        assert!(row.get("object").is_none());
        let nsres = crate::kinds::load()
            .unwrap()
            .into_iter()
            .find(|r| r.kind.kind == "NamespaceReservation")
            .unwrap();
        let obj =
            json!({"metadata": {"name": "team"}, "spec": {"owners": {"users": ["alice", "bob"]}}});
        let row = table_row(&nsres, &obj, IncludeObject::Metadata, false);
        assert_eq!(row["cells"][1], json!("[\"alice\",\"bob\"]"));
        assert_eq!(row["object"]["kind"], "PartialObjectMetadata");
    }
}
