//! The words of Go's `encoding/json` for bodies it cannot decode, which kube-apiserver passes on
//! in its 400s: the syntax errors of its scanner (`checkValid`) and the type errors of
//! decoding into the serializer's `apiVersion`/`kind` probe (`SimpleMetaFactory.Interpret`).
//! Only the messages are produced here; parsing is serde's.

use serde_json::Value;

/// The Go type the serializer probes a body's `apiVersion` and `kind` with, as `reflect` prints
/// it in `UnmarshalTypeError`s.
const KIND_PROBE: &str = r#"struct { APIVersion string "json:\"apiVersion,omitempty\""; Kind string "json:\"kind,omitempty\"" }"#;

/// Deepest nesting Go's scanner accepts.
const MAX_DEPTH: usize = 10_000;

/// Go's `quoteChar`: a byte as it appears in a syntax error.
fn quote_char(c: u8) -> String {
    match c {
        b'\'' => r"'\''".to_string(),
        b'"' => "'\"'".to_string(),
        _ => {
            let quoted = crate::field_error::go_quote(&char::from(c).to_string());
            format!("'{}'", &quoted[1..quoted.len() - 1])
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Container {
    ObjectKey,
    ObjectValue,
    Array,
}

#[derive(Clone, Copy, PartialEq)]
enum State {
    BeginValue,
    BeginValueOrEmpty,
    BeginString,
    BeginStringOrEmpty,
    EndValue,
    EndTop,
    InString,
    InStringEsc,
    InStringEscU(u8),
    Neg,
    Int,
    Zero,
    Dot,
    Dot0,
    E,
    ESign,
    E0,
    Literal(&'static [u8], usize),
}

/// Go's scanner, step by step (`encoding/json/scanner.go`).
struct Scanner {
    state: State,
    stack: Vec<Container>,
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

impl Scanner {
    fn error(c: u8, context: &str) -> Result<(), String> {
        Err(format!("invalid character {} {context}", quote_char(c)))
    }

    fn begin_value(&mut self, c: u8) -> Result<(), String> {
        if is_space(c) {
            return Ok(());
        }
        self.state = match c {
            b'{' => {
                self.push(Container::ObjectKey)?;
                State::BeginStringOrEmpty
            }
            b'[' => {
                self.push(Container::Array)?;
                State::BeginValueOrEmpty
            }
            b'"' => State::InString,
            b'-' => State::Neg,
            b'0' => State::Zero,
            b'1'..=b'9' => State::Int,
            b't' => State::Literal(b"true", 1),
            b'f' => State::Literal(b"false", 1),
            b'n' => State::Literal(b"null", 1),
            _ => return Scanner::error(c, "looking for beginning of value"),
        };
        Ok(())
    }

    fn push(&mut self, container: Container) -> Result<(), String> {
        self.stack.push(container);
        if self.stack.len() > MAX_DEPTH {
            return Err("exceeded max depth".into());
        }
        Ok(())
    }

    fn end_value(&mut self, c: u8) -> Result<(), String> {
        let Some(top) = self.stack.last_mut() else {
            self.state = State::EndTop;
            return self.end_top(c);
        };
        if is_space(c) {
            self.state = State::EndValue;
            return Ok(());
        }
        match (*top, c) {
            (Container::ObjectKey, b':') => {
                *top = Container::ObjectValue;
                self.state = State::BeginValue;
            }
            (Container::ObjectKey, _) => return Scanner::error(c, "after object key"),
            (Container::ObjectValue, b',') => {
                *top = Container::ObjectKey;
                self.state = State::BeginString;
            }
            (Container::ObjectValue, b'}') | (Container::Array, b']') => {
                self.stack.pop();
                self.state = State::EndValue;
            }
            (Container::ObjectValue, _) => {
                return Scanner::error(c, "after object key:value pair");
            }
            (Container::Array, b',') => self.state = State::BeginValue,
            (Container::Array, _) => return Scanner::error(c, "after array element"),
        }
        Ok(())
    }

    fn end_top(&mut self, c: u8) -> Result<(), String> {
        if is_space(c) {
            Ok(())
        } else {
            Scanner::error(c, "after top-level value")
        }
    }

    fn step(&mut self, c: u8) -> Result<(), String> {
        match self.state {
            State::BeginValue => self.begin_value(c),
            State::BeginValueOrEmpty => {
                if is_space(c) {
                    Ok(())
                } else if c == b']' {
                    self.end_value(c)
                } else {
                    self.begin_value(c)
                }
            }
            State::BeginStringOrEmpty => {
                if is_space(c) {
                    Ok(())
                } else if c == b'}' {
                    if let Some(top) = self.stack.last_mut() {
                        *top = Container::ObjectValue;
                    }
                    self.end_value(c)
                } else {
                    self.state = State::BeginString;
                    self.step(c)
                }
            }
            State::BeginString => {
                if is_space(c) {
                    Ok(())
                } else if c == b'"' {
                    self.state = State::InString;
                    Ok(())
                } else {
                    Scanner::error(c, "looking for beginning of object key string")
                }
            }
            State::EndValue => self.end_value(c),
            State::EndTop => self.end_top(c),
            State::InString => {
                match c {
                    b'"' => self.state = State::EndValue,
                    b'\\' => self.state = State::InStringEsc,
                    c if c < 0x20 => return Scanner::error(c, "in string literal"),
                    _ => {}
                }
                Ok(())
            }
            State::InStringEsc => match c {
                b'b' | b'f' | b'n' | b'r' | b't' | b'\\' | b'/' | b'"' => {
                    self.state = State::InString;
                    Ok(())
                }
                b'u' => {
                    self.state = State::InStringEscU(0);
                    Ok(())
                }
                _ => Scanner::error(c, "in string escape code"),
            },
            State::InStringEscU(n) => {
                if !c.is_ascii_hexdigit() {
                    return Scanner::error(c, "in \\u hexadecimal character escape");
                }
                self.state = if n == 3 {
                    State::InString
                } else {
                    State::InStringEscU(n + 1)
                };
                Ok(())
            }
            State::Neg => match c {
                b'0' => {
                    self.state = State::Zero;
                    Ok(())
                }
                b'1'..=b'9' => {
                    self.state = State::Int;
                    Ok(())
                }
                _ => Scanner::error(c, "in numeric literal"),
            },
            State::Int if c.is_ascii_digit() => Ok(()),
            State::Int | State::Zero => match c {
                b'.' => {
                    self.state = State::Dot;
                    Ok(())
                }
                b'e' | b'E' => {
                    self.state = State::E;
                    Ok(())
                }
                _ => self.end_value(c),
            },
            State::Dot => {
                if c.is_ascii_digit() {
                    self.state = State::Dot0;
                    Ok(())
                } else {
                    Scanner::error(c, "after decimal point in numeric literal")
                }
            }
            State::Dot0 => match c {
                b'0'..=b'9' => Ok(()),
                b'e' | b'E' => {
                    self.state = State::E;
                    Ok(())
                }
                _ => self.end_value(c),
            },
            State::E if c == b'+' || c == b'-' => {
                self.state = State::ESign;
                Ok(())
            }
            State::E | State::ESign => {
                if c.is_ascii_digit() {
                    self.state = State::E0;
                    Ok(())
                } else {
                    Scanner::error(c, "in exponent of numeric literal")
                }
            }
            State::E0 => {
                if c.is_ascii_digit() {
                    Ok(())
                } else {
                    self.end_value(c)
                }
            }
            State::Literal(word, i) => {
                if c != word[i] {
                    let name = String::from_utf8_lossy(word);
                    return Scanner::error(
                        c,
                        &format!("in literal {name} (expecting {})", quote_char(word[i])),
                    );
                }
                self.state = if i + 1 == word.len() {
                    State::EndValue
                } else {
                    State::Literal(word, i + 1)
                };
                Ok(())
            }
        }
    }
}

/// The `SyntaxError` Go's `json.Unmarshal` reports for `data`, or `None` when its scanner
/// accepts it.
pub fn syntax_error(data: &[u8]) -> Option<String> {
    let mut scanner = Scanner {
        state: State::BeginValue,
        stack: Vec::new(),
    };
    for &c in data {
        if let Err(e) = scanner.step(c) {
            return Some(e);
        }
    }
    // End of input, as Go's `scanner.eof`: one more space ends a number or literal (or fails
    // inside one); anything still open is incomplete.
    if let Err(e) = scanner.step(b' ') {
        return Some(e);
    }
    if scanner.state == State::EndTop {
        None
    } else {
        Some("unexpected end of JSON input".into())
    }
}

/// How Go's `UnmarshalTypeError` names a JSON value's kind.
pub fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The error of decoding a (syntactically valid) document into the serializer's
/// `apiVersion`/`kind` probe, if any: a document that is not an object, or an `apiVersion` or
/// `kind` that is not a string.
pub fn kind_probe_error(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::Object(map) => {
            ["apiVersion", "kind"]
                .iter()
                .find_map(|field| match map.get(*field) {
                    None | Some(Value::Null) | Some(Value::String(_)) => None,
                    Some(other) => Some(format!(
                        "json: cannot unmarshal {} into Go struct field .{field} of type string",
                        json_kind(other)
                    )),
                })
        }
        other => Some(format!(
            "json: cannot unmarshal {} into Go value of type {KIND_PROBE}",
            json_kind(other)
        )),
    }
}

/// Go's type of a JSON value's destination, for [`struct_type_error`].
#[derive(Clone, Copy)]
pub enum GoType {
    /// A string type, named as Go prints it (`string`, `types.UID`).
    Str(&'static str),
    /// `bool`.
    Bool,
    /// `int64`.
    Int64,
    /// `[]string`.
    Strings,
    /// A nested struct (Go's type name, e.g. `v1.Preconditions`; its own name, e.g.
    /// `Preconditions`) with its fields.
    Struct(
        &'static str,
        &'static str,
        &'static [(&'static str, GoType)],
    ),
}

/// The first error of decoding `value` (an object) into a Go struct named `name` with `fields`,
/// as encoding/json words it (`json: cannot unmarshal string into Go struct field
/// DeleteOptions.dryRun of type []string`); unknown fields and `null`s are ignored, as in Go.
pub fn struct_type_error(
    name: &str,
    fields: &[(&'static str, GoType)],
    value: &Value,
    stack: &mut Vec<&'static str>,
) -> Option<String> {
    let map = value.as_object()?;
    for (field, go) in fields {
        let Some(v) = map.get(*field).filter(|v| !v.is_null()) else {
            continue;
        };
        stack.push(field);
        let error = |kind: String, ty: &str, stack: &[&str]| {
            Some(format!(
                "json: cannot unmarshal {kind} into Go struct field {name}.{} of type {ty}",
                stack.join(".")
            ))
        };
        let found = match (go, v) {
            (GoType::Str(_), Value::String(_)) | (GoType::Bool, Value::Bool(_)) => None,
            (GoType::Int64, Value::Number(n)) if n.is_i64() => None,
            (GoType::Int64, Value::Number(n)) => error(format!("number {n}"), "int64", stack),
            (GoType::Strings, Value::Array(items)) => items
                .iter()
                .find(|i| !i.is_null() && !i.is_string())
                .and_then(|i| error(json_kind(i).to_string(), "string", stack)),
            (GoType::Struct(_, inner, inner_fields), Value::Object(_)) => {
                struct_type_error(inner, inner_fields, v, stack)
            }
            (go, other) => {
                let ty = match go {
                    GoType::Str(t) | GoType::Struct(t, _, _) => t,
                    GoType::Bool => "bool",
                    GoType::Int64 => "int64",
                    GoType::Strings => "[]string",
                };
                error(json_kind(other).to_string(), ty, stack)
            }
        };
        stack.pop();
        if found.is_some() {
            return found;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn syntax_errors_are_worded_as_go_words_them() {
        let cases: &[(&str, Option<&str>)] = &[
            ("{}", None),
            (" [1, 2.5e-3, true, null, \"x\\u00e9\"] ", None),
            ("0", None),
            ("-12", None),
            ("", Some("unexpected end of JSON input")),
            ("   ", Some("unexpected end of JSON input")),
            ("{", Some("unexpected end of JSON input")),
            ("{\"a\":1", Some("unexpected end of JSON input")),
            (
                "{not json",
                Some("invalid character 'n' looking for beginning of object key string"),
            ),
            ("{\"a\" 1}", Some("invalid character '1' after object key")),
            (
                "{\"a\":1 \"b\"}",
                Some("invalid character '\"' after object key:value pair"),
            ),
            ("[1 2]", Some("invalid character '2' after array element")),
            ("{} x", Some("invalid character 'x' after top-level value")),
            (
                "x",
                Some("invalid character 'x' looking for beginning of value"),
            ),
            (
                "[,]",
                Some("invalid character ',' looking for beginning of value"),
            ),
            (
                "\"a\nb\"",
                Some("invalid character '\\n' in string literal"),
            ),
            (
                "\"\\q\"",
                Some("invalid character 'q' in string escape code"),
            ),
            (
                "\"\\u12g4\"",
                Some("invalid character 'g' in \\u hexadecimal character escape"),
            ),
            ("-x", Some("invalid character 'x' in numeric literal")),
            (
                "1.x",
                Some("invalid character 'x' after decimal point in numeric literal"),
            ),
            (
                "1ex",
                Some("invalid character 'x' in exponent of numeric literal"),
            ),
            (
                "tru",
                Some("invalid character ' ' in literal true (expecting 'e')"),
            ),
            (
                "1.",
                Some("invalid character ' ' after decimal point in numeric literal"),
            ),
            ("\"abc", Some("unexpected end of JSON input")),
            (
                "trux",
                Some("invalid character 'x' in literal true (expecting 'e')"),
            ),
            (
                "nul!",
                Some("invalid character '!' in literal null (expecting 'l')"),
            ),
            (
                "{'a':1}",
                Some(r"invalid character '\'' looking for beginning of object key string"),
            ),
            ("01", Some("invalid character '1' after top-level value")),
        ];
        for (input, want) in cases {
            assert_eq!(
                syntax_error(input.as_bytes()).as_deref(),
                *want,
                "{input:?}"
            );
        }
    }

    #[test]
    fn kind_probe_errors() {
        assert_eq!(kind_probe_error(&json!({"kind": "App"})), None);
        assert_eq!(kind_probe_error(&Value::Null), None);
        assert_eq!(
            kind_probe_error(&json!({"apiVersion": 5})).unwrap(),
            "json: cannot unmarshal number into Go struct field .apiVersion of type string"
        );
        assert_eq!(
            kind_probe_error(&json!([1])).unwrap(),
            r#"json: cannot unmarshal array into Go value of type struct { APIVersion string "json:\"apiVersion,omitempty\""; Kind string "json:\"kind,omitempty\"" }"#
        );
    }
}
