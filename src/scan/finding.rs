//! What the scanner reports: a [`Finding`] names a [`Rule`] (stable code
//! `MDL001`...), a severity and where in the file it was seen.

use serde::{Serialize, Serializer};
use std::fmt;

/// How bad a finding is. Ordered: `Info < Warning < Error < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing (an unsupported file: nothing was checked).
    Info,
    /// The scan could not finish: the file may hide more than is reported.
    Warning,
    /// Outside the allowed set, or an integrity problem.
    Error,
    /// A known-dangerous callable or executable code.
    Critical,
}

impl Severity {
    /// Lower-case name, as in JSON and SARIF.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a rule's findings do to the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleClass {
    /// Something dangerous or tampered: verdict "findings".
    Finding,
    /// The scan could not complete: verdict "inconclusive".
    Inconclusive,
    /// Nothing could be checked: verdict "unsupported".
    Unsupported,
}

/// The scanner's rules. Codes are stable; new rules get new codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    /// MDL001: an import outside the allowed profiles.
    DisallowedImport,
    /// MDL002: an import on the deny-list.
    DangerousImport,
    /// MDL003: an import whose name is not known statically.
    DynamicImport,
    /// MDL004: archive integrity (CRC, flag bits, names).
    ArchiveIntegrity,
    /// MDL005: Keras Lambda layers and objects from outside Keras.
    KerasUnsafe,
    /// MDL006: parse error, I/O error or exceeded limit.
    Inconclusive,
    /// MDL007: the file does not match the manifest.
    ManifestMismatch,
    /// MDL008: a format the scanner does not read.
    Unsupported,
    /// MDL009: a call whose target is not a plain imported global.
    IndirectCall,
}

impl Rule {
    /// Every rule, in code order.
    pub const ALL: [Rule; 9] = [
        Rule::DisallowedImport,
        Rule::DangerousImport,
        Rule::DynamicImport,
        Rule::ArchiveIntegrity,
        Rule::KerasUnsafe,
        Rule::Inconclusive,
        Rule::ManifestMismatch,
        Rule::Unsupported,
        Rule::IndirectCall,
    ];

    /// The stable code, `MDL001`...
    pub fn code(self) -> &'static str {
        match self {
            Rule::DisallowedImport => "MDL001",
            Rule::DangerousImport => "MDL002",
            Rule::DynamicImport => "MDL003",
            Rule::ArchiveIntegrity => "MDL004",
            Rule::KerasUnsafe => "MDL005",
            Rule::Inconclusive => "MDL006",
            Rule::ManifestMismatch => "MDL007",
            Rule::Unsupported => "MDL008",
            Rule::IndirectCall => "MDL009",
        }
    }

    /// Kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            Rule::DisallowedImport => "disallowed-import",
            Rule::DangerousImport => "dangerous-import",
            Rule::DynamicImport => "dynamic-import",
            Rule::ArchiveIntegrity => "archive-integrity",
            Rule::KerasUnsafe => "keras-unsafe-object",
            Rule::Inconclusive => "scan-inconclusive",
            Rule::ManifestMismatch => "manifest-mismatch",
            Rule::Unsupported => "unsupported-format",
            Rule::IndirectCall => "indirect-call",
        }
    }

    /// Severity of a finding unless the rule raises it.
    pub fn default_severity(self) -> Severity {
        match self {
            Rule::DangerousImport | Rule::ManifestMismatch => Severity::Critical,
            Rule::DisallowedImport
            | Rule::DynamicImport
            | Rule::ArchiveIntegrity
            | Rule::KerasUnsafe
            | Rule::IndirectCall => Severity::Error,
            Rule::Inconclusive => Severity::Warning,
            Rule::Unsupported => Severity::Info,
        }
    }

    /// How the rule's findings count in the verdict.
    pub fn class(self) -> RuleClass {
        match self {
            Rule::Inconclusive => RuleClass::Inconclusive,
            Rule::Unsupported => RuleClass::Unsupported,
            _ => RuleClass::Finding,
        }
    }

    /// The rule with this code (case-insensitive).
    pub fn from_code(code: &str) -> Option<Rule> {
        Rule::ALL
            .into_iter()
            .find(|r| r.code().eq_ignore_ascii_case(code))
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl Serialize for Rule {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

/// One thing the scanner found in a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The rule (serialized as its code).
    #[serde(rename = "code")]
    pub rule: Rule,
    /// How bad it is.
    pub severity: Severity,
    /// One sentence for people.
    pub message: String,
    /// Path inside the file's archives, `!`-separated for nested ones
    /// (`archive/data.pkl`, `inner.tar!model.pkl`); `None` for the file itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// Byte offset in the member (or file) where it was seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// The imported name, when the finding is about one (`os.system`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub symbol: Option<String>,
    /// The reconstructed call, e.g. `os.system('rm -rf /')`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call: Option<String>,
}

impl Finding {
    /// A finding with the rule's default severity and no location.
    pub fn new(rule: Rule, message: impl Into<String>) -> Finding {
        Finding {
            rule,
            severity: rule.default_severity(),
            message: message.into(),
            member: None,
            offset: None,
            symbol: None,
            call: None,
        }
    }

    /// Sets the severity.
    pub fn severity(mut self, s: Severity) -> Finding {
        self.severity = s;
        self
    }

    /// Sets the member path (empty means the file itself).
    pub fn member(mut self, m: &str) -> Finding {
        self.member = (!m.is_empty()).then(|| m.to_string());
        self
    }

    /// Sets the byte offset.
    pub fn offset(mut self, o: u64) -> Finding {
        self.offset = Some(o);
        self
    }

    /// Sets the symbol.
    pub fn symbol(mut self, s: impl Into<String>) -> Finding {
        self.symbol = Some(s.into());
        self
    }

    /// Sets the reconstructed call.
    pub fn call(mut self, c: Option<String>) -> Finding {
        self.call = c;
        self
    }
}
