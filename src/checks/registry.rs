//! Every check vigil has, in the order they run. Adding a check is one file plus one line here.
//!
//! Order matters only for dataset-level checks that read earlier findings (DRF009 reads the
//! per-column drift checks before it).

use super::drift::{
    category_change::CategoryChange, chi_squared::ChiSquaredDrift, dataset_drift::DatasetDrift,
    jensen_shannon::JensenShannonDrift, ks::KsDrift, label_shift::LabelShift,
    missing_rate::MissingRateChange, psi::PsiDrift, wasserstein::WassersteinDrift,
};
use super::outlier::{
    class_conditional_outlier::ClassConditionalOutlier, iqr_fence::IqrFence,
    isolated_row::IsolatedRow, multivariate_outlier::MultivariateOutlier, robust_z::RobustZ,
    value_spike::ValueSpike,
};
use super::poison::{
    amplified_row::AmplifiedRow, backdoor_trigger::BackdoorTrigger,
    conflicting_duplicate::ConflictingDuplicate, exact_duplicate::ExactDuplicate,
    label_noise::LabelNoise, near_duplicate::NearDuplicate, reference_copy::ReferenceCopy,
    reference_relabel::ReferenceRelabel, source_concentration::SourceConcentration,
    spectral_signature::SpectralSignature,
};
use super::schema::{
    duplicate_id::DuplicateId, missing_column::MissingColumn, null_not_allowed::NullNotAllowed,
    out_of_range::OutOfRange, pattern_mismatch::PatternMismatch, row_condition::RowCondition,
    row_count::RowCount, unexpected_column::UnexpectedColumn, unknown_category::UnknownCategory,
    wrong_type::WrongType,
};
use super::Check;

/// All checks, in run order.
pub const CHECKS: &[&dyn Check] = &[
    &WrongType,
    &NullNotAllowed,
    &OutOfRange,
    &UnknownCategory,
    &PatternMismatch,
    &DuplicateId,
    &MissingColumn,
    &UnexpectedColumn,
    &RowCount,
    &RowCondition,
    &RobustZ,
    &IqrFence,
    &ValueSpike,
    &MultivariateOutlier,
    &ClassConditionalOutlier,
    &IsolatedRow,
    &PsiDrift,
    &KsDrift,
    &ChiSquaredDrift,
    &JensenShannonDrift,
    &WassersteinDrift,
    &CategoryChange,
    &MissingRateChange,
    &LabelShift,
    &DatasetDrift,
    &ExactDuplicate,
    &NearDuplicate,
    &ConflictingDuplicate,
    &AmplifiedRow,
    &BackdoorTrigger,
    &LabelNoise,
    &SpectralSignature,
    &ReferenceCopy,
    &ReferenceRelabel,
    // Last: it reads every other check's row flags per source.
    &SourceConcentration,
];

/// The check with code `code` (case-insensitive).
pub fn find(code: &str) -> Option<&'static dyn Check> {
    CHECKS
        .iter()
        .copied()
        .find(|c| c.code().eq_ignore_ascii_case(code))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::clean_doc;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_and_well_formed() {
        let mut seen = HashSet::new();
        for c in CHECKS {
            assert!(seen.insert(c.code()), "duplicate code {}", c.code());
            let code = c.code();
            assert_eq!(&code[..3], c.family().prefix(), "{code} prefix");
            assert!(
                code.len() == 6 && code[3..].chars().all(|ch| ch.is_ascii_digit()),
                "{code}"
            );
            assert_eq!(
                find(code).map(|f| f.code()),
                Some(code),
                "{code} round-trips"
            );
            assert_eq!(find(&code.to_lowercase()).map(|f| f.code()), Some(code));
        }
    }

    #[test]
    fn names_are_kebab_case_and_unique() {
        let mut seen = HashSet::new();
        for c in CHECKS {
            let n = c.name();
            assert!(seen.insert(n), "duplicate name {n}");
            assert!(
                !n.is_empty()
                    && n.chars()
                        .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-')
                    && !n.starts_with('-')
                    && !n.ends_with('-')
                    && !n.contains("--"),
                "{n} is not kebab-case"
            );
        }
    }

    #[test]
    fn every_check_is_documented() {
        for c in CHECKS {
            let doc = clean_doc(c.doc());
            for heading in [
                "## What it checks",
                "## Why it matters",
                "## Example",
                "## Configuration",
                "## False positives",
            ] {
                assert!(doc.contains(heading), "{} lacks {heading}", c.code());
            }
            assert!(c.summary().len() > 20, "{} summary", c.code());
        }
    }

    #[test]
    fn default_options_validate_and_unknown_keys_are_rejected() {
        for c in CHECKS {
            assert!(
                c.validate_options(&toml::Table::new()).is_ok(),
                "{}",
                c.code()
            );
            let mut t = toml::Table::new();
            t.insert("no-such-option".into(), toml::Value::Integer(1));
            let err = c.validate_options(&t).err();
            assert!(
                err.as_deref().is_some_and(|e| e.contains("no-such-option")),
                "{} accepted an unknown key: {err:?}",
                c.code()
            );
        }
    }
}
