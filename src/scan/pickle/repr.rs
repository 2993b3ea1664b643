//! Python-style `repr()` of scalars into a length-bounded buffer.
//!
//! Renderings go into reports and into `trace()` (compared with
//! `pickletools`), so they follow CPython's `repr` for `str`, `bytes` and
//! `float`; everything is capped so a hostile value cannot bloat a report.

use std::fmt::Write as _;

/// A string builder that silently stops at `cap` bytes (on a char boundary)
/// and remembers that it did.
#[derive(Debug, Clone)]
pub(crate) struct Bounded {
    s: String,
    cap: usize,
    cut: bool,
}

impl Bounded {
    pub(crate) fn new(cap: usize) -> Self {
        Bounded {
            s: String::new(),
            cap,
            cut: false,
        }
    }

    /// Appends as much of `t` as fits.
    pub(crate) fn push(&mut self, t: &str) {
        if self.cut {
            return;
        }
        let room = self.cap.saturating_sub(self.s.len());
        if t.len() <= room {
            self.s.push_str(t);
            return;
        }
        let mut k = room;
        while k > 0 && !t.is_char_boundary(k) {
            k -= 1;
        }
        self.s.push_str(t.get(..k).unwrap_or_default());
        self.cut = true;
    }

    pub(crate) fn push_char(&mut self, c: char) {
        let mut tmp = [0u8; 4];
        self.push(c.encode_utf8(&mut tmp));
    }

    pub(crate) fn is_cut(&self) -> bool {
        self.cut
    }

    /// Bytes still available.
    pub(crate) fn room(&self) -> usize {
        if self.cut {
            0
        } else {
            self.cap.saturating_sub(self.s.len())
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.s
    }

    /// The text, with `...` appended when something was left out.
    pub(crate) fn finish(self) -> String {
        let mut s = self.s;
        if self.cut {
            s.push_str("...");
        }
        s
    }
}

/// Approximation of `str.isprintable()` for one character. Exact for ASCII
/// and Latin-1; beyond that, format/private-use/separator characters that
/// Python escapes are escaped too (the Unicode database is not available).
fn is_printable(c: char) -> bool {
    let u = c as u32;
    if u < 0x7f {
        return u >= 0x20;
    }
    if u <= 0xa0 || u == 0xad {
        return false;
    }
    if c.is_whitespace() || c.is_control() {
        return false;
    }
    !matches!(u,
        0x200b..=0x200f | 0x2028..=0x202e | 0x2060..=0x206f | 0xfeff | 0xfff9..=0xfffb
        | 0xe000..=0xf8ff | 0xf0000..=0x10ffff | 0xd800..=0xdfff)
}

/// Quote choice of CPython's `unicode_repr` / `bytes_repr`: single quotes
/// unless the text has a single quote and no double quote.
fn pick_quote(has_single: bool, has_double: bool) -> char {
    if has_single && !has_double {
        '"'
    } else {
        '\''
    }
}

/// `repr(s)` for a `str`.
pub(crate) fn repr_str(s: &str, out: &mut Bounded) {
    let q = pick_quote(s.contains('\''), s.contains('"'));
    out.push_char(q);
    let mut tmp = String::new();
    for c in s.chars() {
        if out.room() == 0 {
            break;
        }
        tmp.clear();
        match c {
            '\\' => tmp.push_str("\\\\"),
            '\n' => tmp.push_str("\\n"),
            '\r' => tmp.push_str("\\r"),
            '\t' => tmp.push_str("\\t"),
            c if c == q => {
                tmp.push('\\');
                tmp.push(c);
            }
            c if is_printable(c) => tmp.push(c),
            c if (c as u32) < 0x100 => {
                let _ = write!(tmp, "\\x{:02x}", c as u32);
            }
            c if (c as u32) < 0x10000 => {
                let _ = write!(tmp, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(tmp, "\\U{:08x}", c as u32);
            }
        }
        out.push(&tmp);
    }
    out.push_char(q);
}

/// `repr(b)` for `bytes` (without the `bytearray(...)` wrapper).
pub(crate) fn repr_bytes(b: &[u8], out: &mut Bounded) {
    let q = pick_quote(b.contains(&b'\''), b.contains(&b'"'));
    out.push_char('b');
    out.push_char(q);
    let mut tmp = String::new();
    for &c in b {
        if out.room() == 0 {
            break;
        }
        tmp.clear();
        match c {
            b'\\' => tmp.push_str("\\\\"),
            b'\n' => tmp.push_str("\\n"),
            b'\r' => tmp.push_str("\\r"),
            b'\t' => tmp.push_str("\\t"),
            c if char::from(c) == q => {
                tmp.push('\\');
                tmp.push(char::from(c));
            }
            0x20..=0x7e => tmp.push(char::from(c)),
            c => {
                let _ = write!(tmp, "\\x{c:02x}");
            }
        }
        out.push(&tmp);
    }
    out.push_char(q);
}

/// `repr(x)` for a `float`: shortest round-trip digits, laid out the way
/// CPython's `float_repr` does (exponent form when exp < -4 or >= 16).
pub(crate) fn repr_float(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    // `{:e}` gives the shortest round-trip digits, e.g. "-1.25e-7".
    let sci = format!("{x:e}");
    let (mant, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i64 = exp.parse().unwrap_or(0);
    let (neg, mant) = match mant.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mant),
    };
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    let mut s = String::new();
    if neg {
        s.push('-');
    }
    if (-4..16).contains(&exp) {
        if exp < 0 {
            s.push_str("0.");
            for _ in 0..(-exp - 1) {
                s.push('0');
            }
            s.push_str(&digits);
        } else {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                s.push_str(&digits);
                for _ in digits.len()..int_len {
                    s.push('0');
                }
                s.push_str(".0");
            } else {
                s.push_str(digits.get(..int_len).unwrap_or_default());
                s.push('.');
                s.push_str(digits.get(int_len..).unwrap_or_default());
            }
        }
    } else {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        s.push_str(first);
        if !rest.is_empty() {
            s.push('.');
            s.push_str(rest);
        }
        let _ = write!(s, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs(s: &str) -> String {
        let mut b = Bounded::new(1000);
        repr_str(s, &mut b);
        b.finish()
    }

    #[test]
    fn float_repr_matches_python() {
        assert_eq!(repr_float(1.0), "1.0");
        assert_eq!(repr_float(2.5), "2.5");
        assert_eq!(repr_float(-0.0), "-0.0");
        assert_eq!(repr_float(1e16), "1e+16");
        assert_eq!(repr_float(1.5e16), "1.5e+16");
        assert_eq!(repr_float(123456789012345.6), "123456789012345.6");
        assert_eq!(repr_float(0.0001), "0.0001");
        assert_eq!(repr_float(0.00001), "1e-05");
        assert_eq!(repr_float(1e100), "1e+100");
        assert_eq!(repr_float(0.1), "0.1");
        assert_eq!(repr_float(f64::INFINITY), "inf");
    }

    #[test]
    fn str_and_bytes_repr() {
        assert_eq!(rs("a'b"), "\"a'b\"");
        assert_eq!(rs("a'\"b"), "'a\\'\"b'");
        assert_eq!(rs("\n\x01é\u{2028}"), "'\\n\\x01é\\u2028'");
        let mut b = Bounded::new(100);
        repr_bytes(b"\x00ab'", &mut b);
        assert_eq!(b.finish(), "b\"\\x00ab'\"");
        let mut b = Bounded::new(4);
        b.push("héllo");
        assert_eq!(b.finish(), "hél...");
    }
}
