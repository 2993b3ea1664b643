//! The machine: CPython 3.11 `_pickle.c`'s `load()` loop with every object
//! replaced by a symbolic [`Value`]. Each `op_*` mirrors the C function of
//! the same name (stack fences, MARK handling and error messages included),
//! so the analysis stops exactly where the real unpickler would.

use std::io::Read;

use super::compat::map_2to3;
use super::decode::{
    escape_decode, long_from_le, py_float, py_int, raw_unicode_escape_decode, strtol0,
    utf8_display, utf8_prefix, IntVal, Utf8Check,
};
use super::input::{Input, InputError, LineInfo};
use super::joblib::{ArrayRead, Joblib};
use super::memo::Memo;
use super::opcodes as op;
use super::repr::{repr_float, repr_str, Bounded};
use super::value::{live_bytes, Kept, Kind, RenderCfg, Seq, Shape, Value};
use super::{Analysis, Call, CallKind, Dialect, Import, Limits, Options, ParseError, PersistentId};

/// One `trace()` row.
pub(crate) type TraceRow = (u64, &'static str, String);

/// Why an opcode failed.
enum Fail {
    Msg(String),
    Input(InputError),
}

impl From<InputError> for Fail {
    fn from(e: InputError) -> Self {
        Fail::Input(e)
    }
}

impl Fail {
    fn message(self) -> String {
        match self {
            Fail::Msg(m) => m,
            Fail::Input(e) => e.message(),
        }
    }
}

type Res<T> = Result<T, Fail>;

fn fail<T>(msg: impl Into<String>) -> Res<T> {
    Err(Fail::Msg(msg.into()))
}

/// Whether the stream continues after an opcode.
enum Flow {
    Continue,
    Stop,
}

/// A name operand of STACK_GLOBAL.
enum NamePart {
    Known(String),
    Unknown(String),
}

/// Largest size `calc_binsize` accepts (PY_SSIZE_T_MAX on 64-bit).
const SSIZE_MAX: u64 = i64::MAX as u64;

pub(crate) struct Vm<'l> {
    lim: &'l Limits,
    cfg: RenderCfg,
    stack: Vec<Value>,
    /// Stack heights at each open MARK (`self->marks`).
    marks: Vec<usize>,
    memo: Memo,
    /// `self->proto`: 0 until a PROTO opcode; selects the 2to3 fix-ups.
    proto: u8,
    out: Analysis,
    tracing: bool,
    trace: Vec<TraceRow>,
    /// pickletools-style argument of the current opcode (tracing only).
    targ: Option<String>,
    line: Vec<u8>,
    scratch: Vec<u8>,
    base_live: usize,
    /// FRAMEs whose end has not been reached yet, as (end offset, FRAME
    /// offset, pickle number), ends strictly increasing. CPython reads a
    /// whole frame up front, so a frame running past the end of the data
    /// fails *at the FRAME*. We instead keep executing (and reporting) the
    /// opcodes inside it and move the error back to the FRAME afterwards:
    /// same verdict, but nothing present in the bytes goes unreported.
    frames: Vec<(u64, u64, usize)>,
    /// Stop cleanly after this many pickles (`Options::stop_after`).
    stop_after: Option<usize>,
    /// Joblib dialect state; `None` under plain pickle.
    joblib: Option<Joblib>,
}

/// Pending frames tracked at once (each must reach further than the last,
/// so only hostile streams get near this).
const MAX_PENDING_FRAMES: usize = 1024;

/// Runs the machine over a stream; returns the analysis and, if `tracing`,
/// the opcode trace.
pub(crate) fn run<R: Read>(
    r: R,
    lim: &Limits,
    opts: &Options,
    tracing: bool,
) -> (Analysis, Vec<TraceRow>) {
    let mut input = Input::new(r, lim.max_input_bytes);
    let mut vm = Vm {
        lim,
        cfg: RenderCfg {
            cap: lim.max_render_len,
            max_items: lim.max_container_elements as u64,
        },
        stack: Vec::new(),
        marks: Vec::new(),
        memo: Memo::default(),
        proto: 0,
        out: Analysis {
            pickles: 0,
            protocol: None,
            ops: 0,
            bytes_read: 0,
            bytes_skipped: 0,
            imports: Vec::new(),
            calls: Vec::new(),
            persistent_ids: Vec::new(),
            arrays: 0,
            unpadded_arrays: 0,
            error: None,
        },
        tracing,
        trace: Vec::new(),
        targ: None,
        line: Vec::new(),
        scratch: Vec::new(),
        base_live: live_bytes(),
        frames: Vec::new(),
        stop_after: opts.stop_after,
        joblib: (opts.dialect == Dialect::Joblib).then(Joblib::default),
    };
    vm.run_stream(&mut input);
    vm.reset();
    vm.out.bytes_read = input.pos();
    vm.out.bytes_skipped = input.skipped;
    (vm.out, vm.trace)
}

impl Vm<'_> {
    fn reset(&mut self) {
        self.stack.clear();
        self.marks.clear();
        self.memo.clear();
        self.proto = 0;
    }

    fn set_error(&mut self, offset: u64, message: String) {
        self.out.error = Some(ParseError { offset, message });
    }

    fn run_stream<R: Read>(&mut self, input: &mut Input<R>) {
        loop {
            if self.out.pickles > 0 {
                // Another pickle may follow a STOP (what repeated
                // `pickle.load(f)` calls would read).
                match input.at_eof() {
                    Ok(true) => break,
                    Ok(false) => {}
                    Err(e) => {
                        self.set_error(input.pos(), e.message());
                        return;
                    }
                }
                if self.out.pickles >= self.lim.max_pickles {
                    let msg = format!(
                        "limit exceeded: more than {} pickles in one stream",
                        self.lim.max_pickles
                    );
                    self.set_error(input.pos(), msg);
                    return;
                }
            }
            // Each `pickle.load` uses a fresh Unpickler: new stack, memo, proto.
            self.reset();
            match self.run_pickle(input) {
                Ok(()) => self.out.pickles += 1,
                Err((offset, message)) => {
                    self.set_error(offset, message);
                    break;
                }
            }
            if self.stop_after == Some(self.out.pickles) {
                // The loader reads no further: what follows is its raw data.
                self.frames.clear();
                return;
            }
        }
        if let Some((at, pickle)) = self.short_frame(input) {
            self.set_error(at, "pickle data was truncated".into());
            self.out.pickles = self.out.pickles.min(pickle);
        }
    }

    /// The first pending FRAME whose bytes the stream does not hold, if it
    /// can be told: by looking ahead (frames up to the window size, i.e.
    /// all a CPython pickler writes), or by having reached the end.
    fn short_frame<R: Read>(&mut self, input: &mut Input<R>) -> Option<(u64, usize)> {
        let pos = input.pos();
        let at_eof = input.at_eof().unwrap_or(false);
        for &(end, at, pickle) in &self.frames {
            let Some(ahead) = end.checked_sub(pos).filter(|a| *a > 0) else {
                continue;
            };
            if at_eof {
                return Some((at, pickle));
            }
            if ahead > input.window() as u64 {
                // Unknowable without reading the rest; keep the error we have.
                return None;
            }
            match input.has_ahead(ahead as usize) {
                Ok(true) => continue,
                Ok(false) => return Some((at, pickle)),
                Err(_) => return None,
            }
        }
        None
    }

    fn run_pickle<R: Read>(&mut self, input: &mut Input<R>) -> Result<(), (u64, String)> {
        loop {
            let at = input.pos();
            let code = match input.read_u8() {
                Ok(Some(b)) => b,
                Ok(None) => return Err((at, "Ran out of input".into())),
                Err(e) => return Err((at, e.message())),
            };
            if self.out.ops >= self.lim.max_ops {
                return Err((
                    at,
                    format!("limit exceeded: more than {} opcodes", self.lim.max_ops),
                ));
            }
            self.out.ops += 1;
            let Some(name) = op::name(code) else {
                let msg = if (0x20..=0x7e).contains(&code) && code != b'\'' && code != b'\\' {
                    format!("invalid load key, '{}'.", char::from(code))
                } else {
                    format!("invalid load key, '\\x{code:02x}'.")
                };
                return Err((at, msg));
            };
            self.targ = None;
            let res = self.step(code, at, input);
            if self.tracing && !matches!(res, Err(Fail::Input(_))) {
                let arg = self.targ.take().unwrap_or_default();
                self.trace.push((at, name, arg));
            }
            match res {
                Ok(Flow::Continue) => {}
                Ok(Flow::Stop) => return Ok(()),
                Err(f) => return Err((at, f.message())),
            }
            let live = live_bytes().saturating_sub(self.base_live);
            if live > self.lim.max_retained_bytes {
                return Err((
                    at,
                    format!(
                        "limit exceeded: values retain more than {} bytes",
                        self.lim.max_retained_bytes
                    ),
                ));
            }
        }
    }

    // ----- stack primitives (Pdata_*) -------------------------------------

    fn fence(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn underflow<T>(&self) -> Res<T> {
        fail(if self.marks.is_empty() {
            "unpickling stack underflow"
        } else {
            "unexpected MARK found"
        })
    }

    fn push(&mut self, v: Value) -> Res<()> {
        if self.stack.len() + self.marks.len() >= self.lim.max_stack_depth {
            return fail(format!(
                "limit exceeded: stack deeper than {}",
                self.lim.max_stack_depth
            ));
        }
        self.stack.push(v);
        Ok(())
    }

    fn pop(&mut self) -> Res<Value> {
        if self.stack.len() <= self.fence() {
            return self.underflow();
        }
        match self.stack.pop() {
            Some(v) => Ok(v),
            None => self.underflow(),
        }
    }

    fn top(&self) -> Res<&Value> {
        if self.stack.len() <= self.fence() {
            return self.underflow();
        }
        match self.stack.last() {
            Some(v) => Ok(v),
            None => self.underflow(),
        }
    }

    /// `marker()`: pops the innermost MARK, returning its stack height.
    fn marker(&mut self) -> Res<usize> {
        match self.marks.pop() {
            Some(m) => Ok(m),
            None => fail("could not find MARK"),
        }
    }

    /// `Pdata_poptuple` / `Pdata_poplist`: everything from `start` up.
    fn pop_from(&mut self, start: usize) -> Res<Vec<Value>> {
        if start < self.fence() || start > self.stack.len() {
            return self.underflow();
        }
        Ok(self.stack.split_off(start))
    }

    fn check_depth(&self, depth: u32) -> Res<()> {
        if depth as usize > self.lim.max_nesting {
            return fail(format!(
                "limit exceeded: values nested deeper than {}",
                self.lim.max_nesting
            ));
        }
        Ok(())
    }

    fn check_findings(&self) -> Res<()> {
        let n = self.out.imports.len() + self.out.calls.len() + self.out.persistent_ids.len();
        if n >= self.lim.max_findings {
            return fail(format!(
                "limit exceeded: more than {} findings",
                self.lim.max_findings
            ));
        }
        Ok(())
    }

    fn arg(&mut self, f: impl FnOnce() -> String) {
        if self.tracing {
            self.targ = Some(f());
        }
    }

    fn render(&self, v: &Value) -> String {
        v.rendered(self.lim.max_render_len)
    }

    // ----- input helpers ---------------------------------------------------

    /// A text line (without `\n`) into `self.line`; `whole` demands it fit.
    fn read_line<R: Read>(&mut self, input: &mut Input<R>, whole: bool) -> Res<LineInfo> {
        let info = input.read_line(self.lim.max_line_len, &mut self.line)?;
        if whole && info.cut {
            return fail(format!(
                "limit exceeded: line longer than {} bytes",
                self.lim.max_line_len
            ));
        }
        Ok(info)
    }

    /// Reads an `n`-byte payload. Small ones land in `self.scratch` (and
    /// `Some(len kept)` is returned); big ones are streamed past, checked
    /// for UTF-8 if `utf8`, and `None` is returned.
    fn read_payload<R: Read>(&mut self, input: &mut Input<R>, n: u64, utf8: bool) -> Res<bool> {
        if n <= self.lim.max_payload_bytes as u64 {
            self.scratch.clear();
            let scratch = &mut self.scratch;
            input.read_payload(n, |c| scratch.extend_from_slice(c))?;
            if utf8 && std::str::from_utf8(&self.scratch).is_err() {
                let mut chk = Utf8Check::default();
                chk.feed(&self.scratch);
                chk.finish().map_err(Fail::Msg)?;
            }
            return Ok(true);
        }
        let mut chk = Utf8Check::default();
        input.read_payload(n, |c| {
            if utf8 {
                chk.feed(c);
            }
        })?;
        input.skipped += n;
        if utf8 {
            chk.finish().map_err(Fail::Msg)?;
        }
        Ok(false)
    }

    /// Value for a str payload just read by `read_payload`.
    fn str_from_payload(&self, kept: bool, n: u64, latin1: bool) -> Value {
        if !kept {
            return Value::str(String::new(), n, false);
        }
        let max = self.lim.max_string_len;
        if latin1 {
            let take = self
                .scratch
                .get(..max.min(self.scratch.len()))
                .unwrap_or_default();
            let s: String = take.iter().map(|&b| char::from(b)).collect();
            return Value::str(s, n, take.len() as u64 == n);
        }
        let pre = utf8_prefix(&self.scratch, max);
        Value::str(utf8_display(pre), n, pre.len() as u64 == n)
    }

    fn blob_from_payload(&self, kept: bool, n: u64, bytearray: bool) -> Value {
        if !kept {
            return Value::blob(Vec::new(), n, false, bytearray);
        }
        let take = self
            .scratch
            .get(..self.lim.max_string_len.min(self.scratch.len()))
            .unwrap_or_default();
        Value::blob(take.to_vec(), n, take.len() as u64 == n, bytearray)
    }

    // ----- findings ----------------------------------------------------------

    fn record_import(
        &mut self,
        module: String,
        name: String,
        at: u64,
        opcode: &'static str,
        dynamic: bool,
    ) -> Res<()> {
        self.check_findings()?;
        self.out.imports.push(Import {
            module,
            name,
            offset: at,
            opcode,
            dynamic,
        });
        Ok(())
    }

    /// `find_class`: applies the 2to3 fix-ups, records the import, returns
    /// the symbolic global.
    fn find_class(
        &mut self,
        module: &str,
        name: &str,
        at: u64,
        opcode: &'static str,
        dynamic: bool,
    ) -> Res<Value> {
        let (m, n) = if self.proto < 3 && !dynamic {
            match map_2to3(module, name) {
                Some((m, Some(n))) => (m.to_string(), n.to_string()),
                Some((m, None)) => (m.to_string(), name.to_string()),
                None => (module.to_string(), name.to_string()),
            }
        } else {
            (module.to_string(), name.to_string())
        };
        let v = Value::global(&m, &n, None);
        self.record_import(m, n, at, opcode, dynamic)?;
        Ok(v)
    }

    /// The name a [`Call`] reports for a callable value.
    fn callable_name(&self, v: &Value) -> String {
        match v {
            Value::Global(g) => g.dotted(),
            Value::Object(o) => o.rendered.to_string(),
            other => self.render(other),
        }
    }

    /// Records a call and returns its (opaque) result.
    fn record_call(
        &mut self,
        kind: CallKind,
        at: u64,
        callable: String,
        rendered: String,
        depth: u32,
    ) -> Res<Value> {
        self.check_depth(depth)?;
        self.check_findings()?;
        let result = Value::object(callable.clone(), rendered.clone(), depth);
        self.out.calls.push(Call {
            callable,
            rendered,
            offset: at,
            kind,
        });
        Ok(result)
    }

    /// Renders call arguments: the elements of a tuple, or `*x` for a value
    /// that is only known to be *some* object.
    fn render_args(&self, args: &Value, out: &mut Bounded) {
        match args {
            Value::Tuple(s) => {
                out.push(&s.inner);
                if s.cut {
                    out.push(", ...");
                }
            }
            other => {
                out.push("*");
                other.render(out);
            }
        }
    }

    // ----- the opcodes -------------------------------------------------------

    fn step<R: Read>(&mut self, code: u8, at: u64, input: &mut Input<R>) -> Res<Flow> {
        match code {
            op::MARK => {
                if self.stack.len() + self.marks.len() >= self.lim.max_stack_depth {
                    return fail(format!(
                        "limit exceeded: stack deeper than {}",
                        self.lim.max_stack_depth
                    ));
                }
                self.marks.push(self.stack.len());
            }
            op::STOP => {
                self.pop()?;
                return Ok(Flow::Stop);
            }
            op::POP => self.op_pop()?,
            op::POP_MARK => {
                let i = self.marker()?;
                self.stack.truncate(i);
            }
            op::DUP => {
                let v = self.top()?.clone();
                self.push(v)?;
            }
            op::FLOAT => self.op_float(input)?,
            op::INT => self.op_int(input)?,
            op::BININT => {
                let v = i64::from(i32::from_le_bytes(input.read_array::<4>()?));
                self.arg(|| v.to_string());
                self.push(Value::Int(v))?;
            }
            op::BININT1 => {
                let [b] = input.read_array::<1>()?;
                self.arg(|| b.to_string());
                self.push(Value::Int(i64::from(b)))?;
            }
            op::BININT2 => {
                let v = u16::from_le_bytes(input.read_array::<2>()?);
                self.arg(|| v.to_string());
                self.push(Value::Int(i64::from(v)))?;
            }
            op::LONG => self.op_long(input)?,
            op::NONE => self.push(Value::None)?,
            op::NEWTRUE => self.push(Value::Bool(true))?,
            op::NEWFALSE => self.push(Value::Bool(false))?,
            op::PERSID => self.op_persid(at, input)?,
            op::BINPERSID => {
                let pid = self.pop()?;
                let r = self.render(&pid);
                self.persistent(at, r)?;
            }
            op::REDUCE => self.op_reduce(at)?,
            op::STRING => self.op_string(input)?,
            op::BINSTRING | op::SHORT_BINSTRING => {
                // `calc_binsize`: unsigned, so never negative on 64-bit.
                let n = if code == op::BINSTRING {
                    u64::from(u32::from_le_bytes(input.read_array::<4>()?))
                } else {
                    u64::from(input.read_array::<1>()?[0])
                };
                // Python 2 str: decoded with the Unpickler's `encoding`;
                // shown as Latin-1 (any encoding a loader may pass).
                let kept = self.read_payload(input, n, false)?;
                let v = self.str_from_payload(kept, n, true);
                self.arg(|| v.rendered(self.lim.max_render_len));
                self.push(v)?;
            }
            op::UNICODE => self.op_unicode(input)?,
            op::BINUNICODE | op::SHORT_BINUNICODE | op::BINUNICODE8 => {
                let n = match code {
                    op::BINUNICODE => u64::from(u32::from_le_bytes(input.read_array::<4>()?)),
                    op::SHORT_BINUNICODE => u64::from(input.read_array::<1>()?[0]),
                    _ => u64::from_le_bytes(input.read_array::<8>()?),
                };
                if n > SSIZE_MAX {
                    return fail(format!(
                        "BINUNICODE exceeds system's maximum size of {SSIZE_MAX} bytes"
                    ));
                }
                let kept = self.read_payload(input, n, true)?;
                let v = self.str_from_payload(kept, n, false);
                self.arg(|| v.rendered(self.lim.max_render_len));
                self.push(v)?;
            }
            op::BINBYTES | op::SHORT_BINBYTES | op::BINBYTES8 | op::BYTEARRAY8 => {
                let n = match code {
                    op::BINBYTES => u64::from(u32::from_le_bytes(input.read_array::<4>()?)),
                    op::SHORT_BINBYTES => u64::from(input.read_array::<1>()?[0]),
                    _ => u64::from_le_bytes(input.read_array::<8>()?),
                };
                let bytearray = code == op::BYTEARRAY8;
                if n > SSIZE_MAX {
                    let what = if bytearray { "BYTEARRAY8" } else { "BINBYTES" };
                    return fail(format!(
                        "{what} exceeds system's maximum size of {SSIZE_MAX} bytes"
                    ));
                }
                let kept = self.read_payload(input, n, false)?;
                let v = self.blob_from_payload(kept, n, bytearray);
                self.arg(|| v.rendered(self.lim.max_render_len));
                self.push(v)?;
            }
            op::APPEND => {
                let len = self.stack.len();
                if len.saturating_sub(1) <= self.fence() || len == 0 {
                    return self.underflow();
                }
                self.do_append(len as i64 - 1)?;
            }
            op::APPENDS => {
                let i = self.marker()?;
                self.do_append(i as i64)?;
            }
            op::BUILD => self.op_build(at, input)?,
            op::GLOBAL => self.op_global(at, input)?,
            op::INST => self.op_inst(at, input)?,
            op::OBJ => self.op_obj(at)?,
            op::DICT => {
                let i = self.marker()?;
                let j = self.stack.len();
                if (j as i64 - i as i64) % 2 != 0 {
                    return fail("odd number of items for DICT");
                }
                let items = if i < j { self.pop_from(i)? } else { Vec::new() };
                self.check_hashable(items.iter().step_by(2))?;
                let mut seq = Seq::from_values(&items, true, self.cfg);
                if self.joblib.is_some() {
                    Kept::set_fields(&mut seq.kept, &items);
                }
                self.check_depth(seq.depth)?;
                self.push(Value::mutable(Kind::Dict, seq, self.cfg))?;
            }
            op::EMPTY_DICT | op::EMPTY_LIST | op::EMPTY_SET => {
                let kind = match code {
                    op::EMPTY_DICT => Kind::Dict,
                    op::EMPTY_LIST => Kind::List,
                    _ => Kind::Set,
                };
                let seq = Seq::from_values(&[], false, self.cfg);
                self.push(Value::mutable(kind, seq, self.cfg))?;
            }
            op::LIST => {
                let i = self.marker()?;
                let items = self.pop_from(i)?;
                let seq = Seq::from_values(&items, false, self.cfg);
                self.check_depth(seq.depth)?;
                self.push(Value::mutable(Kind::List, seq, self.cfg))?;
            }
            op::TUPLE | op::FROZENSET => {
                let i = self.marker()?;
                let items = self.pop_from(i)?;
                let kind = if code == op::TUPLE {
                    Kind::Tuple
                } else {
                    Kind::FrozenSet
                };
                if kind == Kind::FrozenSet {
                    self.check_hashable(items.iter())?;
                }
                let seq = Seq::from_values(&items, false, self.cfg);
                self.check_depth(seq.depth)?;
                self.push(Value::frozen(kind, seq))?;
            }
            op::EMPTY_TUPLE | op::TUPLE1 | op::TUPLE2 | op::TUPLE3 => {
                let n = match code {
                    op::EMPTY_TUPLE => 0,
                    op::TUPLE1 => 1,
                    op::TUPLE2 => 2,
                    _ => 3,
                };
                if self.stack.len() < n {
                    return self.underflow();
                }
                let items = self.pop_from(self.stack.len() - n)?;
                let seq = Seq::from_values(&items, false, self.cfg);
                self.check_depth(seq.depth)?;
                self.push(Value::frozen(Kind::Tuple, seq))?;
            }
            op::SETITEM => {
                let x = self.stack.len() as i64 - 2;
                self.do_setitems(x)?;
            }
            op::SETITEMS => {
                let i = self.marker()?;
                self.do_setitems(i as i64)?;
            }
            op::ADDITEMS => self.op_additems()?,
            op::GET => {
                let info = self.read_line(input, true)?;
                if info.len == 0 {
                    return fail("pickle data was truncated");
                }
                let idx = match self.line_int(false)? {
                    IntVal::Small(i) => i,
                    IntVal::Big(_) => return fail("Python int too large to convert to C ssize_t"),
                };
                self.arg(|| idx.to_string());
                self.memo_get(idx)?;
            }
            op::BINGET => {
                let [b] = input.read_array::<1>()?;
                self.arg(|| b.to_string());
                self.memo_get(i64::from(b))?;
            }
            op::LONG_BINGET => {
                let v = u32::from_le_bytes(input.read_array::<4>()?);
                self.arg(|| v.to_string());
                self.memo_get(i64::from(v))?;
            }
            op::PUT => {
                let info = self.read_line(input, true)?;
                if info.len == 0 {
                    return fail("pickle data was truncated");
                }
                // `load_put` checks the stack before parsing the index.
                self.top()?;
                let idx = match self.line_int(false)? {
                    IntVal::Small(i) if i >= 0 => i as u64,
                    IntVal::Small(_) => return fail("negative PUT argument"),
                    IntVal::Big(_) => return fail("Python int too large to convert to C ssize_t"),
                };
                self.arg(|| idx.to_string());
                self.memo_put(idx)?;
            }
            op::BINPUT => {
                let [b] = input.read_array::<1>()?;
                self.arg(|| b.to_string());
                self.memo_put(u64::from(b))?;
            }
            op::LONG_BINPUT => {
                let v = u32::from_le_bytes(input.read_array::<4>()?);
                self.arg(|| v.to_string());
                self.memo_put(u64::from(v))?;
            }
            op::MEMOIZE => {
                // Index is the number of entries (`self->memo_len`).
                let idx = self.memo.len() as u64;
                self.memo_put(idx)?;
            }
            op::BINFLOAT => {
                let v = f64::from_be_bytes(input.read_array::<8>()?);
                self.arg(|| repr_float(v));
                self.push(Value::Float(v))?;
            }
            op::PROTO => {
                let [p] = input.read_array::<1>()?;
                self.arg(|| p.to_string());
                if p > op::HIGHEST_PROTOCOL {
                    return fail(format!("unsupported pickle protocol: {p}"));
                }
                self.proto = p;
                if self.out.protocol.is_none() {
                    self.out.protocol = Some(p);
                }
            }
            op::NEWOBJ | op::NEWOBJ_EX => self.op_newobj(at, code == op::NEWOBJ_EX)?,
            op::EXT1 | op::EXT2 | op::EXT4 => {
                let (code_val, name) = match code {
                    op::EXT1 => (i64::from(input.read_array::<1>()?[0]), "EXT1"),
                    op::EXT2 => (
                        i64::from(u16::from_le_bytes(input.read_array::<2>()?)),
                        "EXT2",
                    ),
                    _ => (
                        i64::from(i32::from_le_bytes(input.read_array::<4>()?)),
                        "EXT4",
                    ),
                };
                self.arg(|| code_val.to_string());
                if code_val <= 0 {
                    return fail("EXT specifies code <= 0");
                }
                // The registry (copyreg) maps codes to (module, name) only at
                // run time: an import whose name we cannot know.
                let label = format!("extension code {code_val}");
                self.record_import(String::new(), label, at, name, true)?;
                self.push(Value::global("", "", Some(code_val)))?;
            }
            op::LONG1 | op::LONG4 => {
                let n = if code == op::LONG1 {
                    i64::from(input.read_array::<1>()?[0])
                } else {
                    i64::from(i32::from_le_bytes(input.read_array::<4>()?))
                };
                if n < 0 {
                    return fail("LONG pickle has negative byte count");
                }
                let kept = self.read_payload(input, n as u64, false)?;
                let v = if kept {
                    match long_from_le(&self.scratch) {
                        IntVal::Small(i) => Value::Int(i),
                        IntVal::Big(t) => Value::big_int(t),
                    }
                } else {
                    Value::big_int(format!("<int of {n} bytes>"))
                };
                self.arg(|| v.rendered(self.lim.max_render_len));
                self.push(v)?;
            }
            op::STACK_GLOBAL => self.op_stack_global(at)?,
            op::FRAME => {
                let n = u64::from_le_bytes(input.read_array::<8>()?);
                self.arg(|| n.to_string());
                if n > SSIZE_MAX {
                    return fail(format!(
                        "FRAME length exceeds system's maximum of {SSIZE_MAX} bytes"
                    ));
                }
                // Frames are only a hint: opcodes may straddle them. Only
                // remember where this one must end (see `frames`).
                let end = input.pos().saturating_add(n);
                let pos = input.pos();
                self.frames.retain(|&(e, _, _)| e > pos);
                if self.frames.last().is_none_or(|&(e, _, _)| end > e) {
                    if self.frames.len() >= MAX_PENDING_FRAMES {
                        return fail(format!(
                            "limit exceeded: more than {MAX_PENDING_FRAMES} unfinished frames"
                        ));
                    }
                    self.frames.push((end, at, self.out.pickles));
                }
            }
            op::NEXT_BUFFER => {
                // Out-of-band buffers come from the loader's `buffers=`.
                self.push(Value::Buffer { readonly: false })?;
            }
            op::READONLY_BUFFER => {
                let top = self.top()?;
                match top.kind() {
                    Kind::Bytes | Kind::ByteArray | Kind::Object | Kind::Global => {}
                    Kind::Buffer => {
                        if let Some(last) = self.stack.last_mut() {
                            *last = Value::Buffer { readonly: true };
                        }
                    }
                    k => {
                        return fail(format!(
                            "memoryview: a bytes-like object is required, not '{}'",
                            k.type_name()
                        ))
                    }
                }
            }
            // Not reached: `run_pickle` rejects unknown opcodes first.
            _ => {
                return fail(format!("invalid load key, '\\x{code:02x}'."));
            }
        }
        Ok(Flow::Continue)
    }

    /// POP pops a MARK if one sits at the top of the stack (`load_pop`).
    fn op_pop(&mut self) -> Res<()> {
        let len = self.stack.len();
        if self.marks.last() == Some(&len) {
            self.marks.pop();
        } else if len <= self.fence() {
            return self.underflow();
        } else {
            self.stack.pop();
        }
        Ok(())
    }

    fn op_float<R: Read>(&mut self, input: &mut Input<R>) -> Res<()> {
        let info = self.read_line(input, true)?;
        if info.len == 0 {
            return fail("pickle data was truncated");
        }
        let v = py_float(&self.line).map_err(Fail::Msg)?;
        self.arg(|| repr_float(v));
        self.push(Value::Float(v))
    }

    fn op_int<R: Read>(&mut self, input: &mut Input<R>) -> Res<()> {
        let info = self.read_line(input, true)?;
        if info.len == 0 {
            return fail("pickle data was truncated");
        }
        let v = match strtol0(&self.line) {
            // "I00\n" / "I01\n": protocol 0's False/True.
            Some(x @ (0 | 1)) if info.len == 2 => Value::Bool(x == 1),
            Some(x) => Value::Int(x),
            None => match py_int(&self.line, true) {
                Ok(IntVal::Small(x)) => Value::Int(x),
                Ok(IntVal::Big(t)) => Value::big_int(t),
                Err(_) => return fail("could not convert string to int"),
            },
        };
        self.arg(|| v.rendered(self.lim.max_render_len));
        self.push(v)
    }

    /// The current line as `PyLong_FromString(line, NULL, base)` sees it.
    fn line_int(&self, base0: bool) -> Res<IntVal> {
        py_int(&self.line, base0).map_err(|e| {
            let shown = [&self.line[..], b"\n"].concat();
            Fail::Msg(e.message(&shown))
        })
    }

    fn op_long<R: Read>(&mut self, input: &mut Input<R>) -> Res<()> {
        let info = self.read_line(input, true)?;
        if info.len == 0 {
            return fail("pickle data was truncated");
        }
        // A trailing 'L' is overwritten with NUL, so CPython's error message
        // quotes the text without it (and without the newline).
        let (text, shown) = match self.line.strip_suffix(b"L") {
            Some(t) => (t, t.to_vec()),
            None => (&self.line[..], [&self.line[..], b"\n"].concat()),
        };
        let v = match py_int(text, true).map_err(|e| Fail::Msg(e.message(&shown)))? {
            IntVal::Small(x) => Value::Int(x),
            IntVal::Big(t) => Value::big_int(t),
        };
        self.arg(|| v.rendered(self.lim.max_render_len));
        self.push(v)
    }

    fn op_string<R: Read>(&mut self, input: &mut Input<R>) -> Res<()> {
        let info = self.read_line(input, false)?;
        let first = self.line.first().copied();
        let quoted = info.len >= 2 && matches!(first, Some(b'\'' | b'"')) && info.last == first;
        if !quoted {
            return fail("the STRING opcode argument must be quoted");
        }
        let body_end = if info.cut {
            self.line.len()
        } else {
            self.line.len() - 1
        };
        let body = self.line.get(1..body_end).unwrap_or_default();
        let decoded = match escape_decode(body) {
            Ok(d) => d,
            // A cut line may end inside an escape; the rest is unseen anyway.
            Err(_) if info.cut => body.to_vec(),
            Err(e) => return fail(e),
        };
        let max = self.lim.max_string_len;
        let shown: String = decoded.iter().take(max).map(|&b| char::from(b)).collect();
        let complete = !info.cut && decoded.len() <= max;
        let v = Value::str(
            shown,
            if info.cut {
                info.len
            } else {
                decoded.len() as u64
            },
            complete,
        );
        self.arg(|| v.rendered(self.lim.max_render_len));
        self.push(v)
    }

    fn op_unicode<R: Read>(&mut self, input: &mut Input<R>) -> Res<()> {
        let info = self.read_line(input, false)?;
        let s = match raw_unicode_escape_decode(&self.line) {
            Ok(s) => s,
            Err(_) if info.cut => self.line.iter().map(|&b| char::from(b)).collect(),
            Err(e) => return fail(e),
        };
        let len = if info.cut { info.len } else { s.len() as u64 };
        let pre = utf8_prefix(s.as_bytes(), self.lim.max_string_len);
        let complete = !info.cut && pre.len() == s.len();
        let v = Value::str(utf8_display(pre), len, complete);
        self.arg(|| v.rendered(self.lim.max_render_len));
        self.push(v)
    }

    fn persistent(&mut self, at: u64, rendered: String) -> Res<()> {
        self.check_findings()?;
        let call = format!("persistent_load({rendered})");
        self.out.persistent_ids.push(PersistentId {
            rendered,
            offset: at,
        });
        self.push(Value::object("persistent_load".into(), call, 1))
    }

    fn op_persid<R: Read>(&mut self, at: u64, input: &mut Input<R>) -> Res<()> {
        self.read_line(input, true)?;
        if !self.line.is_ascii() {
            return fail("persistent IDs in protocol 0 must be ASCII strings");
        }
        let s: String = self.line.iter().map(|&b| char::from(b)).collect();
        let mut b = Bounded::new(self.lim.max_render_len);
        repr_str(&s, &mut b);
        let r = b.finish();
        self.arg(|| r.clone());
        self.persistent(at, r)
    }

    /// Reads the two `module\nname\n` lines of GLOBAL / INST.
    fn read_global_names<R: Read>(
        &mut self,
        input: &mut Input<R>,
        ascii: bool,
    ) -> Res<(String, String)> {
        let mut parts = Vec::with_capacity(2);
        for _ in 0..2 {
            let info = self.read_line(input, true)?;
            if info.len == 0 {
                return fail("pickle data was truncated");
            }
            let s = if ascii {
                if let Some(p) = self.line.iter().position(|b| !b.is_ascii()) {
                    let b = self.line.get(p).copied().unwrap_or(0);
                    return fail(format!(
                        "'ascii' codec can't decode byte 0x{b:02x} in position {p}: ordinal not in range(128)"
                    ));
                }
                String::from_utf8_lossy(&self.line).into_owned()
            } else {
                match std::str::from_utf8(&self.line) {
                    Ok(s) => s.to_string(),
                    Err(e) => {
                        let p = e.valid_up_to();
                        let b = self.line.get(p).copied().unwrap_or(0);
                        return fail(format!(
                            "'utf-8' codec can't decode byte 0x{b:02x} in position {p}: invalid utf-8"
                        ));
                    }
                }
            };
            parts.push(s);
        }
        let name = parts.pop().unwrap_or_default();
        let module = parts.pop().unwrap_or_default();
        let mut b = Bounded::new(self.lim.max_render_len);
        repr_str(&format!("{module} {name}"), &mut b);
        let shown = b.finish();
        self.arg(|| shown);
        Ok((module, name))
    }

    fn op_global<R: Read>(&mut self, at: u64, input: &mut Input<R>) -> Res<()> {
        let (module, name) = self.read_global_names(input, false)?;
        let g = self.find_class(&module, &name, at, "GLOBAL", false)?;
        self.push(g)
    }

    /// INST: `MARK args... INST module name` -> `module.name(*args)`.
    fn op_inst<R: Read>(&mut self, at: u64, input: &mut Input<R>) -> Res<()> {
        let i = self.marker()?;
        let (module, name) = self.read_global_names(input, true)?;
        let cls = self.find_class(&module, &name, at, "INST", false)?;
        let items = self.pop_from(i)?;
        let args = Value::frozen(Kind::Tuple, Seq::from_values(&items, false, self.cfg));
        let callable = self.callable_name(&cls);
        let rendered = self.call_text(&callable, &args);
        let r = self.record_call(CallKind::Inst, at, callable, rendered, args.depth())?;
        self.push(r)
    }

    /// `callable(args...)`, bounded.
    fn call_text(&self, callable: &str, args: &Value) -> String {
        let mut b = Bounded::new(self.lim.max_render_len);
        b.push(callable);
        b.push("(");
        self.render_args(args, &mut b);
        b.push(")");
        b.finish()
    }

    /// OBJ: `MARK cls args... OBJ` -> `cls(*args)`.
    fn op_obj(&mut self, at: u64) -> Res<()> {
        let i = self.marker()?;
        if self.stack.len() < i + 1 {
            return self.underflow();
        }
        let items = self.pop_from(i + 1)?;
        let cls = self.pop()?;
        if cls.is_plain() {
            return fail(format!(
                "'{}' object is not callable",
                cls.kind().type_name()
            ));
        }
        let args = Value::frozen(Kind::Tuple, Seq::from_values(&items, false, self.cfg));
        let callable = self.callable_name(&cls);
        let rendered = self.call_text(&callable, &args);
        let depth = args.depth().max(cls.depth());
        let r = self.record_call(CallKind::Obj, at, callable, rendered, depth)?;
        self.push(r)
    }

    fn op_reduce(&mut self, at: u64) -> Res<()> {
        let args = self.pop()?;
        let callable = self.pop()?;
        // PyObject_CallObject checks the argument tuple, then callability.
        if args.is_plain() && args.kind() != Kind::Tuple {
            return fail("argument list must be a tuple");
        }
        if callable.is_plain() {
            return fail(format!(
                "'{}' object is not callable",
                callable.kind().type_name()
            ));
        }
        let name = self.callable_name(&callable);
        let rendered = self.call_text(&name, &args);
        let depth = args.depth().max(callable.depth()).saturating_add(1);
        let r = self.record_call(CallKind::Reduce, at, name, rendered, depth)?;
        if let Some(j) = self.joblib.as_mut() {
            j.note_call(&callable, &args, &r).map_err(Fail::Msg)?;
        }
        self.push(r)
    }

    /// NEWOBJ / NEWOBJ_EX: `cls.__new__(cls, *args[, **kwargs])`.
    fn op_newobj(&mut self, at: u64, ex: bool) -> Res<()> {
        let opname = if ex { "NEWOBJ_EX" } else { "NEWOBJ" };
        let kwargs = if ex { Some(self.pop()?) } else { None };
        let args = self.pop()?;
        let cls = self.pop()?;
        if cls.is_plain() {
            return fail(format!(
                "{opname} class argument must be a type, not {}",
                cls.kind().type_name()
            ));
        }
        if args.is_plain() && args.kind() != Kind::Tuple {
            return fail(format!(
                "{opname} args argument must be a tuple, not {}",
                args.kind().type_name()
            ));
        }
        if let Some(kw) = &kwargs {
            if kw.is_plain() && kw.kind() != Kind::Dict {
                return fail(format!(
                    "{opname} kwargs argument must be a dict, not {}",
                    kw.kind().type_name()
                ));
            }
        }
        let name = self.callable_name(&cls);
        let mut b = Bounded::new(self.lim.max_render_len);
        b.push(&name);
        b.push(".__new__(");
        b.push(&name);
        let has_args = !matches!(&args, Value::Tuple(s) if s.len == 0);
        if has_args {
            b.push(", ");
            self.render_args(&args, &mut b);
        }
        if let Some(kw) = &kwargs {
            b.push(", **");
            kw.render(&mut b);
        }
        b.push(")");
        let mut depth = args.depth().max(cls.depth());
        if let Some(kw) = &kwargs {
            depth = depth.max(kw.depth());
        }
        let kind = if ex {
            CallKind::NewObjEx
        } else {
            CallKind::NewObj
        };
        let r = self.record_call(kind, at, name, b.finish(), depth.saturating_add(1))?;
        self.push(r)
    }

    fn op_build<R: Read>(&mut self, at: u64, input: &mut Input<R>) -> Res<()> {
        if self.stack.len() < self.fence() + 2 {
            return self.underflow();
        }
        let state = self.pop()?;
        let inst = self.top()?.clone();
        if inst.is_plain() {
            return self.plain_build(&inst, &state);
        }
        // `inst.__setstate__(state)` or the default `__dict__`/slot update:
        // either way code chosen by the object's class runs.
        let origin = match &inst {
            Value::Global(g) => g.dotted(),
            Value::Object(o) => o.origin.to_string(),
            other => self.render(other),
        };
        let mut b = Bounded::new(self.lim.max_render_len);
        inst.render(&mut b);
        b.push(".__setstate__(");
        state.render(&mut b);
        b.push(")");
        let depth = inst.depth().max(state.depth()).saturating_add(1);
        self.record_call(CallKind::Build, at, origin, b.finish(), depth)?;
        let read = match self.joblib.as_mut() {
            Some(j) => j.note_build(&inst, &state).map_err(Fail::Msg)?,
            None => None,
        };
        match read {
            Some(read) => self.read_joblib_array(read, input),
            None => Ok(()),
        }
    }

    /// joblib's `NumpyArrayWrapper.read`: consumes the array's bytes and
    /// replaces the wrapper on the stack by the array.
    fn read_joblib_array<R: Read>(&mut self, read: ArrayRead, input: &mut Input<R>) -> Res<()> {
        let pos = input.pos();
        if self.frames.iter().any(|&(end, _, _)| end > pos) {
            // joblib reads the array from the file, after the frame; the
            // rest of the frame would run later. Not modelled.
            return fail("joblib array data inside a pickle frame: not analysable exactly");
        }
        let rendered = match read {
            ArrayRead::Raw { padded, bytes } => {
                if padded {
                    let [pad] = input.read_array::<1>()?;
                    input.read_payload(u64::from(pad), |_| {})?;
                    input.skipped += u64::from(pad) + 1;
                } else {
                    self.out.unpadded_arrays += 1;
                }
                input.read_payload(bytes, |_| {})?;
                input.skipped += bytes;
                format!("<numpy array of {bytes} bytes>")
            }
            ArrayRead::Objects => {
                self.nested_pickle(input)?;
                "<numpy object array>".to_string()
            }
        };
        self.out.arrays += 1;
        self.pop()?;
        self.push(Value::object("numpy.ndarray".into(), rendered, 0))
    }

    /// `pickle.load(file)` in the middle of the stream: a fresh unpickler
    /// (plain pickle, own stack and memo) reads exactly one pickle; then the
    /// outer one resumes.
    fn nested_pickle<R: Read>(&mut self, input: &mut Input<R>) -> Res<()> {
        let stack = std::mem::take(&mut self.stack);
        let marks = std::mem::take(&mut self.marks);
        let memo = std::mem::take(&mut self.memo);
        let frames = std::mem::take(&mut self.frames);
        let joblib = self.joblib.take();
        let proto = std::mem::replace(&mut self.proto, 0);
        let res = self.run_pickle(input);
        self.stack = stack;
        self.marks = marks;
        self.memo = memo;
        self.frames = frames;
        self.joblib = joblib;
        self.proto = proto;
        res.map_err(|(offset, msg)| {
            Fail::Msg(format!(
                "in the object array pickle at byte {offset}: {msg}"
            ))
        })
    }

    /// BUILD on a builtin value: no `__setstate__`, and no `__dict__` to
    /// update, so only an empty update succeeds (`load_build`).
    fn plain_build(&self, inst: &Value, state: &Value) -> Res<()> {
        let no_dict = || {
            fail(format!(
                "'{}' object has no attribute '__dict__'",
                inst.kind().type_name()
            ))
        };
        let (st, slot) = match state {
            Value::Tuple(s) if s.len == 2 => match s.pair {
                Some([a, b]) => (a, Some(b)),
                None => (Shape::Opaque, Some(Shape::Opaque)),
            },
            other => (other.shape(), None),
        };
        match st {
            Shape::None => {}
            Shape::EmptyDict | Shape::Dict | Shape::Opaque => return no_dict(),
            Shape::Other => return fail("state is not a dictionary"),
        }
        match slot {
            None | Some(Shape::None) | Some(Shape::EmptyDict) | Some(Shape::Opaque) => Ok(()),
            Some(Shape::Dict) => fail(format!(
                "'{}' object attribute is read-only or missing",
                inst.kind().type_name()
            )),
            Some(Shape::Other) => fail("slot state is not a dictionary"),
        }
    }

    fn op_stack_global(&mut self, at: u64) -> Res<()> {
        let name = self.pop()?;
        let module = self.pop()?;
        let m = self.name_part(&module)?;
        let n = self.name_part(&name)?;
        let g = match (m, n) {
            (NamePart::Known(m), NamePart::Known(n)) => {
                self.find_class(&m, &n, at, "STACK_GLOBAL", false)?
            }
            (m, n) => {
                let part = |p: NamePart| match p {
                    NamePart::Known(s) => s,
                    NamePart::Unknown(r) => format!("<dynamic: {r}>"),
                };
                self.find_class(&part(m), &part(n), at, "STACK_GLOBAL", true)?
            }
        };
        self.push(g)
    }

    /// A STACK_GLOBAL operand: must be a `str` (`PyUnicode_CheckExact`);
    /// values of unknown type might be one at run time.
    fn name_part(&self, v: &Value) -> Res<NamePart> {
        match v {
            Value::Str(t) if t.complete => Ok(NamePart::Known(t.shown.to_string())),
            Value::Str(_) => Ok(NamePart::Unknown(self.render(v))),
            v if v.is_plain() => fail("STACK_GLOBAL requires str"),
            v => Ok(NamePart::Unknown(self.render(v))),
        }
    }

    fn check_hashable<'v>(&self, keys: impl Iterator<Item = &'v Value>) -> Res<()> {
        for k in keys {
            if k.kind().unhashable() {
                return fail(format!("unhashable type: '{}'", k.kind().type_name()));
            }
        }
        Ok(())
    }

    /// `do_append`: extends the list just below position `x`.
    fn do_append(&mut self, x: i64) -> Res<()> {
        let len = self.stack.len() as i64;
        // `x <= fence`: the target may not sit below the innermost MARK.
        if x > len || x <= self.fence() as i64 {
            return self.underflow();
        }
        if x == len {
            return Ok(());
        }
        let x = x as usize;
        let target = match self.stack.get(x - 1) {
            Some(t) => t.clone(),
            None => return self.underflow(),
        };
        let items = self.stack.split_off(x);
        match &target {
            Value::List(c) => self.extend_seq(c, &items, false)?,
            // `bytearray.extend(items)`: needs ints in range(256).
            Value::ByteArray(_) => {
                for v in &items {
                    byte_value(v)?;
                }
            }
            // `obj.extend(items)` / `obj.append(item)`: the object was made by
            // an import or call that is already reported.
            v if !v.is_plain() => {}
            v => {
                return fail(format!(
                    "'{}' object has no attribute 'append'",
                    v.kind().type_name()
                ))
            }
        }
        Ok(())
    }

    /// `do_setitems`: stores key/value pairs into the dict below `x`.
    fn do_setitems(&mut self, x: i64) -> Res<()> {
        let len = self.stack.len() as i64;
        // `x <= fence`: the target may not sit below the innermost MARK.
        if x > len || x <= self.fence() as i64 {
            return self.underflow();
        }
        if x == len {
            return Ok(());
        }
        if (len - x) % 2 != 0 {
            return fail("odd number of items for SETITEMS");
        }
        let x = x as usize;
        let target = match self.stack.get(x - 1) {
            Some(t) => t.clone(),
            None => return self.underflow(),
        };
        let items = self.stack.split_off(x);
        match &target {
            Value::Dict(c) => {
                self.check_hashable(items.iter().step_by(2))?;
                self.extend_seq(c, &items, true)?;
                if self.joblib.is_some() {
                    if let Ok(mut s) = c.try_borrow_mut() {
                        Kept::set_fields(&mut s.kept, &items);
                    }
                }
            }
            Value::List(_) | Value::ByteArray(_) => seq_setitems(&target, &items)?,
            v if !v.is_plain() => {}
            v => {
                // `PyObject_SetItem` on other sequences converts an int key
                // first, which fails for huge ones.
                let sequence = matches!(
                    v.kind(),
                    Kind::Str | Kind::Bytes | Kind::Tuple | Kind::Set | Kind::FrozenSet
                );
                if sequence && matches!(items.first(), Some(Value::BigInt(_))) {
                    return fail("cannot fit 'int' into an index-sized integer");
                }
                return fail(format!(
                    "'{}' object does not support item assignment",
                    v.kind().type_name()
                ));
            }
        }
        Ok(())
    }

    fn op_additems(&mut self) -> Res<()> {
        let mark = self.marker()?;
        let len = self.stack.len();
        if mark > len || mark <= self.fence() {
            return self.underflow();
        }
        if mark == len {
            return Ok(());
        }
        let target = match self.stack.get(mark - 1) {
            Some(t) => t.clone(),
            None => return self.underflow(),
        };
        let items = self.stack.split_off(mark);
        match &target {
            Value::Set(c) => {
                self.check_hashable(items.iter())?;
                self.extend_seq(c, &items, false)?;
            }
            v if !v.is_plain() => {}
            v => {
                return fail(format!(
                    "'{}' object has no attribute 'add'",
                    v.kind().type_name()
                ))
            }
        }
        Ok(())
    }

    /// Appends rendered elements to a mutable container. Each element is
    /// rendered before the container is borrowed mutably, since it may be
    /// the container itself (recursive structures).
    fn extend_seq(&self, c: &std::cell::RefCell<Seq>, items: &[Value], pairs: bool) -> Res<()> {
        let step = if pairs { 2 } else { 1 };
        for chunk in items.chunks(step) {
            let item = match c.try_borrow() {
                Ok(s) => s.render_item(chunk, self.cfg),
                Err(_) => return fail("internal error: container busy"),
            };
            let mut s = match c.try_borrow_mut() {
                Ok(s) => s,
                Err(_) => return fail("internal error: container busy"),
            };
            s.push_item(item);
            let depth = s.depth;
            drop(s);
            self.check_depth(depth)?;
        }
        Ok(())
    }

    fn memo_get(&mut self, idx: i64) -> Res<()> {
        let v = u64::try_from(idx)
            .ok()
            .and_then(|k| self.memo.get(k))
            .cloned();
        match v {
            Some(v) => self.push(v),
            None => fail(format!("Memo value not found at index {idx}")),
        }
    }

    fn memo_put(&mut self, idx: u64) -> Res<()> {
        let v = self.top()?.clone();
        if self.memo.len() >= self.lim.max_memo_entries && !self.memo.contains(idx) {
            return fail(format!(
                "limit exceeded: more than {} memo entries",
                self.lim.max_memo_entries
            ));
        }
        self.memo.put(idx, v);
        Ok(())
    }
}

/// `bytearray` element check (`extend` / item assignment).
fn byte_value(v: &Value) -> Res<()> {
    match v {
        Value::Int(0..=255) | Value::Bool(_) => Ok(()),
        Value::Int(_) | Value::BigInt(_) => fail("byte must be in range(0, 256)"),
        v if !v.is_plain() => Ok(()),
        v => fail(format!(
            "'{}' object cannot be interpreted as an integer",
            v.kind().type_name()
        )),
    }
}

/// `seq[i] = v` for each pair on a list or bytearray: only in-range int
/// indexes work. (The display is not updated; it shows the old element.)
fn seq_setitems(target: &Value, items: &[Value]) -> Res<()> {
    let (len, tname, range_msg) = match target {
        Value::List(c) => (
            c.try_borrow().map(|s| s.len).unwrap_or(0),
            "list",
            "list assignment index out of range",
        ),
        Value::ByteArray(b) => (b.len, "bytearray", "bytearray index out of range"),
        _ => return Ok(()),
    };
    for pair in items.chunks(2) {
        let (Some(k), Some(v)) = (pair.first(), pair.get(1)) else {
            continue;
        };
        let idx = match k {
            Value::Int(i) => i128::from(*i),
            Value::Bool(b) => i128::from(*b),
            Value::BigInt(_) => return fail("cannot fit 'int' into an index-sized integer"),
            k if !k.is_plain() => continue,
            k => {
                return fail(format!(
                    "{tname} indices must be integers or slices, not {}",
                    k.kind().type_name()
                ))
            }
        };
        // bytearray checks the value before the index.
        if tname == "bytearray" {
            byte_value(v)?;
        }
        let len = i128::from(len);
        if idx < -len || idx >= len {
            return fail(range_msg);
        }
    }
    Ok(())
}
