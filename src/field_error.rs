//! Field errors as `k8s.io/apimachinery/pkg/util/validation/field` renders them, and Go's
//! quoting. A leaf module: validation in every layer (schema, object metadata, kinds, query
//! options) builds these; only [`crate::api::error`] turns them into a `Status`.

/// One field validation failure, as `k8s.io/apimachinery/pkg/util/validation/field.Error`.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    /// `FieldValueInvalid`, `FieldValueRequired`, ...
    pub reason: &'static str,
    /// The field path, e.g. `spec.replicas`.
    pub field: String,
    /// What `ErrorBody()` renders: `Invalid value: 15: spec.replicas in body should be ...`.
    pub body: String,
}

/// A JSON value rendered the way Go's `field.Error` renders a bad value.
pub fn bad_value(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => go_quote(s),
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::Bool(b) => b.to_string(),
        other => other.to_string(),
    }
}

/// Quotes a string like Go's `%q` / `strconv.Quote` for the characters that matter in messages.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl FieldError {
    /// `field.Invalid(path, value, detail)`.
    pub fn invalid(field: impl Into<String>, value: &serde_json::Value, detail: &str) -> Self {
        let mut body = format!("Invalid value: {}", bad_value(value));
        if !detail.is_empty() {
            body.push_str(": ");
            body.push_str(detail);
        }
        FieldError {
            reason: "FieldValueInvalid",
            field: field.into(),
            body,
        }
    }

    /// `field.TypeInvalid(path, value, detail)`.
    pub fn type_invalid(field: impl Into<String>, value: &serde_json::Value, detail: &str) -> Self {
        FieldError {
            reason: "FieldValueTypeInvalid",
            ..FieldError::invalid(field, value, detail)
        }
    }

    /// `field.Required(path, detail)`.
    pub fn required(field: impl Into<String>, detail: &str) -> Self {
        FieldError {
            reason: "FieldValueRequired",
            field: field.into(),
            body: with_detail("Required value", detail),
        }
    }

    /// `field.Forbidden(path, detail)`.
    pub fn forbidden(field: impl Into<String>, detail: &str) -> Self {
        FieldError {
            reason: "FieldValueForbidden",
            field: field.into(),
            body: with_detail("Forbidden", detail),
        }
    }

    /// `field.NotSupported(path, value, valid)`.
    pub fn not_supported(
        field: impl Into<String>,
        value: &serde_json::Value,
        valid: &[String],
    ) -> Self {
        let mut body = format!("Unsupported value: {}", bad_value(value));
        if !valid.is_empty() {
            let quoted: Vec<String> = valid.iter().map(|v| go_quote(v)).collect();
            body.push_str(": supported values: ");
            body.push_str(&quoted.join(", "));
        }
        FieldError {
            reason: "FieldValueNotSupported",
            field: field.into(),
            body,
        }
    }

    /// `field.TooLong(path, value, max)` (bytes).
    pub fn too_long(field: impl Into<String>, max: usize) -> Self {
        FieldError {
            reason: "FieldValueTooLong",
            field: field.into(),
            body: format!(
                "Too long: may not be more than {max} {}",
                if max == 1 { "byte" } else { "bytes" }
            ),
        }
    }

    /// `field.TooMany(path, actual, max)`.
    pub fn too_many(field: impl Into<String>, actual: usize, max: usize) -> Self {
        FieldError {
            reason: "FieldValueTooMany",
            field: field.into(),
            body: format!(
                "Too many: {actual}: must have at most {max} {}",
                if max == 1 { "item" } else { "items" }
            ),
        }
    }

    /// `field.Duplicate(path, value)`.
    pub fn duplicate(field: impl Into<String>, value: &serde_json::Value) -> Self {
        FieldError {
            reason: "FieldValueDuplicate",
            field: field.into(),
            body: format!("Duplicate value: {}", bad_value(value)),
        }
    }

    /// What `field.Error.Error()` renders: `<field>: <body>`.
    pub fn message(&self) -> String {
        if self.field.is_empty() {
            self.body.clone()
        } else {
            format!("{}: {}", self.field, self.body)
        }
    }
}

fn with_detail(head: &str, detail: &str) -> String {
    if detail.is_empty() {
        head.to_string()
    } else {
        format!("{head}: {detail}")
    }
}

/// Joins field errors like `utilerrors.NewAggregate(...).Error()`: one error alone, several in
/// brackets, duplicates once.
pub fn aggregate(errors: &[FieldError]) -> String {
    let mut unique = std::collections::HashSet::new();
    let mut seen: Vec<String> = Vec::new();
    for e in errors {
        let m = e.message();
        if unique.insert(m.clone()) {
            seen.push(m);
        }
    }
    match seen.len() {
        0 => String::new(),
        1 => seen.remove(0),
        _ => format!("[{}]", seen.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn field_errors_render_like_go() {
        let cases = [
            (
                FieldError::invalid(
                    "spec.replicas",
                    &json!(15),
                    "spec.replicas in body should be less than or equal to 10",
                ),
                "spec.replicas: Invalid value: 15: spec.replicas in body should be less than or equal to 10",
            ),
            (
                FieldError::not_supported(
                    "spec.version",
                    &json!("v1.0.2"),
                    &["v1.0.0".into(), "v1.0.1".into()],
                ),
                "spec.version: Unsupported value: \"v1.0.2\": supported values: \"v1.0.0\", \"v1.0.1\"",
            ),
            (
                FieldError::required("metadata.name", "name or generateName is required"),
                "metadata.name: Required value: name or generateName is required",
            ),
            (FieldError::forbidden("x", ""), "x: Forbidden"),
            (
                FieldError::too_long("a", 63),
                "a: Too long: may not be more than 63 bytes",
            ),
        ];
        for (err, want) in cases {
            assert_eq!(err.message(), want);
        }
    }

    #[test]
    fn aggregate_brackets_only_several() {
        let a = FieldError::required("a", "");
        let b = FieldError::required("b", "");
        assert_eq!(aggregate(std::slice::from_ref(&a)), "a: Required value");
        assert_eq!(
            aggregate(&[a.clone(), b]),
            "[a: Required value, b: Required value]"
        );
        assert_eq!(aggregate(&[a.clone(), a]), "a: Required value");
    }
}
