//! Verdicts and exit codes.
//!
//! A file's verdict follows from its findings' rules: any MDL006 makes it
//! inconclusive; otherwise any other finding but MDL008 makes it "findings";
//! otherwise MDL008 makes it unsupported; otherwise it is clean. Over many
//! files the worst verdict wins, ranked clean < unsupported < findings <
//! inconclusive, so exit code 3 means "some files were unsupported and
//! nothing worse was seen".

use serde::Serialize;
use std::fmt;

use super::finding::{Finding, RuleClass};

/// The outcome of scanning a file (or many).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Everything was read and nothing is outside the policy. Exit 0.
    Clean,
    /// Something dangerous, disallowed or tampered. Exit 1.
    Findings,
    /// The scan could not finish (parse error, I/O error, limit). Exit 2.
    Inconclusive,
    /// Nothing could be checked (unknown format). Exit 3.
    Unsupported,
}

impl Verdict {
    /// The process exit code for this verdict.
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Clean => 0,
            Verdict::Findings => 1,
            Verdict::Inconclusive => 2,
            Verdict::Unsupported => 3,
        }
    }

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Clean => "clean",
            Verdict::Findings => "findings",
            Verdict::Inconclusive => "inconclusive",
            Verdict::Unsupported => "unsupported",
        }
    }

    fn rank(self) -> u8 {
        match self {
            Verdict::Clean => 0,
            Verdict::Unsupported => 1,
            Verdict::Findings => 2,
            Verdict::Inconclusive => 3,
        }
    }

    /// The worse of two verdicts.
    pub fn worst(self, other: Verdict) -> Verdict {
        if other.rank() > self.rank() {
            other
        } else {
            self
        }
    }

    /// The verdict over many (clean for none).
    pub fn combine(verdicts: impl IntoIterator<Item = Verdict>) -> Verdict {
        verdicts.into_iter().fold(Verdict::Clean, Verdict::worst)
    }

    /// The verdict a set of findings implies.
    pub fn of(findings: &[Finding]) -> Verdict {
        Verdict::combine(findings.iter().map(|f| match f.rule.class() {
            RuleClass::Finding => Verdict::Findings,
            RuleClass::Inconclusive => Verdict::Inconclusive,
            RuleClass::Unsupported => Verdict::Unsupported,
        }))
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::finding::Rule;

    #[test]
    fn worst_wins() {
        use Verdict::*;
        assert_eq!(Verdict::combine([]), Clean);
        assert_eq!(Verdict::combine([Clean, Unsupported]).exit_code(), 3);
        assert_eq!(Verdict::combine([Unsupported, Findings]).exit_code(), 1);
        assert_eq!(
            Verdict::combine([Findings, Inconclusive, Clean]).exit_code(),
            2
        );
        let f = |r| Finding::new(r, "x");
        assert_eq!(Verdict::of(&[f(Rule::Unsupported)]), Unsupported);
        assert_eq!(
            Verdict::of(&[f(Rule::Unsupported), f(Rule::DisallowedImport)]),
            Findings
        );
        assert_eq!(
            Verdict::of(&[f(Rule::DangerousImport), f(Rule::Inconclusive)]),
            Inconclusive
        );
    }
}
