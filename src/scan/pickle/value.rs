//! Symbolic values: what the VM keeps on its stack and in its memo instead
//! of real Python objects.
//!
//! Nothing here can execute or import anything. Scalars are exact; strings
//! and bytes keep a bounded prefix plus their length; containers keep only a
//! bounded *rendering* of their elements (pickle has no opcode that reads an
//! element back out of a container, so the rendering is all that is ever
//! needed), which also means containers never point at other values and no
//! reference cycle can form. Results of imports and calls are opaque
//! `Global` / `Object` values that remember how they were made.
//!
//! Every heap node is charged to a per-thread byte counter while it is alive,
//! so the VM can enforce `Limits::max_retained_bytes` precisely even though
//! values are shared between the stack and the memo.

use std::cell::{Cell, RefCell};
use std::ops::Deref;
use std::rc::Rc;

use super::repr::{repr_bytes, repr_float, repr_str, Bounded};

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
}

/// Bytes currently held by symbolic values on this thread.
pub(crate) fn live_bytes() -> usize {
    LIVE.with(Cell::get)
}

/// A heap node whose size is charged to [`live_bytes`] until it is dropped.
pub(crate) struct Tracked<T> {
    weight: usize,
    inner: T,
}

impl<T> Tracked<T> {
    /// Wraps `inner`, charging its struct size plus `heap` bytes.
    pub(crate) fn new(inner: T, heap: usize) -> Rc<Self> {
        let weight = heap + std::mem::size_of::<Self>() + 2 * std::mem::size_of::<usize>();
        LIVE.with(|c| c.set(c.get().saturating_add(weight)));
        Rc::new(Tracked { weight, inner })
    }
}

impl<T> Deref for Tracked<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner
    }
}

impl<T> Drop for Tracked<T> {
    fn drop(&mut self) {
        LIVE.with(|c| c.set(c.get().saturating_sub(self.weight)));
    }
}

/// How renderings are bounded (derived from `Limits`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RenderCfg {
    /// Max bytes of any rendering.
    pub(crate) cap: usize,
    /// Max elements rendered per container.
    pub(crate) max_items: u64,
}

/// A `str` value: a prefix (up to `Limits::max_string_len` bytes) and the
/// full length in bytes of its encoded form.
pub(crate) struct Text {
    pub(crate) shown: Box<str>,
    pub(crate) len: u64,
    pub(crate) complete: bool,
}

/// A `bytes`/`bytearray` value: a prefix and the full length. Payloads above
/// `Limits::max_payload_bytes` keep no prefix at all.
pub(crate) struct Blob {
    pub(crate) shown: Box<[u8]>,
    pub(crate) len: u64,
    pub(crate) complete: bool,
}

/// Coarse shape of a tuple element, kept for 2-tuples only: BUILD on plain
/// data needs to know whether its `(state, slotstate)` parts are None/dicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    None,
    EmptyDict,
    Dict,
    /// Not plain data: could be anything at unpickling time.
    Opaque,
    Other,
}

/// A container: the rendering of its elements (without brackets), how many
/// elements it has, and how deeply values are nested inside it.
#[derive(Default)]
pub(crate) struct Seq {
    pub(crate) inner: String,
    pub(crate) cut: bool,
    pub(crate) len: u64,
    pub(crate) depth: u32,
    pub(crate) pair: Option<[Shape; 2]>,
    /// Dict entries kept under the joblib dialect (see [`Kept`]).
    pub(crate) kept: Option<Box<Kept>>,
}

/// The entries of a dict that joblib reads from a `NumpyArrayWrapper`'s
/// state, kept only under the joblib dialect (last assignment wins). Values
/// that are mutable containers are not kept (`None` stands for "some
/// value"), so no reference cycle can form.
#[derive(Default)]
pub(crate) struct Kept {
    pub(crate) fields: Vec<(&'static str, Option<Value>)>,
}

/// The wrapper attributes joblib's reading depends on.
pub(crate) const KEPT_KEYS: [&str; 3] = ["shape", "dtype", "numpy_array_alignment_bytes"];

impl Kept {
    /// Applies `d[key] = value` for each (key, value) pair in `pairs`.
    pub(crate) fn set_fields(kept: &mut Option<Box<Kept>>, pairs: &[Value]) {
        for pair in pairs.chunks(2) {
            let (Some(Value::Str(k)), Some(v)) = (pair.first(), pair.get(1)) else {
                continue;
            };
            let Some(key) = KEPT_KEYS
                .iter()
                .copied()
                .find(|n| k.complete && *n == &*k.shown)
            else {
                continue;
            };
            let v = match v {
                Value::List(_) | Value::Dict(_) | Value::Set(_) => None,
                v => Some(v.clone()),
            };
            let fields = &mut kept.get_or_insert_with(Box::default).fields;
            match fields.iter_mut().find(|(n, _)| *n == key) {
                Some(slot) => slot.1 = v,
                None => fields.push((key, v)),
            }
        }
    }

    /// The entry for `key`: `None` if absent, `Some(None)` if present with a
    /// value that was not kept.
    pub(crate) fn field(&self, key: &str) -> Option<&Option<Value>> {
        self.fields.iter().find(|(n, _)| *n == key).map(|(_, v)| v)
    }
}

/// One rendered element, computed before the target container is borrowed
/// mutably (the element may be the container itself).
pub(crate) struct Item {
    text: String,
    cut: bool,
    depth: u32,
}

impl Seq {
    /// Renders `parts` (one value, or a key and a value) as the next element.
    pub(crate) fn render_item(&self, parts: &[Value], cfg: RenderCfg) -> Item {
        let depth = parts.iter().map(|v| v.depth()).max().unwrap_or(0);
        if self.cut || self.len >= cfg.max_items {
            return Item {
                text: String::new(),
                cut: true,
                depth,
            };
        }
        let mut b = Bounded::new(cfg.cap.saturating_sub(self.inner.len()));
        if self.len > 0 {
            b.push(", ");
        }
        for (i, p) in parts.iter().enumerate() {
            if i > 0 {
                b.push(": ");
            }
            p.render(&mut b);
        }
        Item {
            cut: b.is_cut(),
            text: b.as_str().to_string(),
            depth,
        }
    }

    /// Appends an element rendered by [`Seq::render_item`].
    pub(crate) fn push_item(&mut self, item: Item) {
        self.len += 1;
        self.depth = self.depth.max(item.depth.saturating_add(1));
        if !self.cut {
            self.inner.push_str(&item.text);
            self.cut = item.cut;
        }
    }

    /// Builds a container from values (keys and values alternate if `pairs`).
    pub(crate) fn from_values(items: &[Value], pairs: bool, cfg: RenderCfg) -> Seq {
        let mut s = Seq {
            depth: 1,
            ..Seq::default()
        };
        let step = if pairs { 2 } else { 1 };
        for chunk in items.chunks(step) {
            let it = s.render_item(chunk, cfg);
            s.push_item(it);
        }
        if !pairs && items.len() == 2 {
            let mut shapes = [Shape::Other; 2];
            for (slot, v) in shapes.iter_mut().zip(items) {
                *slot = v.shape();
            }
            s.pair = Some(shapes);
        }
        s
    }
}

/// An imported global: what `find_class` returned.
pub(crate) struct GlobalRef {
    pub(crate) module: Box<str>,
    pub(crate) name: Box<str>,
    /// Set for EXT codes: the name is unknown until the registry is consulted.
    pub(crate) ext: Option<i64>,
}

impl GlobalRef {
    pub(crate) fn dotted(&self) -> String {
        match self.ext {
            Some(code) => format!("<extension code {code}>"),
            None if self.module.is_empty() => self.name.to_string(),
            None => format!("{}.{}", self.module, self.name),
        }
    }
}

/// The result of a call (REDUCE, NEWOBJ, INST, OBJ...) or of
/// `persistent_load`: opaque, known only by how it was made.
pub(crate) struct Object {
    /// Dotted name of what made it (the class/function called).
    pub(crate) origin: Box<str>,
    /// Bounded rendering of the call expression.
    pub(crate) rendered: Box<str>,
    pub(crate) depth: u32,
}

/// A symbolic Python value.
#[derive(Clone)]
pub(crate) enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// An int beyond i64, as decimal text.
    BigInt(Rc<Tracked<Box<str>>>),
    Str(Rc<Tracked<Text>>),
    Bytes(Rc<Tracked<Blob>>),
    ByteArray(Rc<Tracked<Blob>>),
    Tuple(Rc<Tracked<Seq>>),
    FrozenSet(Rc<Tracked<Seq>>),
    List(Rc<Tracked<RefCell<Seq>>>),
    Dict(Rc<Tracked<RefCell<Seq>>>),
    Set(Rc<Tracked<RefCell<Seq>>>),
    Global(Rc<Tracked<GlobalRef>>),
    Object(Rc<Tracked<Object>>),
    /// An out-of-band buffer (NEXT_BUFFER), supplied by the loader.
    Buffer {
        readonly: bool,
    },
}

impl Value {
    pub(crate) fn str(shown: String, len: u64, complete: bool) -> Value {
        let heap = shown.len();
        Value::Str(Tracked::new(
            Text {
                shown: shown.into_boxed_str(),
                len,
                complete,
            },
            heap,
        ))
    }

    pub(crate) fn blob(shown: Vec<u8>, len: u64, complete: bool, bytearray: bool) -> Value {
        let heap = shown.len();
        let b = Tracked::new(
            Blob {
                shown: shown.into_boxed_slice(),
                len,
                complete,
            },
            heap,
        );
        if bytearray {
            Value::ByteArray(b)
        } else {
            Value::Bytes(b)
        }
    }

    pub(crate) fn big_int(text: String) -> Value {
        let heap = text.len();
        Value::BigInt(Tracked::new(text.into_boxed_str(), heap))
    }

    pub(crate) fn global(module: &str, name: &str, ext: Option<i64>) -> Value {
        let heap = module.len() + name.len();
        Value::Global(Tracked::new(
            GlobalRef {
                module: module.into(),
                name: name.into(),
                ext,
            },
            heap,
        ))
    }

    pub(crate) fn object(origin: String, rendered: String, depth: u32) -> Value {
        let heap = origin.len() + rendered.len();
        Value::Object(Tracked::new(
            Object {
                origin: origin.into_boxed_str(),
                rendered: rendered.into_boxed_str(),
                depth,
            },
            heap,
        ))
    }

    /// A fresh mutable container; charged its full rendering budget up
    /// front since it may grow to that.
    pub(crate) fn mutable(kind: Kind, seq: Seq, cfg: RenderCfg) -> Value {
        let rc = Tracked::new(RefCell::new(seq), cfg.cap);
        match kind {
            Kind::Dict => Value::Dict(rc),
            Kind::Set => Value::Set(rc),
            _ => Value::List(rc),
        }
    }

    pub(crate) fn frozen(kind: Kind, seq: Seq) -> Value {
        let heap = seq.inner.len();
        let rc = Tracked::new(seq, heap);
        match kind {
            Kind::FrozenSet => Value::FrozenSet(rc),
            _ => Value::Tuple(rc),
        }
    }

    pub(crate) fn kind(&self) -> Kind {
        match self {
            Value::None => Kind::NoneType,
            Value::Bool(_) => Kind::Bool,
            Value::Int(_) | Value::BigInt(_) => Kind::Int,
            Value::Float(_) => Kind::Float,
            Value::Str(_) => Kind::Str,
            Value::Bytes(_) => Kind::Bytes,
            Value::ByteArray(_) => Kind::ByteArray,
            Value::Tuple(_) => Kind::Tuple,
            Value::FrozenSet(_) => Kind::FrozenSet,
            Value::List(_) => Kind::List,
            Value::Dict(_) => Kind::Dict,
            Value::Set(_) => Kind::Set,
            Value::Global(_) => Kind::Global,
            Value::Object(_) => Kind::Object,
            Value::Buffer { .. } => Kind::Buffer,
        }
    }

    /// Plain data has a type we know for sure (and that has no
    /// `__setstate__`, `__reduce__` hooks or custom `__setitem__`).
    pub(crate) fn is_plain(&self) -> bool {
        self.kind().is_plain()
    }

    pub(crate) fn depth(&self) -> u32 {
        match self {
            Value::Tuple(s) | Value::FrozenSet(s) => s.depth,
            Value::List(c) | Value::Dict(c) | Value::Set(c) => {
                c.try_borrow().map(|s| s.depth).unwrap_or(1)
            }
            Value::Object(o) => o.depth,
            _ => 0,
        }
    }

    pub(crate) fn shape(&self) -> Shape {
        match self {
            Value::None => Shape::None,
            Value::Dict(c) => match c.try_borrow() {
                Ok(s) if s.len == 0 => Shape::EmptyDict,
                _ => Shape::Dict,
            },
            v if v.is_plain() => Shape::Other,
            _ => Shape::Opaque,
        }
    }

    /// Python-style rendering, bounded by `out`.
    pub(crate) fn render(&self, out: &mut Bounded) {
        match self {
            Value::None => out.push("None"),
            Value::Bool(true) => out.push("True"),
            Value::Bool(false) => out.push("False"),
            Value::Int(i) => out.push(&i.to_string()),
            Value::BigInt(s) => out.push(s),
            Value::Float(f) => out.push(&repr_float(*f)),
            Value::Str(t) => {
                if t.shown.is_empty() && !t.complete {
                    out.push(&format!("<str of {} bytes>", t.len));
                } else {
                    repr_str(&t.shown, out);
                    if !t.complete {
                        out.push(&format!("...<{} bytes>", t.len));
                    }
                }
            }
            Value::Bytes(b) => render_blob(b, out),
            Value::ByteArray(b) => {
                out.push("bytearray(");
                render_blob(b, out);
                out.push(")");
            }
            Value::Tuple(s) => render_seq(Kind::Tuple, s, out),
            Value::FrozenSet(s) => render_seq(Kind::FrozenSet, s, out),
            Value::List(c) | Value::Dict(c) | Value::Set(c) => match c.try_borrow() {
                Ok(s) => render_seq(self.kind(), &s, out),
                Err(_) => out.push("[...]"),
            },
            Value::Global(g) => out.push(&g.dotted()),
            Value::Object(o) => out.push(&o.rendered),
            Value::Buffer { readonly: false } => out.push("<out-of-band buffer>"),
            Value::Buffer { readonly: true } => out.push("<read-only out-of-band buffer>"),
        }
    }

    /// Rendering as an owned, bounded string.
    pub(crate) fn rendered(&self, cap: usize) -> String {
        let mut b = Bounded::new(cap);
        self.render(&mut b);
        b.finish()
    }
}

fn render_blob(b: &Blob, out: &mut Bounded) {
    if b.shown.is_empty() && !b.complete {
        out.push(&format!("<{} bytes>", b.len));
        return;
    }
    repr_bytes(&b.shown, out);
    if !b.complete {
        out.push(&format!("...<{} bytes>", b.len));
    }
}

fn render_seq(kind: Kind, s: &Seq, out: &mut Bounded) {
    let (open, close) = match kind {
        Kind::Tuple => ("(", if s.len == 1 && !s.cut { ",)" } else { ")" }),
        Kind::List => ("[", "]"),
        Kind::Dict => ("{", "}"),
        Kind::Set if s.len == 0 => ("set(", ")"),
        Kind::Set => ("{", "}"),
        Kind::FrozenSet if s.len == 0 => ("frozenset(", ")"),
        _ => ("frozenset({", "})"),
    };
    out.push(open);
    out.push(&s.inner);
    if s.cut {
        out.push(", ...");
    }
    out.push(close);
}

/// Python type of a value, for CPython-style error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    NoneType,
    Bool,
    Int,
    Float,
    Str,
    Bytes,
    ByteArray,
    List,
    Tuple,
    Dict,
    Set,
    FrozenSet,
    Global,
    Object,
    Buffer,
}

impl Kind {
    pub(crate) fn type_name(self) -> &'static str {
        match self {
            Kind::NoneType => "NoneType",
            Kind::Bool => "bool",
            Kind::Int => "int",
            Kind::Float => "float",
            Kind::Str => "str",
            Kind::Bytes => "bytes",
            Kind::ByteArray => "bytearray",
            Kind::List => "list",
            Kind::Tuple => "tuple",
            Kind::Dict => "dict",
            Kind::Set => "set",
            Kind::FrozenSet => "frozenset",
            Kind::Global => "global",
            Kind::Object => "object",
            Kind::Buffer => "PickleBuffer",
        }
    }

    pub(crate) fn is_plain(self) -> bool {
        !matches!(self, Kind::Global | Kind::Object | Kind::Buffer)
    }

    /// `hash()` fails on these (dict keys, set items).
    pub(crate) fn unhashable(self) -> bool {
        matches!(self, Kind::List | Kind::Dict | Kind::Set | Kind::ByteArray)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounting_returns_to_baseline() {
        let base = live_bytes();
        {
            let cfg = RenderCfg {
                cap: 64,
                max_items: 8,
            };
            let v = Value::str("abc".into(), 3, true);
            let l = Value::mutable(Kind::List, Seq::default(), cfg);
            let _copy = (v.clone(), l.clone());
            assert!(live_bytes() > base);
        }
        assert_eq!(live_bytes(), base);
    }

    #[test]
    fn renders_containers() {
        let cfg = RenderCfg {
            cap: 64,
            max_items: 3,
        };
        let items = [Value::Int(1), Value::str("a".into(), 1, true)];
        let t = Value::frozen(Kind::Tuple, Seq::from_values(&items[..1], false, cfg));
        assert_eq!(t.rendered(100), "(1,)");
        let d = Value::mutable(Kind::Dict, Seq::from_values(&items, true, cfg), cfg);
        assert_eq!(d.rendered(100), "{1: 'a'}");
        let many: Vec<Value> = (0..10).map(Value::Int).collect();
        let l = Value::mutable(Kind::List, Seq::from_values(&many, false, cfg), cfg);
        assert_eq!(l.rendered(100), "[0, 1, 2, ...]");
        let e = Value::mutable(Kind::Set, Seq::from_values(&[], false, cfg), cfg);
        assert_eq!(e.rendered(100), "set()");
    }
}
