//! What a scan returns: one [`FileReport`] per file, with its findings and
//! every member that was looked at; a [`ScanReport`] for many files.

use serde::Serialize;
use std::fmt;

use super::finding::Finding;
use super::verdict::Verdict;

/// A format the scanner recognised (by content, never by file name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// A pickle stream (plain, or joblib's uncompressed format).
    Pickle,
    /// PyTorch's zip format (`archive/data.pkl` + storages).
    TorchZip,
    /// Legacy PyTorch: magic-number pickle, protocol, sys info, data, keys,
    /// then raw storages.
    TorchLegacy,
    /// Oldest PyTorch format: a tar of `sys_info`, `pickle`, `storages`, `tensors`.
    TorchLegacyTar,
    /// A PyTorch tensor storage (raw bytes, never unpickled).
    TorchStorage,
    /// PyTorch archive metadata (`version`, `byteorder`...).
    TorchMetadata,
    /// TorchScript code inside a PyTorch archive (not analysed).
    TorchScriptCode,
    /// A zip archive.
    Zip,
    /// A NumPy `.npy` array.
    Npy,
    /// A NumPy `.npz` archive.
    Npz,
    /// A Keras v3 `.keras` archive.
    Keras,
    /// An HDF5 file with a Keras `model_config`.
    KerasH5,
    /// An HDF5 file without a model config (weights or data).
    Hdf5,
    /// A JSON document (Keras configs are checked).
    Json,
    /// A safetensors file (header checked; tensors are data).
    Safetensors,
    /// A tar archive.
    Tar,
    /// gzip-compressed data.
    Gzip,
    /// bzip2-compressed data.
    Bzip2,
    /// xz-compressed data.
    Xz,
    /// lzma ("alone")-compressed data.
    Lzma,
    /// LZ4 frames.
    Lz4,
    /// zlib streams (joblib's default compressor).
    Zlib,
    /// joblib < 0.10 compressed pickle (`ZF` header).
    JoblibCompat,
    /// A 7z archive.
    SevenZ,
    /// zstd-compressed data (not decoded).
    Zstd,
    /// Text that is no model format.
    Text,
    /// Nothing recognised.
    Unknown,
    /// Listed in a manifest but not found.
    Missing,
}

impl Format {
    /// Kebab-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Pickle => "pickle",
            Format::TorchZip => "torch-zip",
            Format::TorchLegacy => "torch-legacy",
            Format::TorchLegacyTar => "torch-legacy-tar",
            Format::TorchStorage => "torch-storage",
            Format::TorchMetadata => "torch-metadata",
            Format::TorchScriptCode => "torchscript-code",
            Format::Zip => "zip",
            Format::Npy => "npy",
            Format::Npz => "npz",
            Format::Keras => "keras",
            Format::KerasH5 => "keras-h5",
            Format::Hdf5 => "hdf5",
            Format::Json => "json",
            Format::Safetensors => "safetensors",
            Format::Tar => "tar",
            Format::Gzip => "gzip",
            Format::Bzip2 => "bzip2",
            Format::Xz => "xz",
            Format::Lzma => "lzma",
            Format::Lz4 => "lz4",
            Format::Zlib => "zlib",
            Format::JoblibCompat => "joblib-compat",
            Format::SevenZ => "7z",
            Format::Zstd => "zstd",
            Format::Text => "text",
            Format::Unknown => "unknown",
            Format::Missing => "missing",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One stream inside a file that was looked at (the file itself is the
/// member with an empty path).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberReport {
    /// `!`-separated path inside the file (`archive/data.pkl`,
    /// `<gzip>!model.pkl`); empty for the file itself.
    pub path: String,
    /// What it was recognised as.
    pub format: Format,
    /// Its size in bytes, when known (decompressed size inside compression).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// What was done with it ("3 imports, 2 calls", "storage: not unpickled").
    #[serde(skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// Counts over the pickles of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct PickleStats {
    /// Pickle streams analysed.
    pub streams: u64,
    /// Pickles that ran to STOP.
    pub pickles: u64,
    /// Opcodes executed.
    pub opcodes: u64,
    /// Imports seen (allowed or not).
    pub imports: u64,
    /// Calls seen.
    pub calls: u64,
    /// joblib arrays whose bytes were skipped.
    pub arrays: u64,
}

/// The result of scanning one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileReport {
    /// The path as given.
    pub path: String,
    /// Outer format, recognised by content.
    pub format: Format,
    /// Clean, findings, inconclusive or unsupported.
    pub verdict: Verdict,
    /// File size.
    pub bytes: u64,
    /// SHA-256 (hex), when requested.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Findings, in the order they were seen.
    pub findings: Vec<Finding>,
    /// Every stream looked at, outermost first.
    pub members: Vec<MemberReport>,
    /// Pickle counts.
    pub pickle: PickleStats,
}

impl FileReport {
    /// A report with no findings yet.
    pub fn new(path: impl Into<String>, format: Format) -> FileReport {
        FileReport {
            path: path.into(),
            format,
            verdict: Verdict::Clean,
            bytes: 0,
            sha256: None,
            findings: Vec::new(),
            members: Vec::new(),
            pickle: PickleStats::default(),
        }
    }

    /// Adds a finding and updates the verdict.
    pub fn push(&mut self, f: Finding) {
        self.findings.push(f);
        self.verdict = Verdict::of(&self.findings);
    }

    /// Recomputes the verdict from the findings.
    pub fn update_verdict(&mut self) {
        self.verdict = Verdict::of(&self.findings);
    }
}

/// The result of scanning many files.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ScanReport {
    /// One report per file, in the order given.
    pub files: Vec<FileReport>,
}

impl ScanReport {
    /// The worst verdict over all files (clean for none).
    pub fn verdict(&self) -> Verdict {
        Verdict::combine(self.files.iter().map(|f| f.verdict))
    }

    /// The process exit code: 0 clean, 1 findings, 2 inconclusive or
    /// error, 3 unsupported only.
    pub fn exit_code(&self) -> u8 {
        self.verdict().exit_code()
    }

    /// How many files have each verdict: (clean, findings, inconclusive, unsupported).
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        let n = |v: Verdict| self.files.iter().filter(|f| f.verdict == v).count();
        (
            n(Verdict::Clean),
            n(Verdict::Findings),
            n(Verdict::Inconclusive),
            n(Verdict::Unsupported),
        )
    }
}
