//! Decoders for opcode arguments, mirroring the CPython routines `_pickle.c`
//! calls: UTF-8 with `surrogatepass`, `PyBytes_DecodeEscape`,
//! raw-unicode-escape, `strtol`/`PyLong_FromString`, `PyOS_string_to_double`
//! and `_PyLong_FromByteArray`. Where CPython rejects input these reject it
//! too, so a malformed pickle stops the analysis exactly where it would stop
//! the real unpickler.

/// Incremental UTF-8 validator that, like CPython's `surrogatepass` error
/// handler, also accepts encoded surrogates (`ED A0..BF 80..BF`). Fed in
/// chunks so big payloads can be checked without being kept; errors carry
/// CPython's exact `UnicodeDecodeError` text.
#[derive(Debug, Default)]
pub(crate) struct Utf8Check {
    /// Bytes of a sequence split across chunks.
    pending: Vec<u8>,
    /// Offset (within the whole payload) of the next byte to classify.
    pos: u64,
    error: Option<String>,
}

/// Byte length of a sequence given its lead byte, 0 if invalid as a lead.
fn seq_len(lead: u8) -> usize {
    match lead {
        0x00..=0x7f => 1,
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => 0,
    }
}

/// Outcome of decoding one sequence at the start of a byte slice.
enum Seq8 {
    /// A valid sequence of this many bytes.
    Valid(usize),
    /// The slice ends before the sequence could be decided.
    Incomplete,
    /// CPython's error: how many bytes it blames, and why.
    Invalid(usize, &'static str),
}

/// Classifies the sequence starting at `s[0]` the way CPython's strict
/// decoder does, then lets a surrogate through as `surrogatepass` would.
fn classify(s: &[u8]) -> Seq8 {
    let Some(&lead) = s.first() else {
        return Seq8::Incomplete;
    };
    let need = seq_len(lead);
    if need == 0 {
        return Seq8::Invalid(1, "invalid start byte");
    }
    let cont = |b: u8| (0x80..=0xbf).contains(&b);
    if lead == 0xed && s.get(1).is_some_and(|&b| (0xa0..=0xbf).contains(&b)) {
        // A surrogate: an error for the strict decoder (blaming the lead
        // byte) that `surrogatepass` accepts if the third byte is there.
        return match s.get(2) {
            None => Seq8::Incomplete,
            Some(&b) if cont(b) => Seq8::Valid(3),
            Some(_) => Seq8::Invalid(1, "invalid continuation byte"),
        };
    }
    for i in 1..need {
        let Some(&b) = s.get(i) else {
            return Seq8::Incomplete;
        };
        let ok = match (i, lead) {
            (1, 0xe0) => (0xa0..=0xbf).contains(&b),
            (1, 0xed) => (0x80..=0x9f).contains(&b),
            (1, 0xf0) => (0x90..=0xbf).contains(&b),
            (1, 0xf4) => (0x80..=0x8f).contains(&b),
            _ => cont(b),
        };
        if !ok {
            return Seq8::Invalid(i, "invalid continuation byte");
        }
    }
    Seq8::Valid(need)
}

impl Utf8Check {
    fn fail(&mut self, len: usize, reason: &str, bytes: &[u8]) {
        let first = bytes.first().copied().unwrap_or(0);
        self.error = Some(if len <= 1 {
            format!(
                "'utf-8' codec can't decode byte 0x{first:02x} in position {}: {reason}",
                self.pos
            )
        } else {
            format!(
                "'utf-8' codec can't decode bytes in position {}-{}: {reason}",
                self.pos,
                self.pos + len as u64 - 1
            )
        });
    }

    pub(crate) fn feed(&mut self, mut chunk: &[u8]) {
        if self.error.is_some() {
            return;
        }
        // Finish a sequence split across chunks, one byte at a time.
        while !self.pending.is_empty() {
            let Some((&b, rest)) = chunk.split_first() else {
                return;
            };
            self.pending.push(b);
            chunk = rest;
            match classify(&self.pending) {
                Seq8::Incomplete => {}
                Seq8::Valid(n) => {
                    self.pos += n as u64;
                    self.pending.clear();
                }
                Seq8::Invalid(n, why) => {
                    let p = std::mem::take(&mut self.pending);
                    self.fail(n, why, &p);
                    return;
                }
            }
        }
        while !chunk.is_empty() {
            let good = match std::str::from_utf8(chunk) {
                Ok(_) => {
                    self.pos += chunk.len() as u64;
                    return;
                }
                Err(e) => e.valid_up_to(),
            };
            self.pos += good as u64;
            let rest = chunk.get(good..).unwrap_or_default();
            match classify(rest) {
                Seq8::Valid(n) => {
                    self.pos += n as u64;
                    chunk = rest.get(n..).unwrap_or_default();
                }
                Seq8::Incomplete => {
                    self.pending.extend_from_slice(rest);
                    return;
                }
                Seq8::Invalid(n, why) => {
                    self.fail(n, why, rest);
                    return;
                }
            }
        }
    }

    /// The CPython-style error, if the whole input was not valid.
    pub(crate) fn finish(mut self) -> Result<(), String> {
        if self.error.is_none() && !self.pending.is_empty() {
            let p = std::mem::take(&mut self.pending);
            if p.len() >= 2 && p.first() == Some(&0xed) && p.get(1).is_some_and(|&b| b >= 0xa0) {
                self.fail(1, "invalid continuation byte", &p);
            } else {
                self.fail(p.len(), "unexpected end of data", &p);
            }
        }
        match self.error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Lossy display decoding of (already validated) UTF-8 that may hold
/// surrogates: those, which Rust strings cannot hold, become U+FFFD.
pub(crate) fn utf8_display(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Longest prefix of `b` that ends on a UTF-8 sequence boundary, at most
/// `max` bytes (for keeping a display prefix of a long string).
pub(crate) fn utf8_prefix(b: &[u8], max: usize) -> &[u8] {
    if b.len() <= max {
        return b;
    }
    let mut k = max;
    while k > 0 && b.get(k).is_some_and(|&c| (0x80..=0xbf).contains(&c)) {
        k -= 1;
    }
    b.get(..k).unwrap_or_default()
}

/// `PyBytes_DecodeEscape` as used by the STRING opcode: Python 2 string
/// literal escapes. Unknown escapes are kept verbatim (CPython only warns).
pub(crate) fn escape_decode(s: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while let Some(&c) = s.get(i) {
        i += 1;
        if c != b'\\' {
            out.push(c);
            continue;
        }
        let Some(&e) = s.get(i) else {
            return Err("Trailing \\ in string".into());
        };
        i += 1;
        match e {
            b'\n' => {}
            b'\\' => out.push(b'\\'),
            b'\'' => out.push(b'\''),
            b'"' => out.push(b'"'),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b't' => out.push(b'\t'),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b'v' => out.push(11),
            b'a' => out.push(7),
            b'0'..=b'7' => {
                let mut v = u32::from(e - b'0');
                for _ in 0..2 {
                    match s.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push((v & 0xff) as u8);
            }
            b'x' => {
                let hex = |b: Option<&u8>| b.and_then(|&b| char::from(b).to_digit(16));
                match (hex(s.get(i)), hex(s.get(i + 1))) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => return Err(format!("invalid \\x escape at position {}", i - 2)),
                }
            }
            other => {
                out.push(b'\\');
                out.push(other);
            }
        }
    }
    Ok(out)
}

/// `PyUnicode_DecodeRawUnicodeEscape` (UNICODE opcode): Latin-1 text where
/// only `\uXXXX` and `\UXXXXXXXX` are escapes.
pub(crate) fn raw_unicode_escape_decode(s: &[u8]) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while let Some(&c) = s.get(i) {
        // An escape needs an odd number of backslashes before u/U.
        if c == b'\\' && matches!(s.get(i + 1), Some(b'u') | Some(b'U')) {
            let n = if s.get(i + 1) == Some(&b'u') { 4 } else { 8 };
            let digits = s.get(i + 2..i + 2 + n);
            let v = digits
                .filter(|d| d.iter().all(u8::is_ascii_hexdigit))
                .and_then(|d| std::str::from_utf8(d).ok())
                .and_then(|d| u32::from_str_radix(d, 16).ok());
            let Some(v) = v else {
                let what = if n == 4 { "\\uXXXX" } else { "\\UXXXXXXXX" };
                return Err(format!(
                    "'rawunicodeescape' codec can't decode bytes in position {i}-{}: truncated {what} escape",
                    (i + 1 + n).min(s.len().saturating_sub(1))
                ));
            };
            if v > 0x10ffff {
                return Err(format!(
                    "'rawunicodeescape' codec can't decode bytes in position {i}-{}: \\Uxxxxxxxx out of range",
                    i + 1 + n
                ));
            }
            // Surrogates are legal in Python str; shown as U+FFFD here.
            out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
            i += 2 + n;
            continue;
        }
        if c == b'\\' && s.get(i + 1) == Some(&b'\\') {
            // "\\" is two literal backslashes; skip both so "\\\\u" stays literal.
            out.push_str("\\\\");
            i += 2;
            continue;
        }
        out.push(char::from(c));
        i += 1;
    }
    Ok(out)
}

/// Why `PyLong_FromString` rejected its input.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum IntError {
    /// "invalid literal for int() with base N": the base CPython names is
    /// the one it detected (10 for plain digits, 0 for C-style octal).
    Invalid { base: u32 },
    /// Over CPython 3.11's limit on decimal digits.
    TooManyDigits(usize),
}

impl IntError {
    /// CPython's message; `shown` is the C string it quotes (the line up to
    /// a NUL, usually including its newline).
    pub(crate) fn message(&self, shown: &[u8]) -> String {
        match self {
            IntError::Invalid { base } => {
                let text = String::from_utf8_lossy(shown.get(..200).unwrap_or(shown)).into_owned();
                let mut b = super::repr::Bounded::new(1024);
                super::repr::repr_str(&text, &mut b);
                format!("invalid literal for int() with base {base}: {}", b.finish())
            }
            IntError::TooManyDigits(n) => format!(
                "Exceeds the limit ({INT_MAX_STR_DIGITS} digits) for integer string conversion: value has {n} digits; use sys.set_int_max_str_digits() to increase the limit"
            ),
        }
    }
}

/// An integer as the VM keeps it: machine-sized, or as decimal text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum IntVal {
    Small(i64),
    /// Decimal rendering (may be abbreviated for huge values).
    Big(String),
}

/// CPython 3.11's default `sys.get_int_max_str_digits()`.
const INT_MAX_STR_DIGITS: usize = 4300;

/// C `strtol(s, &end, 0)` on a line; `None` unless the whole text parsed
/// without overflow (CPython then falls back to `PyLong_FromString`).
pub(crate) fn strtol0(s: &[u8]) -> Option<i64> {
    let mut i = 0;
    while s
        .get(i)
        .is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 11 | 12))
    {
        i += 1;
    }
    let neg = match s.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let mut base = 10;
    if s.get(i) == Some(&b'0') {
        if matches!(s.get(i + 1), Some(b'x') | Some(b'X'))
            && s.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
        {
            base = 16;
            i += 2;
        } else {
            base = 8;
        }
    }
    let digits = s.get(i..).unwrap_or_default();
    if digits.is_empty() {
        return None;
    }
    let mut v: i128 = 0;
    for &d in digits {
        let dv = char::from(d).to_digit(base)?;
        v = v * i128::from(base) + i128::from(dv);
        if v > i128::from(i64::MAX) + 1 {
            return None;
        }
    }
    let v = if neg { -v } else { v };
    i64::try_from(v).ok()
}

/// `PyLong_FromString(s, NULL, base)` for base 0 or 10: whitespace around,
/// sign, `0x`/`0o`/`0b` prefixes (base 0), single underscores between
/// digits, and the 3.11 limit on decimal digits.
pub(crate) fn py_int(text: &[u8], base0: bool) -> Result<IntVal, IntError> {
    let s = text.trim_ascii();
    let (neg, s) = match s.split_first() {
        Some((b'-', r)) => (true, r),
        Some((b'+', r)) => (false, r),
        _ => (false, s),
    };
    let (radix, body, prefixed) = match (base0, s) {
        (true, [b'0', b'x' | b'X', rest @ ..]) => (16, rest, true),
        (true, [b'0', b'o' | b'O', rest @ ..]) => (8, rest, true),
        (true, [b'0', b'b' | b'B', rest @ ..]) => (2, rest, true),
        _ => (10, s, false),
    };
    // C-style octal ("017") is reported against base 0, everything else
    // against the base CPython detected.
    let c_octal = base0 && radix == 10 && s.len() > 1 && s.first() == Some(&b'0');
    let bad = || IntError::Invalid {
        base: if c_octal { 0 } else { radix },
    };
    // Underscores: only single ones between digits (or right after a prefix).
    let mut digits = Vec::with_capacity(body.len());
    let mut prev_us = !prefixed; // a leading '_' is only allowed after a prefix
    for (k, &c) in body.iter().enumerate() {
        if c == b'_' {
            if prev_us || k + 1 == body.len() {
                return Err(bad());
            }
            prev_us = true;
            continue;
        }
        if char::from(c).to_digit(radix).is_none() {
            return Err(bad());
        }
        digits.push(c);
        prev_us = false;
    }
    if digits.is_empty() {
        return Err(bad());
    }
    if c_octal && digits.iter().any(|&d| d != b'0') {
        return Err(bad());
    }
    if radix == 10 && digits.len() > INT_MAX_STR_DIGITS {
        return Err(IntError::TooManyDigits(digits.len()));
    }
    // Small enough for i64?
    let mut v: i128 = 0;
    let mut fits = true;
    for &d in &digits {
        let dv = char::from(d).to_digit(radix).unwrap_or(0);
        v = v * i128::from(radix) + i128::from(dv);
        if v > i128::from(i64::MAX) + 1 {
            fits = false;
            break;
        }
    }
    if fits {
        let v = if neg { -v } else { v };
        if let Ok(x) = i64::try_from(v) {
            return Ok(IntVal::Small(x));
        }
    }
    let text = if radix == 10 {
        let first_nz = digits
            .iter()
            .position(|&d| d != b'0')
            .unwrap_or(digits.len() - 1);
        String::from_utf8_lossy(&digits[first_nz..]).into_owned()
    } else {
        // Convert power-of-two bases through the byte-array path.
        let bits_per = match radix {
            16 => 4,
            8 => 3,
            _ => 1,
        };
        let mut le = Vec::new();
        let (mut acc, mut nacc) = (0u32, 0u32);
        for &d in digits.iter().rev() {
            acc |= char::from(d).to_digit(radix).unwrap_or(0) << nacc;
            nacc += bits_per;
            while nacc >= 8 {
                le.push((acc & 0xff) as u8);
                acc >>= 8;
                nacc -= 8;
            }
        }
        le.push((acc & 0xff) as u8);
        le.push(0); // keep it non-negative as two's complement
        match long_from_le(&le) {
            IntVal::Big(t) => t,
            IntVal::Small(x) => x.to_string(),
        }
    };
    Ok(IntVal::Big(if neg { format!("-{text}") } else { text }))
}

/// Largest byte string converted to exact decimal (quadratic cost); beyond
/// that only the size is shown.
const MAX_EXACT_LONG_BYTES: usize = 2048;

/// `_PyLong_FromByteArray(bytes, n, little_endian=1, signed=1)` (LONG1/LONG4).
pub(crate) fn long_from_le(b: &[u8]) -> IntVal {
    if b.is_empty() {
        return IntVal::Small(0);
    }
    if b.len() <= 8 {
        let neg = b.last().is_some_and(|&x| x & 0x80 != 0);
        let mut buf = if neg { [0xffu8; 8] } else { [0u8; 8] };
        buf[..b.len()].copy_from_slice(b);
        return IntVal::Small(i64::from_le_bytes(buf));
    }
    if b.len() > MAX_EXACT_LONG_BYTES {
        return IntVal::Big(format!("<int of {} bytes>", b.len()));
    }
    let neg = b.last().is_some_and(|&x| x & 0x80 != 0);
    // Magnitude as little-endian u32 limbs (two's complement negated if needed).
    let mut mag: Vec<u8> = b.to_vec();
    if neg {
        let mut carry = 1u16;
        for x in mag.iter_mut() {
            let v = u16::from(!*x) + carry;
            *x = (v & 0xff) as u8;
            carry = v >> 8;
        }
    }
    let mut limbs: Vec<u32> = mag
        .chunks(4)
        .map(|c| {
            let mut w = [0u8; 4];
            w[..c.len()].copy_from_slice(c);
            u32::from_le_bytes(w)
        })
        .collect();
    while limbs.last() == Some(&0) {
        limbs.pop();
    }
    let mut chunks: Vec<u32> = Vec::new(); // base 1e9, least significant first
    while !limbs.is_empty() {
        let mut rem: u64 = 0;
        for l in limbs.iter_mut().rev() {
            let cur = (rem << 32) | u64::from(*l);
            *l = (cur / 1_000_000_000) as u32;
            rem = cur % 1_000_000_000;
        }
        chunks.push(rem as u32);
        while limbs.last() == Some(&0) {
            limbs.pop();
        }
    }
    let mut s = String::new();
    if neg {
        s.push('-');
    }
    let mut it = chunks.iter().rev();
    if let Some(first) = it.next() {
        s.push_str(&first.to_string());
    }
    for c in it {
        s.push_str(&format!("{c:09}"));
    }
    if s.is_empty() || s == "-" {
        s.push('0');
    }
    IntVal::Big(s)
}

/// `PyOS_string_to_double(s, &end, PyExc_OverflowError)` followed by the
/// FLOAT opcode's "nothing after the number" check, with CPython's messages
/// (which quote the line with its newline when nothing at all parsed).
pub(crate) fn py_float(s: &[u8]) -> Result<f64, String> {
    let quoted = || String::from_utf8_lossy(s.get(..199).unwrap_or(s)).into_owned() + "\n";
    let t = std::str::from_utf8(s).unwrap_or("\u{fffd}");
    // PyOS_string_to_double takes no surrounding whitespace and no '_';
    // Rust's parser agrees on everything else (inf/nan/exponents).
    let parsed: Option<f64> = if t.contains('_') || t.starts_with('+') && t.get(1..2) == Some("+") {
        None
    } else {
        t.parse().ok()
    };
    match parsed {
        Some(v) if v.is_infinite() && !t.to_ascii_lowercase().contains("inf") => Err(format!(
            "value too large to convert to float: '{}'",
            quoted()
        )),
        Some(v) => Ok(v),
        None => {
            // Did some prefix parse? Then only the trailing junk is wrong.
            let body = t.strip_prefix(['+', '-']).unwrap_or(t);
            let lower = body.to_ascii_lowercase();
            let prefix_ok = body.starts_with(|c: char| c.is_ascii_digit())
                || (body.starts_with('.')
                    && body
                        .get(1..2)
                        .is_some_and(|c| c.chars().all(|c| c.is_ascii_digit())))
                || lower.starts_with("inf")
                || lower.starts_with("nan");
            if prefix_ok {
                Err("could not convert string to float".into())
            } else {
                Err(format!("could not convert string to float: '{}'", quoted()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_surrogatepass_and_chunking() {
        let mut c = Utf8Check::default();
        c.feed(b"a\xed\xa0");
        c.feed(b"\x80\xc3");
        c.feed(b"\xa9");
        assert!(c.finish().is_ok());
        let mut c = Utf8Check::default();
        c.feed(b"ab\xff");
        assert!(c.finish().is_err());
        let mut c = Utf8Check::default();
        c.feed(b"ab\xe2\x82");
        assert_eq!(
            c.finish(),
            Err("'utf-8' codec can't decode bytes in position 2-3: unexpected end of data".into())
        );
        let mut c = Utf8Check::default();
        c.feed(b"\xe6\x97a");
        assert_eq!(
            c.finish(),
            Err(
                "'utf-8' codec can't decode bytes in position 0-1: invalid continuation byte"
                    .into()
            )
        );
        let mut c = Utf8Check::default();
        c.feed(b"x\xed");
        c.feed(b"\xa0A");
        assert_eq!(
            c.finish(),
            Err(
                "'utf-8' codec can't decode byte 0xed in position 1: invalid continuation byte"
                    .into()
            )
        );
    }

    #[test]
    fn ints() {
        assert_eq!(strtol0(b"017"), Some(15));
        assert_eq!(strtol0(b"0x1f"), Some(31));
        assert_eq!(strtol0(b"-5"), Some(-5));
        assert_eq!(strtol0(b"99999999999999999999"), None);
        assert_eq!(py_int(b"1_000", true), Ok(IntVal::Small(1000)));
        assert_eq!(py_int(b"017", true), Err(IntError::Invalid { base: 0 }));
        assert_eq!(py_int(b"x", true), Err(IntError::Invalid { base: 10 }));
        assert_eq!(py_int(b"0xg", true), Err(IntError::Invalid { base: 16 }));
        assert_eq!(
            IntError::Invalid { base: 10 }.message(b"x\n"),
            "invalid literal for int() with base 10: 'x\\n'"
        );
        assert_eq!(
            py_int(b"123456789012345678901234567890", true),
            Ok(IntVal::Big("123456789012345678901234567890".into()))
        );
        assert_eq!(
            py_int(b"0x100000000000000000000", true),
            Ok(IntVal::Big("1208925819614629174706176".into()))
        );
        assert!(py_int(&[b'1'; 4301], true).is_err());
        assert_eq!(long_from_le(&[0xff]), IntVal::Small(-1));
        assert_eq!(long_from_le(&[0x00, 0x80]), IntVal::Small(-32768));
        let mut b = vec![0u8; 12];
        b[11] = 0x01; // 2**88
        assert_eq!(
            long_from_le(&b),
            IntVal::Big("309485009821345068724781056".into())
        );
        let mut n = vec![0u8; 16];
        n[15] = 0x80; // -2**127
        assert_eq!(
            long_from_le(&n),
            IntVal::Big("-170141183460469231731687303715884105728".into())
        );
    }

    #[test]
    fn escapes() {
        assert_eq!(escape_decode(br"a\n\x41\101\q"), Ok(b"a\nAA\\q".to_vec()));
        assert!(escape_decode(br"\x4").is_err());
        assert_eq!(
            raw_unicode_escape_decode(br"\u00e9\xff"),
            Ok("é\\xff".into())
        );
        assert!(raw_unicode_escape_decode(br"\u12").is_err());
    }
}
