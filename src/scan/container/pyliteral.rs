//! A bounded parser for the Python literals `ast.literal_eval` accepts in a
//! `.npy` header: dicts, lists, tuples, strings, ints, floats, booleans and
//! None. It never evaluates anything; depth and size are capped.

/// A parsed literal.
#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An integer that fits in i128 (larger ones are an error).
    Int(i128),
    /// A float (kept as text; only its presence matters).
    Float(String),
    /// A str or bytes literal.
    Str(String),
    /// `(...)`.
    Tuple(Vec<Lit>),
    /// `[...]`.
    List(Vec<Lit>),
    /// `{k: v, ...}`, in order.
    Dict(Vec<(Lit, Lit)>),
}

const MAX_DEPTH: usize = 64;

struct P<'a> {
    s: &'a [u8],
    i: usize,
    /// Accept Python 2 `123L` longs (npy format 1.0/2.0 headers).
    long_suffix: bool,
}

/// Parses one literal that must span all of `text` (surrounding whitespace
/// allowed).
pub fn parse(text: &str, long_suffix: bool) -> Result<Lit, String> {
    let mut p = P {
        s: text.as_bytes(),
        i: 0,
        long_suffix,
    };
    let v = p.value(0)?;
    p.ws();
    if p.i != p.s.len() {
        return Err(format!("unexpected text at position {}", p.i));
    }
    Ok(v)
}

impl P<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn ws(&mut self) {
        while self
            .peek()
            .is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r' | b'\x0c'))
        {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Result<Lit, String> {
        if depth > MAX_DEPTH {
            return Err("literal nested too deeply".into());
        }
        self.ws();
        match self.peek() {
            Some(b'{') => {
                self.i += 1;
                let mut items = Vec::new();
                loop {
                    if self.eat(b'}') {
                        return Ok(Lit::Dict(items));
                    }
                    let k = self.value(depth + 1)?;
                    if !self.eat(b':') {
                        return Err(format!("expected ':' at position {}", self.i));
                    }
                    let v = self.value(depth + 1)?;
                    items.push((k, v));
                    if !self.eat(b',') {
                        if self.eat(b'}') {
                            return Ok(Lit::Dict(items));
                        }
                        return Err(format!("expected ',' or '}}' at position {}", self.i));
                    }
                }
            }
            Some(open @ (b'[' | b'(')) => {
                self.i += 1;
                let close = if open == b'[' { b']' } else { b')' };
                let mut items = Vec::new();
                let mut comma = false;
                loop {
                    if self.eat(close) {
                        break;
                    }
                    items.push(self.value(depth + 1)?);
                    comma = self.eat(b',');
                    if !comma {
                        if self.eat(close) {
                            break;
                        }
                        return Err(format!("expected ',' at position {}", self.i));
                    }
                }
                Ok(if open == b'[' {
                    Lit::List(items)
                } else if items.len() == 1 && !comma {
                    // `(x)` is just x.
                    items.pop().unwrap_or(Lit::None)
                } else {
                    Lit::Tuple(items)
                })
            }
            Some(q @ (b'\'' | b'"')) => self.string(q),
            Some(b'b') if matches!(self.s.get(self.i + 1), Some(b'\'' | b'"')) => {
                self.i += 1;
                let q = self.peek().unwrap_or(b'\'');
                self.string(q)
            }
            Some(c) if c.is_ascii_digit() || c == b'-' || c == b'+' || c == b'.' => self.number(),
            Some(c) if c.is_ascii_alphabetic() => {
                let start = self.i;
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_')
                {
                    self.i += 1;
                }
                match self.s.get(start..self.i) {
                    Some(b"True") => Ok(Lit::Bool(true)),
                    Some(b"False") => Ok(Lit::Bool(false)),
                    Some(b"None") => Ok(Lit::None),
                    _ => Err(format!("name not allowed in a literal at position {start}")),
                }
            }
            _ => Err(format!("unexpected character at position {}", self.i)),
        }
    }

    fn number(&mut self) -> Result<Lit, String> {
        let start = self.i;
        if matches!(self.peek(), Some(b'-' | b'+')) {
            self.i += 1;
        }
        self.ws();
        let digits = self.i;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'_')
        {
            self.i += 1;
        }
        let neg = self.s.get(start) == Some(&b'-');
        let mut t = std::str::from_utf8(self.s.get(digits..self.i).unwrap_or_default())
            .map_err(|_| "bad number".to_string())?
            .replace('_', "");
        if self.long_suffix && (t.ends_with('L') || t.ends_with('l')) {
            t.pop();
        }
        if t.bytes().all(|c| c.is_ascii_digit()) && !t.is_empty() {
            if t.len() > 1 && t.starts_with('0') && t.bytes().any(|c| c != b'0') {
                return Err(format!("leading zeros in a number at position {start}"));
            }
            let v: i128 = t
                .parse()
                .map_err(|_| format!("integer too large at position {start}"))?;
            return Ok(Lit::Int(if neg { -v } else { v }));
        }
        if t.parse::<f64>().is_ok() {
            return Ok(Lit::Float(t));
        }
        Err(format!("bad number at position {start}"))
    }

    fn string(&mut self, q: u8) -> Result<Lit, String> {
        self.i += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err("unterminated string".into());
            };
            self.i += 1;
            if c == q {
                return Ok(Lit::Str(out));
            }
            if c == b'\n' {
                return Err("newline in a string".into());
            }
            if c != b'\\' {
                // Copy a whole UTF-8 sequence.
                let start = self.i - 1;
                let len = match c {
                    0..=0x7f => 1,
                    0xc0..=0xdf => 2,
                    0xe0..=0xef => 3,
                    _ => 4,
                };
                let bytes = self.s.get(start..start + len).ok_or("bad UTF-8")?;
                out.push_str(std::str::from_utf8(bytes).map_err(|_| "bad UTF-8")?);
                self.i = start + len;
                continue;
            }
            let Some(e) = self.peek() else {
                return Err("unterminated string".into());
            };
            self.i += 1;
            match e {
                b'n' => out.push('\n'),
                b't' => out.push('\t'),
                b'r' => out.push('\r'),
                b'0' => out.push('\0'),
                b'\\' | b'\'' | b'"' => out.push(char::from(e)),
                b'x' | b'u' | b'U' => {
                    let n = match e {
                        b'x' => 2,
                        b'u' => 4,
                        _ => 8,
                    };
                    let hex = self.s.get(self.i..self.i + n).ok_or("bad escape")?;
                    let hex = std::str::from_utf8(hex).map_err(|_| "bad escape")?;
                    let v = u32::from_str_radix(hex, 16).map_err(|_| "bad escape")?;
                    out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
                    self.i += n;
                }
                _ => {
                    out.push('\\');
                    out.push(char::from(e));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_headers() {
        let h = "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }          \n";
        let Lit::Dict(items) = parse(h, false).expect("parses") else {
            panic!("not a dict")
        };
        assert_eq!(items.len(), 3);
        assert_eq!(items[2].1, Lit::Tuple(vec![Lit::Int(3), Lit::Int(4)]));
        assert_eq!(parse("(5,)", false), Ok(Lit::Tuple(vec![Lit::Int(5)])));
        assert_eq!(parse("(5)", false), Ok(Lit::Int(5)));
        assert_eq!(parse("()", false), Ok(Lit::Tuple(vec![])));
        assert_eq!(parse("10L", true), Ok(Lit::Int(10)));
        assert!(parse("10L", false).is_err());
        assert_eq!(
            parse("[('a', '<i4'), ('b', '|O')]", false).map(|l| matches!(l, Lit::List(_))),
            Ok(true)
        );
        assert!(parse("__import__('os')", false).is_err());
        assert!(parse("{'a': 1", false).is_err());
        assert!(parse(&"[".repeat(1000), false).is_err());
        assert_eq!(parse("'a\\'b'", false), Ok(Lit::Str("a'b".into())));
    }
}
