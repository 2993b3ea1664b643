//! A non-executing pickle virtual machine.
//!
//! [`analyze`] / [`analyze_reader`] read a pickle stream as *data* and report
//! what unpickling it would import ([`Import`]), call ([`Call`]) and hand to
//! `persistent_load` ([`PersistentId`]). It is an opcode-exact model of
//! CPython 3.11's `Modules/_pickle.c` (protocols 0-5, every opcode, stack,
//! MARK metastack, memo, FRAME, several pickles per stream) in which every
//! Python object is replaced by a bounded symbolic value: nothing is ever
//! imported, called or allocated in proportion to the input.
//!
//! Guarantees the scanner relies on:
//! - every import and call CPython would perform before failing is reported,
//!   with the byte offset of its opcode; imports whose name is only known at
//!   run time (STACK_GLOBAL fed by a call result, EXT codes) are reported with
//!   `dynamic: true`, never dropped;
//! - where CPython would raise, the analysis stops with
//!   [`Analysis::error`] set and keeps what it found so far. An error means
//!   *inconclusive*, never *clean*;
//! - memory is O(1) in the input size (big payloads are streamed past, not
//!   buffered) and every growth is capped by [`Limits`].
//!
//! Byte strings that are themselves pickles (a pickle nested in another as
//! data) are *not* followed: their imports only happen if something calls
//! `pickle.loads` on them, which shows up as a reported call.

mod compat;
mod decode;
mod input;
mod joblib;
mod memo;
mod opcodes;
mod repr;
mod value;
mod vm;

#[cfg(test)]
mod tests;

/// Caps that keep a hostile stream from exhausting memory or time. Exceeding
/// any of them stops the analysis with a "limit exceeded" [`ParseError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Max entries on the value stack plus open MARKs.
    pub max_stack_depth: usize,
    /// Max distinct memo keys per pickle.
    pub max_memo_entries: usize,
    /// Max elements of one container that are rendered for display (the
    /// rest are only counted; this never limits what is analysed).
    pub max_container_elements: usize,
    /// Max nesting depth of symbolic values (containers in containers,
    /// calls on call results). CPython's own pickler stops near 1000.
    pub max_nesting: usize,
    /// Max opcodes executed over the whole stream.
    pub max_ops: u64,
    /// Max pickles in one stream (each STOP may be followed by another).
    pub max_pickles: usize,
    /// Max bytes read from the input.
    pub max_input_bytes: u64,
    /// Max bytes of a text line argument (protocol 0 opcodes: GLOBAL, INT,
    /// STRING...). Longer STRING/UNICODE lines keep a prefix; other opcodes
    /// with longer lines are an error.
    pub max_line_len: usize,
    /// Byte payloads (BINBYTES, BINUNICODE, BYTEARRAY8...) longer than this
    /// are streamed past without being copied; the value keeps its length.
    pub max_payload_bytes: usize,
    /// Max bytes of a string kept in a symbolic value (module/attribute
    /// names longer than this become dynamic imports).
    pub max_string_len: usize,
    /// Max bytes of any rendering in a report (call arguments, persistent
    /// ids, trace arguments).
    pub max_render_len: usize,
    /// Max findings (imports + calls + persistent ids) reported.
    pub max_findings: usize,
    /// Max bytes held by live symbolic values (stack, memo, containers).
    pub max_retained_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_stack_depth: 1_000_000,
            max_memo_entries: 1_000_000,
            max_container_elements: 32,
            max_nesting: 1_000,
            max_ops: 200_000_000,
            max_pickles: 1_000,
            max_input_bytes: 64 << 30,
            max_line_len: 64 << 10,
            max_payload_bytes: 4 << 10,
            max_string_len: 1 << 10,
            max_render_len: 256,
            max_findings: 100_000,
            max_retained_bytes: 64 << 20,
        }
    }
}

/// What unpickling the stream would do, as far as it could be followed.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    /// Pickles that ran to their STOP opcode.
    pub pickles: usize,
    /// Protocol announced by the first PROTO opcode (None: protocol 0/1).
    pub protocol: Option<u8>,
    /// Opcodes executed.
    pub ops: u64,
    /// Bytes consumed from the input.
    pub bytes_read: u64,
    /// Bytes consumed without being copied (big payloads, long lines).
    pub bytes_skipped: u64,
    /// Every import, in stream order.
    pub imports: Vec<Import>,
    /// Every call, in stream order.
    pub calls: Vec<Call>,
    /// Every persistent id handed to `persistent_load`, in stream order.
    pub persistent_ids: Vec<PersistentId>,
    /// Joblib dialect: NumpyArrayWrapper arrays whose bytes followed the
    /// wrapper in the stream (skipped, or read as a nested object pickle).
    pub arrays: u64,
    /// Of those, raw arrays written without joblib >= 1.2's alignment
    /// padding: plain `pickle.load` would read their bytes as opcodes.
    pub unpadded_arrays: u64,
    /// Why the analysis stopped early; `Some` means inconclusive.
    pub error: Option<ParseError>,
}

/// A global the unpickler would import (`find_class`), or an extension code
/// it would look up in `copyreg`'s registry.
#[derive(Debug, Clone, PartialEq)]
pub struct Import {
    /// Module, after CPython's Python 2 name fix-ups for protocols < 3
    /// (`__builtin__` -> `builtins`). Empty for EXT codes.
    pub module: String,
    /// Attribute name (may be a dotted path for protocol >= 4), or
    /// `extension code N` for EXT opcodes.
    pub name: String,
    /// Offset of the importing opcode.
    pub offset: u64,
    /// `GLOBAL`, `STACK_GLOBAL`, `INST`, `EXT1`, `EXT2` or `EXT4`.
    pub opcode: &'static str,
    /// The name is not known statically: it comes from a call result, a
    /// persistent object, an extension code or a string too long to keep.
    /// Treat as dangerous.
    pub dynamic: bool,
}

impl Import {
    /// `module.name` (just `name` when there is no module).
    pub fn dotted(&self) -> String {
        if self.module.is_empty() {
            self.name.clone()
        } else {
            format!("{}.{}", self.module, self.name)
        }
    }
}

/// A call the unpickler would make.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// What is called: a dotted global name, or the rendering of the value
    /// being called when it is itself a call result.
    pub callable: String,
    /// The call with its arguments, e.g. `os.system('ls -la')` (bounded).
    pub rendered: String,
    /// Offset of the calling opcode.
    pub offset: u64,
    /// Which opcode makes the call.
    pub kind: CallKind,
}

/// The opcode behind a [`Call`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// `callable(*args)`.
    Reduce,
    /// `cls.__new__(cls, *args)`.
    NewObj,
    /// `cls.__new__(cls, *args, **kwargs)`.
    NewObjEx,
    /// Protocol 0 `INST`: `module.name(*args)`.
    Inst,
    /// Protocol 1 `OBJ`: `cls(*args)`.
    Obj,
    /// `BUILD` on an object made by an import or call:
    /// `obj.__setstate__(state)` (or the default dict/slot update).
    Build,
}

/// An argument to `persistent_load` (PERSID / BINPERSID); PyTorch uses them
/// to reference tensor storages.
#[derive(Debug, Clone, PartialEq)]
pub struct PersistentId {
    /// The id, rendered (bounded).
    pub rendered: String,
    /// Offset of the opcode.
    pub offset: u64,
}

/// Why the analysis stopped: a malformed or hostile stream, an I/O error or
/// an exceeded [`Limits`] cap.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message} at byte {offset}")]
pub struct ParseError {
    /// Offset of the opcode being executed (or of the end of input).
    pub offset: u64,
    /// CPython's message where CPython would fail the same way.
    pub message: String,
}

/// Which loader reads the stream. Loaders built on pickle sometimes read
/// bytes of their own between opcodes; the VM must skip exactly those.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    /// `pickle.load`: every byte is an opcode or its argument.
    #[default]
    Pickle,
    /// `joblib.load`: after BUILD on a `joblib.numpy_pickle.NumpyArrayWrapper`
    /// the array's bytes follow in the stream (an alignment byte and padding,
    /// then `prod(shape) * itemsize` raw bytes, or a nested pickle for
    /// object arrays). Identical to [`Dialect::Pickle`] on streams without
    /// such a wrapper. A wrapper whose layout cannot be determined exactly
    /// stops the analysis with an error (inconclusive).
    Joblib,
}

/// How a stream is read, beyond [`Limits`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// The loader's dialect.
    pub dialect: Dialect,
    /// Stop (without error) after this many pickles: the loader reads
    /// exactly that many and treats the rest as raw data (legacy PyTorch
    /// files read five pickles, then storage bytes). `None`: read pickles
    /// until the end of the stream.
    pub stop_after: Option<usize>,
}

/// Analyses an in-memory pickle stream.
pub fn analyze(data: &[u8], limits: &Limits) -> Analysis {
    analyze_reader(data, limits)
}

/// Analyses a pickle stream from any reader, in O(1) memory.
pub fn analyze_reader<R: std::io::Read>(r: R, limits: &Limits) -> Analysis {
    vm::run(r, limits, &Options::default(), false).0
}

/// [`analyze_reader`] for a given loader dialect.
pub fn analyze_reader_with<R: std::io::Read>(r: R, limits: &Limits, options: &Options) -> Analysis {
    vm::run(r, limits, options, false).0
}

/// Opcode-level trace for differential tests: (offset, opcode name as
/// pickletools prints it, argument rendered like pickletools).
pub fn trace(
    data: &[u8],
    limits: &Limits,
) -> (Vec<(u64, &'static str, String)>, Option<ParseError>) {
    let (analysis, trace) = vm::run(data, limits, &Options::default(), true);
    (trace, analysis.error)
}
