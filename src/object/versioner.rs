//! Stamping `metadata.resourceVersion` into stored objects, as k8s.io/apiserver's
//! `APIObjectVersioner` does when it decodes what storage returns.
//!
//! Objects are stored as JSON without a resourceVersion; the store gives every read the revision
//! of the write behind it and this versioner writes it in. It edits the bytes rather than
//! parsing the object: one pass over the top-level members and the members of `metadata`, so a
//! read costs a copy, not a decode and an encode. The member goes where serde_json's sorted maps
//! would put it, so an object reads exactly as if it had been serialized with it.

use bytes::{BufMut, Bytes, BytesMut};

/// The server's [`storage::Versioner`].
#[derive(Clone, Copy, Debug, Default)]
pub struct ResourceVersioner;

impl storage::Versioner for ResourceVersioner {
    fn stamp(&self, value: &[u8], revision: u64) -> Bytes {
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
    let mut s = Scanner { b: value, i: 0 };
    s.ws();
    s.expect(b'{')?;
    let mut members = Members::new(&mut s)?;
    while let Some((key, _)) = members.next_key()? {
        if key == "metadata" {
            let s = &mut *members.s;
            s.ws();
            if s.peek()? != b'{' {
                return None;
            }
            s.i += 1;
            return plan_in_metadata(s, version);
        }
        members.skip_value()?;
    }
    // No metadata at all: add one as the first member.
    let at = members.open_end;
    let comma = if members.count > 0 { "," } else { "" };
    Some(Edit {
        start: at,
        end: at,
        insert: format!("\"metadata\":{{\"resourceVersion\":{version}}}{comma}").into_bytes(),
    })
}

/// Inside `metadata` (just after its `{`): replace `resourceVersion` or insert it in key order.
fn plan_in_metadata(s: &mut Scanner<'_>, version: &str) -> Option<Edit> {
    let mut members = Members::new(s)?;
    let member = |version: &str| format!("\"resourceVersion\":{version}");
    while let Some((key, key_start)) = members.next_key()? {
        if key == "resourceVersion" {
            let s = &mut *members.s;
            s.ws();
            let start = s.i;
            s.skip_value()?;
            return Some(Edit {
                start,
                end: s.i,
                insert: version.as_bytes().to_vec(),
            });
        }
        if key.as_ref() > "resourceVersion" {
            return Some(Edit {
                start: key_start,
                end: key_start,
                insert: format!("{},", member(version)).into_bytes(),
            });
        }
        members.skip_value()?;
    }
    // Last member (or the only one).
    let at = members.close_at?;
    let comma = if members.count > 0 { "," } else { "" };
    Some(Edit {
        start: at,
        end: at,
        insert: format!("{comma}{}", member(version)).into_bytes(),
    })
}

/// Walks the members of an object whose `{` was just consumed.
struct Members<'s, 'a> {
    s: &'s mut Scanner<'a>,
    /// Just after the `{`.
    open_end: usize,
    /// Members seen.
    count: usize,
    /// Where the closing `}` is, once reached.
    close_at: Option<usize>,
}

impl<'s, 'a> Members<'s, 'a> {
    fn new(s: &'s mut Scanner<'a>) -> Option<Members<'s, 'a>> {
        let open_end = s.i;
        Some(Members {
            s,
            open_end,
            count: 0,
            close_at: None,
        })
    }

    /// The next member's key and where it starts, leaving the scanner just after its `:`.
    fn next_key(&mut self) -> Option<Option<(std::borrow::Cow<'a, str>, usize)>> {
        let s = &mut *self.s;
        s.ws();
        if self.count > 0 {
            match s.peek()? {
                b',' => {
                    s.i += 1;
                    s.ws();
                }
                b'}' => {
                    self.close_at = Some(s.i);
                    return Some(None);
                }
                _ => return None,
            }
        } else if s.peek()? == b'}' {
            self.close_at = Some(s.i);
            return Some(None);
        }
        let start = s.i;
        let key = s.string()?;
        s.ws();
        s.expect(b':')?;
        self.count += 1;
        Some(Some((key, start)))
    }

    fn skip_value(&mut self) -> Option<()> {
        self.s.ws();
        self.s.skip_value()
    }
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn expect(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// A string token; decoded only when it has escapes.
    fn string(&mut self) -> Option<std::borrow::Cow<'a, str>> {
        let start = self.i;
        self.expect(b'"')?;
        let mut escaped = false;
        loop {
            match self.peek()? {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    self.i += 2;
                }
                _ => self.i += 1,
            }
        }
        self.i += 1;
        let raw = self.b.get(start..self.i)?;
        if escaped {
            serde_json::from_slice::<String>(raw)
                .ok()
                .map(std::borrow::Cow::Owned)
        } else {
            std::str::from_utf8(raw.get(1..raw.len() - 1)?)
                .ok()
                .map(std::borrow::Cow::Borrowed)
        }
    }

    fn skip_value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            b'{' | b'[' => {
                // Balanced brackets, strings skipped whole.
                let mut depth = 0usize;
                loop {
                    match self.peek()? {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.i += 1;
                                return Some(());
                            }
                        }
                        _ => {}
                    }
                    self.i += 1;
                }
            }
            _ => {
                // Numbers and literals run to the next delimiter.
                let start = self.i;
                while !matches!(
                    self.peek(),
                    None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
                ) {
                    self.i += 1;
                }
                (self.i > start).then_some(())
            }
        }
    }
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
}
