//! The scan policy: allow-list first.
//!
//! An import is allowed only if a built-in profile or a user `allow` entry
//! names it; everything else is a finding. The deny-list ([`deny`]) never
//! allows or forbids anything by itself: it raises a finding's severity to
//! critical, and no `allow` entry can override it.
//!
//! ```toml
//! [scan]
//! profiles = ["numpy", "torch"]   # default: all built-in profiles
//! allow = ["mypkg.models.Net", "mypkg.layers."]   # trailing dot (or .*): a whole package
//! deny = ["mypkg.unsafe"]         # extra deny patterns
//! ```

mod deny;
mod profiles;

use serde::{Deserialize, Serialize};
use std::collections::HashSet;

pub(crate) use profiles::{TORCH_CLASS_MODULES, TORCH_STORAGE_TYPES};

/// A built-in allow-list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Plain data: builtin containers and scalars, `collections`, `datetime`,
    /// `decimal`, `copyreg`'s object reconstruction.
    Data,
    /// NumPy arrays, dtypes, scalars and random generators (numpy 1.x and
    /// 2.x spellings), joblib's array wrapper; includes `data`.
    Numpy,
    /// Everything under `sklearn.` and `scipy.` except deny-listed names;
    /// includes `numpy` and `data`.
    Sklearn,
    /// Exactly what `torch.load(weights_only=True)` allows: tensor rebuild
    /// functions, storages, dtypes, `torch.Size`, `torch.device`,
    /// `collections.OrderedDict`...
    Torch,
}

impl Profile {
    /// All built-in profiles (the default).
    pub const ALL: [Profile; 4] = [
        Profile::Data,
        Profile::Numpy,
        Profile::Sklearn,
        Profile::Torch,
    ];

    /// Lower-case name, as in the policy file.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Data => "data",
            Profile::Numpy => "numpy",
            Profile::Sklearn => "sklearn",
            Profile::Torch => "torch",
        }
    }

    fn all() -> Vec<Profile> {
        Profile::ALL.to_vec()
    }
}

/// The user's scan policy: the `[scan]` table of a policy file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanPolicy {
    /// Built-in profiles in force.
    #[serde(default = "Profile::all")]
    pub profiles: Vec<Profile>,
    /// Extra allowed globals: `pkg.mod.Name` exactly, or `pkg.` / `pkg.*`
    /// for everything under a package. Keras registered names
    /// (`Custom>MyLayer`) are allowed the same way.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Extra deny patterns (`pkg.mod` or `pkg.mod.func`).
    #[serde(default)]
    pub deny: Vec<String>,
}

impl Default for ScanPolicy {
    fn default() -> Self {
        ScanPolicy {
            profiles: Profile::all(),
            allow: Vec::new(),
            deny: Vec::new(),
        }
    }
}

/// A policy file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("scan policy: {0}")]
pub struct PolicyError(pub String);

/// What the policy says about one import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportDecision {
    /// In a profile or an `allow` entry.
    Allowed,
    /// Not allowed.
    Disallowed,
    /// Not allowed and on the deny-list (why).
    Denied(String),
}

impl ScanPolicy {
    /// Reads the `[scan]` table of a TOML document (other tables are left
    /// to their own readers); no `[scan]` table means the default policy.
    pub fn from_toml_str(text: &str) -> Result<ScanPolicy, PolicyError> {
        let doc: toml::Table = toml::from_str(text).map_err(|e| PolicyError(e.to_string()))?;
        let policy = match doc.get("scan") {
            None => ScanPolicy::default(),
            Some(v) => v
                .clone()
                .try_into::<ScanPolicy>()
                .map_err(|e| PolicyError(format!("[scan]: {e}")))?,
        };
        policy.validate()?;
        Ok(policy)
    }

    /// Checks the `allow` and `deny` entries' syntax.
    pub fn validate(&self) -> Result<(), PolicyError> {
        for (key, entries) in [("allow", &self.allow), ("deny", &self.deny)] {
            for e in entries {
                let body = e
                    .strip_suffix(".*")
                    .or_else(|| e.strip_suffix('.'))
                    .unwrap_or(e);
                let ok = !body.is_empty()
                    && body.split('.').all(|seg| {
                        !seg.is_empty()
                            && seg
                                .chars()
                                .all(|c| c.is_alphanumeric() || c == '_' || c == '>')
                    });
                if !ok {
                    return Err(PolicyError(format!(
                        "[scan] {key}: {e:?} is not a dotted name (pkg.mod.Name, or pkg. for a package)"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The policy in the form the scanner queries.
    pub fn compile(&self) -> CompiledPolicy {
        let mut exact: HashSet<String> = HashSet::new();
        let mut prefixes: Vec<String> = Vec::new();
        fn add(exact: &mut HashSet<String>, list: &[&str]) {
            exact.extend(list.iter().map(|s| s.to_string()));
        }
        for p in &self.profiles {
            match p {
                Profile::Data => add(&mut exact, profiles::DATA),
                Profile::Numpy | Profile::Sklearn => {
                    add(&mut exact, profiles::DATA);
                    add(&mut exact, profiles::NUMPY);
                    exact.extend(profiles::NUMPY_SCALARS.iter().map(|s| format!("numpy.{s}")));
                    if *p == Profile::Sklearn {
                        prefixes.extend(profiles::SKLEARN_PREFIXES.iter().map(|s| s.to_string()));
                    }
                    prefixes.push("numpy.dtypes.".to_string());
                }
                Profile::Torch => {
                    add(&mut exact, profiles::TORCH);
                    exact.extend(profiles::TORCH_DTYPES.iter().map(|d| format!("torch.{d}")));
                    for m in profiles::TORCH_CLASS_MODULES {
                        for (t, _) in profiles::TORCH_STORAGE_TYPES {
                            exact.insert(format!("{m}.{t}Storage"));
                            exact.insert(format!("{m}.{t}Tensor"));
                        }
                    }
                }
            }
        }
        for a in &self.allow {
            if let Some(p) = a.strip_suffix(".*") {
                prefixes.push(format!("{p}."));
            } else if a.ends_with('.') {
                prefixes.push(a.clone());
            } else {
                exact.insert(a.clone());
            }
        }
        let deny = self
            .deny
            .iter()
            .map(|d| d.trim_end_matches(".*").trim_end_matches('.').to_string())
            .collect();
        CompiledPolicy {
            exact,
            prefixes,
            deny,
        }
    }
}

/// A [`ScanPolicy`] ready for lookups.
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    exact: HashSet<String>,
    prefixes: Vec<String>,
    deny: Vec<String>,
}

impl Default for CompiledPolicy {
    fn default() -> Self {
        ScanPolicy::default().compile()
    }
}

impl CompiledPolicy {
    /// The decision for `module.name` (name may be a dotted qualname).
    pub fn decide(&self, module: &str, name: &str) -> ImportDecision {
        if let Some(why) = deny::denied(module, name, &self.deny) {
            return ImportDecision::Denied(why);
        }
        if self.allows(&format!("{module}.{name}")) {
            ImportDecision::Allowed
        } else {
            ImportDecision::Disallowed
        }
    }

    /// Whether a dotted path (or a Keras registered name) is allowed,
    /// ignoring the deny-list.
    pub fn allows(&self, path: &str) -> bool {
        self.exact.contains(path) || self.prefixes.iter().any(|p| path.starts_with(p.as_str()))
    }

    /// Whether a dotted path is on the deny-list (why).
    pub fn denied_path(&self, path: &str) -> Option<String> {
        let (m, n) = path.rsplit_once('.').unwrap_or(("", path));
        deny::denied(m, n, &self.deny)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_scan_table() {
        let p = ScanPolicy::from_toml_str(
            "[dataset]\nlabel = \"y\"\n[scan]\nallow = [\"mypkg.models.Net\", \"other.*\"]\nprofiles = [\"numpy\", \"torch\"]\n",
        )
        .expect("valid");
        assert_eq!(p.profiles, vec![Profile::Numpy, Profile::Torch]);
        let c = p.compile();
        assert_eq!(c.decide("mypkg.models", "Net"), ImportDecision::Allowed);
        assert_eq!(c.decide("mypkg", "models.Net"), ImportDecision::Allowed);
        assert_eq!(c.decide("other.x", "Y"), ImportDecision::Allowed);
        assert_eq!(c.decide("sklearn.svm", "SVC"), ImportDecision::Disallowed);
        assert!(matches!(
            c.decide("os", "system"),
            ImportDecision::Denied(_)
        ));
        assert!(ScanPolicy::from_toml_str("[scan]\nallw = []\n").is_err());
        assert!(ScanPolicy::from_toml_str("[scan]\nprofiles = [\"nope\"]\n").is_err());
        assert!(ScanPolicy::from_toml_str("[scan]\nallow = [\"a b\"]\n").is_err());
        assert_eq!(
            ScanPolicy::from_toml_str("").expect("empty"),
            ScanPolicy::default()
        );
    }

    #[test]
    fn profiles_allow_what_writers_write() {
        let c = CompiledPolicy::default();
        for (m, n) in [
            ("torch._utils", "_rebuild_tensor_v2"),
            ("torch", "FloatStorage"),
            ("torch", "float32"),
            ("collections", "OrderedDict"),
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "dtype"),
            ("numpy", "float64"),
            ("sklearn.linear_model._logistic", "LogisticRegression"),
            ("scipy.sparse._csr", "csr_matrix"),
            ("joblib.numpy_pickle", "NumpyArrayWrapper"),
        ] {
            assert_eq!(c.decide(m, n), ImportDecision::Allowed, "{m}.{n}");
        }
        assert!(matches!(
            c.decide("sklearn.utils", "os.system"),
            ImportDecision::Denied(_)
        ));
        assert!(matches!(
            c.decide("sklearn.datasets", "fetch_openml"),
            ImportDecision::Denied(_)
        ));
        assert!(matches!(
            c.decide("collections", "OrderedDict.__reduce__"),
            ImportDecision::Denied(_)
        ));
        assert_eq!(
            c.decide("torch.nn.modules.linear", "Linear"),
            ImportDecision::Disallowed
        );
    }

    #[test]
    fn no_profile_entry_is_denied() {
        let p = ScanPolicy::default().compile();
        for e in &p.exact {
            assert_eq!(p.denied_path(e), None, "{e}");
        }
    }
}
