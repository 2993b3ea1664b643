//! Policy loading: every error at once, each with its line and column.

use super::{
    condition, CheckConfig, ColumnSpec, ConditionSpec, DatasetSpec, Policy, POLICY_VERSION,
};
use crate::checks::registry;
use crate::findings::Severity;
use serde::Deserialize;
use std::fmt;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

/// One problem in a policy file.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyError {
    /// 1-based line (0 when the error is about the file as a whole).
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

/// Every problem found in a policy file.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyErrors {
    /// The policy's path.
    pub path: String,
    /// The problems, in file order.
    pub errors: Vec<PolicyError>,
}

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        writeln!(
            f,
            "{}: invalid policy ({n} error{})",
            self.path,
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.errors {
            if e.line == 0 {
                writeln!(f, "  {}: {}", self.path, e.message)?;
            } else {
                writeln!(f, "  {}:{}:{}: {}", self.path, e.line, e.column, e.message)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for PolicyErrors {}

/// Largest policy file accepted: policies are small; a huge one is a mistake or an attack.
const MAX_POLICY_BYTES: u64 = 4 << 20;

pub(super) fn load_file(path: &str) -> Result<Policy, PolicyErrors> {
    let whole = |message: String| PolicyErrors {
        path: path.to_string(),
        errors: vec![PolicyError {
            line: 0,
            column: 0,
            message,
        }],
    };
    let meta = std::fs::metadata(path).map_err(|e| whole(io_message(&e)))?;
    if meta.len() > MAX_POLICY_BYTES {
        return Err(whole(format!(
            "the file is {} bytes; a policy may be at most {MAX_POLICY_BYTES}",
            meta.len()
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| whole(io_message(&e)))?;
    parse(&text, path)
}

fn io_message(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_string(),
        std::io::ErrorKind::InvalidData => "not valid UTF-8 text".to_string(),
        _ => e.to_string(),
    }
}

struct Collector<'a> {
    text: &'a str,
    errors: Vec<PolicyError>,
}

impl Collector<'_> {
    fn at(&mut self, offset: usize, message: impl Into<String>) {
        let (line, column) = line_col(self.text, offset);
        self.errors.push(PolicyError {
            line,
            column,
            message: message.into(),
        });
    }

    fn toml(&mut self, fallback: usize, e: &toml::de::Error) {
        let offset = e.span().map(|s| s.start).unwrap_or(fallback);
        self.at(offset, e.message().trim().to_string());
    }
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}

fn typed<'i, T: Deserialize<'i>>(value: Spanned<DeValue<'i>>) -> Result<T, toml::de::Error> {
    T::deserialize(ValueDeserializer::from(value))
}

pub(super) fn parse(text: &str, path: &str) -> Result<Policy, PolicyErrors> {
    let mut c = Collector {
        text,
        errors: Vec::new(),
    };
    let (root, syntax) = DeTable::parse_recoverable(text);
    for e in &syntax {
        c.toml(0, e);
    }
    let mut policy = Policy {
        path: path.to_string(),
        ..Policy::default()
    };
    let mut have_version = false;
    for (key, value) in root.get_ref().iter() {
        let start = key.span().start;
        match key.get_ref().as_ref() {
            "version" => {
                have_version = true;
                match typed::<u32>(value.clone()) {
                    Ok(v) if v == POLICY_VERSION => {}
                    Ok(v) => c.at(
                        value.span().start,
                        format!("policy version {v} is not supported; this vigil reads version {POLICY_VERSION}"),
                    ),
                    Err(e) => c.toml(start, &e),
                }
            }
            "dataset" => match typed::<DatasetSpec>(value.clone()) {
                Ok(d) => policy.dataset = d,
                Err(e) => c.toml(start, &e),
            },
            "columns" => parse_columns(&mut c, value, &mut policy),
            "conditions" => parse_conditions(&mut c, value, &mut policy),
            "checks" => parse_checks(&mut c, value, &mut policy),
            "watch" => parse_watch(&mut c, value, &mut policy),
            "serve" => match typed::<crate::serve::ServeSettings>(value.clone()) {
                Ok(s) => {
                    if let Err(m) = s.validate() {
                        c.at(value.span().start, format!("serve: {m}"));
                    }
                    policy.serve = Some(s);
                }
                Err(e) => c.toml(start, &e),
            },
            "scan" => match typed::<crate::scan::ScanPolicy>(value.clone()) {
                Ok(s) => {
                    if let Err(m) = s.validate() {
                        c.at(value.span().start, format!("scan: {m}"));
                    }
                    policy.scan = Some(s);
                }
                Err(e) => c.toml(start, &e),
            },
            other => c.at(
                start,
                format!("unknown key `{other}`; expected one of `version`, `dataset`, `columns`, `conditions`, `checks`, `serve`, `watch`, `scan`"),
            ),
        }
    }
    if !have_version && syntax.is_empty() {
        c.errors.push(PolicyError {
            line: 0,
            column: 0,
            message: format!("missing `version = {POLICY_VERSION}` at the top of the policy"),
        });
    }
    cross_check(&mut c, &root, &mut policy);
    if c.errors.is_empty() {
        Ok(policy)
    } else {
        c.errors.sort_by_key(|e| (e.line, e.column));
        Err(PolicyErrors {
            path: path.to_string(),
            errors: c.errors,
        })
    }
}

fn parse_columns(c: &mut Collector<'_>, value: &Spanned<DeValue<'_>>, policy: &mut Policy) {
    let Some(table) = value.get_ref().as_table() else {
        c.at(
            value.span().start,
            "`columns` must be a table of column specs",
        );
        return;
    };
    for (name, spec) in table.iter() {
        let name_str = name.get_ref().to_string();
        match typed::<ColumnSpec>(spec.clone()) {
            Ok(s) => {
                if let (Some(lo), Some(hi)) = (s.min, s.max) {
                    if lo > hi {
                        c.at(
                            spec.span().start,
                            format!("columns.{name_str}: min ({lo}) is greater than max ({hi})"),
                        );
                    }
                }
                if let Some(p) = &s.pattern {
                    if let Err(e) = regex::Regex::new(p) {
                        let at = key_offset(spec, "pattern").unwrap_or(spec.span().start);
                        c.at(
                            at,
                            format!(
                                "columns.{name_str}.pattern is not a valid regular expression: {e}"
                            ),
                        );
                    }
                }
                if s.kind == crate::source::ColumnType::Other {
                    c.at(
                        spec.span().start,
                        format!("columns.{name_str}: type must be float, int, string or bool"),
                    );
                }
                policy.columns.push((name_str, s));
            }
            Err(e) => {
                let at = e.span().map(|s| s.start).unwrap_or(spec.span().start);
                c.at(at, format!("columns.{name_str}: {}", e.message().trim()));
            }
        }
    }
}

fn parse_conditions(c: &mut Collector<'_>, value: &Spanned<DeValue<'_>>, policy: &mut Policy) {
    let Some(items) = value.get_ref().as_array() else {
        c.at(
            value.span().start,
            "`conditions` must be an array of tables: write each as [[conditions]]",
        );
        return;
    };
    for item in items.iter() {
        match typed::<ConditionSpec>(item.clone()) {
            Ok(mut spec) => {
                match condition::parse(&spec.expr) {
                    Ok(expr) => spec.parsed = Some(expr),
                    Err(e) => {
                        // Point at the offending token inside the string literal.
                        let base = item
                            .get_ref()
                            .as_table()
                            .and_then(|t| t.get("expr"))
                            .map(|v| v.span().start + 1)
                            .unwrap_or(item.span().start);
                        c.at(
                            base + e.span.start,
                            format!(
                                "condition `{}`: {}\n{}",
                                spec.name,
                                e.message,
                                indent(&e.render())
                            ),
                        );
                    }
                }
                policy.conditions.push(spec);
            }
            Err(e) => c.toml(item.span().start, &e),
        }
    }
}

/// The condition's source line and caret, indented under the error (the render's first line
/// repeats the message, which the error line already carries).
fn indent(s: &str) -> String {
    s.lines()
        .skip(1)
        .map(|l| format!("      {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn parse_checks(c: &mut Collector<'_>, value: &Spanned<DeValue<'_>>, policy: &mut Policy) {
    let Some(table) = value.get_ref().as_table() else {
        c.at(
            value.span().start,
            "`checks` must be a table: write [checks.CODE]",
        );
        return;
    };
    for (code, settings) in table.iter() {
        let code_str = code.get_ref().to_string();
        let Some(check) = registry::find(&code_str) else {
            c.at(
                code.span().start,
                format!("unknown check `{code_str}` (see `vigil rules` for the list)"),
            );
            continue;
        };
        let mut config = CheckConfig::default();
        let Some(t) = settings.get_ref().as_table() else {
            c.at(
                settings.span().start,
                format!("checks.{code_str} must be a table"),
            );
            continue;
        };
        for (k, v) in t.iter() {
            match k.get_ref().as_ref() {
                "enabled" => match v.get_ref().as_bool() {
                    Some(b) => config.enabled = Some(b),
                    None => c.at(v.span().start, format!("checks.{code_str}.enabled must be true or false")),
                },
                "severity" => match v.get_ref().as_str().and_then(Severity::parse) {
                    Some(s) => config.severity = Some(s),
                    None => c.at(
                        v.span().start,
                        format!("checks.{code_str}.severity must be one of info, warning, error, critical"),
                    ),
                },
                other => match typed::<toml::Value>(v.clone()) {
                    Ok(val) => {
                        config.options.insert(other.to_string(), val);
                    }
                    Err(e) => c.toml(v.span().start, &e),
                },
            }
        }
        if let Err(message) = check.validate_options(&config.options) {
            let at = message
                .split('`')
                .nth(1)
                .and_then(|field| key_offset(settings, field))
                .unwrap_or(settings.span().start);
            c.at(at, format!("checks.{code_str}: {message}"));
        }
        policy.checks.push((code_str, config));
    }
}

fn parse_watch(c: &mut Collector<'_>, value: &Spanned<DeValue<'_>>, policy: &mut Policy) {
    let Some(table) = value.get_ref().as_table() else {
        c.at(value.span().start, "`watch` must be a table: write [watch]");
        return;
    };
    let mut watch = super::WatchPolicy::default();
    let mut rest = toml::Table::new();
    for (k, v) in table.iter() {
        let key = k.get_ref().as_ref();
        if key == "fields" {
            match typed::<crate::watch::FieldMap>(v.clone()) {
                Ok(m) => watch.fields = m,
                Err(e) => c.at(
                    v.span().start,
                    format!("watch.fields: {}", e.message().trim()),
                ),
            }
            continue;
        }
        match typed::<toml::Value>(v.clone()) {
            Ok(val) => {
                rest.insert(key.to_string(), val);
            }
            Err(e) => c.toml(v.span().start, &e),
        }
    }
    let at = |message: &str| {
        message
            .split('`')
            .nth(1)
            .and_then(|k| key_offset(value, k))
            .unwrap_or(value.span().start)
    };
    match toml::Value::Table(rest).try_into::<crate::watch::WatchSettings>() {
        Ok(settings) => match settings.validate() {
            Ok(()) => watch.detectors = settings,
            Err(m) => c.at(at(&m), format!("watch: {m}")),
        },
        Err(e) => {
            let m = e.message().trim().to_string();
            c.at(at(&m), format!("watch: {m}"));
        }
    }
    policy.watch = Some(watch);
}

fn key_offset(table: &Spanned<DeValue<'_>>, key: &str) -> Option<usize> {
    table
        .get_ref()
        .as_table()?
        .iter()
        .find(|(k, _)| k.get_ref().as_ref() == key)
        .map(|(k, _)| k.span().start)
}

/// Checks that need the whole policy: roles name declared columns, conditions name declared
/// columns.
fn cross_check(c: &mut Collector<'_>, root: &Spanned<DeTable<'_>>, policy: &mut Policy) {
    if policy.columns.is_empty() {
        return;
    }
    let dataset_span = root
        .get_ref()
        .get("dataset")
        .map(|v| v.span().start)
        .unwrap_or(0);
    let declared = |n: &str| policy.columns.iter().any(|(name, _)| name == n);
    let mut missing = Vec::new();
    let roles = [
        ("label", &policy.dataset.label),
        ("id", &policy.dataset.id),
        ("source", &policy.dataset.source),
    ];
    for (i, (role, col)) in roles.iter().enumerate() {
        if let Some(col) = col {
            if !declared(col) {
                missing.push(format!(
                    "dataset.{role} names column `{col}`, which [columns] does not declare"
                ));
            }
            for (other, oc) in &roles[..i] {
                if oc.as_ref() == Some(col) {
                    missing.push(format!(
                        "dataset.{role} and dataset.{other} both name column `{col}`"
                    ));
                }
            }
        }
    }
    for f in policy.dataset.features.iter().flatten() {
        if !declared(f) {
            missing.push(format!(
                "dataset.features names column `{f}`, which [columns] does not declare"
            ));
        }
    }
    for m in missing {
        c.at(dataset_span, m);
    }
    let conditions_at: Vec<usize> = root
        .get_ref()
        .get("conditions")
        .and_then(|v| v.get_ref().as_array())
        .map(|a| {
            a.iter()
                .map(|item| {
                    item.get_ref()
                        .as_table()
                        .and_then(|t| t.get("expr"))
                        .map(|v| v.span().start + 1)
                        .unwrap_or(item.span().start)
                })
                .collect()
        })
        .unwrap_or_default();
    for (i, cond) in policy.conditions.iter().enumerate() {
        let Some(expr) = &cond.parsed else { continue };
        for (name, span) in expr.columns() {
            if !declared(&name) {
                let base = conditions_at.get(i).copied().unwrap_or(0);
                c.at(
                    base + span.start,
                    format!(
                        "condition `{}` uses column `{name}`, which [columns] does not declare",
                        cond.name
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any text loads or yields errors with lines inside the file; never a panic.
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
            if let Err(e) = parse(&text, "p.toml") {
                prop_assert!(!e.errors.is_empty());
                let lines = text.lines().count().max(1);
                for err in &e.errors {
                    prop_assert!(err.line <= lines + 1, "{err:?} past line {lines}");
                }
            }
        }

        /// Plausible policies built from real keys and junk values.
        #[test]
        fn policy_shaped_text_never_panics(
            key in prop::sample::select(vec!["type", "min", "max", "nullable", "categories", "pattern", "unique", "maxx", "expr", "threshold", "severity"]),
            value in prop::sample::select(vec!["\"float\"", "1", "-1e308", "true", "[1, \"a\"]", "\"([\"", "{ a = 1 }", "\"f > AND\"", "nan", "\"critical\""]),
        ) {
            let text = format!("version = 1\n[columns.a]\n{key} = {value}\n[[conditions]]\nname = \"c\"\nexpr = \"a > 1\"\n[checks.OUT001]\n{key} = {value}\n");
            let _ = parse(&text, "p.toml");
        }
    }

    #[test]
    fn valid_policy_loads() {
        let text = "version = 1\n[dataset]\nlabel = \"y\"\n[columns.y]\ntype = \"int\"\ncategories = [0, 1]\n[columns.x]\ntype = \"float\"\nmin = 0.0\n[[conditions]]\nname = \"pos\"\nexpr = \"x >= 0 OR y = 1\"\n[checks.OUT001]\nthreshold = 8.0\nseverity = \"error\"\n";
        let p = parse(text, "p.toml").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.columns.len(), 2);
        assert_eq!(p.dataset.label.as_deref(), Some("y"));
        assert!(p.conditions[0].parsed.is_some());
        let c = p.check("OUT001");
        assert_eq!(c.severity, Some(Severity::Error));
        assert_eq!(
            c.options.get("threshold").and_then(|v| v.as_float()),
            Some(8.0)
        );
    }

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("a\nbc\n", 0), (1, 1));
        assert_eq!(line_col("a\nbc\n", 3), (2, 2));
    }
}
