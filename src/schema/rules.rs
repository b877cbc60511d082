//! `x-kubernetes-validations`: CEL rules on schema nodes, evaluated on every write as
//! apiextensions-apiserver evaluates them (`pkg/apiserver/schema/cel/validation.go`), with its
//! wording, field paths, `reason`s and cost limits.
//!
//! - A rule sees its node's value as `self`; a transition rule (one that reads `oldSelf`) also
//!   sees the value before the update. Transition rules are skipped on create and wherever the
//!   old object has no value at that path, unless `optionalOldSelf` makes `oldSelf` an optional.
//! - Old values are found by property name and map key; list items only in
//!   `x-kubernetes-list-type: map` lists, by their keys.
//! - A failing rule that does not read `oldSelf` on a value that did not change is a warning,
//!   not an error (validation ratcheting, on by default since Kubernetes 1.30).
//! - Evaluation stops once an expression passes [`cel::PER_CALL_LIMIT`] or the object's rules
//!   together pass [`cel::RUNTIME_COST_BUDGET`].

use super::{JsonType, ListType, Node, map_key};
use crate::cel::{self, EvalError, Expression};
use crate::field_error::{FieldError, go_quote};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// Reasons a rule may give its failures (`FieldValueErrorReason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// `FieldValueInvalid` (the default).
    Invalid,
    /// `FieldValueForbidden`.
    Forbidden,
    /// `FieldValueRequired`.
    Required,
    /// `FieldValueDuplicate`.
    Duplicate,
}

/// One entry of `x-kubernetes-validations`, as written.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidationRule {
    /// The CEL expression that must be true.
    pub rule: String,
    /// What a failure says (`failed rule: <rule>` when empty).
    pub message: String,
    /// A CEL expression computing the message instead.
    pub message_expression: Option<String>,
    /// What kind of failure it is.
    pub reason: Option<Reason>,
    /// Where a failure points, relative to the node (`.spec.x`, `['a.b']`).
    pub field_path: Option<String>,
    /// Evaluate the transition rule also without an old value, `oldSelf` then being an optional.
    pub optional_old_self: bool,
}

impl ValidationRule {
    /// Reads one entry; unknown keys and bad values are errors (as CRD validation makes them).
    pub fn parse(raw: &Value) -> Result<ValidationRule, String> {
        let obj = raw
            .as_object()
            .ok_or("an x-kubernetes-validations entry must be an object")?;
        for key in obj.keys() {
            if ![
                "rule",
                "message",
                "messageExpression",
                "reason",
                "fieldPath",
                "optionalOldSelf",
            ]
            .contains(&key.as_str())
            {
                return Err(format!("unsupported x-kubernetes-validations key {key:?}"));
            }
        }
        let text = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_string);
        let rule = text("rule").ok_or("x-kubernetes-validations: rule is required")?;
        let message = text("message").unwrap_or_default();
        if message.contains('\n') {
            return Err(format!(
                "rule {rule:?}: message must not contain line breaks"
            ));
        }
        let reason = match text("reason").as_deref() {
            None => None,
            Some("FieldValueInvalid") => Some(Reason::Invalid),
            Some("FieldValueForbidden") => Some(Reason::Forbidden),
            Some("FieldValueRequired") => Some(Reason::Required),
            Some("FieldValueDuplicate") => Some(Reason::Duplicate),
            Some(other) => {
                return Err(format!(
                    "rule {rule:?}: unsupported reason {other:?}: supported values: \"FieldValueDuplicate\", \"FieldValueForbidden\", \"FieldValueInvalid\", \"FieldValueRequired\""
                ));
            }
        };
        Ok(ValidationRule {
            rule,
            message,
            message_expression: text("messageExpression"),
            reason,
            field_path: text("fieldPath"),
            optional_old_self: obj
                .get("optionalOldSelf")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }

    /// What failures say when there is no (usable) message expression.
    fn message_or_default(&self) -> String {
        if self.message.trim().is_empty() {
            format!("failed rule: {}", self.error_string())
        } else {
            self.message.trim().to_string()
        }
    }

    /// How evaluation errors name the rule: its message, or its expression.
    fn error_string(&self) -> String {
        if self.message.trim().is_empty() {
            self.rule.trim().to_string()
        } else {
            self.message.trim().to_string()
        }
    }
}

/// A rule ready to run.
#[derive(Debug)]
struct Compiled {
    spec: ValidationRule,
    program: Expression,
    message_expression: Option<Expression>,
    /// `fieldPath` as a path suffix (`.x.y`, `[k]`), empty when unset.
    field_path: String,
}

/// The compiled rules of a schema, shaped like it: only the branches that hold rules.
#[derive(Debug, Default)]
pub struct Validator {
    rules: Vec<Compiled>,
    properties: BTreeMap<String, Validator>,
    additional: Option<Box<Validator>>,
    items: Option<Box<Validator>>,
}

/// What validating an object found.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Failures, in evaluation order.
    pub errors: Vec<FieldError>,
    /// Failures turned into warnings by ratcheting (`<field>: <message>`).
    pub warnings: Vec<String>,
}

/// Turns a `fieldPath` into the suffix it adds to the node's path, checking it names a field
/// the schema has (`ValidFieldPath`).
fn normalize_field_path(path: &str, node: &Node) -> Result<String, String> {
    let mut out = String::new();
    let mut node = node;
    let mut rest = path;
    while !rest.is_empty() {
        let name = if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let name = &r[..end];
            rest = &r[end..];
            name.to_string()
        } else if let Some(r) = rest.strip_prefix("['") {
            let end = r
                .find("']")
                .ok_or_else(|| format!("fieldPath {path:?}: expected ']'"))?;
            let name = r[..end].replace("\\'", "'").replace("\\\\", "\\");
            rest = &r[end + 2..];
            name
        } else {
            return Err(format!(
                "fieldPath {path:?}: expected [ or . but got: {rest}"
            ));
        };
        if name.is_empty() {
            return Err(format!("fieldPath {path:?}: unexpected end of JSON path"));
        }
        if !node.properties.is_empty() {
            node = node
                .properties
                .get(&name)
                .ok_or_else(|| format!("fieldPath {path:?}: does not refer to a valid field"))?;
            out.push('.');
            out.push_str(&name);
        } else if let Some(values) = node.additional.as_deref() {
            node = values;
            out.push('[');
            out.push_str(&name);
            out.push(']');
        } else {
            return Err(format!(
                "fieldPath {path:?}: does not refer to a valid field"
            ));
        }
    }
    Ok(out)
}

impl Validator {
    /// Compiles the rules of a schema; `None` when it has none.
    pub fn compile(node: &Node) -> Result<Option<Validator>, String> {
        let mut v = Validator::default();
        for spec in &node.validations {
            let program = Expression::compile(&spec.rule)
                .map_err(|e| format!("x-kubernetes-validations rule {:?}: {e}", spec.rule))?;
            if spec.optional_old_self && !program.uses_old_self {
                return Err(format!(
                    "x-kubernetes-validations rule {:?}: optionalOldSelf may only be set when the rule uses oldSelf",
                    spec.rule
                ));
            }
            let message_expression = match &spec.message_expression {
                Some(src) => Some(Expression::compile(src).map_err(|e| {
                    format!("x-kubernetes-validations messageExpression {src:?}: {e}")
                })?),
                None => None,
            };
            let field_path = match &spec.field_path {
                Some(p) => normalize_field_path(p, node)?,
                None => String::new(),
            };
            v.rules.push(Compiled {
                spec: spec.clone(),
                program,
                message_expression,
                field_path,
            });
        }
        for (name, child) in &node.properties {
            if let Some(c) = Validator::compile(child)? {
                v.properties.insert(name.clone(), c);
            }
        }
        if let Some(values) = node.additional.as_deref() {
            v.additional = Validator::compile(values)?.map(Box::new);
        }
        if let Some(items) = node.items.as_deref() {
            v.items = Validator::compile(items)?.map(Box::new);
        }
        let empty = v.rules.is_empty()
            && v.properties.is_empty()
            && v.additional.is_none()
            && v.items.is_none();
        Ok(if empty { None } else { Some(v) })
    }

    /// Validates an object against every rule; `old` is the stored object on an update.
    pub fn validate(&self, root: &Node, new: &Value, old: Option<&Value>) -> Outcome {
        let mut run = Run {
            outcome: Outcome::default(),
            budget: cel::RUNTIME_COST_BUDGET as i64,
        };
        let unchanged = old.map(|o| o == new);
        self.walk(root, "", new, old, unchanged, true, &mut run);
        run.outcome
    }

    #[allow(clippy::too_many_arguments)]
    fn walk(
        &self,
        node: &Node,
        path: &str,
        new: &Value,
        old: Option<&Value>,
        unchanged: Option<bool>,
        root: bool,
        run: &mut Run,
    ) {
        if new.is_null() || run.budget < 0 {
            return;
        }
        self.evaluate(node, path, new, old, unchanged, root, run);
        if run.budget < 0 {
            return;
        }
        match new {
            Value::Object(map) => {
                for (key, value) in map {
                    let (child_validator, child_node, child_path) =
                        match (self.properties.get(key), node.properties.get(key)) {
                            (Some(v), Some(n)) => (v, n, child(path, key)),
                            _ => match (self.additional.as_deref(), node.additional.as_deref()) {
                                (Some(v), Some(n)) => (v, n, format!("{path}[{key}]")),
                                _ => continue,
                            },
                        };
                    let old_value = old.and_then(|o| o.get(key));
                    let child_unchanged = unchanged.map(|_| old_value == Some(value));
                    child_validator.walk(
                        child_node,
                        &child_path,
                        value,
                        old_value,
                        child_unchanged,
                        false,
                        run,
                    );
                    if run.budget < 0 {
                        return;
                    }
                }
            }
            Value::Array(items) => {
                let (Some(v), Some(item_node)) = (self.items.as_deref(), node.items.as_deref())
                else {
                    return;
                };
                let old_items = old.and_then(Value::as_array);
                // Map lists correlate items with the old ones by key (the first old item with
                // a key, as kube's correlation), found in one pass over each list.
                let old_by_key: HashMap<String, &Value> = match (&node.list_type, old_items) {
                    (ListType::Map(keys), Some(olds)) => {
                        let mut by_key = HashMap::with_capacity(olds.len());
                        for o in olds.iter().rev() {
                            by_key.insert(map_key(keys, o), o);
                        }
                        by_key
                    }
                    _ => HashMap::new(),
                };
                for (i, item) in items.iter().enumerate() {
                    // Only map lists correlate items with the old ones (by key); in other lists
                    // an item is unchanged when its whole list is.
                    let (old_item, item_unchanged) = match &node.list_type {
                        ListType::Map(keys) => {
                            let found = old_by_key.get(&map_key(keys, item)).copied();
                            (found, unchanged.map(|_| found == Some(item)))
                        }
                        _ => (None, unchanged),
                    };
                    v.walk(
                        item_node,
                        &format!("{path}[{i}]"),
                        item,
                        old_item,
                        item_unchanged,
                        false,
                        run,
                    );
                    if run.budget < 0 {
                        return;
                    }
                }
            }
            _ => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn evaluate(
        &self,
        node: &Node,
        path: &str,
        new: &Value,
        old: Option<&Value>,
        unchanged: Option<bool>,
        root: bool,
        run: &mut Run,
    ) {
        if self.rules.is_empty() {
            return;
        }
        let type_name = node.types.map(JsonType::name).unwrap_or("");
        let shown_type = Value::String(type_name.to_string());
        if run.budget <= 0 {
            run.fail(FieldError::invalid(
                path,
                &shown_type,
                "validation failed due to running out of cost budget, no further validation rules will be run",
            ));
            return;
        }
        let self_value = cel::value::to_cel(node, new, root);
        let old_value = old.map(|o| cel::value::to_cel(node, o, root));
        for compiled in &self.rules {
            let spec = &compiled.spec;
            let program = &compiled.program;
            if program.uses_old_self && old_value.is_none() && !spec.optional_old_self {
                continue;
            }
            let mut variables = vec![(cel::SELF, self_value.clone())];
            if program.uses_old_self {
                let old_self = match (&old_value, spec.optional_old_self) {
                    (Some(o), false) => o.clone(),
                    (Some(o), true) => optional(Some(o.clone())),
                    (None, _) => optional(None),
                };
                variables.push((cel::OLD_SELF, old_self));
            }
            let (result, cost) = program.evaluate(variables.clone(), cel::PER_CALL_LIMIT);
            let rule_name = spec.error_string();
            match result {
                Err(EvalError::CostLimitExceeded) => {
                    run.fail(FieldError::invalid(
                        path,
                        &shown_type,
                        &format!(
                            "'{}': no further validation rules will be run due to call cost exceeds limit for rule: {rule_name}",
                            cel::cost::LIMIT_EXCEEDED
                        ),
                    ));
                    run.budget = -1;
                    return;
                }
                _ if cost as i64 > run.budget => {
                    run.fail(FieldError::invalid(
                        path,
                        &shown_type,
                        "validation failed due to running out of cost budget, no further validation rules will be run",
                    ));
                    run.budget = -1;
                    return;
                }
                Err(EvalError::NoSuchOverload) => {
                    run.budget -= cost as i64;
                    run.fail(FieldError::invalid(
                        path,
                        &shown_type,
                        &format!(
                            "'no such overload': call arguments did not match a supported operator, function or macro signature for rule: {rule_name}"
                        ),
                    ));
                    continue;
                }
                Err(EvalError::Failed(why)) => {
                    run.budget -= cost as i64;
                    run.fail(FieldError::invalid(
                        path,
                        &shown_type,
                        &format!("{why} evaluating rule: {rule_name}"),
                    ));
                    continue;
                }
                Ok(cel_value) => {
                    run.budget -= cost as i64;
                    match cel_value {
                        ::cel::Value::Bool(true) => continue,
                        ::cel::Value::Bool(false) => {}
                        _ => {
                            run.fail(FieldError::invalid(
                                path,
                                &shown_type,
                                &format!(
                                    "'no such overload': call arguments did not match a supported operator, function or macro signature for rule: {rule_name}"
                                ),
                            ));
                            continue;
                        }
                    }
                }
            }
            let field = format!("{path}{}", compiled.field_path);
            let field = field.strip_prefix('.').unwrap_or(&field).to_string();
            let detail = match &compiled.message_expression {
                Some(expr) => match message(expr, variables, run) {
                    Message::Text(t) => t,
                    Message::Default => spec.message_or_default(),
                    Message::Stop(why) => {
                        run.fail(FieldError::invalid(field, &shown_type, &why));
                        run.budget = -1;
                        return;
                    }
                },
                None => spec.message_or_default(),
            };
            let error = rule_error(spec.reason, field, node, new, &detail);
            if !program.uses_old_self && unchanged == Some(true) {
                run.outcome.warnings.push(error.message());
            } else {
                run.fail(error);
            }
        }
    }
}

/// The budget and findings of one validation.
struct Run {
    outcome: Outcome,
    /// What is left of the object's budget; negative once evaluation must stop.
    budget: i64,
}

impl Run {
    fn fail(&mut self, e: FieldError) {
        self.outcome.errors.push(e);
    }
}

fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn optional(v: Option<::cel::Value>) -> ::cel::Value {
    use ::cel::objects::OptionalValue;
    let o = match v {
        Some(v) => OptionalValue::of(v),
        None => OptionalValue::none(),
    };
    ::cel::Value::Opaque(std::sync::Arc::new(o))
}

enum Message {
    Text(String),
    Default,
    Stop(String),
}

/// Evaluates a `messageExpression` (`evalMessageExpression`): its trimmed string, or the
/// rule's message when it fails or is unusable, or a stop when the budget runs out.
fn message(expr: &Expression, variables: Vec<(&str, ::cel::Value)>, run: &mut Run) -> Message {
    let (result, cost) = expr.evaluate(variables, cel::PER_CALL_LIMIT);
    if matches!(result, Err(EvalError::CostLimitExceeded)) {
        return Message::Stop(format!(
            "no further validation rules will be run due to call cost exceeds limit for messageExpression: {}",
            go_quote(&expr.source)
        ));
    }
    if cost as i64 > run.budget {
        return Message::Stop(
            "messageExpression evaluation failed due to running out of cost budget, no further validation rules will be run".into(),
        );
    }
    run.budget -= cost as i64;
    match result {
        Ok(::cel::Value::String(s)) => {
            let trimmed = s.trim();
            if trimmed.is_empty()
                || trimmed.len() > cel::MAX_MESSAGE_BYTES
                || trimmed.contains('\n')
            {
                Message::Default
            } else {
                Message::Text(trimmed.to_string())
            }
        }
        other => {
            tracing::debug!(result = ?other, "messageExpression evaluation failed");
            Message::Default
        }
    }
}

/// The error of a failed rule (`fieldErrorForReason`): objects and lists are not shown, scalars
/// are.
fn rule_error(
    reason: Option<Reason>,
    field: String,
    node: &Node,
    value: &Value,
    detail: &str,
) -> FieldError {
    let shown = !matches!(node.types, Some(JsonType::Object) | Some(JsonType::Array));
    match reason {
        Some(Reason::Forbidden) => FieldError::forbidden(field, detail),
        Some(Reason::Required) => FieldError::required(field, detail),
        Some(Reason::Duplicate) if shown => FieldError::duplicate(field, value),
        Some(Reason::Duplicate) => FieldError {
            reason: "FieldValueDuplicate",
            field,
            body: "Duplicate value".into(),
        },
        Some(Reason::Invalid) | None if shown => FieldError::invalid(field, value, detail),
        Some(Reason::Invalid) | None => FieldError {
            reason: "FieldValueInvalid",
            field,
            body: format!("Invalid value: {detail}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Schema;
    use serde_json::json;

    fn schema(raw: Value) -> Schema {
        Schema::load(&raw, &serde_json::Map::new()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn check(s: &Schema, new: &Value, old: Option<&Value>) -> (Vec<String>, Vec<String>) {
        let out = s.rules.as_ref().unwrap().validate(&s.root, new, old);
        (
            out.errors.iter().map(FieldError::message).collect(),
            out.warnings,
        )
    }

    fn app() -> Schema {
        let raw: Value = serde_json::from_str(include_str!("../../openapi/app.json")).unwrap();
        schema(raw)
    }

    #[test]
    fn the_app_selector_is_immutable_once_set() {
        let s = app();
        let with = |labels: Value| json!({"spec": {"version": "v1.0.0", "selector": {"matchLabels": labels}}});
        let without = json!({"spec": {"version": "v1.0.0"}});
        // Create: transition rules do not run.
        assert_eq!(
            check(&s, &with(json!({"a": "b"})), None).0,
            Vec::<String>::new()
        );
        // First set, no change: fine.
        assert!(
            check(&s, &with(json!({"a": "b"})), Some(&without))
                .0
                .is_empty()
        );
        assert!(
            check(&s, &with(json!({"a": "b"})), Some(&with(json!({"a": "b"}))))
                .0
                .is_empty()
        );
        assert_eq!(
            check(&s, &with(json!({"a": "c"})), Some(&with(json!({"a": "b"})))).0,
            ["spec.selector: Invalid value: selector is immutable"]
        );
        assert_eq!(
            check(&s, &without, Some(&with(json!({"a": "b"})))).0,
            ["spec: Invalid value: selector cannot be removed once set"]
        );
        let e = s
            .rules
            .as_ref()
            .unwrap()
            .validate(&s.root, &without, Some(&with(json!({"a": "b"}))))
            .errors;
        assert_eq!(e[0].reason, "FieldValueInvalid");
        assert_eq!(
            e[0].body,
            "Invalid value: selector cannot be removed once set"
        );
    }

    #[test]
    fn messages_reasons_field_paths_and_values() {
        let s = schema(
            json!({"type": "object", "properties": {"spec": {"type": "object",
            "x-kubernetes-validations": [
                {"rule": "self.n < 10"},
                {"rule": "self.n < 5", "message": "  n too big  ", "fieldPath": ".n"},
                {"rule": "self.n < 4", "messageExpression": "'n is ' + string(self.n)", "reason": "FieldValueForbidden"},
                {"rule": "self.n < 3", "messageExpression": "self.missing", "message": "fallback", "reason": "FieldValueRequired"},
                {"rule": "self.n < 2", "messageExpression": "'   '", "reason": "FieldValueDuplicate"},
                {"rule": "self.n < 1", "fieldPath": "['m']"},
            ],
            "properties": {
                "n": {"type": "integer", "x-kubernetes-validations": [{"rule": "self % 2 == 0", "message": "must be even"}]},
                "m": {"type": "string"},
            }}}}),
        );
        let (errors, _) = check(&s, &json!({"spec": {"n": 11}}), None);
        assert_eq!(
            errors,
            [
                "spec: Invalid value: failed rule: self.n < 10",
                "spec.n: Invalid value: n too big",
                "spec: Forbidden: n is 11",
                "spec: Required value: fallback",
                "spec: Duplicate value",
                "spec.m: Invalid value: failed rule: self.n < 1",
                "spec.n: Invalid value: 11: must be even",
            ]
        );
    }

    #[test]
    fn runtime_errors_name_the_rule() {
        let s = schema(
            json!({"type": "object", "properties": {"spec": {"type": "object",
            "x-kubernetes-validations": [
                {"rule": "self.missing == 1"},
                {"rule": "self.n / 0 == 1", "message": "no zero"},
                {"rule": "self.n"},
            ],
            "properties": {"n": {"type": "integer"}}}}}),
        );
        let (errors, _) = check(&s, &json!({"spec": {"n": 1}}), None);
        assert_eq!(
            errors,
            [
                "spec: Invalid value: \"object\": no such key: missing evaluating rule: self.missing == 1",
                "spec: Invalid value: \"object\": division by zero evaluating rule: no zero",
                "spec: Invalid value: \"object\": 'no such overload': call arguments did not match a supported operator, function or macro signature for rule: self.n",
            ]
        );
    }

    #[test]
    fn optional_old_self_and_ratcheting() {
        let s = schema(
            json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
                "a": {"type": "string", "x-kubernetes-validations": [
                    {"rule": "!oldSelf.hasValue() || self == oldSelf.value()", "optionalOldSelf": true, "message": "frozen"},
                    {"rule": "self.size() < 3", "message": "short"}]},
                "items": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["k"],
                    "items": {"type": "object", "properties": {"k": {"type": "string"}, "v": {"type": "integer"}},
                        "x-kubernetes-validations": [{"rule": "self.v >= oldSelf.v", "message": "no decrease"}]}},
            }}}}),
        );
        // optionalOldSelf runs on create, with oldSelf empty.
        assert!(check(&s, &json!({"spec": {"a": "x"}}), None).0.is_empty());
        assert_eq!(
            check(
                &s,
                &json!({"spec": {"a": "y"}}),
                Some(&json!({"spec": {"a": "x"}}))
            )
            .0,
            ["spec.a: Invalid value: \"y\": frozen"]
        );
        // An unchanged value that breaks a non-transition rule only warns.
        let long = json!({"spec": {"a": "long"}});
        let (errors, warnings) = check(&s, &long, Some(&long));
        assert!(errors.is_empty());
        assert_eq!(warnings, ["spec.a: Invalid value: \"long\": short"]);
        // Map-list items correlate by key, wherever they moved.
        let old = json!({"spec": {"items": [{"k": "a", "v": 5}, {"k": "b", "v": 1}]}});
        let new = json!({"spec": {"items": [{"k": "b", "v": 0}, {"k": "a", "v": 6}, {"k": "c", "v": 0}]}});
        assert_eq!(
            check(&s, &new, Some(&old)).0,
            ["spec.items[0]: Invalid value: no decrease"]
        );
    }

    #[test]
    fn an_expensive_rule_is_stopped_as_kube_stops_it() {
        let s = schema(
            json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
                "l": {"type": "array", "items": {"type": "integer"},
                    "x-kubernetes-validations": [
                        {"rule": "self.all(a, self.all(b, self.all(c, a + b + c >= 0)))"},
                        {"rule": "false", "message": "never reached"}]},
                "later": {"type": "string", "x-kubernetes-validations": [{"rule": "false"}]},
            }}}}),
        );
        let list: Vec<i64> = (0..200).collect();
        let (errors, _) = check(&s, &json!({"spec": {"l": list, "later": "x"}}), None);
        assert_eq!(
            errors,
            [
                "spec.l: Invalid value: \"array\": 'operation cancelled: actual cost limit exceeded': no further validation rules will be run due to call cost exceeds limit for rule: self.all(a, self.all(b, self.all(c, a + b + c >= 0)))"
            ]
        );
        // Small inputs pass the same rule.
        let (errors, _) = check(&s, &json!({"spec": {"l": [1, 2, 3]}}), None);
        assert_eq!(errors, ["spec.l: Invalid value: never reached"]);
    }

    #[test]
    fn bad_rules_are_refused_at_load() {
        for (raw, want) in [
            (json!({"rule": "self >"}), "compilation failed"),
            (json!({"rule": "self.isSorted()"}), "isSorted"),
            (
                json!({"rule": "self == 1", "optionalOldSelf": true}),
                "optionalOldSelf",
            ),
            (
                json!({"rule": "true", "fieldPath": ".nope"}),
                "does not refer to a valid field",
            ),
            (
                json!({"rule": "true", "reason": "Sideways"}),
                "unsupported reason",
            ),
            (json!({"rule": "true", "bogus": 1}), "unsupported"),
        ] {
            let e = Schema::load(
                &json!({"type": "object", "properties": {"a": {"type": "integer"}}, "x-kubernetes-validations": [raw]}),
                &serde_json::Map::new(),
            )
            .unwrap_err();
            assert!(e.contains(want), "{e}");
        }
    }
}
