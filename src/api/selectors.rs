//! Label and field selectors, parsed and matched as `k8s.io/apimachinery/pkg/labels` and
//! `.../fields` do, with their error messages (which kube-apiserver returns as 400s).

use crate::object::names;
use std::collections::{BTreeMap, BTreeSet};

/// A label selector operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `in (a,b)`, `=a`, `==a`
    In,
    /// `notin (a,b)`, `!=a`
    NotIn,
    /// `key`
    Exists,
    /// `!key`
    DoesNotExist,
    /// `key gt 3`
    GreaterThan,
    /// `key lt 3`
    LessThan,
}

/// One requirement of a label selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    /// The label key.
    pub key: String,
    /// How it is compared.
    pub op: Op,
    /// The values, sorted and unique.
    pub values: BTreeSet<String>,
}

/// A parsed label selector: all requirements must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    /// Requirements, sorted by key.
    pub requirements: Vec<Requirement>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    End,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
    Error,
}

fn keyword(s: &str) -> Option<Token> {
    Some(match s {
        ")" => Token::ClosedPar,
        "," => Token::Comma,
        "!" => Token::DoesNotExist,
        "==" => Token::DoubleEquals,
        "=" => Token::Equals,
        ">" => Token::GreaterThan,
        "in" => Token::In,
        "<" => Token::LessThan,
        "!=" => Token::NotEquals,
        "notin" => Token::NotIn,
        "(" => Token::OpenPar,
        _ => return None,
    })
}

fn is_special(c: u8) -> bool {
    matches!(c, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn lex(input: &str) -> Vec<(Token, String)> {
    let b = input.as_bytes();
    let mut pos = 0;
    let mut out = Vec::new();
    loop {
        while pos < b.len() && is_space(b[pos]) {
            pos += 1;
        }
        if pos >= b.len() {
            out.push((Token::End, String::new()));
            return out;
        }
        if is_special(b[pos]) {
            let mut buf = String::new();
            let mut last: Option<(Token, String)> = None;
            while pos < b.len() && is_special(b[pos]) {
                buf.push(b[pos] as char);
                if let Some(t) = keyword(&buf) {
                    last = Some((t, buf.clone()));
                    pos += 1;
                } else if last.is_some() {
                    break;
                } else {
                    pos += 1;
                }
            }
            match last {
                Some(t) => out.push(t),
                None => out.push((
                    Token::Error,
                    format!("error expected: keyword found '{buf}'"),
                )),
            }
        } else {
            let start = pos;
            while pos < b.len() && !is_special(b[pos]) && !is_space(b[pos]) {
                pos += 1;
            }
            let s = String::from_utf8_lossy(&b[start..pos]).to_string();
            match keyword(&s) {
                Some(t) => out.push((t, s)),
                None => out.push((Token::Identifier, s)),
            }
        }
    }
}

struct Parser {
    items: Vec<(Token, String)>,
    pos: usize,
}

#[derive(PartialEq)]
enum Context {
    KeyAndOperator,
    Values,
}

impl Parser {
    fn get(&self, i: usize, ctx: Context) -> (Token, String) {
        let (t, l) = self
            .items
            .get(i)
            .cloned()
            .unwrap_or((Token::End, String::new()));
        match t {
            Token::In | Token::NotIn if ctx == Context::Values => (Token::Identifier, l),
            t => (t, l),
        }
    }
    fn lookahead(&self, ctx: Context) -> (Token, String) {
        self.get(self.pos, ctx)
    }
    fn consume(&mut self, ctx: Context) -> (Token, String) {
        self.pos += 1;
        self.get(self.pos - 1, ctx)
    }
}

fn validate_key(key: &str) -> Result<(), String> {
    let errs = names::qualified_name(key);
    if errs.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "<nil>: Invalid value: {}: {}",
            crate::field_error::go_quote(key),
            errs.join("; ")
        ))
    }
}

fn requirement(key: String, op: Op, values: BTreeSet<String>) -> Result<Requirement, String> {
    let mut errs: Vec<String> = Vec::new();
    if let Err(e) = validate_key(&key) {
        errs.push(e);
    }
    let shown = || {
        let v: Vec<String> = values
            .iter()
            .map(|s| crate::field_error::go_quote(s))
            .collect();
        format!("[{}]", v.join(","))
    };
    match op {
        Op::In | Op::NotIn if values.is_empty() => errs.push(format!(
            "values: Invalid value: {}: for 'in', 'notin' operators, values set can't be empty",
            shown()
        )),
        Op::GreaterThan | Op::LessThan => {
            for (i, v) in values.iter().enumerate() {
                if v.parse::<i64>().is_err() {
                    errs.push(format!(
                        "values[{i}]: Invalid value: {}: for 'Gt', 'Lt' operators, the value must be an integer",
                        crate::field_error::go_quote(v)
                    ));
                }
            }
        }
        _ => {}
    }
    for (i, v) in values.iter().enumerate() {
        let problems = names::label_value(v);
        if !problems.is_empty() {
            errs.push(format!(
                "values[{i}][{key}]: Invalid value: {}: {}",
                crate::field_error::go_quote(v),
                problems.join("; ")
            ));
        }
    }
    match errs.len() {
        0 => Ok(Requirement { key, op, values }),
        1 => Err(errs.remove(0)),
        _ => Err(format!("[{}]", errs.join(", "))),
    }
}

impl LabelSelector {
    /// Parses a label selector string (`labels.Parse`).
    pub fn parse(input: &str) -> Result<LabelSelector, String> {
        let mut p = Parser {
            items: lex(input),
            pos: 0,
        };
        let mut requirements = Vec::new();
        loop {
            let (tok, lit) = p.lookahead(Context::Values);
            match tok {
                Token::Identifier | Token::DoesNotExist => {
                    let r = parse_requirement(&mut p)
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    requirements.push(r);
                    let (t, l) = p.consume(Context::Values);
                    match t {
                        Token::End => break,
                        Token::Comma => {
                            let (t2, l2) = p.lookahead(Context::Values);
                            if t2 != Token::Identifier && t2 != Token::DoesNotExist {
                                return Err(format!(
                                    "found '{l2}', expected: identifier after ','"
                                ));
                            }
                        }
                        _ => return Err(format!("found '{l}', expected: ',' or 'end of string'")),
                    }
                }
                Token::End => break,
                _ => {
                    return Err(format!(
                        "found '{lit}', expected: !, identifier, or 'end of string'"
                    ));
                }
            }
        }
        requirements.sort_by(|a: &Requirement, b| a.key.cmp(&b.key));
        Ok(LabelSelector { requirements })
    }

    /// Whether a set of labels satisfies every requirement.
    pub fn matches(&self, labels: &BTreeMap<&str, &str>) -> bool {
        self.requirements.iter().all(|r| {
            let value = labels.get(r.key.as_str());
            match r.op {
                Op::In => value.is_some_and(|v| r.values.contains(*v)),
                Op::NotIn => value.is_none_or(|v| !r.values.contains(*v)),
                Op::Exists => value.is_some(),
                Op::DoesNotExist => value.is_none(),
                Op::GreaterThan | Op::LessThan => {
                    let (Some(v), Some(bound)) = (
                        value.and_then(|v| v.parse::<i64>().ok()),
                        r.values.iter().next().and_then(|b| b.parse::<i64>().ok()),
                    ) else {
                        return false;
                    };
                    if r.op == Op::GreaterThan {
                        v > bound
                    } else {
                        v < bound
                    }
                }
            }
        })
    }

    /// Whether it selects everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
}

fn parse_requirement(p: &mut Parser) -> Result<Requirement, String> {
    let (mut tok, mut lit) = p.consume(Context::Values);
    let mut op = None;
    if tok == Token::DoesNotExist {
        op = Some(Op::DoesNotExist);
        (tok, lit) = p.consume(Context::Values);
    }
    if tok != Token::Identifier {
        return Err(format!("found '{lit}', expected: identifier"));
    }
    validate_key(&lit)?;
    let key = lit;
    let (next, _) = p.lookahead(Context::Values);
    if next == Token::End || next == Token::Comma {
        let op = if op == Some(Op::DoesNotExist) {
            Op::DoesNotExist
        } else {
            Op::Exists
        };
        return requirement(key, op, BTreeSet::new());
    }
    let (tok, lit) = p.consume(Context::KeyAndOperator);
    let op = match tok {
        Token::In => Op::In,
        Token::Equals | Token::DoubleEquals => Op::In,
        Token::GreaterThan => Op::GreaterThan,
        Token::LessThan => Op::LessThan,
        Token::NotIn | Token::NotEquals => Op::NotIn,
        _ => {
            return Err(format!(
                "found '{lit}', expected: in, notin, =, ==, !=, gt, lt"
            ));
        }
    };
    let values = match tok {
        Token::In | Token::NotIn => parse_values(p)?,
        _ => parse_exact_value(p)?,
    };
    requirement(key, op, values)
}

fn parse_values(p: &mut Parser) -> Result<BTreeSet<String>, String> {
    let (tok, lit) = p.consume(Context::Values);
    if tok != Token::OpenPar {
        return Err(format!("found '{lit}' expected: '('"));
    }
    let (tok, lit) = p.lookahead(Context::Values);
    match tok {
        Token::Identifier | Token::Comma => {
            let s = parse_identifiers(p)?;
            let (tok, _) = p.consume(Context::Values);
            if tok != Token::ClosedPar {
                return Err(format!("found '{lit}', expected: ')'"));
            }
            Ok(s)
        }
        Token::ClosedPar => {
            p.consume(Context::Values);
            Ok(BTreeSet::from([String::new()]))
        }
        _ => Err(format!("found '{lit}', expected: ',', ')' or identifier")),
    }
}

fn parse_identifiers(p: &mut Parser) -> Result<BTreeSet<String>, String> {
    let mut s = BTreeSet::new();
    loop {
        let (tok, lit) = p.consume(Context::Values);
        match tok {
            Token::Identifier => {
                s.insert(lit);
                let (t2, l2) = p.lookahead(Context::Values);
                match t2 {
                    Token::Comma => continue,
                    Token::ClosedPar => return Ok(s),
                    _ => return Err(format!("found '{l2}', expected: ',' or ')'")),
                }
            }
            Token::Comma => {
                if s.is_empty() {
                    s.insert(String::new());
                }
                let (t2, _) = p.lookahead(Context::Values);
                if t2 == Token::ClosedPar || t2 == Token::Comma {
                    s.insert(String::new());
                }
                if t2 == Token::ClosedPar {
                    return Ok(s);
                }
            }
            _ => return Err(format!("found '{lit}', expected: ',', or identifier")),
        }
    }
}

fn parse_exact_value(p: &mut Parser) -> Result<BTreeSet<String>, String> {
    let (tok, _) = p.lookahead(Context::Values);
    if tok == Token::End || tok == Token::Comma {
        return Ok(BTreeSet::from([String::new()]));
    }
    let (tok, lit) = p.consume(Context::Values);
    if tok == Token::Identifier {
        Ok(BTreeSet::from([lit]))
    } else {
        Err(format!("found '{lit}', expected: identifier"))
    }
}

/// One term of a field selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldTerm {
    /// The field (`metadata.name`).
    pub field: String,
    /// The value compared with.
    pub value: String,
    /// `!=` rather than `=`/`==`.
    pub negated: bool,
}

/// A parsed field selector: all terms must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    /// Terms, sorted as the parser sorts them.
    pub terms: Vec<FieldTerm>,
}

fn unescape(s: &str) -> Result<String, String> {
    if !s.contains(['\\', ',', '=']) {
        return Ok(s.to_string());
    }
    let mut out = String::new();
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            match c {
                '\\' | ',' | '=' => out.push(c),
                _ => {
                    return Err(format!(
                        "invalid field selector: invalid escape sequence: \\{c}"
                    ));
                }
            }
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            ',' | '=' => {
                return Err(format!(
                    "invalid field selector: unescaped character in value: {}",
                    c as u32
                ));
            }
            c => out.push(c),
        }
    }
    if in_slash {
        return Err("invalid field selector: invalid escape sequence: \\".into());
    }
    Ok(out)
}

impl FieldSelector {
    /// Parses a field selector (`fields.ParseSelector`) and checks that every field is one the
    /// server can select on.
    pub fn parse(input: &str, supported: &[&str]) -> Result<FieldSelector, String> {
        let selector = FieldSelector::parse_any(input)?;
        selector.check_fields(supported)?;
        Ok(selector)
    }

    /// Fails with kube-apiserver's words (`ConvertFieldLabel` of a custom resource) on the first
    /// field that is not among `supported`.
    pub fn check_fields(&self, supported: &[&str]) -> Result<(), String> {
        match self
            .terms
            .iter()
            .find(|t| !supported.contains(&t.field.as_str()))
        {
            Some(t) => Err(format!("field label not supported: {}", t.field)),
            None => Ok(()),
        }
    }

    /// Requires `metadata.name` to be `name` (a list or watch of one object by its path):
    /// added when the selector says nothing of it, 400 as `listOpts` words it when it names
    /// another object.
    pub fn require_name(&mut self, name: &str) -> Result<(), String> {
        if self.terms.is_empty() {
            self.terms.push(FieldTerm {
                field: "metadata.name".into(),
                value: name.to_string(),
                negated: false,
            });
            return Ok(());
        }
        match self.exact("metadata.name") {
            Some(n) if n == name => Ok(()),
            _ => Err("fieldSelector metadata.name doesn't match requested name".into()),
        }
    }

    /// Parses a field selector (`fields.ParseSelector`) whatever fields it names.
    pub fn parse_any(input: &str) -> Result<FieldSelector, String> {
        let mut parts = Vec::new();
        let (mut start, mut in_slash) = (0, false);
        for (i, c) in input.char_indices() {
            if in_slash {
                in_slash = false;
            } else if c == '\\' {
                in_slash = true;
            } else if c == ',' {
                parts.push(&input[start..i]);
                start = i + 1;
            }
        }
        parts.push(&input[start..]);
        parts.sort_unstable();
        let mut terms = Vec::new();
        for part in parts {
            if part.is_empty() {
                continue;
            }
            // The first position where any operator starts wins (`fields.splitTerm`).
            let split = (0..part.len()).find_map(|i| {
                ["!=", "==", "="]
                    .iter()
                    .find(|op| part.is_char_boundary(i) && part[i..].starts_with(**op))
                    .map(|op| (i, *op))
            });
            let Some((i, op)) = split else {
                return Err(format!(
                    "invalid selector: '{input}'; can't understand '{part}'"
                ));
            };
            let field = part[..i].to_string();
            let value = unescape(&part[i + op.len()..])?;
            terms.push(FieldTerm {
                field,
                value,
                negated: op == "!=",
            });
        }
        Ok(FieldSelector { terms })
    }

    /// Whether the fields (looked up by `get`) satisfy every term.
    pub fn matches(&self, get: impl Fn(&str) -> String) -> bool {
        self.terms
            .iter()
            .all(|t| (get(&t.field) == t.value) != t.negated)
    }

    /// Whether it selects everything.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The value a term requires a field to equal, if any (lets a list narrow its range).
    pub fn exact(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|t| t.field == field && !t.negated)
            .map(|t| t.value.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&'static str, &'static str)]) -> BTreeMap<&'static str, &'static str> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn label_selector_table() {
        let l = labels(&[("tier", "web"), ("env", "prod"), ("n", "5")]);
        let cases = [
            ("", true),
            ("tier=web", true),
            ("tier==web", true),
            ("tier!=web", false),
            ("tier=db", false),
            ("missing!=x", true),
            ("tier in (web,db)", true),
            ("tier notin (web,db)", false),
            ("env notin (dev)", true),
            ("tier", true),
            ("!tier", false),
            ("!missing", true),
            ("tier=web,env=prod", true),
            ("tier=web, env=dev", false),
            ("n>4", true),
            ("n<4", false),
            ("tier in (in,web)", true),
            ("x in ()", false),
            ("tier=", false),
        ];
        for (sel, want) in cases {
            let s = LabelSelector::parse(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
            assert_eq!(s.matches(&l), want, "{sel}");
        }
    }

    #[test]
    fn label_selector_errors_match_apimachinery() {
        let cases = [
            (
                "a in b",
                "unable to parse requirement: found 'b' expected: '('",
            ),
            (
                "a b",
                "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt",
            ),
            ("a,", "found '', expected: identifier after ','"),
            (
                "=a",
                "found '=', expected: !, identifier, or 'end of string'",
            ),
            (
                "a in (b",
                "unable to parse requirement: found '', expected: ',' or ')'",
            ),
            (
                "n>x",
                "unable to parse requirement: values[0]: Invalid value: \"x\": for 'Gt', 'Lt' operators, the value must be an integer",
            ),
        ];
        for (sel, want) in cases {
            assert_eq!(LabelSelector::parse(sel).unwrap_err(), want, "{sel}");
        }
        let bad_key = LabelSelector::parse("-a=b").unwrap_err();
        assert!(bad_key.starts_with("unable to parse requirement: <nil>: Invalid value: \"-a\": name part must consist of"), "{bad_key}");
        let bad_value = LabelSelector::parse("a=-b").unwrap_err();
        assert!(bad_value.starts_with("unable to parse requirement: values[0][a]: Invalid value: \"-b\": a valid label must be"), "{bad_value}");
    }

    #[test]
    fn field_selector_table() {
        let supported = ["metadata.name", "metadata.namespace"];
        let get = |f: &str| match f {
            "metadata.name" => "web".to_string(),
            "metadata.namespace" => "default".to_string(),
            _ => String::new(),
        };
        for (sel, want) in [
            ("metadata.name=web", true),
            ("metadata.name==web", true),
            ("metadata.name!=web", false),
            ("metadata.name=web,metadata.namespace=default", true),
            ("metadata.namespace=other", false),
            ("", true),
        ] {
            assert_eq!(
                FieldSelector::parse(sel, &supported).unwrap().matches(get),
                want,
                "{sel}"
            );
        }
        assert_eq!(
            FieldSelector::parse("spec.replicas=1", &supported).unwrap_err(),
            "field label not supported: spec.replicas"
        );
        assert_eq!(
            FieldSelector::parse("metadata.name", &supported).unwrap_err(),
            "invalid selector: 'metadata.name'; can't understand 'metadata.name'"
        );
        assert_eq!(
            FieldSelector::parse("metadata.name=a\\b", &supported).unwrap_err(),
            "invalid field selector: invalid escape sequence: \\b"
        );
        assert_eq!(
            FieldSelector::parse("metadata.name=a\\,b", &supported)
                .unwrap()
                .terms[0]
                .value,
            "a,b"
        );
    }
}
