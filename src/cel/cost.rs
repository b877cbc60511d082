//! The runtime cost of an expression, so that no rule can run forever.
//!
//! cel-go counts the cost of every step it interprets and cancels an evaluation once it passes
//! the limit (`operation cancelled: actual cost limit exceeded`); kube-apiserver gives each rule
//! [`super::PER_CALL_LIMIT`] and an object's rules together [`super::RUNTIME_COST_BUDGET`].
//! cel-rust counts nothing, so the expression is instrumented instead: every function or
//! operator call, every field selection and every variable read is wrapped in a call of
//! [`CHARGE`], which charges 1 plus the size of the value produced (one unit per list element or
//! map entry, nested ones included, and one per 10 bytes of a string) and fails once the meter
//! passes its limit. A comprehension's range is charged before it loops, so nested loops are
//! charged what they iterate. The numbers are close to cel-go's but not the same: a rule near
//! the limit may pass here and fail in kube-apiserver, or the other way round.

use cel::common::ast::{CallExpr, Expr, IdedExpr};
use cel::common::types::{CelBytes, CelList, CelMap, CelString};
use cel::common::value::{CowVal, Val};
use cel::{ExecutionError, FunctionContext};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The function the instrumentation calls; `@` keeps it out of reach of rule authors.
pub const CHARGE: &str = "@charge";

/// The error cel-go reports when it cancels an evaluation.
pub const LIMIT_EXCEEDED: &str = "operation cancelled: actual cost limit exceeded";

/// Cost used by one evaluation.
#[derive(Debug)]
pub struct Meter {
    used: AtomicU64,
    limit: u64,
}

impl Meter {
    /// A meter that trips past `limit`.
    pub fn new(limit: u64) -> Meter {
        Meter {
            used: AtomicU64::new(0),
            limit,
        }
    }

    /// Cost used so far.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Whether the evaluation went past the limit.
    pub fn exceeded(&self) -> bool {
        self.used() > self.limit
    }

    /// Adds `cost`; fails once past the limit (and keeps failing, so an error swallowed by
    /// `||` or `&&` cannot let the evaluation run on).
    fn charge(&self, cost: u64) -> Result<(), ExecutionError> {
        let used = self
            .used
            .fetch_add(cost, Ordering::Relaxed)
            .saturating_add(cost);
        if used > self.limit {
            return Err(ExecutionError::function_error(CHARGE, LIMIT_EXCEEDED));
        }
        Ok(())
    }
}

/// The size a value is charged for: 1, plus its elements or entries (deeply), plus a unit per
/// 10 bytes of text.
fn size(v: &dyn Val) -> u64 {
    if let Some(s) = v.downcast_ref::<CelString>() {
        return 1 + (s.inner().len() as u64).div_ceil(10);
    }
    if let Some(b) = v.downcast_ref::<CelBytes>() {
        return 1 + (b.inner().len() as u64).div_ceil(10);
    }
    if let Some(l) = v.downcast_ref::<CelList>() {
        return 1 + l.inner().iter().map(|e| size(e.as_ref())).sum::<u64>();
    }
    if let Some(m) = v.downcast_ref::<CelMap>() {
        return 1 + m.inner().values().map(|e| size(e.as_ref())).sum::<u64>();
    }
    1
}

/// The signature of a function the context calls.
type Charger = Box<
    dyn for<'context, 'call> Fn(
            &mut FunctionContext<'context, 'call>,
        ) -> Result<CowVal<'context, 'call>, ExecutionError>
        + Send
        + Sync,
>;

/// The [`CHARGE`] function of one evaluation: passes its argument through, charging its size.
pub fn charger(meter: Arc<Meter>) -> Charger {
    Box::new(move |ftx| {
        if ftx.args.len() != 1 {
            return Err(ExecutionError::invalid_argument_count(1, ftx.args.len()));
        }
        let value = ftx.args.remove(0);
        meter.charge(size(value.as_ref()))?;
        Ok(value)
    })
}

/// Whether an expression reads a variable.
pub fn references(expr: &IdedExpr, name: &str) -> bool {
    let mut found = false;
    visit(expr, &mut |e| {
        if matches!(&e.expr, Expr::Ident(n) if n == name) {
            found = true;
        }
    });
    found
}

fn visit(e: &IdedExpr, f: &mut dyn FnMut(&IdedExpr)) {
    f(e);
    match &e.expr {
        Expr::Call(c) => {
            if let Some(t) = &c.target {
                visit(t, f);
            }
            c.args.iter().for_each(|a| visit(a, f));
        }
        Expr::Select(s) => visit(&s.operand, f),
        Expr::List(l) => l.elements.iter().for_each(|x| visit(x, f)),
        Expr::Map(m) => {
            for entry in &m.entries {
                if let cel::common::ast::EntryExpr::MapEntry(me) = &entry.expr {
                    visit(&me.key, f);
                    visit(&me.value, f);
                }
            }
        }
        Expr::Comprehension(c) => {
            for x in [
                &c.iter_range,
                &c.accu_init,
                &c.loop_cond,
                &c.loop_step,
                &c.result,
            ] {
                visit(x, f);
            }
        }
        Expr::Struct(s) => {
            for entry in &s.entries {
                if let cel::common::ast::EntryExpr::StructField(sf) = &entry.expr {
                    visit(&sf.value, f);
                }
            }
        }
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
    }
}

/// Where a node sits, which decides whether it may be wrapped.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    /// Anywhere a value is used.
    Value,
    /// The target of a call (`optional` in `optional.of(x)` names a function, not a value), or
    /// the operand of a selection (the selection is charged).
    Name,
    /// A comprehension's loop step or the appending step inside it: the interpreter recognises
    /// their shape (`@result && x`, `@result + [x]`) to run them fast, so they stay unwrapped.
    Step,
}

/// Wraps the nodes of an expression in [`CHARGE`] calls.
pub fn instrument(expr: IdedExpr) -> IdedExpr {
    let mut next_id = max_id(&expr) + 1;
    rewrite(expr, Place::Value, &mut next_id, &[])
}

fn max_id(e: &IdedExpr) -> u64 {
    let mut max = 0;
    visit(e, &mut |x| max = max.max(x.id));
    max
}

fn wrap(e: IdedExpr, next_id: &mut u64) -> IdedExpr {
    *next_id += 1;
    IdedExpr {
        id: *next_id,
        expr: Expr::Call(CallExpr {
            func_name: CHARGE.into(),
            target: None,
            args: vec![e],
        }),
    }
}

fn rewrite(e: IdedExpr, place: Place, next_id: &mut u64, accumulators: &[String]) -> IdedExpr {
    let IdedExpr { id, expr } = e;
    let (expr, chargeable) = match expr {
        Expr::Call(c) => {
            let CallExpr {
                func_name,
                target,
                args,
            } = c;
            let is_append_step = place == Place::Step && func_name == "_?_:_";
            let target = target.map(|t| Box::new(rewrite(*t, Place::Name, next_id, accumulators)));
            let args = args
                .into_iter()
                .enumerate()
                .map(|(i, a)| {
                    // In `cond ? @result + [x] : @result` the middle argument keeps its shape.
                    let p = if is_append_step && i == 1 {
                        Place::Step
                    } else {
                        Place::Value
                    };
                    rewrite(a, p, next_id, accumulators)
                })
                .collect();
            (
                Expr::Call(CallExpr {
                    func_name,
                    target,
                    args,
                }),
                place != Place::Step,
            )
        }
        Expr::Select(mut s) => {
            let operand = std::mem::take(&mut *s.operand);
            *s.operand = rewrite(operand, Place::Name, next_id, accumulators);
            (Expr::Select(s), place == Place::Value)
        }
        Expr::Ident(name) => {
            let accumulator = accumulators.contains(&name);
            (Expr::Ident(name), place == Place::Value && !accumulator)
        }
        Expr::List(mut l) => {
            l.elements = std::mem::take(&mut l.elements)
                .into_iter()
                .map(|x| rewrite(x, Place::Value, next_id, accumulators))
                .collect();
            (Expr::List(l), false)
        }
        Expr::Map(mut m) => {
            for entry in &mut m.entries {
                if let cel::common::ast::EntryExpr::MapEntry(me) = &mut entry.expr {
                    me.key = rewrite(
                        std::mem::take(&mut me.key),
                        Place::Value,
                        next_id,
                        accumulators,
                    );
                    me.value = rewrite(
                        std::mem::take(&mut me.value),
                        Place::Value,
                        next_id,
                        accumulators,
                    );
                }
            }
            (Expr::Map(m), false)
        }
        Expr::Comprehension(mut c) => {
            let mut inner: Vec<String> = accumulators.to_vec();
            inner.push(c.accu_var.clone());
            c.iter_range = wrap_value(
                rewrite(
                    std::mem::take(&mut c.iter_range),
                    Place::Name,
                    next_id,
                    &inner,
                ),
                next_id,
            );
            c.accu_init = rewrite(
                std::mem::take(&mut c.accu_init),
                Place::Value,
                next_id,
                &inner,
            );
            c.loop_cond = rewrite(
                std::mem::take(&mut c.loop_cond),
                Place::Step,
                next_id,
                &inner,
            );
            c.loop_step = rewrite(
                std::mem::take(&mut c.loop_step),
                Place::Step,
                next_id,
                &inner,
            );
            c.result = rewrite(std::mem::take(&mut c.result), Place::Step, next_id, &inner);
            (Expr::Comprehension(c), false)
        }
        Expr::Struct(mut s) => {
            for entry in &mut s.entries {
                if let cel::common::ast::EntryExpr::StructField(sf) = &mut entry.expr {
                    sf.value = rewrite(
                        std::mem::take(&mut sf.value),
                        Place::Value,
                        next_id,
                        accumulators,
                    );
                }
            }
            (Expr::Struct(s), false)
        }
        other @ (Expr::Literal(_) | Expr::Unspecified) => (other, false),
    };
    let node = IdedExpr { id, expr };
    if chargeable {
        wrap(node, next_id)
    } else {
        node
    }
}

/// Wraps a node that is used as a value whatever its kind (a comprehension's range).
fn wrap_value(e: IdedExpr, next_id: &mut u64) -> IdedExpr {
    if matches!(&e.expr, Expr::Call(c) if c.func_name == CHARGE) {
        return e;
    }
    wrap(e, next_id)
}

#[cfg(test)]
mod tests {
    use super::super::{EvalError, Expression, PER_CALL_LIMIT};
    use cel::Value;

    fn run(source: &str, vars: Vec<(&str, Value)>, limit: u64) -> (Result<Value, EvalError>, u64) {
        Expression::compile(source).unwrap().evaluate(vars, limit)
    }

    #[test]
    fn instrumented_expressions_keep_their_meaning() {
        let list: Value = vec![1i64, 2, 3].into();
        let cases = [
            ("self.all(x, x > 0)", Value::Bool(true)),
            ("self.exists(x, x > 2)", Value::Bool(true)),
            ("self.exists_one(x, x > 2)", Value::Bool(true)),
            ("self.map(x, x * 2) == [2, 4, 6]", Value::Bool(true)),
            ("self.filter(x, x > 1) == [2, 3]", Value::Bool(true)),
            ("self.map(x, x > 1, x) == [2, 3]", Value::Bool(true)),
            ("size(self) == 3 && self[0] == 1", Value::Bool(true)),
            ("optional.of(1).hasValue()", Value::Bool(true)),
            ("optional.none().orValue(5) == 5", Value::Bool(true)),
            (
                "[1, 2].all(a, self.all(b, a < 10 && b < 10))",
                Value::Bool(true),
            ),
            ("'abc'.upperAscii() == 'ABC'", Value::Bool(true)),
            ("self.sortBy(x, -x) == [3, 2, 1]", Value::Bool(true)),
            ("{'a': self}.a == self", Value::Bool(true)),
            ("has({'a': 1}.a)", Value::Bool(true)),
            // An error one side of `||` decides is absorbed, as in cel-go.
            ("self[9] == 1 || true", Value::Bool(true)),
        ];
        for (src, want) in cases {
            assert_eq!(
                run(src, vec![("self", list.clone())], PER_CALL_LIMIT).0,
                Ok(want),
                "{src}"
            );
        }
    }

    #[test]
    fn nested_loops_are_charged_what_they_iterate() {
        let list: Value = (0..100i64).collect::<Vec<_>>().into();
        let (r, small) = run(
            "self.all(x, x >= 0)",
            vec![("self", list.clone())],
            PER_CALL_LIMIT,
        );
        assert_eq!(r, Ok(Value::Bool(true)));
        let (r, big) = run(
            "self.all(x, self.all(y, x + y >= 0))",
            vec![("self", list.clone())],
            PER_CALL_LIMIT,
        );
        assert_eq!(r, Ok(Value::Bool(true)));
        assert!(big > 50 * small, "{big} vs {small}");
        // Three nested loops over 100 items cost far more than the limit and are stopped.
        let (r, used) = run(
            "self.all(x, self.all(y, self.all(z, x + y + z >= 0)))",
            vec![("self", list)],
            PER_CALL_LIMIT,
        );
        assert_eq!(r, Err(EvalError::CostLimitExceeded));
        assert!(used > PER_CALL_LIMIT);
    }

    #[test]
    fn a_stopped_evaluation_stays_stopped_behind_or() {
        let list: Value = (0..200i64).collect::<Vec<_>>().into();
        let (r, _) = run(
            "self.exists(x, !self.all(y, self.all(z, x + y + z >= 0))) || true",
            vec![("self", list)],
            PER_CALL_LIMIT,
        );
        assert_eq!(r, Err(EvalError::CostLimitExceeded));
    }

    #[test]
    fn long_strings_cost_more() {
        let short: Value = "a".into();
        let long: Value = "a".repeat(10_000).into();
        let (_, a) = run("self + self != ''", vec![("self", short)], PER_CALL_LIMIT);
        let (_, b) = run("self + self != ''", vec![("self", long)], PER_CALL_LIMIT);
        assert!(b > a + 2000, "{b} vs {a}");
    }
}
