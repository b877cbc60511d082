//! CEL for `x-kubernetes-validations`: compiling rules once at startup and evaluating them with
//! a cost limit, on top of the `cel` crate (cel-rust), as apiextensions-apiserver does with
//! cel-go (`k8s.io/apiserver/pkg/cel`).
//!
//! - [`library`]: which functions a rule may call (what cel-rust implements of Kubernetes' CEL
//!   environment); a rule calling anything else is refused when the schema loads, as
//!   kube-apiserver refuses such a CRD.
//! - [`cost`]: the runtime cost meter (kube's per-call limit and per-object budget).
//! - [`value`]: JSON values as CEL values, typed by the structural schema.

pub mod cost;
pub mod library;
pub mod value;

use cel::{Context, Env, ExecutionError};
use std::sync::{Arc, OnceLock};

/// The most cost one expression may use (`PerCallLimit` in `k8s.io/apiserver/pkg/apis/cel`).
pub const PER_CALL_LIMIT: u64 = 1_000_000;
/// The most cost all rules of one object may use together (`RuntimeCELCostBudget`).
pub const RUNTIME_COST_BUDGET: u64 = 10_000_000;
/// The longest message a `messageExpression` may produce, in bytes
/// (`MaxEvaluatedMessageExpressionSizeBytes`).
pub const MAX_MESSAGE_BYTES: usize = 5 * 1024;

/// The variable a rule's own value is bound to.
pub const SELF: &str = "self";
/// The variable the previous value is bound to in transition rules.
pub const OLD_SELF: &str = "oldSelf";

/// The environment every rule is compiled and run in: the standard library, optional types and
/// the `strings` and `lists` extensions (the parts of Kubernetes' environment cel-rust has).
pub fn environment() -> Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Env::stdlib();
        // Both only declare overloads and a macro the standard library lacks; a clash would be a
        // bug of the crate, and the rules would then fail to compile with a clear error.
        if let Err(e) = env.add_extension(cel::extensions::strings) {
            tracing::error!(error = %e, "CEL strings extension");
        }
        if let Err(e) = env.add_extension(cel::extensions::lists) {
            tracing::error!(error = %e, "CEL lists extension");
        }
        Arc::new(env)
    })
    .clone()
}

/// A compiled expression: parsed, checked against [`library`], instrumented for [`cost`].
#[derive(Debug)]
pub struct Expression {
    /// The source, as written in the schema.
    pub source: String,
    /// The instrumented expression that runs.
    expr: cel::parser::Expression,
    /// Whether it reads `oldSelf` (a transition rule).
    pub uses_old_self: bool,
}

/// Why an expression did not produce a value.
#[derive(Clone, Debug, PartialEq)]
pub enum EvalError {
    /// It ran past its cost limit and was stopped.
    CostLimitExceeded,
    /// A runtime error, worded as cel-go words it (`no such key: x`).
    Failed(String),
    /// No operator or function overload matched the argument types.
    NoSuchOverload,
}

impl Expression {
    /// Parses and checks an expression. Errors are what kube-apiserver reports for a CRD whose
    /// rule does not compile: the parser's messages, or a function this server cannot run.
    pub fn compile(source: &str) -> Result<Expression, String> {
        let env = environment();
        let parsed = env
            .parser()
            .parse(source)
            .map_err(|e| format!("compilation failed: {e}"))?;
        library::check(&parsed)?;
        let uses_old_self = cost::references(&parsed, OLD_SELF);
        Ok(Expression {
            source: source.to_string(),
            expr: cost::instrument(parsed),
            uses_old_self,
        })
    }

    /// Evaluates with these variables, stopping once the cost passes `limit`. Returns the result
    /// and the cost used.
    pub fn evaluate(
        &self,
        variables: Vec<(&str, cel::Value)>,
        limit: u64,
    ) -> (Result<cel::Value, EvalError>, u64) {
        let meter = Arc::new(cost::Meter::new(limit));
        let mut ctx = Context::with_env(environment());
        for (name, value) in variables {
            ctx.add_variable_from_value(name, value);
        }
        if let Err(e) = ctx.add_function(cost::CHARGE, cost::charger(meter.clone())) {
            return (Err(EvalError::Failed(e.to_string())), 0);
        }
        let result = cel::Value::resolve(&self.expr, &ctx);
        let used = meter.used();
        if meter.exceeded() {
            return (Err(EvalError::CostLimitExceeded), used);
        }
        (result.map_err(|e| describe(&e)), used)
    }
}

/// cel-go's wording of a runtime error (what kube-apiserver puts in its messages).
fn describe(e: &ExecutionError) -> EvalError {
    match e {
        ExecutionError::NoSuchKey(k) => EvalError::Failed(format!("no such key: {k}")),
        ExecutionError::DivisionByZero(_) => EvalError::Failed("division by zero".into()),
        ExecutionError::RemainderByZero(_) => EvalError::Failed("modulus by zero".into()),
        ExecutionError::Overflow(..) => EvalError::Failed("integer overflow".into()),
        ExecutionError::NoSuchOverload(_)
        | ExecutionError::UnsupportedBinaryOperator(..)
        | ExecutionError::ValuesNotComparable(..) => EvalError::NoSuchOverload,
        ExecutionError::FunctionError { function, message } if function == cost::CHARGE => {
            EvalError::Failed(message.clone())
        }
        ExecutionError::FunctionError { message, .. } => EvalError::Failed(message.clone()),
        other => EvalError::Failed(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cel::Value;

    fn eval(source: &str, vars: Vec<(&str, Value)>) -> Result<Value, EvalError> {
        Expression::compile(source)
            .unwrap()
            .evaluate(vars, PER_CALL_LIMIT)
            .0
    }

    #[test]
    fn rules_see_self_and_old_self() {
        let a: Value = std::collections::HashMap::from([("app", "a")]).into();
        let b: Value = std::collections::HashMap::from([("app", "b")]).into();
        assert_eq!(
            eval(
                "self == oldSelf",
                vec![(SELF, a.clone()), (OLD_SELF, a.clone())]
            ),
            Ok(Value::Bool(true))
        );
        assert_eq!(
            eval("self == oldSelf", vec![(SELF, a.clone()), (OLD_SELF, b)]),
            Ok(Value::Bool(false))
        );
        assert!(
            Expression::compile("self == oldSelf")
                .unwrap()
                .uses_old_self
        );
        assert!(!Expression::compile("self.x > 1").unwrap().uses_old_self);
        assert_eq!(
            eval("self.nope == 1", vec![(SELF, a)]),
            Err(EvalError::Failed("no such key: nope".into()))
        );
        assert_eq!(
            eval("1 / 0 == 1", vec![]),
            Err(EvalError::Failed("division by zero".into()))
        );
        assert_eq!(eval("1 + 'a' == 2", vec![]), Err(EvalError::NoSuchOverload));
    }

    #[test]
    fn parse_errors_are_compile_errors() {
        let e = Expression::compile("self ==").unwrap_err();
        assert!(e.starts_with("compilation failed: "), "{e}");
    }
}
