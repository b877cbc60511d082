//! Reading JSON without building it: a cursor that steps over members and skips values byte by
//! byte, for the hot paths that only need to look at one corner of a stored object (the
//! versioner writing `metadata.resourceVersion`, the check for missing defaults on read).
//! Strings are skipped with `memchr`; only keys that contain escapes are decoded.
//!
//! It trusts its input to be JSON (stored objects are what the server wrote): a malformed
//! document makes a method answer `None` rather than be rejected in detail.

use std::borrow::Cow;

/// A position in a JSON document.
pub struct Skim<'a> {
    bytes: &'a [u8],
    /// Offset of the next byte to read.
    pub at: usize,
}

impl<'a> Skim<'a> {
    /// A cursor at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Skim<'a> {
        Skim { bytes, at: 0 }
    }

    /// The next byte, if any.
    pub fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    /// Skips whitespace.
    pub fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// Whether only whitespace is left.
    pub fn at_end(&mut self) -> bool {
        self.ws();
        self.at >= self.bytes.len()
    }

    /// Consumes `c` (after whitespace).
    pub fn expect(&mut self, c: u8) -> Option<()> {
        self.ws();
        (self.peek()? == c).then(|| self.at += 1)
    }

    /// Skips a string whose opening quote is next; returns whether it had escapes.
    fn skip_string(&mut self) -> Option<bool> {
        self.at += 1;
        let mut escaped = false;
        loop {
            let rest = self.bytes.get(self.at..)?;
            let found = memchr::memchr2(b'"', b'\\', rest)?;
            self.at += found;
            if rest[found] == b'"' {
                self.at += 1;
                return Some(escaped);
            }
            escaped = true;
            self.at += 2;
        }
    }

    /// Reads a string (the next token), decoding it only when it has escapes.
    pub fn string(&mut self) -> Option<Cow<'a, str>> {
        match self.raw_string()? {
            Raw::Plain(bytes) => std::str::from_utf8(bytes).ok().map(Cow::Borrowed),
            Raw::Escaped(quoted) => serde_json::from_slice::<String>(quoted)
                .ok()
                .map(Cow::Owned),
        }
    }

    /// Reads a string (the next token) without decoding or checking it.
    pub fn raw_string(&mut self) -> Option<Raw<'a>> {
        self.ws();
        if self.peek()? != b'"' {
            return None;
        }
        let start = self.at;
        let escaped = self.skip_string()?;
        let quoted = self.bytes.get(start..self.at)?;
        Some(if escaped {
            Raw::Escaped(quoted)
        } else {
            Raw::Plain(quoted.get(1..quoted.len() - 1)?)
        })
    }

    /// Skips the next value, whatever it is.
    pub fn skip_value(&mut self) -> Option<()> {
        self.ws();
        match self.peek()? {
            b'"' => self.skip_string().map(|_| ()),
            // In well-formed JSON a container ends at the close that balances its own kind of
            // bracket outside strings; the other kind can be ignored, so the scan jumps from
            // one quote or bracket of its kind to the next.
            open @ (b'{' | b'[') => {
                let close = if open == b'{' { b'}' } else { b']' };
                let mut depth = 0usize;
                loop {
                    let rest = self.bytes.get(self.at..)?;
                    self.at += memchr::memchr3(b'"', open, close, rest)?;
                    match self.bytes[self.at] {
                        b'"' => {
                            self.skip_string()?;
                            continue;
                        }
                        c if c == open => depth += 1,
                        _ => {
                            depth -= 1;
                            if depth == 0 {
                                self.at += 1;
                                return Some(());
                            }
                        }
                    }
                    self.at += 1;
                }
            }
            _ => {
                // A number or a literal runs to the next delimiter.
                let start = self.at;
                while !matches!(
                    self.peek(),
                    None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r' | b':')
                ) {
                    self.at += 1;
                }
                (self.at > start).then_some(())
            }
        }
    }

    /// Whether the next value is the literal `null` (consumed if so).
    pub fn null(&mut self) -> bool {
        self.ws();
        if self.bytes.get(self.at..self.at + 4) == Some(b"null") {
            self.at += 4;
            return true;
        }
        false
    }

    /// Steps through the members of the object whose `{` was just consumed: calls `member`
    /// with each key (where it starts, and the cursor just after its `:`), which must consume
    /// the value. Returns the offset of the closing `}` and the number of members.
    pub fn members(
        &mut self,
        mut member: impl FnMut(&mut Skim<'a>, Cow<'a, str>, usize) -> Option<Step>,
    ) -> Option<(usize, usize)> {
        self.raw_members(|s, key, start| {
            let key = match key {
                Raw::Plain(bytes) => Cow::Borrowed(std::str::from_utf8(bytes).ok()?),
                Raw::Escaped(quoted) => Cow::Owned(serde_json::from_slice::<String>(quoted).ok()?),
            };
            member(s, key, start)
        })
    }

    /// [`Skim::members`] with each key as it is written.
    pub fn raw_members(
        &mut self,
        mut member: impl FnMut(&mut Skim<'a>, Raw<'a>, usize) -> Option<Step>,
    ) -> Option<(usize, usize)> {
        let mut count = 0;
        loop {
            self.ws();
            match self.peek()? {
                b'}' if count == 0 => return Some((self.at, 0)),
                b',' if count > 0 => {
                    self.at += 1;
                    self.ws();
                }
                b'}' => return Some((self.at, count)),
                _ if count == 0 => {}
                _ => return None,
            }
            let start = self.at;
            let key = self.raw_string()?;
            self.expect(b':')?;
            count += 1;
            if let Step::Stop = member(self, key, start)? {
                return Some((self.at, count));
            }
        }
    }
}

/// A string token as written.
#[derive(Clone, Copy, Debug)]
pub enum Raw<'a> {
    /// No escapes: the bytes between the quotes.
    Plain(&'a [u8]),
    /// With escapes: the whole token, quotes included, to decode.
    Escaped(&'a [u8]),
}

/// What [`Skim::members`] does after a member.
pub enum Step {
    /// Go on to the next member.
    Next,
    /// Stop here (the cursor stays where the callback left it).
    Stop,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_every_kind_of_value() {
        let doc =
            br#" { "a" : [1, {"b": "x\"}]"}, null, true, -1.5e3, "\\"], "c\u0041": {}, "d": "" } "#;
        let mut s = Skim::new(doc);
        s.expect(b'{').unwrap();
        let mut keys = Vec::new();
        let (close, n) = s
            .members(|s, key, _| {
                keys.push(key.into_owned());
                s.skip_value()?;
                Some(Step::Next)
            })
            .unwrap();
        assert_eq!(keys, ["a", "cA", "d"]);
        assert_eq!(n, 3);
        assert_eq!(doc[close], b'}');
        s.at = close + 1;
        assert!(s.at_end());
        for bad in [&b"{"[..], b"[1,", b"\"abc", b"{\"a\" 1}"] {
            let mut s = Skim::new(bad);
            let ok = match s.peek() {
                Some(b'{') if bad.len() > 1 => {
                    s.at += 1;
                    s.members(|s, _, _| s.skip_value().map(|_| Step::Next))
                        .is_some()
                }
                _ => s.skip_value().is_some(),
            };
            assert!(!ok, "{}", String::from_utf8_lossy(bad));
        }
    }
}
