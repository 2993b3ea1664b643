//! Containers: every format is chosen by its first bytes ([`sniff`]), read
//! as data, and its members handed back to the dispatcher, so any format
//! can nest in any other (a pickle in a zip in a tar in a gzip) up to the
//! depth limit. One [`Scanner`] scans one file and collects its report.

mod compress;
mod hdf5;
mod json;
mod keras;
pub(crate) mod npy;
mod pickle;
mod pyliteral;
mod sevenz;
pub(crate) mod sniff;
mod tar;
mod torch;
pub(crate) mod zip;

use std::io::{self, Cursor, Read};
use std::rc::Rc;

use super::finding::{Finding, Rule};
use super::options::ScanOptions;
use super::policy::CompiledPolicy;
use super::report::{FileReport, Format, MemberReport};
use super::source::backing::Backing;
use super::source::meter::Budget;
use super::source::reopen::{Reopen, Window};
use super::source::spool::spool;
use sniff::{sniffed, Kind, Sniffed, HEAD};

/// Scans one file; collects findings and member reports.
pub(crate) struct Scanner<'o> {
    pub(crate) opts: &'o ScanOptions,
    pub(crate) policy: CompiledPolicy,
    pub(crate) budget: Rc<Budget>,
    pub(crate) report: FileReport,
}

/// `parent!child` (or just `child` at the top).
pub(crate) fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_string()
    } else {
        format!("{parent}!{child}")
    }
}

/// Reads up to `n` bytes (fewer only at the end of the stream).
pub(crate) fn read_head(r: &mut dyn Read, n: usize) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(n);
    r.take(n as u64).read_to_end(&mut head)?;
    Ok(head)
}

impl<'o> Scanner<'o> {
    pub(crate) fn new(opts: &'o ScanOptions, report: FileReport) -> Self {
        Scanner {
            opts,
            policy: opts.policy.compile(),
            budget: Budget::new(opts.limits.clone()),
            report,
        }
    }

    /// Records a finding about `member`.
    pub(crate) fn add(&mut self, member: &str, f: Finding) {
        self.report.push(f.member(member));
    }

    /// Records a member.
    pub(crate) fn member(&mut self, path: &str, format: Format, bytes: Option<u64>, note: String) {
        self.report.members.push(MemberReport {
            path: path.to_string(),
            format,
            bytes,
            note,
        });
    }

    /// An MDL006 finding; if a limit tripped, its message wins.
    pub(crate) fn inconclusive(&mut self, member: &str, offset: Option<u64>, why: String) {
        let why = match self.budget.tripped() {
            Some(limit) if !why.contains(&limit) => format!("{limit} ({why})"),
            _ => why,
        };
        let mut f = Finding::new(Rule::Inconclusive, why);
        f.offset = offset;
        self.add(member, f);
    }

    /// An MDL008 finding and a member record.
    pub(crate) fn unsupported(&mut self, member: &str, format: Format, why: String) {
        self.member(member, format, None, why.clone());
        self.add(member, Finding::new(Rule::Unsupported, why));
    }

    /// Whether `depth` is still allowed; records the finding if not.
    fn depth_ok(&mut self, member: &str, depth: u32) -> bool {
        if depth > self.opts.limits.max_depth {
            let why = format!(
                "limit exceeded: containers nested deeper than {}",
                self.opts.limits.max_depth
            );
            self.member(
                member,
                Format::Unknown,
                None,
                "not scanned: too deep".into(),
            );
            self.inconclusive(member, None, why);
            return false;
        }
        true
    }

    /// Scans `len` stored bytes at `start` of a backing.
    pub(crate) fn scan_window(
        &mut self,
        backing: &Backing,
        start: u64,
        len: u64,
        member: &str,
        depth: u32,
    ) -> Format {
        if !self.depth_ok(member, depth) {
            return Format::Unknown;
        }
        let head = match backing.head(start, HEAD.min(usize::try_from(len).unwrap_or(HEAD))) {
            Ok(h) => h,
            Err(e) => {
                self.inconclusive(member, None, format!("read error: {e}"));
                return Format::Unknown;
            }
        };
        let s = sniffed(&head);
        match s.kind {
            Kind::Zip => zip::scan(self, backing, start, len, member, depth),
            Kind::SevenZ => sevenz::scan(self, backing, start, len, member, depth),
            Kind::Hdf5 => hdf5::scan(self, backing, start, len, member, depth),
            _ => {
                let w = Window {
                    backing: backing.clone(),
                    start,
                    len,
                };
                let mut r = backing.range(start, len);
                self.scan_kind(s, &mut r, Some(&w), Some(len), member, depth)
            }
        }
    }

    /// Scans a stream read once from its start; `again` re-reads it if a
    /// format needs random access or a second pass.
    pub(crate) fn scan_stream(
        &mut self,
        r: &mut dyn Read,
        again: Option<&dyn Reopen>,
        size: Option<u64>,
        member: &str,
        depth: u32,
    ) -> Format {
        if !self.depth_ok(member, depth) {
            return Format::Unknown;
        }
        let head = match read_head(r, HEAD) {
            Ok(h) => h,
            Err(e) => {
                self.member(member, Format::Unknown, size, String::new());
                self.inconclusive(member, None, format!("read error: {e}"));
                return Format::Unknown;
            }
        };
        let s = sniffed(&head);
        let kind = s.kind;
        let mut chained = Cursor::new(head).chain(r);
        if matches!(kind, Kind::Zip | Kind::SevenZ | Kind::Hdf5) {
            // These need random access: use the stored bytes, or buffer them.
            let (backing, start, len) = match again.and_then(|a| a.window()) {
                Some(w) => w,
                None => match spool(&mut chained, &self.budget) {
                    Ok(b) => {
                        let len = b.len();
                        (b, 0, len)
                    }
                    Err(e) => {
                        self.member(member, Format::Unknown, size, String::new());
                        self.inconclusive(member, None, format!("could not buffer member: {e}"));
                        return Format::Unknown;
                    }
                },
            };
            // Depth was counted for this member already.
            return match kind {
                Kind::Zip => zip::scan(self, &backing, start, len, member, depth),
                Kind::SevenZ => sevenz::scan(self, &backing, start, len, member, depth),
                _ => hdf5::scan(self, &backing, start, len, member, depth),
            };
        }
        self.scan_kind(s, &mut chained, again, size, member, depth)
    }

    /// Dispatches a streamable format.
    fn scan_kind(
        &mut self,
        Sniffed { kind, text }: Sniffed,
        r: &mut dyn Read,
        again: Option<&dyn Reopen>,
        size: Option<u64>,
        member: &str,
        depth: u32,
    ) -> Format {
        use super::source::codec::Codec;
        match kind {
            Kind::Pickle => pickle::scan_stream(self, r, again, member, pickle::Flavor::Pickle),
            Kind::TorchLegacy => {
                pickle::scan_stream(self, r, again, member, pickle::Flavor::TorchLegacy)
            }
            Kind::MaybePickle => {
                pickle::scan_stream(self, r, again, member, pickle::Flavor::MaybePickle { text })
            }
            Kind::Npy => npy::scan(self, r, size, member),
            Kind::Gzip => compress::scan(self, Codec::Gzip, r, again, member, depth),
            Kind::Bzip2 => compress::scan(self, Codec::Bzip2, r, again, member, depth),
            Kind::Xz => compress::scan(self, Codec::Xz, r, again, member, depth),
            Kind::Lzma => compress::scan(self, Codec::Lzma, r, again, member, depth),
            Kind::Lz4 => compress::scan(self, Codec::Lz4, r, again, member, depth),
            Kind::Zlib => compress::scan(self, Codec::Zlib, r, again, member, depth),
            Kind::JoblibCompat => compress::scan_joblib_compat(self, r, again, member, depth),
            Kind::Tar => tar::scan(self, r, again, member, depth),
            Kind::Json => json::scan(self, r, size, member),
            Kind::Safetensors => json::scan_safetensors(self, r, size, member),
            Kind::Zstd => {
                self.unsupported(
                    member,
                    Format::Zstd,
                    "zstd compression is not decoded".into(),
                );
                Format::Zstd
            }
            Kind::Text => {
                self.unsupported(member, Format::Text, "text: not a model format".into());
                Format::Text
            }
            Kind::Unknown => {
                let why = if size == Some(0) {
                    "empty".to_string()
                } else {
                    "no supported model format recognised".to_string()
                };
                self.unsupported(member, Format::Unknown, why);
                Format::Unknown
            }
            // Random-access kinds are handled by the callers.
            Kind::Zip | Kind::SevenZ | Kind::Hdf5 => {
                self.unsupported(member, Format::Unknown, "internal: unexpected kind".into());
                Format::Unknown
            }
        }
    }
}
