//! What a scan may cost and how it judges: [`ScanOptions`].

use super::pickle::Limits;
use super::policy::ScanPolicy;

/// Limits per scanned file. Exceeding one is an MDL006 finding (the file is
/// inconclusive), never a crash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanLimits {
    /// Largest file scanned at all.
    pub max_file_bytes: u64,
    /// Decompressed bytes, summed over every compressed stream and member.
    pub max_decompressed_bytes: u64,
    /// Largest ratio of decompressed to compressed bytes in one stream...
    pub max_ratio: u64,
    /// ...checked once a stream has produced this many bytes (small,
    /// highly compressible members are normal).
    pub ratio_grace_bytes: u64,
    /// Containers nested in containers (a pickle in a zip in a tar: 2).
    pub max_depth: u32,
    /// Archive members, summed over all archives in the file.
    pub max_members: u64,
    /// A member that must be read at random (a zip inside a tar) is kept in
    /// memory up to this size, in an unnamed temporary file beyond it.
    pub max_in_memory: u64,
    /// Bytes buffered that way in total.
    pub max_spool_bytes: u64,
    /// Largest JSON document parsed (Keras configs).
    pub max_json_bytes: u64,
    /// Largest `.npy` header.
    pub max_npy_header: u64,
    /// Largest LZMA/XZ dictionary (memory a decompressor may allocate).
    pub max_dict_bytes: u64,
}

impl Default for ScanLimits {
    fn default() -> Self {
        ScanLimits {
            max_file_bytes: 1 << 40,
            max_decompressed_bytes: 32 << 30,
            max_ratio: 1000,
            ratio_grace_bytes: 64 << 20,
            max_depth: 8,
            max_members: 100_000,
            max_in_memory: 64 << 20,
            max_spool_bytes: 32 << 30,
            max_json_bytes: 64 << 20,
            max_npy_header: 1 << 20,
            max_dict_bytes: 256 << 20,
        }
    }
}

/// How to scan.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// What may be imported.
    pub policy: ScanPolicy,
    /// Container limits.
    pub limits: ScanLimits,
    /// Limits of the pickle VM (per pickle stream). The defaults leave room
    /// for large vocabularies (a 2-million-entry dict needs ~500 MiB of
    /// symbolic values); past them a file is inconclusive, not clean.
    pub pickle: Limits,
    /// Also compute each file's SHA-256 (needed to check a manifest).
    pub sha256: bool,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            policy: ScanPolicy::default(),
            limits: ScanLimits::default(),
            pickle: Limits {
                max_retained_bytes: 768 << 20,
                max_memo_entries: 8_000_000,
                ..Limits::default()
            },
            sha256: false,
        }
    }
}
