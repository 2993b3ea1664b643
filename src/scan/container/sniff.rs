//! Format detection from the first bytes (never from the file name).

/// How many leading bytes [`sniff`] wants (tar's magic sits at 257).
pub(crate) const HEAD: usize = 1024;

/// The first STOP-terminated pickle legacy PyTorch writes: its magic number
/// `0x1950a86a20f9469cfc6c` as a LONG1 (any protocol).
const TORCH_MAGIC_LONG1: &[u8] = b"\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19";

/// What the first bytes say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Zip,
    Npy,
    Hdf5,
    SevenZ,
    Gzip,
    Bzip2,
    Xz,
    Lzma,
    Lz4,
    Zstd,
    Zlib,
    JoblibCompat,
    Tar,
    /// Starts with PROTO: certainly a pickle.
    Pickle,
    /// A pickle starting with legacy PyTorch's magic number.
    TorchLegacy,
    /// Starts with a protocol 0/1 opcode: a pickle if the VM says so.
    MaybePickle,
    Safetensors,
    Json,
    Text,
    Unknown,
}

/// What the first bytes say, and whether they look like text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sniffed {
    pub(crate) kind: Kind,
    pub(crate) text: bool,
}

/// [`sniff`] plus the text check.
pub(crate) fn sniffed(head: &[u8]) -> Sniffed {
    Sniffed {
        kind: sniff(head),
        text: looks_text(head),
    }
}

/// Protocol 0/1 opcodes a pickle can start with.
fn starts_pickle(b: u8) -> bool {
    matches!(
        b,
        b'(' | b'.'
            | b'0'
            | b'1'
            | b'2'
            | b'F'
            | b'I'
            | b'J'
            | b'K'
            | b'L'
            | b'M'
            | b'N'
            | b'P'
            | b'Q'
            | b'R'
            | b'S'
            | b'T'
            | b'U'
            | b'V'
            | b'X'
            | b'a'
            | b'b'
            | b'c'
            | b'd'
            | b'}'
            | b'e'
            | b'g'
            | b'h'
            | b'i'
            | b'j'
            | b'l'
            | b']'
            | b'o'
            | b'p'
            | b'q'
            | b'r'
            | b's'
            | b't'
            | b')'
            | b'u'
            | b'G'
    ) || (0x81..=0x98).contains(&b)
}

/// Classifies a stream by its first bytes (`head` may be shorter than
/// [`HEAD`] for short streams).
pub(crate) fn sniff(head: &[u8]) -> Kind {
    let at = |i: usize, sig: &[u8]| head.get(i..i + sig.len()) == Some(sig);
    if at(0, b"PK\x03\x04") || at(0, b"PK\x05\x06") || at(0, b"PK\x07\x08") {
        return Kind::Zip;
    }
    if at(0, b"\x93NUMPY") {
        return Kind::Npy;
    }
    if at(0, b"\x89HDF\r\n\x1a\n") || at(512, b"\x89HDF\r\n\x1a\n") {
        return Kind::Hdf5;
    }
    if at(0, b"7z\xbc\xaf\x27\x1c") {
        return Kind::SevenZ;
    }
    if at(0, b"\x1f\x8b") {
        return Kind::Gzip;
    }
    if at(0, b"BZh") && head.get(3).is_some_and(|d| (b'1'..=b'9').contains(d)) {
        return Kind::Bzip2;
    }
    if at(0, b"\xfd7zXZ\x00") {
        return Kind::Xz;
    }
    if at(0, b"\x04\x22\x4d\x18") {
        return Kind::Lz4;
    }
    if at(0, b"\x28\xb5\x2f\xfd") {
        return Kind::Zstd;
    }
    if at(0, b"ZF")
        && head.get(2..21).is_some_and(|h| {
            h.starts_with(b"0x")
                && h.iter()
                    .all(|c| c.is_ascii_hexdigit() || b" xL".contains(c))
        })
    {
        return Kind::JoblibCompat;
    }
    if at(257, b"ustar") {
        return Kind::Tar;
    }
    if let Some(n) = head.get(..8) {
        let mut len = [0u8; 8];
        len.copy_from_slice(n);
        let n = u64::from_le_bytes(len);
        if (2..(100 << 20)).contains(&n) && head.get(8) == Some(&b'{') {
            return Kind::Safetensors;
        }
    }
    if at(0, b"\x80") {
        let window = head.get(..40).unwrap_or(head);
        if window
            .windows(TORCH_MAGIC_LONG1.len())
            .any(|w| w == TORCH_MAGIC_LONG1)
        {
            return Kind::TorchLegacy;
        }
        return Kind::Pickle;
    }
    // joblib's lzma: props byte 0x5d then a little-endian dictionary size.
    if at(0, b"\x5d\x00") {
        return Kind::Lzma;
    }
    // joblib's zlib (compressobj defaults: 0x78, header checksum).
    if head.first() == Some(&0x78)
        && head
            .get(1)
            .is_some_and(|&b1| (u16::from(0x78u8) << 8 | u16::from(b1)) % 31 == 0)
    {
        return Kind::Zlib;
    }
    match head.first() {
        None => Kind::Unknown,
        Some(&b) if starts_pickle(b) => Kind::MaybePickle,
        Some(_) => {
            let first = head.iter().find(|b| !b.is_ascii_whitespace());
            if matches!(first, Some(b'{') | Some(b'[')) {
                Kind::Json
            } else if looks_text(head) {
                Kind::Text
            } else {
                Kind::Unknown
            }
        }
    }
}

/// UTF-8 without control characters other than whitespace (the end may cut
/// a character in two).
pub(crate) fn looks_text(head: &[u8]) -> bool {
    let valid = match std::str::from_utf8(head) {
        Ok(s) => s,
        Err(e) if e.error_len().is_none() => {
            std::str::from_utf8(head.get(..e.valid_up_to()).unwrap_or_default()).unwrap_or("")
        }
        Err(_) => return false,
    };
    valid
        .chars()
        .all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t' | '\x0c'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(sniff(b"PK\x03\x04rest"), Kind::Zip);
        assert_eq!(sniff(b"\x80\x04\x95"), Kind::Pickle);
        assert_eq!(
            sniff(b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.\x80\x02"),
            Kind::TorchLegacy
        );
        assert_eq!(sniff(b"(S'a'\n"), Kind::MaybePickle);
        assert_eq!(sniff(b"cos\nsystem\n"), Kind::MaybePickle);
        assert_eq!(sniff(b"x\x9c\x01\x02"), Kind::Zlib);
        assert_eq!(sniff(b"\x93NUMPY\x01\x00"), Kind::Npy);
        assert_eq!(sniff(b"  {\"a\": 1}"), Kind::Json);
        assert_eq!(sniff(b"Hello world\n"), Kind::Text);
        assert_eq!(sniff(b"hello world\n"), Kind::MaybePickle);
        assert_eq!(sniff(b"\x00\x01\x02"), Kind::Unknown);
        assert_eq!(sniff(b""), Kind::Unknown);
        let mut st = 20u64.to_le_bytes().to_vec();
        st.extend_from_slice(b"{\"__metadata__\":{}}");
        assert_eq!(sniff(&st), Kind::Safetensors);
    }
}
