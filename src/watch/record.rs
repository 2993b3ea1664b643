//! The fields `vigil watch` knows, the mapping from a log's own names to them, and one step's
//! values.

use serde::Deserialize;
use std::collections::BTreeMap;

/// A metric `vigil watch` understands.
///
/// [`Field::Step`] is the record's key rather than a value: it is parsed and mapped like the
/// others (`--field iteration=step`) but it is not in [`Field::ALL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    /// The training step (a non-negative integer), the key of each record.
    Step,
    /// Training (batch) loss.
    Loss,
    /// Training (batch) accuracy, as a fraction or a percentage.
    Accuracy,
    /// Validation loss, often logged only every N steps.
    ValLoss,
    /// Validation accuracy, often logged only every N steps.
    ValAccuracy,
    /// Global gradient norm (before clipping).
    GradNorm,
    /// Learning rate in force at the step.
    LearningRate,
    /// Epoch (possibly fractional); informational.
    Epoch,
}

/// Number of value fields (all but [`Field::Step`]).
const VALUES: usize = 7;

impl Field {
    /// The value fields, in a fixed order (not [`Field::Step`], which is the record's key).
    pub const ALL: [Field; VALUES] = [
        Field::Loss,
        Field::Accuracy,
        Field::ValLoss,
        Field::ValAccuracy,
        Field::GradNorm,
        Field::LearningRate,
        Field::Epoch,
    ];

    /// The canonical name, as written in logs and policies.
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Step => "step",
            Field::Loss => "loss",
            Field::Accuracy => "accuracy",
            Field::ValLoss => "val_loss",
            Field::ValAccuracy => "val_accuracy",
            Field::GradNorm => "grad_norm",
            Field::LearningRate => "learning_rate",
            Field::Epoch => "epoch",
        }
    }

    /// Parses a canonical name (`step` included).
    pub fn parse(s: &str) -> Option<Field> {
        if s == "step" {
            return Some(Field::Step);
        }
        Field::ALL.into_iter().find(|f| f.as_str() == s)
    }

    /// Slot of a value field in [`StepRecord`]; `None` for the step.
    fn slot(self) -> Option<usize> {
        Field::ALL.iter().position(|f| *f == self)
    }
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Log field names read as known fields, e.g. `train/loss` as [`Field::Loss`].
///
/// Deserialized from a TOML table of strings, `{ "train/loss" = "loss", iter = "step" }`; a
/// target that is not a known field is an error. A name mapped here wins over a column that
/// carries the canonical name itself.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct FieldMap {
    map: BTreeMap<String, Field>,
}

impl FieldMap {
    /// Reads the log field `name` as `field` (replacing an earlier mapping of `name`).
    pub fn insert(&mut self, name: &str, field: Field) {
        self.map.insert(name.to_string(), field);
    }

    /// The field a log name stands for, and whether it was mapped explicitly (which gives it
    /// precedence over a canonical name in the same record).
    pub fn resolve(&self, name: &str) -> Option<(Field, bool)> {
        match self.map.get(name) {
            Some(f) => Some((*f, true)),
            None => Field::parse(name).map(|f| (f, false)),
        }
    }

    /// True when no name is mapped.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// One step's metrics. Absent values are `None`; non-finite ones are kept as they are (NaN,
/// ±inf), since they are what the non-finite detector looks for.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord {
    /// The training step.
    pub step: u64,
    values: [Option<f64>; VALUES],
}

impl StepRecord {
    /// A record with no values yet.
    pub fn new(step: u64) -> Self {
        StepRecord {
            step,
            values: [None; VALUES],
        }
    }

    /// The value of `field`, if logged (the step itself for [`Field::Step`]).
    pub fn get(&self, field: Field) -> Option<f64> {
        match field.slot() {
            Some(i) => self.values[i],
            None => Some(self.step as f64),
        }
    }

    /// Sets (or with `None`, clears) a value. Setting [`Field::Step`] is ignored: the step is
    /// [`StepRecord::step`], an integer.
    pub fn set(&mut self, field: Field, value: Option<f64>) {
        if let Some(i) = field.slot() {
            self.values[i] = value;
        }
    }

    /// Builder form of [`StepRecord::set`].
    pub fn with(mut self, field: Field, value: f64) -> Self {
        self.set(field, Some(value));
        self
    }

    /// True when no value field is present.
    pub fn is_empty(&self) -> bool {
        self.values.iter().all(Option::is_none)
    }

    /// The value fields present, in [`Field::ALL`] order.
    pub fn fields(&self) -> impl Iterator<Item = (Field, f64)> + '_ {
        Field::ALL
            .iter()
            .zip(&self.values)
            .filter_map(|(f, v)| v.map(|v| (*f, v)))
    }
}
