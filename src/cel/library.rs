//! The functions a rule may call: the part of Kubernetes' CEL environment
//! (`k8s.io/apiserver/pkg/cel/environment/base.go`) that cel-rust implements. A rule that calls
//! anything else is refused when the schema loads, the way kube-apiserver refuses to create a
//! CRD whose rule does not compile, so the server never starts with a rule it cannot run.

use cel::common::ast::{Expr, IdedExpr};

/// Operators and functions that evaluate as in Kubernetes (each is exercised by a test below).
const SUPPORTED: &[&str] = &[
    // Operators.
    "_?_:_",
    "_&&_",
    "_||_",
    "!_",
    "-_",
    "_+_",
    "_-_",
    "_*_",
    "_/_",
    "_%_",
    "_==_",
    "_!=_",
    "_<_",
    "_<=_",
    "_>_",
    "_>=_",
    "_[_]",
    "_[?_]",
    "_?._",
    "@in",
    "@not_strictly_false",
    // Standard definitions.
    "size",
    "type",
    "int",
    "uint",
    "double",
    "string",
    "bytes",
    "bool",
    "dyn",
    "duration",
    "timestamp",
    "matches",
    "contains",
    "startsWith",
    "endsWith",
    "getDate",
    "getDayOfMonth",
    "getDayOfWeek",
    "getDayOfYear",
    "getFullYear",
    "getHours",
    "getMilliseconds",
    "getMinutes",
    "getMonth",
    "getSeconds",
    // Optional types (`cel.OptionalTypes()`).
    "optional.of",
    "optional.ofNonZeroValue",
    "optional.none",
    "hasValue",
    "value",
    "or",
    "orValue",
    // ext.Strings.
    "charAt",
    "indexOf",
    "lastIndexOf",
    "lowerAscii",
    "upperAscii",
    "replace",
    "split",
    "substring",
    "trim",
    "join",
    "format",
    "strings.quote",
    "reverse",
    // ext.Lists.
    "slice",
    "flatten",
    "distinct",
    "sort",
    "lists.range",
    "@sortByAssociatedKeys",
];

/// Functions of Kubernetes' environment this server cannot run (named in the error).
const KUBERNETES_ONLY: &[&str] = &[
    // library.Lists
    "isSorted",
    "sum",
    "min",
    "max",
    // library.Regex
    "find",
    "findAll",
    // library.URLs
    "url",
    "isURL",
    "getScheme",
    "getHost",
    "getHostname",
    "getPort",
    "getEscapedPath",
    "getQuery",
    // library.Quantity
    "quantity",
    "isQuantity",
    "sign",
    "isGreaterThan",
    "isLessThan",
    "compareTo",
    "asInteger",
    "asApproximateFloat",
    "isInteger",
    "add",
    "sub",
    // library.IP / CIDR
    "ip",
    "isIP",
    "ip.isCanonical",
    "family",
    "isUnspecified",
    "isLoopback",
    "isLinkLocalMulticast",
    "isLinkLocalUnicast",
    "isGlobalUnicast",
    "cidr",
    "isCIDR",
    "containsIP",
    "containsCIDR",
    "masked",
    "prefixLength",
    // library.Format
    "format.named",
    "validate",
    // library.Semver
    "semver",
    "isSemver",
    "major",
    "minor",
    "patch",
    // ext.Sets
    "sets.contains",
    "sets.equivalent",
    "sets.intersects",
    // ext.Lists v3 and two-variable comprehensions
    "first",
    "last",
    "transformList",
    "transformMap",
    "transformMapEntry",
    "all",
    "exists",
    "existsOne",
    "exists_one",
    // library.Authz (admission-time only in Kubernetes)
    "authorizer",
];

fn calls(e: &IdedExpr, out: &mut Vec<String>) {
    match &e.expr {
        Expr::Call(c) => {
            let qualified = c.target.as_deref().and_then(|t| match &t.expr {
                Expr::Ident(ns) if ns == "optional" || ns == "strings" || ns == "lists" => {
                    Some(format!("{ns}.{}", c.func_name))
                }
                _ => None,
            });
            match qualified {
                Some(name) => out.push(name),
                None => {
                    out.push(c.func_name.clone());
                    if let Some(t) = &c.target {
                        calls(t, out);
                    }
                }
            }
            c.args.iter().for_each(|a| calls(a, out));
        }
        Expr::Select(s) => calls(&s.operand, out),
        Expr::List(l) => l.elements.iter().for_each(|x| calls(x, out)),
        Expr::Map(m) => {
            for entry in &m.entries {
                if let cel::common::ast::EntryExpr::MapEntry(me) = &entry.expr {
                    calls(&me.key, out);
                    calls(&me.value, out);
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
                calls(x, out);
            }
        }
        Expr::Struct(_) | Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
    }
}

/// Refuses an expression that calls a function this server cannot run.
pub fn check(expr: &IdedExpr) -> Result<(), String> {
    let mut names = Vec::new();
    calls(expr, &mut names);
    for name in names {
        if SUPPORTED.contains(&name.as_str()) {
            continue;
        }
        if KUBERNETES_ONLY.contains(&name.as_str()) {
            return Err(format!(
                "compilation failed: function '{name}' of the Kubernetes CEL library is not supported by this server"
            ));
        }
        return Err(format!(
            "compilation failed: undeclared reference to '{name}'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{Expression, PER_CALL_LIMIT};
    use cel::Value;

    /// Every supported function, at work.
    #[test]
    fn supported_functions_evaluate() {
        let exprs = [
            "size('ab') == 2 && size([1]) == 1 && size({'a': 1}) == 1",
            "type(1) == int && int('3') == 3 && uint(3) == 3u && double(1) == 1.0",
            "string(1) == '1' && bytes('a') == b'a' && bool('true') && dyn(1) == 1",
            "duration('1s') < duration('2s') && timestamp('2020-01-01T00:00:00Z').getFullYear() == 2020",
            "timestamp('2020-03-04T05:06:07.008Z').getMonth() == 2 && timestamp('2020-03-04T05:06:07.008Z').getDate() == 4",
            "timestamp('2020-03-04T05:06:07.008Z').getDayOfMonth() == 3 && timestamp('2020-03-04T05:06:07.008Z').getDayOfWeek() == 3",
            "timestamp('2020-03-04T05:06:07.008Z').getDayOfYear() == 63 && timestamp('2020-03-04T05:06:07.008Z').getHours() == 5",
            "timestamp('2020-03-04T05:06:07.008Z').getMinutes() == 6 && timestamp('2020-03-04T05:06:07.008Z').getSeconds() == 7",
            "timestamp('2020-03-04T05:06:07.008Z').getMilliseconds() == 8",
            "'abc'.matches('^a') && 'abc'.contains('b') && 'abc'.startsWith('a') && 'abc'.endsWith('c')",
            "matches('abc', 'c$') && 1 in [1] && !false && -(1) == -1 && 7 % 4 == 3 && 6 / 2 - 1 == 2",
            "optional.of(1).hasValue() && optional.of(1).value() == 1 && optional.none().or(optional.of(2)).value() == 2",
            "optional.ofNonZeroValue(0).orValue(4) == 4 && {'a': 1}.?a.value() == 1 && [1][?0].value() == 1",
            "'abc'.charAt(1) == 'b' && 'abcb'.indexOf('b') == 1 && 'abcb'.lastIndexOf('b') == 3",
            "'aB'.lowerAscii() == 'ab' && 'aB'.upperAscii() == 'AB' && 'aa'.replace('a', 'b') == 'bb'",
            "'a,b'.split(',') == ['a', 'b'] && 'abc'.substring(1) == 'bc' && ' a '.trim() == 'a'",
            "['a', 'b'].join('-') == 'a-b' && '%s'.format(['x']) == 'x' && strings.quote('a') == '\"a\"'",
            "'ab'.reverse() == 'ba' && [1, 2, 3].slice(1, 2) == [2] && [[1], [2]].flatten() == [1, 2]",
            "[1, 1].distinct() == [1] && [2, 1].sort() == [1, 2] && lists.range(2) == [0, 1]",
            "[2, 1].reverse() == [1, 2] && [3, 1].sortBy(x, x) == [1, 3] && 2 >= 1 && 1 <= 2 && 1 < 2 && 2 > 1 && 1 != 2",
        ];
        for src in exprs {
            let (r, _) = Expression::compile(src)
                .unwrap_or_else(|e| panic!("{src}: {e}"))
                .evaluate(vec![], PER_CALL_LIMIT);
            assert_eq!(r, Ok(Value::Bool(true)), "{src}");
        }
    }

    #[test]
    fn unsupported_functions_are_refused_at_compile_time() {
        let e = Expression::compile("self.isSorted()").unwrap_err();
        assert_eq!(
            e,
            "compilation failed: function 'isSorted' of the Kubernetes CEL library is not supported by this server"
        );
        let e = Expression::compile("quantity(self) == quantity('1')").unwrap_err();
        assert!(e.contains("'quantity'"), "{e}");
        let e = Expression::compile("frobnicate(self)").unwrap_err();
        assert_eq!(
            e,
            "compilation failed: undeclared reference to 'frobnicate'"
        );
    }
}
