//! YAML request bodies as JSON values, as sigs.k8s.io/yaml converts them for kube-apiserver
//! (`yaml.YAMLToJSON`), with the errors worded the way it words them after "error converting
//! YAML to JSON: ".
//!
//! Two things are checked before or after the YAML library:
//! - **Depth.** Flow collections (`[`, `{`) nested deeper than [`MAX_DEPTH`] are refused before
//!   parsing. The parser works through the whole document before any depth limit of the
//!   decoder applies, and its cost per byte grows with the depth: 1.5 MiB of `[` took 3.4 s of
//!   CPU in a release build. go-yaml refuses past 10,000 levels with the same words; 128 is this
//!   server's limit for JSON too, and the decoder's own.
//! - **Numbers JSON cannot hold.** `.nan` and `.inf` are refused as Go's JSON encoder refuses
//!   them (`json: unsupported value: NaN`), where the YAML library would turn them into `null`.

use serde_json::Value;

/// Deepest nesting of flow collections accepted.
pub const MAX_DEPTH: usize = 128;

/// A YAML body as a JSON value. The error reads as sigs.k8s.io/yaml's (`yaml: ...` or
/// `json: unsupported value: NaN`).
pub fn to_json(body: &[u8]) -> Result<Value, String> {
    if flow_depth_exceeds(body, MAX_DEPTH) {
        return Err(format!("yaml: exceeded max depth of {MAX_DEPTH}"));
    }
    let value: Value = serde_yaml_ng::from_slice(body).map_err(|e| format!("yaml: {e}"))?;
    if may_hold_special_floats(body) {
        let raw: serde_yaml_ng::Value =
            serde_yaml_ng::from_slice(body).map_err(|e| format!("yaml: {e}"))?;
        if let Some(f) = first_non_finite(&raw) {
            let go = if f.is_nan() {
                "NaN"
            } else if f > 0.0 {
                "+Inf"
            } else {
                "-Inf"
            };
            return Err(format!("json: unsupported value: {go}"));
        }
    }
    Ok(value)
}

/// Whether the body could spell a YAML NaN or infinity (`.nan`, `.inf`, any case).
fn may_hold_special_floats(body: &[u8]) -> bool {
    body.windows(4).any(|w| {
        w[0] == b'.' && (w[1..].eq_ignore_ascii_case(b"nan") || w[1..].eq_ignore_ascii_case(b"inf"))
    })
}

fn first_non_finite(value: &serde_yaml_ng::Value) -> Option<f64> {
    match value {
        serde_yaml_ng::Value::Number(n) => n.as_f64().filter(|f| !f.is_finite()),
        serde_yaml_ng::Value::Sequence(items) => items.iter().find_map(first_non_finite),
        serde_yaml_ng::Value::Mapping(map) => map
            .iter()
            .find_map(|(k, v)| first_non_finite(k).or_else(|| first_non_finite(v))),
        serde_yaml_ng::Value::Tagged(tagged) => first_non_finite(&tagged.value),
        _ => None,
    }
}

/// Whether flow collections open deeper than `limit` somewhere in the body. Quoted scalars and
/// comments are skipped; outside flow collections a bracket opens one only where a node may
/// start (at the start of a line or after `:`, `-`, `?` and spaces), so brackets inside plain
/// scalars (`name: a[b`) do not count.
fn flow_depth_exceeds(body: &[u8], limit: usize) -> bool {
    let mut depth = 0usize;
    // The last byte that was not a space or tab on this line (None at a line start).
    let mut previous: Option<u8> = None;
    let mut i = 0;
    while i < body.len() {
        let c = body[i];
        match c {
            b'\n' | b'\r' => previous = None,
            b' ' | b'\t' => {}
            b'#' if previous.is_none() || i > 0 && matches!(body[i - 1], b' ' | b'\t') => {
                while i < body.len() && body[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'"' | b'\'' if depth > 0 || previous.is_none_or(|p| b":-?,[{".contains(&p)) => {
                i = skip_quoted(body, i);
                previous = Some(c);
                continue;
            }
            b'[' | b'{' if depth > 0 || previous.is_none_or(|p| b":-?".contains(&p)) => {
                depth += 1;
                if depth > limit {
                    return true;
                }
                previous = Some(c);
            }
            b']' | b'}' if depth > 0 => {
                depth -= 1;
                previous = Some(c);
            }
            _ => previous = Some(c),
        }
        i += 1;
    }
    false
}

/// The index after a quoted scalar starting at `start` (`"` with `\` escapes, `'` with `''`).
fn skip_quoted(body: &[u8], start: usize) -> usize {
    let quote = body[start];
    let mut i = start + 1;
    while i < body.len() {
        match body[i] {
            b'\\' if quote == b'"' => i += 2,
            b'\'' if quote == b'\'' && body.get(i + 1) == Some(&b'\'') => i += 2,
            c if c == quote => return i + 1,
            _ => i += 1,
        }
    }
    body.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_flow_collections_are_refused_before_parsing() {
        let deep = "[".repeat(100_000);
        assert_eq!(
            to_json(deep.as_bytes()).unwrap_err(),
            "yaml: exceeded max depth of 128"
        );
        let within = format!("{}{}", "[".repeat(128), "]".repeat(128));
        assert!(to_json(within.as_bytes()).is_ok());
        let braces = format!("a:\n  b: {}", "{x: ".repeat(200));
        assert_eq!(
            to_json(braces.as_bytes()).unwrap_err(),
            "yaml: exceeded max depth of 128"
        );
    }

    #[test]
    fn brackets_in_scalars_and_comments_do_not_count() {
        let doc = format!(
            "a: b{}\nc: \"{}\"\nd: '{}'\n# {}\ne: [\"]]]\", '[[[']\n",
            "[".repeat(300),
            "[".repeat(300),
            "{".repeat(300),
            "[".repeat(300)
        );
        let v = to_json(doc.as_bytes()).unwrap();
        assert_eq!(v["e"], serde_json::json!(["]]]", "[[["]));
        assert_eq!(v["a"].as_str().unwrap().len(), 301);
    }

    #[test]
    fn numbers_json_cannot_hold_are_refused_as_go_refuses_them() {
        for (doc, word) in [
            ("spec:\n  replicas: .nan\n", "NaN"),
            ("x: [1, .Inf]", "+Inf"),
            ("x: -.INF", "-Inf"),
        ] {
            assert_eq!(
                to_json(doc.as_bytes()).unwrap_err(),
                format!("json: unsupported value: {word}")
            );
        }
        // Strings that merely spell them are strings.
        assert_eq!(
            to_json(b"x: '.nan'\ny: a.inf").unwrap(),
            serde_json::json!({"x": ".nan", "y": "a.inf"})
        );
    }
}
