//! Request bodies decoded as kube-apiserver decodes the body of a create or update of a custom
//! resource, failing with its words: its JSON/YAML serializer (`apiVersion`/`kind` probe,
//! strict decoding), the schema coercer that reports unknown fields, and the handlers'
//! `transformDecodeError` framing (`App in version "v1" cannot be handled as a App: ...` once
//! the body names a kind, `the object provided is unrecognized (must be of type App): ... (<the
//! first 30 bytes>)` before).

use super::error::{ApiError, ApiResult};
use super::go_json;
use super::negotiation::{BodyFormat, body_format};
use crate::kinds::{Resource, ServedVersion};
use crate::registry::FieldValidation;
use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::cell::RefCell;

/// A decoded body, with the strict-decoding findings to send as `Warning`s
/// (`fieldValidation=Warn`, the default).
#[derive(Debug)]
pub struct Decoded {
    /// The object, unknown fields pruned.
    pub object: Value,
    /// `duplicate field "..."` and `unknown field "..."`, when they are to be warned about.
    pub warnings: Vec<String>,
}

/// `summarizeData(body, 30)`: how a 400 shows a body it could not make sense of.
pub fn summarize(data: &[u8]) -> String {
    const MAX: usize = 30;
    let cut = &data[..data.len().min(MAX)];
    let more = if data.len() > MAX { " ..." } else { "" };
    match data.first() {
        None => "<empty>".into(),
        Some(b'{') => format!("{}{more}", String::from_utf8_lossy(cut)),
        Some(_) => {
            let hex: String = cut.iter().map(|b| format!("{b:02x}")).collect();
            format!("{hex}{more}")
        }
    }
}

fn unrecognized(kind: &str, why: &str, body: &[u8]) -> ApiError {
    ApiError::bad_request(format!(
        "the object provided is unrecognized (must be of type {kind}): {why} ({})",
        summarize(body)
    ))
}

/// The 400 message for a protobuf body: kube-apiserver accepts the media type, but a custom
/// resource cannot be decoded from protobuf.
pub fn protobuf_error(kind: &str, body: &[u8]) -> String {
    const PREFIX: &[u8] = b"k8s\x00";
    let why = if body.is_empty() {
        "empty data".to_string()
    } else if !body.starts_with(PREFIX) {
        "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]"
            .to_string()
    } else if body.len() == PREFIX.len() {
        "empty body".to_string()
    } else {
        "object *unstructured.Unstructured does not implement the protobuf marshalling interface and cannot be decoded from a protobuf message".to_string()
    };
    format!(
        "the object provided is unrecognized (must be of type {kind}): {why} ({})",
        summarize(body)
    )
}

/// Builds a JSON value like serde_json does, also recording the path of every key that appears
/// twice in one object (`duplicate field "spec.replicas"`, as sigs.k8s.io/json's strict mode);
/// the last value wins, as in Go.
struct Tracking<'a> {
    path: String,
    duplicates: &'a RefCell<Vec<String>>,
}

impl<'a> Tracking<'a> {
    fn child(&self, segment: String) -> Tracking<'a> {
        Tracking {
            path: segment,
            duplicates: self.duplicates,
        }
    }
}

impl<'de> DeserializeSeed<'de> for Tracking<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Tracking<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            let seed = self.child(format!("{}[{}]", self.path, items.len()));
            match seq.next_element_seed(seed)? {
                Some(v) => items.push(v),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = if self.path.is_empty() {
                key.clone()
            } else {
                format!("{}.{key}", self.path)
            };
            let value = map.next_value_seed(self.child(path.clone()))?;
            if object.insert(key, value).is_some() {
                let mut duplicates = self.duplicates.borrow_mut();
                if !duplicates.contains(&path) && duplicates.len() < 100 {
                    duplicates.push(path);
                }
            }
        }
        Ok(Value::Object(object))
    }
}

/// Parses JSON, returning the value and the paths of duplicated keys.
pub fn parse_json(data: &[u8]) -> Result<(Value, Vec<String>), serde_json::Error> {
    let duplicates = RefCell::new(Vec::new());
    let mut de = serde_json::Deserializer::from_slice(data);
    let value = Tracking {
        path: String::new(),
        duplicates: &duplicates,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok((value, duplicates.into_inner()))
}

/// `schema.ParseGroupVersion`: (group, version), or the error kube-apiserver reports.
fn parse_group_version(api_version: &str) -> Result<(&str, &str), String> {
    if api_version.is_empty() || api_version == "/" {
        return Ok(("", ""));
    }
    match api_version.matches('/').count() {
        0 => Ok(("", api_version)),
        1 => Ok(api_version.split_once('/').unwrap_or(("", api_version))),
        _ => Err(format!("unexpected GroupVersion string: {api_version}")),
    }
}

/// Decodes the body of a create or update (main resource or `/status`) of `resource` in the
/// served version the request names (the object stays in that version): 415 for
/// a media type kube-apiserver does not decode, 400 for a body it cannot decode, and the
/// strict-decoding findings (duplicate and unknown fields) refused or warned about as
/// `fieldValidation` says. Unknown fields are pruned from the object.
pub fn decode_object(
    resource: &Resource,
    served: &ServedVersion,
    content_type: Option<&str>,
    body: &[u8],
    validation: FieldValidation,
) -> ApiResult<Decoded> {
    let kind = resource.kind;
    let expected = served.group_version();
    let strict = validation != FieldValidation::Ignore;
    let (json, yaml) = match body_format(content_type)? {
        BodyFormat::Protobuf => {
            return Err(ApiError::bad_request(protobuf_error(kind.kind, body)));
        }
        BodyFormat::Json => (std::borrow::Cow::Borrowed(body), false),
        BodyFormat::Yaml => {
            let value: Value = if body.iter().all(u8::is_ascii_whitespace) {
                Value::Null
            } else {
                crate::api::yaml::to_json(body).map_err(|e| {
                    unrecognized(
                        kind.kind,
                        &format!("error converting YAML to JSON: {e}"),
                        body,
                    )
                })?
            };
            let converted = serde_json::to_vec(&value).unwrap_or_default();
            (std::borrow::Cow::Owned(converted), true)
        }
    };
    let parse_error = |why: String| {
        unrecognized(
            kind.kind,
            &format!("couldn't get version/kind; json parse error: {why}"),
            body,
        )
    };
    if let Some(why) = go_json::syntax_error(&json) {
        return Err(parse_error(why));
    }
    let (mut object, duplicates) = parse_json(&json).map_err(|e| parse_error(e.to_string()))?;
    if let Some(why) = go_json::kind_probe_error(&object) {
        return Err(parse_error(why));
    }
    let text = |field: &str| {
        object
            .get(field)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let (api_version, body_kind) = (text("apiVersion"), text("kind"));
    let (group, version) =
        parse_group_version(&api_version).map_err(|why| unrecognized(kind.kind, &why, body))?;
    if body_kind.is_empty() {
        let data = String::from_utf8_lossy(if yaml { body } else { &json });
        let why = format!("Object 'Kind' is missing in '{data}'");
        if strict {
            return Err(unrecognized(kind.kind, &why, body));
        }
        // Without strictness the serializer has already defaulted the kind and version.
        let version = if (group.is_empty() || group == kind.group) && version.is_empty() {
            served.name
        } else {
            version
        };
        return Err(ApiError::bad_request(format!(
            "{} in version {} cannot be handled as a {}: {why}",
            kind.kind,
            crate::field_error::go_quote(version),
            kind.kind
        )));
    }
    let mut findings: Vec<String> = if strict {
        duplicates
            .iter()
            .map(|p| format!("duplicate field {}", crate::field_error::go_quote(p)))
            .collect()
    } else {
        Vec::new()
    };
    if group == kind.group && version == served.name && body_kind == kind.kind {
        let unknown = resource.schema.prune(&mut object);
        if strict {
            findings.extend(
                unknown
                    .iter()
                    .map(|p| format!("unknown field {}", crate::field_error::go_quote(p))),
            );
        }
    }
    let mut warnings = Vec::new();
    if !findings.is_empty() {
        if validation == FieldValidation::Strict {
            return Err(ApiError::bad_request(format!(
                "{body_kind} in version {} cannot be handled as a {}: strict decoding error: {}",
                crate::field_error::go_quote(version),
                kind.kind,
                findings.join(", ")
            )));
        }
        warnings = findings;
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    if group_version != expected {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({group_version}) does not match the expected API version ({expected})"
        )));
    }
    Ok(Decoded { object, warnings })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn decode(body: &str, content_type: &str, validation: FieldValidation) -> ApiResult<Decoded> {
        let app = crate::test_support::resource("App");
        decode_object(
            &app,
            &crate::kinds::V1,
            Some(content_type),
            body.as_bytes(),
            validation,
        )
    }

    fn message(body: &str, validation: FieldValidation) -> String {
        let e = decode(body, "application/json", validation).unwrap_err();
        assert_eq!(e.code(), 400, "{body}");
        e.message().to_string()
    }

    #[test]
    fn decoding_errors_are_worded_as_kube_words_them() {
        use FieldValidation::*;
        let cases: &[(&str, FieldValidation, &str)] = &[
            (
                "{not json",
                Warn,
                "the object provided is unrecognized (must be of type App): couldn't get version/kind; json parse error: invalid character 'n' looking for beginning of object key string ({not json)",
            ),
            (
                "[1,2]",
                Warn,
                r#"the object provided is unrecognized (must be of type App): couldn't get version/kind; json parse error: json: cannot unmarshal array into Go value of type struct { APIVersion string "json:\"apiVersion,omitempty\""; Kind string "json:\"kind,omitempty\"" } (5b312c325d)"#,
            ),
            (
                r#"{"apiVersion":"a/b/c","kind":"App"}"#,
                Warn,
                r#"the object provided is unrecognized (must be of type App): unexpected GroupVersion string: a/b/c ({"apiVersion":"a/b/c","kind":" ...)"#,
            ),
            (
                r#"{"apiVersion":"admission.example.com/v1"}"#,
                Strict,
                r#"the object provided is unrecognized (must be of type App): Object 'Kind' is missing in '{"apiVersion":"admission.example.com/v1"}' ({"apiVersion":"admission.examp ...)"#,
            ),
            (
                r#"{"apiVersion":"admission.example.com/v1"}"#,
                Ignore,
                r#"App in version "v1" cannot be handled as a App: Object 'Kind' is missing in '{"apiVersion":"admission.example.com/v1"}'"#,
            ),
            (
                r#"{"apiVersion":"admission.example.com/v1","kind":"App","metadata":{"name":"x"},"spec":{"colour":"red","replicas":1}}"#,
                Strict,
                r#"App in version "v1" cannot be handled as a App: strict decoding error: unknown field "spec.colour""#,
            ),
            (
                r#"{"apiVersion":"admission.example.com/v1","kind":"App","spec":{"replicas":1,"replicas":2},"x":1}"#,
                Strict,
                r#"App in version "v1" cannot be handled as a App: strict decoding error: duplicate field "spec.replicas", unknown field "x""#,
            ),
            (
                r#"{"apiVersion":"v1","kind":"App"}"#,
                Strict,
                "the API version in the data (v1) does not match the expected API version (admission.example.com/v1)",
            ),
            (
                r#"{"kind":"App"}"#,
                Strict,
                "the API version in the data () does not match the expected API version (admission.example.com/v1)",
            ),
        ];
        for (body, validation, want) in cases {
            assert_eq!(message(body, *validation), *want, "{body}");
        }
        let e = decode("k8s\0xyz", "application/vnd.kubernetes.protobuf", Strict).unwrap_err();
        assert_eq!(e.code(), 400);
        assert_eq!(
            decode("{}", "text/plain", Strict).unwrap_err().message(),
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf"
        );
    }

    #[test]
    fn unknown_and_duplicate_fields_are_warnings_by_default() {
        let body = r#"{"apiVersion":"admission.example.com/v1","kind":"App","spec":{"replicas":1,"replicas":2,"colour":"red"}}"#;
        let d = decode(body, "application/json", FieldValidation::Warn).unwrap();
        assert_eq!(
            d.warnings,
            [
                r#"duplicate field "spec.replicas""#,
                r#"unknown field "spec.colour""#
            ]
        );
        assert_eq!(d.object["spec"], json!({"replicas": 2}));
        let d = decode(body, "application/json", FieldValidation::Ignore).unwrap();
        assert!(d.warnings.is_empty());
        assert_eq!(d.object["spec"], json!({"replicas": 2}));
        let yaml = "apiVersion: admission.example.com/v1\nkind: App\nspec:\n  colour: red\n";
        let d = decode(yaml, "application/yaml", FieldValidation::Warn).unwrap();
        assert_eq!(d.warnings, [r#"unknown field "spec.colour""#]);
    }

    #[test]
    fn summaries_are_cut_at_30_bytes() {
        assert_eq!(summarize(b""), "<empty>");
        assert_eq!(summarize(b"{\"a\":1}"), "{\"a\":1}");
        assert_eq!(summarize(b"null"), "6e756c6c");
        assert_eq!(summarize(&[b'x'; 31]), format!("{} ...", "78".repeat(30)));
    }
}
