//! Stamping `metadata.resourceVersion` into stored objects, as k8s.io/apiserver's
//! `APIObjectVersioner` does when it decodes what storage returns.
//!
//! Objects are stored as JSON without a resourceVersion; the store gives every read the revision
//! of the write behind it and this versioner writes it in. It edits the bytes rather than
//! parsing the object: one pass over the top-level members and the members of `metadata`, so a
//! read costs a copy, not a decode and an encode. The member goes where serde_json's sorted maps
//! would put it, so an object reads exactly as if it had been serialized with it.

use super::skim::{Skim, Step};
use bytes::{BufMut, Bytes, BytesMut};

/// A [`storage::Versioner`] that stamps the resourceVersion alone (the server's, `StorageCodec`,
/// also applies defaults); tests use it.
#[derive(Clone, Copy, Debug, Default)]
pub struct ResourceVersioner;

impl storage::Versioner for ResourceVersioner {
    fn stamp(&self, _key: &str, value: &[u8], revision: u64) -> Bytes {
        stamp(value, revision).unwrap_or_else(|| Bytes::copy_from_slice(value))
    }
}

/// Where an edit goes: replace `start..end` with `insert`.
struct Edit {
    start: usize,
    end: usize,
    insert: Vec<u8>,
}

/// `value` with `metadata.resourceVersion` set to `revision`; `None` when `value` is not a JSON
/// object (left as it is).
pub fn stamp(value: &[u8], revision: u64) -> Option<Bytes> {
    let version = format!("\"{revision}\"");
    let edit = plan(value, &version)?;
    let mut out = BytesMut::with_capacity(value.len() + edit.insert.len());
    out.put_slice(value.get(..edit.start)?);
    out.put_slice(&edit.insert);
    out.put_slice(value.get(edit.end..)?);
    Some(out.freeze())
}

fn plan(value: &[u8], version: &str) -> Option<Edit> {
    let mut s = Skim::new(value);
    s.expect(b'{')?;
    let metadata = || format!("{{\"resourceVersion\":{version}}}");
    set_member(&mut s, "metadata", metadata, |s| {
        s.expect(b'{')?;
        set_member(
            s,
            "resourceVersion",
            || version.to_string(),
            |s| {
                s.ws();
                let start = s.at;
                s.skip_value()?;
                Some(Edit {
                    start,
                    end: s.at,
                    insert: version.as_bytes().to_vec(),
                })
            },
        )
    })
}

/// Inside an object (just after its `{`): the edit that sets member `name`. When present,
/// `found` plans it (at the member's value); otherwise `"name":value()` goes in key order.
fn set_member(
    s: &mut Skim<'_>,
    name: &str,
    value: impl Fn() -> String,
    found: impl FnOnce(&mut Skim<'_>) -> Option<Edit>,
) -> Option<Edit> {
    let mut found = Some(found);
    let mut edit = None;
    let (close, count) = s.members(|s, key, key_start| {
        if key.as_ref() == name {
            edit = Some(found.take()?(s)?);
            return Some(Step::Stop);
        }
        if key.as_ref() > name {
            edit = Some(Edit {
                start: key_start,
                end: key_start,
                insert: format!("\"{name}\":{},", value()).into_bytes(),
            });
            return Some(Step::Stop);
        }
        s.skip_value()?;
        Some(Step::Next)
    })?;
    if edit.is_some() {
        return edit;
    }
    // Last member (or the only one).
    let comma = if count > 0 { "," } else { "" };
    Some(Edit {
        start: close,
        end: close,
        insert: format!("{comma}\"{name}\":{}", value()).into_bytes(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn stamped(v: &Value, rev: u64) -> Value {
        let raw = serde_json::to_vec(v).unwrap();
        let out = stamp(&raw, rev).unwrap();
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn inserts_replaces_and_keeps_serde_order() {
        let obj = json!({"apiVersion": "v1", "kind": "App", "metadata": {"name": "a", "uid": "u", "annotations": {"resourceVersion": "no"}}, "spec": {"metadata": {"resourceVersion": "9"}}});
        let out = stamped(&obj, 42);
        let mut want = obj.clone();
        want["metadata"]["resourceVersion"] = json!("42");
        assert_eq!(out, want);
        // Byte for byte what serializing the object with the field gives.
        assert_eq!(
            stamp(&serde_json::to_vec(&obj).unwrap(), 42).unwrap(),
            serde_json::to_vec(&want).unwrap()
        );
        // Stamping again replaces.
        let again = stamp(&serde_json::to_vec(&want).unwrap(), 7).unwrap();
        let mut want7 = want.clone();
        want7["metadata"]["resourceVersion"] = json!("7");
        assert_eq!(again, serde_json::to_vec(&want7).unwrap());
    }

    #[test]
    fn odd_shapes() {
        for (input, want) in [
            (r#"{}"#, json!({"metadata": {"resourceVersion": "3"}})),
            (
                r#"{"kind":"X"}"#,
                json!({"kind": "X", "metadata": {"resourceVersion": "3"}}),
            ),
            (
                r#"{"metadata":{}}"#,
                json!({"metadata": {"resourceVersion": "3"}}),
            ),
            (
                r#" { "metadata" : { "uid" : "x" , "name":"a\"b" } , "z": [1, {"a": "}"}] } "#,
                json!({"metadata": {"uid": "x", "name": "a\"b", "resourceVersion": "3"}, "z": [1, {"a": "}"}]}),
            ),
            (
                r#"{"metadata":{"resourceVersion":"1","zz":true}}"#,
                json!({"metadata": {"resourceVersion": "3", "zz": true}}),
            ),
            (
                r#"{"me\u0074adata":{"a":1}}"#,
                json!({"metadata": {"a": 1, "resourceVersion": "3"}}),
            ),
        ] {
            let out = stamp(input.as_bytes(), 3).unwrap_or_else(|| panic!("{input}"));
            let got: Value =
                serde_json::from_slice(&out).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(got, want, "{input}");
        }
        for bad in ["", "[]", "{", r#"{"metadata":"x"}"#, r#"{"a":}"#, "nul"] {
            assert!(stamp(bad.as_bytes(), 3).is_none(), "{bad}");
        }
    }

    /// Random objects: the stamped bytes are the object with `metadata.resourceVersion` set,
    /// byte for byte what serde_json writes.
    #[test]
    fn stamping_matches_serializing() {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<i64>().prop_map(Value::from),
            "[a-z\"\\\\{}\\[\\] ]{0,8}".prop_map(Value::from),
        ];
        let value = leaf.prop_recursive(3, 32, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-z]{1,3}|resourceVersion|metadata", inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        });
        let doc = (
            prop::collection::btree_map("[a-z]{1,4}|kind|spec", value.clone(), 0..4),
            prop::option::of(prop::collection::btree_map(
                "[a-z]{1,12}|resourceVersion|uid",
                value,
                0..5,
            )),
        );
        let mut runner = proptest::test_runner::TestRunner::default();
        runner
            .run(&doc, |(top, metadata)| {
                let mut obj: serde_json::Map<String, Value> = top.into_iter().collect();
                obj.remove("metadata");
                if let Some(m) = metadata {
                    obj.insert("metadata".into(), Value::Object(m.into_iter().collect()));
                }
                let obj = Value::Object(obj);
                let mut want = obj.clone();
                match want.get_mut("metadata") {
                    Some(Value::Object(m)) => {
                        m.insert("resourceVersion".into(), json!("77"));
                    }
                    _ => want["metadata"] = json!({"resourceVersion": "77"}),
                }
                let got = stamp(&serde_json::to_vec(&obj).unwrap(), 77).unwrap();
                prop_assert_eq!(
                    String::from_utf8(got.to_vec()).unwrap(),
                    serde_json::to_string(&want).unwrap()
                );
                Ok(())
            })
            .unwrap();
    }
}
