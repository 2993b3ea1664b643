//! Pickle streams: runs the VM and turns its [`Analysis`] into findings
//! through the policy.

use std::collections::{HashMap, HashSet};
use std::io::Read;

use crate::scan::finding::{Finding, Rule, Severity};
use crate::scan::pickle::{analyze_reader_with, Analysis, CallKind, Dialect, Options};
use crate::scan::policy::ImportDecision;
use crate::scan::report::Format;
use crate::scan::source::reopen::Reopen;

use super::Scanner;

/// What kind of pickle stream is expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// Starts with PROTO: a pickle (read as joblib would, which is plain
    /// pickle unless joblib array wrappers appear).
    Pickle,
    /// Protocol 0/1 opcode first: a pickle only if the VM gets anywhere
    /// (`text`: the stream otherwise looks like text).
    MaybePickle { text: bool },
    /// Legacy PyTorch: five pickles, then raw storages.
    TorchLegacy,
    /// A pickle read by plain `pickle.load` (torch zips, npy object arrays).
    Plain,
}

/// Findings appear at most this many times per rule and member.
const MAX_PER_RULE: usize = 100;

/// Scans a pickle stream; records the member and its findings.
pub(crate) fn scan_stream(
    sc: &mut Scanner<'_>,
    r: &mut dyn Read,
    again: Option<&dyn Reopen>,
    member: &str,
    flavor: Flavor,
) -> Format {
    let options = Options {
        dialect: match flavor {
            Flavor::Pickle | Flavor::MaybePickle { .. } => Dialect::Joblib,
            Flavor::TorchLegacy | Flavor::Plain => Dialect::Pickle,
        },
        stop_after: (flavor == Flavor::TorchLegacy).then_some(5),
    };
    let a = analyze_reader_with(r, &sc.opts.pickle, &options);
    if let Flavor::MaybePickle { text } = flavor {
        if a.pickles == 0
            && a.imports.is_empty()
            && a.calls.is_empty()
            && a.persistent_ids.is_empty()
            && a.error.is_some()
        {
            // pickle.load fails before doing anything: not a pickle.
            let (format, why) = if text {
                (Format::Text, "text: not a model format")
            } else {
                (Format::Unknown, "no supported model format recognised")
            };
            sc.unsupported(member, format, why.into());
            return format;
        }
    }
    let format = if flavor == Flavor::TorchLegacy {
        Format::TorchLegacy
    } else {
        Format::Pickle
    };
    let mut note = summary(&a);
    report(sc, &a, member, "");
    if flavor == Flavor::TorchLegacy && a.error.is_none() && a.pickles < 5 {
        sc.inconclusive(
            member,
            Some(a.bytes_read),
            format!(
                "legacy PyTorch file ends after {} of its 5 pickles",
                a.pickles
            ),
        );
    }
    if a.unpadded_arrays > 0 {
        // Loaded with plain pickle.load instead of joblib.load, these array
        // bytes would be read as opcodes: check that reading too.
        match again.map(|g| g.reopen()) {
            Some(Ok(r2)) => {
                let plain = Options {
                    dialect: Dialect::Pickle,
                    stop_after: None,
                };
                let b = analyze_reader_with(r2, &sc.opts.pickle, &plain);
                let b = Analysis { error: None, ..b };
                report(
                    sc,
                    &b,
                    member,
                    "if loaded with pickle.load instead of joblib.load: ",
                );
                note.push_str("; re-read as plain pickle");
            }
            Some(Err(e)) => sc.inconclusive(
                member,
                None,
                format!("could not re-read the stream to check it as plain pickle: {e}"),
            ),
            None => sc.inconclusive(
                member,
                None,
                "joblib arrays without alignment padding: reading as plain pickle not checked"
                    .into(),
            ),
        }
    }
    sc.member(member, format, Some(a.bytes_read), note);
    format
}

/// "2 pickles, 5 imports, 3 calls".
fn summary(a: &Analysis) -> String {
    let mut s = format!(
        "{} pickle{}, {} import{}, {} call{}",
        a.pickles,
        if a.pickles == 1 { "" } else { "s" },
        a.imports.len(),
        if a.imports.len() == 1 { "" } else { "s" },
        a.calls.len(),
        if a.calls.len() == 1 { "" } else { "s" },
    );
    if a.arrays > 0 {
        s.push_str(&format!(", {} joblib array(s) skipped", a.arrays));
    }
    s
}

/// Turns an analysis into findings (`prefix` qualifies their messages).
pub(crate) fn report(sc: &mut Scanner<'_>, a: &Analysis, member: &str, prefix: &str) {
    let stats = &mut sc.report.pickle;
    stats.streams += 1;
    stats.pickles += a.pickles as u64;
    stats.opcodes += a.ops;
    stats.imports += a.imports.len() as u64;
    stats.calls += a.calls.len() as u64;
    stats.arrays += a.arrays;

    let static_names: HashSet<String> = a
        .imports
        .iter()
        .filter(|i| !i.dynamic)
        .map(|i| i.dotted())
        .collect();
    let dynamic_names: HashSet<String> = a
        .imports
        .iter()
        .filter(|i| i.dynamic)
        .map(|i| i.dotted())
        .collect();
    // The first call on each callable (a real call before a BUILD).
    let mut first_call: HashMap<&str, &str> = HashMap::new();
    for c in a.calls.iter().filter(|c| c.kind != CallKind::Build) {
        first_call.entry(&c.callable).or_insert(&c.rendered);
    }
    for c in a.calls.iter().filter(|c| c.kind == CallKind::Build) {
        first_call.entry(&c.callable).or_insert(&c.rendered);
    }

    // One finding per distinct import, at its first offset.
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut order: Vec<(String, &crate::scan::pickle::Import)> = Vec::new();
    for i in &a.imports {
        let d = i.dotted();
        let n = seen.entry(d.clone()).or_insert(0);
        *n += 1;
        if *n == 1 {
            order.push((d, i));
        }
    }
    let existing: HashSet<(Option<String>, Option<String>)> = sc
        .report
        .findings
        .iter()
        .map(|f| (f.member.clone(), f.symbol.clone()))
        .collect();
    let member_key = (!member.is_empty()).then(|| member.to_string());
    for (dotted, imp) in order {
        if existing.contains(&(member_key.clone(), Some(dotted.clone()))) {
            continue;
        }
        let times = seen.get(&dotted).copied().unwrap_or(1);
        let times = if times > 1 {
            format!(" ({times} times)")
        } else {
            String::new()
        };
        let call = first_call.get(dotted.as_str()).map(|s| s.to_string());
        let f = if imp.dynamic {
            let known = |s: &str| !s.starts_with("<dynamic") && !s.is_empty();
            let denied = known(&imp.module)
                && (sc.policy.denied_path(&imp.module).is_some()
                    || (known(&imp.name)
                        && matches!(
                            sc.policy.decide(&imp.module, &imp.name),
                            ImportDecision::Denied(_)
                        )));
            let f = Finding::new(
                Rule::DynamicImport,
                format!(
                    "{prefix}{} imports a name computed at load time: {dotted}{times}",
                    imp.opcode
                ),
            );
            if denied {
                f.severity(Severity::Critical)
            } else {
                f
            }
        } else {
            match sc.policy.decide(&imp.module, &imp.name) {
                ImportDecision::Allowed => continue,
                ImportDecision::Disallowed => Finding::new(
                    Rule::DisallowedImport,
                    format!(
                        "{prefix}imports {dotted}, which no profile or allow entry permits{times}"
                    ),
                ),
                ImportDecision::Denied(why) => Finding::new(
                    Rule::DangerousImport,
                    format!("{prefix}imports {dotted}: {why}{times}"),
                ),
            }
        };
        sc.add(member, f.offset(imp.offset).symbol(dotted).call(call));
    }

    // Calls on anything but a plain imported global.
    let mut indirect = 0usize;
    for c in &a.calls {
        let why = if c.kind == CallKind::Build {
            (static_names.contains(&c.callable)
                && c.rendered
                    .starts_with(&format!("{}.__setstate__(", c.callable)))
            .then(|| format!("{prefix}BUILD sets attributes on {} itself", c.callable))
        } else {
            (!static_names.contains(&c.callable)
                && !dynamic_names.contains(&c.callable)
                && !c.callable.starts_with("<extension code"))
            .then(|| format!("{prefix}calls a computed value: {}", c.rendered))
        };
        if let Some(why) = why {
            indirect += 1;
            if indirect > MAX_PER_RULE {
                continue;
            }
            let f = Finding::new(Rule::IndirectCall, why)
                .offset(c.offset)
                .call(Some(c.rendered.clone()));
            sc.add(member, f);
        }
    }
    if indirect > MAX_PER_RULE {
        sc.add(
            member,
            Finding::new(
                Rule::IndirectCall,
                format!(
                    "{prefix}{} more indirect calls not listed",
                    indirect - MAX_PER_RULE
                ),
            ),
        );
    }

    if let Some(e) = &a.error {
        sc.inconclusive(
            member,
            Some(e.offset),
            format!("{prefix}pickle analysis stopped: {}", e.message),
        );
    }
}
