//! Custom row conditions: a small, SQL-like expression language.
//!
//! Policies may declare conditions such as `f10 > 0 AND c0 IN ('a', 'b')` that every row must
//! satisfy. This module parses such a condition into an [`Expr`] tree (it never evaluates the
//! text as code); the tree is later lowered to a dataframe expression elsewhere.
//!
//! Grammar (keywords and function names are case-insensitive):
//!
//! ```text
//! expr  := or
//! or    := and (OR and)*
//! and   := not (AND not)*
//! not   := NOT not | cmp
//! cmp   := sum [ op sum
//!              | [NOT] IN '(' literal (',' literal)* ')'
//!              | IS [NOT] NULL
//!              | [NOT] BETWEEN sum AND sum
//!              | [NOT] LIKE 'pattern' ]
//! op    := = | == | != | <> | < | <= | > | >=
//! sum   := prod (('+' | '-') prod)*
//! prod  := unary (('*' | '/' | '%') unary)*
//! unary := '-' unary | atom
//! atom  := number | 'string' | TRUE | FALSE | NULL
//!        | identifier | "quoted identifier" | `quoted identifier`
//!        | '(' expr ')' | func '(' expr (',' expr)* ')'
//! func  := ABS | LENGTH | LOWER | UPPER | COALESCE
//! ```
//!
//! * Numbers: `42`, `3.5`, `1.`, `.5`, `1e-3`. An integer too large for `i64` becomes a float.
//! * Strings use single quotes; a doubled quote (`''`) stands for one quote.
//! * Bare identifiers match `[A-Za-z_][A-Za-z0-9_.]*` and must not be a keyword; any other
//!   column name can be written in double quotes (`""` escapes a quote) or backticks.
//! * IN-list items are literals (numbers may carry a leading `-`); a LIKE pattern is a string.
//! * Comparisons do not chain: `a < b < c` is an error.
//!
//! Conditions come from untrusted policy files, so the parser enforces limits instead of
//! panicking or recursing without bound: at most [`MAX_SOURCE_LEN`] bytes of source, at most
//! [`MAX_DEPTH`] levels of nesting (parentheses, function calls, `NOT` chains and unary minus
//! all count), at most [`MAX_IN_LIST_ITEMS`] items in one IN list, and a parsed tree at most
//! [`MAX_TREE_HEIGHT`] levels high (long `AND`/`OR`/arithmetic chains). Every error carries the
//! byte [`Span`] of the offending token; see [`ConditionError::render`].

use std::fmt;

/// Longest accepted condition, in bytes.
pub const MAX_SOURCE_LEN: usize = 4096;
/// Deepest accepted nesting of parentheses, function calls, `NOT` and unary minus.
pub const MAX_DEPTH: usize = 64;
/// Most items accepted in one `IN (...)` list.
pub const MAX_IN_LIST_ITEMS: usize = 10_000;
/// Greatest accepted height of the parsed tree (a leaf has height 1). Long operator chains such
/// as `a AND b AND c ...` build left-deep trees without any nesting in the source; this bound
/// keeps every recursive walk over the tree (here and in its consumers) well within the stack.
pub const MAX_TREE_HEIGHT: usize = 256;

/// A half-open range of byte offsets into the condition's source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    /// Offset of the first byte.
    pub start: usize,
    /// Offset one past the last byte (equal to `start` for a zero-width span).
    pub end: usize,
}

impl Span {
    /// A span from `start` (inclusive) to `end` (exclusive).
    pub const fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }
}

/// A constant value.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// An integer that fits in `i64`.
    Int(i64),
    /// A floating-point number (always finite when produced by [`parse`]).
    Float(f64),
    /// A string, with `''` escapes already resolved.
    Str(String),
    /// `TRUE` or `FALSE`.
    Bool(bool),
    /// `NULL`.
    Null,
}

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinOp {
    /// `=` or `==`.
    Eq,
    /// `!=` or `<>`.
    NotEq,
    /// `<`.
    Lt,
    /// `<=`.
    LtEq,
    /// `>`.
    Gt,
    /// `>=`.
    GtEq,
    /// `AND`.
    And,
    /// `OR`.
    Or,
    /// `+`.
    Add,
    /// `-`.
    Sub,
    /// `*`.
    Mul,
    /// `/`.
    Div,
    /// `%`.
    Mod,
}

impl BinOp {
    /// The operator as it is printed by `Display` (`=`, `!=`, `AND`, `+`, ...).
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Eq => "=",
            BinOp::NotEq => "!=",
            BinOp::Lt => "<",
            BinOp::LtEq => "<=",
            BinOp::Gt => ">",
            BinOp::GtEq => ">=",
            BinOp::And => "AND",
            BinOp::Or => "OR",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "%",
        }
    }

    /// True for `=`, `!=`, `<`, `<=`, `>` and `>=`.
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinOp::Eq | BinOp::NotEq | BinOp::Lt | BinOp::LtEq | BinOp::Gt | BinOp::GtEq
        )
    }

    /// True for `AND` and `OR`.
    pub fn is_logical(self) -> bool {
        matches!(self, BinOp::And | BinOp::Or)
    }

    /// True for `+`, `-`, `*`, `/` and `%`.
    pub fn is_arithmetic(self) -> bool {
        matches!(
            self,
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod
        )
    }
}

impl fmt::Display for BinOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

/// A built-in function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Func {
    /// `ABS(x)`: absolute value.
    Abs,
    /// `LENGTH(s)`: length of a string.
    Length,
    /// `LOWER(s)`: lowercase string.
    Lower,
    /// `UPPER(s)`: uppercase string.
    Upper,
    /// `COALESCE(a, b, ...)`: first non-null argument (two or more arguments).
    Coalesce,
}

impl Func {
    /// The function's name in upper case, as printed by `Display`.
    pub fn name(self) -> &'static str {
        match self {
            Func::Abs => "ABS",
            Func::Length => "LENGTH",
            Func::Lower => "LOWER",
            Func::Upper => "UPPER",
            Func::Coalesce => "COALESCE",
        }
    }

    /// Looks a function up by name, ignoring ASCII case.
    pub fn from_name(name: &str) -> Option<Func> {
        [
            Func::Abs,
            Func::Length,
            Func::Lower,
            Func::Upper,
            Func::Coalesce,
        ]
        .into_iter()
        .find(|f| f.name().eq_ignore_ascii_case(name))
    }

    /// Returns an error message if `n` arguments are wrong for this function.
    fn arity_error(self, n: usize) -> Option<String> {
        let plural = if n == 1 { "" } else { "s" };
        match self {
            Func::Coalesce if n < 2 => Some(format!(
                "COALESCE takes at least 2 arguments, got {n} argument{plural}"
            )),
            Func::Coalesce => None,
            _ if n != 1 => Some(format!(
                "{} takes exactly 1 argument, got {n} argument{plural}",
                self.name()
            )),
            _ => None,
        }
    }
}

impl fmt::Display for Func {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A parsed condition. Every node records the byte span of the source it came from.
///
/// The span of a compound node covers the whole construct, including any parentheses around
/// its first and last operands; the spans of leaves cover just their token.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A reference to a column.
    Column {
        /// The column name (quotes and escapes removed).
        name: String,
        /// Span of the identifier token, quotes included.
        span: Span,
    },
    /// A constant.
    Literal {
        /// The value.
        value: Literal,
        /// Span of the literal token.
        span: Span,
    },
    /// `left op right`, for comparison, logical and arithmetic operators.
    Binary {
        /// The operator.
        op: BinOp,
        /// The left operand.
        left: Box<Expr>,
        /// The right operand.
        right: Box<Expr>,
        /// Span of the whole operation.
        span: Span,
    },
    /// `NOT expr`.
    Not {
        /// The negated condition.
        expr: Box<Expr>,
        /// Span from `NOT` to the end of the operand.
        span: Span,
    },
    /// `-expr`.
    Neg {
        /// The negated value.
        expr: Box<Expr>,
        /// Span from `-` to the end of the operand.
        span: Span,
    },
    /// `expr [NOT] IN (literal, ...)`.
    InList {
        /// The tested value.
        expr: Box<Expr>,
        /// The list items (never empty).
        list: Vec<Literal>,
        /// True for `NOT IN`.
        negated: bool,
        /// Span of the whole construct, through the closing parenthesis.
        span: Span,
    },
    /// `expr IS [NOT] NULL`.
    IsNull {
        /// The tested value.
        expr: Box<Expr>,
        /// True for `IS NOT NULL`.
        negated: bool,
        /// Span of the whole construct.
        span: Span,
    },
    /// `expr [NOT] BETWEEN low AND high` (bounds inclusive).
    Between {
        /// The tested value.
        expr: Box<Expr>,
        /// The lower bound.
        low: Box<Expr>,
        /// The upper bound.
        high: Box<Expr>,
        /// True for `NOT BETWEEN`.
        negated: bool,
        /// Span of the whole construct.
        span: Span,
    },
    /// `expr [NOT] LIKE 'pattern'` (SQL wildcards `%` and `_`).
    Like {
        /// The tested value.
        expr: Box<Expr>,
        /// The pattern, with `''` escapes resolved.
        pattern: String,
        /// True for `NOT LIKE`.
        negated: bool,
        /// Span of the whole construct.
        span: Span,
    },
    /// A call to a built-in function; the argument count has been checked.
    Call {
        /// The function.
        func: Func,
        /// The arguments.
        args: Vec<Expr>,
        /// Span from the function name through the closing parenthesis.
        span: Span,
    },
}

impl Expr {
    /// The span of source text this node was parsed from.
    pub fn span(&self) -> Span {
        match self {
            Expr::Column { span, .. }
            | Expr::Literal { span, .. }
            | Expr::Binary { span, .. }
            | Expr::Not { span, .. }
            | Expr::Neg { span, .. }
            | Expr::InList { span, .. }
            | Expr::IsNull { span, .. }
            | Expr::Between { span, .. }
            | Expr::Like { span, .. }
            | Expr::Call { span, .. } => *span,
        }
    }

    /// Every column reference with its span, in source order (repeats included).
    pub fn columns(&self) -> Vec<(String, Span)> {
        let mut out = Vec::new();
        // Explicit stack: long operator chains make deep trees.
        let mut stack = vec![self];
        while let Some(e) = stack.pop() {
            match e {
                Expr::Column { name, span } => out.push((name.clone(), *span)),
                Expr::Literal { .. } => {}
                Expr::Binary { left, right, .. } => {
                    stack.push(right);
                    stack.push(left);
                }
                Expr::Not { expr, .. }
                | Expr::Neg { expr, .. }
                | Expr::InList { expr, .. }
                | Expr::IsNull { expr, .. }
                | Expr::Like { expr, .. } => stack.push(expr),
                Expr::Between {
                    expr, low, high, ..
                } => {
                    stack.push(high);
                    stack.push(low);
                    stack.push(expr);
                }
                Expr::Call { args, .. } => stack.extend(args.iter().rev()),
            }
        }
        out
    }

    /// How tightly this node binds when printed (higher binds tighter).
    fn print_prec(&self) -> u8 {
        match self {
            Expr::Not { .. } => PREC_NOT,
            Expr::InList { .. }
            | Expr::IsNull { .. }
            | Expr::Between { .. }
            | Expr::Like { .. } => PREC_CMP,
            Expr::Neg { .. } => PREC_UNARY,
            // Binary operations print themselves in parentheses.
            Expr::Column { .. }
            | Expr::Literal { .. }
            | Expr::Binary { .. }
            | Expr::Call { .. } => PREC_ATOM,
        }
    }

    /// Prints the node, in parentheses if it binds less tightly than `min` requires.
    fn write_prec(&self, f: &mut fmt::Formatter<'_>, min: u8) -> fmt::Result {
        if self.print_prec() < min {
            f.write_str("(")?;
            self.write_bare(f)?;
            f.write_str(")")
        } else {
            self.write_bare(f)
        }
    }

    fn write_bare(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let not = |negated: bool| if negated { "NOT " } else { "" };
        match self {
            Expr::Column { name, .. } => write_ident(f, name),
            Expr::Literal { value, .. } => write!(f, "{value}"),
            Expr::Binary {
                op, left, right, ..
            } => {
                let min = match op {
                    BinOp::And | BinOp::Or => PREC_NOT,
                    BinOp::Eq
                    | BinOp::NotEq
                    | BinOp::Lt
                    | BinOp::LtEq
                    | BinOp::Gt
                    | BinOp::GtEq => PREC_SUM,
                    BinOp::Add | BinOp::Sub => PREC_PROD,
                    BinOp::Mul | BinOp::Div | BinOp::Mod => PREC_UNARY,
                };
                f.write_str("(")?;
                left.write_prec(f, min)?;
                write!(f, " {op} ")?;
                right.write_prec(f, min)?;
                f.write_str(")")
            }
            Expr::Not { expr, .. } => {
                f.write_str("NOT ")?;
                expr.write_prec(f, PREC_NOT)
            }
            Expr::Neg { expr, .. } => {
                f.write_str("-")?;
                expr.write_prec(f, PREC_UNARY)
            }
            Expr::InList {
                expr,
                list,
                negated,
                ..
            } => {
                expr.write_prec(f, PREC_SUM)?;
                write!(f, " {}IN (", not(*negated))?;
                for (i, item) in list.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str(")")
            }
            Expr::IsNull { expr, negated, .. } => {
                expr.write_prec(f, PREC_SUM)?;
                write!(f, " IS {}NULL", not(*negated))
            }
            Expr::Between {
                expr,
                low,
                high,
                negated,
                ..
            } => {
                expr.write_prec(f, PREC_SUM)?;
                write!(f, " {}BETWEEN ", not(*negated))?;
                low.write_prec(f, PREC_SUM)?;
                f.write_str(" AND ")?;
                high.write_prec(f, PREC_SUM)
            }
            Expr::Like {
                expr,
                pattern,
                negated,
                ..
            } => {
                expr.write_prec(f, PREC_SUM)?;
                write!(f, " {}LIKE ", not(*negated))?;
                write_quoted(f, pattern, '\'')
            }
            Expr::Call { func, args, .. } => {
                write!(f, "{func}(")?;
                for (i, arg) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    arg.write_prec(f, 0)?;
                }
                f.write_str(")")
            }
        }
    }
}

// Binding strengths used when printing, mirroring the grammar's levels.
const PREC_NOT: u8 = 3;
const PREC_CMP: u8 = 4;
const PREC_SUM: u8 = 5;
const PREC_PROD: u8 = 6;
const PREC_UNARY: u8 = 7;
const PREC_ATOM: u8 = 8;

/// Prints the condition in a normalized form: keywords and function names upper case, every
/// binary operation in parentheses, strings in single quotes, and column names bare when they
/// can be, otherwise in double quotes. Parsing the output gives back the same tree (spans
/// aside), provided the output stays within the parser's limits.
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_prec(f, 0)
    }
}

/// Prints the literal as condition source: `42`, `1.5`, `'it''s'`, `TRUE`, `NULL`. Floats
/// always carry a `.` or an exponent so that they read back as floats.
impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Int(v) => write!(f, "{v}"),
            // `Debug` prints the shortest text that reads back exactly, with a `.` or `e`.
            Literal::Float(v) => write!(f, "{v:?}"),
            Literal::Str(s) => write_quoted(f, s, '\''),
            Literal::Bool(true) => f.write_str("TRUE"),
            Literal::Bool(false) => f.write_str("FALSE"),
            Literal::Null => f.write_str("NULL"),
        }
    }
}

fn write_quoted(f: &mut fmt::Formatter<'_>, s: &str, quote: char) -> fmt::Result {
    use fmt::Write;
    f.write_char(quote)?;
    for c in s.chars() {
        if c == quote {
            f.write_char(quote)?;
        }
        f.write_char(c)?;
    }
    f.write_char(quote)
}

fn write_ident(f: &mut fmt::Formatter<'_>, name: &str) -> fmt::Result {
    if is_plain_ident(name) && keyword(name).is_none() {
        f.write_str(name)
    } else {
        write_quoted(f, name, '"')
    }
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_ident_continue(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'.'
}

fn is_plain_ident(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(is_ident_start) && bytes.all(is_ident_continue)
}

/// A condition that could not be parsed.
///
/// `Display` prints one line, `"{message} at column {col}"` with a 1-based column counted in
/// characters (`"{message} at line {line}, column {col}"` when the source spans several lines).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message} at {}", location_label(.source_text, .span))]
pub struct ConditionError {
    /// What is wrong, e.g. `expected a value after '>'`.
    pub message: String,
    /// Byte span of the offending token; zero-width at the end for a premature end of input.
    pub span: Span,
    /// The whole condition source.
    pub source_text: String,
}

impl ConditionError {
    /// An error about `span` of `source_text`. Any span is accepted: one that is out of range
    /// or not on character boundaries is clamped when the error is displayed.
    pub fn new(message: impl Into<String>, span: Span, source_text: &str) -> Self {
        ConditionError {
            message: message.into(),
            span,
            source_text: source_text.to_owned(),
        }
    }

    /// Multi-line rendering: the one-line message (with its 1-based character column), the
    /// source line holding the error, and a line of carets under the offending token (a single
    /// caret for a zero-width span). Control characters in the source line are shown as `�`
    /// so that the caret line stays aligned and the terminal unaffected.
    ///
    /// ```text
    /// expected a value after '>' at column 7
    ///   | f10 > AND x
    ///   |       ^^^
    /// ```
    pub fn render(&self) -> String {
        let src = self.source_text.as_str();
        let loc = Location::of(src, self.span);
        let line = src.get(loc.line_start..loc.line_end).unwrap_or("");
        let line = line.strip_suffix('\r').unwrap_or(line);
        let line_stop = loc.line_start + line.len();
        let end = floor_char_boundary(src, self.span.end)
            .min(line_stop)
            .max(loc.start);
        let carets = src
            .get(loc.start..end)
            .map_or(0, |s| s.chars().count())
            .max(1);
        let pad: String = src
            .get(loc.line_start..loc.start)
            .unwrap_or("")
            .chars()
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        let shown: String = line
            .chars()
            .map(|c| {
                if c.is_control() && c != '\t' {
                    '\u{FFFD}'
                } else {
                    c
                }
            })
            .collect();
        format!("{self}\n  | {shown}\n  | {pad}{}", "^".repeat(carets))
    }
}

/// Where a span starts, in lines and characters.
struct Location {
    /// Byte offset of the span's start, clamped to a character boundary.
    start: usize,
    /// Byte offset where the start's line begins.
    line_start: usize,
    /// Byte offset of the end of that line (its `\n`, or the end of the source).
    line_end: usize,
    /// 1-based line number.
    line: usize,
    /// 1-based column in characters.
    col: usize,
}

impl Location {
    fn of(src: &str, span: Span) -> Location {
        let start = floor_char_boundary(src, span.start);
        let before = src.get(..start).unwrap_or("");
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let line_end = src
            .get(start..)
            .and_then(|s| s.find('\n'))
            .map_or(src.len(), |i| start + i);
        let line = before.matches('\n').count() + 1;
        let col = src.get(line_start..start).map_or(0, |s| s.chars().count()) + 1;
        Location {
            start,
            line_start,
            line_end,
            line,
            col,
        }
    }
}

fn location_label(src: &str, span: &Span) -> String {
    let loc = Location::of(src, *span);
    if src.contains('\n') {
        format!("line {}, column {}", loc.line, loc.col)
    } else {
        format!("column {}", loc.col)
    }
}

/// The largest character boundary of `s` that is at most `pos`.
fn floor_char_boundary(s: &str, pos: usize) -> usize {
    let mut p = pos.min(s.len());
    while p > 0 && !s.is_char_boundary(p) {
        p -= 1;
    }
    p
}

/// Parses a condition.
///
/// Errors point at the offending token: e.g. `f10 > AND x` fails with
/// `expected a value after '>'` and a span on `AND`.
pub fn parse(src: &str) -> Result<Expr, ConditionError> {
    if src.len() > MAX_SOURCE_LEN {
        let start = floor_char_boundary(src, MAX_SOURCE_LEN);
        return Err(ConditionError::new(
            format!(
                "condition is too long ({} bytes; at most {MAX_SOURCE_LEN} are allowed)",
                src.len()
            ),
            Span::new(start, src.len()),
            src,
        ));
    }
    Parser::new(src, MAX_IN_LIST_ITEMS).parse_condition()
}

// ---------------------------------------------------------------------------------------------
// Lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// A number; its text is read from the source by the parser.
    Number,
    Str(String),
    /// A bare identifier or keyword; its text is read from the source.
    Ident,
    QuotedIdent(String),
    LParen,
    RParen,
    Comma,
    Eq,
    EqEq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    /// Text that cannot start a token; the string is the error message. Lexing stops here.
    Invalid(String),
    Eof,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    span: Span,
}

/// Splits the source into tokens. The result ends with `Eof`, or with `Invalid` at the first
/// lexical error (which the parser reports when it reaches it, so errors come in source order).
fn lex(src: &str) -> Vec<Token> {
    let mut lexer = Lexer { src, pos: 0 };
    let mut out = Vec::new();
    loop {
        let token = lexer.next_token();
        let last = matches!(token.tok, Tok::Eof | Tok::Invalid(_));
        out.push(token);
        if last {
            return out;
        }
    }
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

impl Lexer<'_> {
    fn char_at(&self, pos: usize) -> Option<char> {
        self.src.get(pos..).and_then(|s| s.chars().next())
    }

    fn byte_at(&self, pos: usize) -> Option<u8> {
        self.src.as_bytes().get(pos).copied()
    }

    fn next_token(&mut self) -> Token {
        while let Some(c) = self.char_at(self.pos) {
            if !c.is_whitespace() {
                break;
            }
            self.pos += c.len_utf8();
        }
        let start = self.pos;
        let Some(c) = self.char_at(start) else {
            return Token {
                tok: Tok::Eof,
                span: Span::new(start, start),
            };
        };
        let next = self.byte_at(start + 1);
        let (tok, len) = match c {
            '(' => (Tok::LParen, 1),
            ')' => (Tok::RParen, 1),
            ',' => (Tok::Comma, 1),
            '+' => (Tok::Plus, 1),
            '-' => (Tok::Minus, 1),
            '*' => (Tok::Star, 1),
            '/' => (Tok::Slash, 1),
            '%' => (Tok::Percent, 1),
            '=' if next == Some(b'=') => (Tok::EqEq, 2),
            '=' => (Tok::Eq, 1),
            '!' if next == Some(b'=') => (Tok::NotEq, 2),
            '!' => (invalid("unexpected token '!' (use NOT to negate)"), 1),
            '<' => match next {
                Some(b'=') => (Tok::LtEq, 2),
                Some(b'>') => (Tok::NotEq, 2),
                Some(b'<') => (invalid("unexpected token '<<'"), 2),
                _ => (Tok::Lt, 1),
            },
            '>' => match next {
                Some(b'=') => (Tok::GtEq, 2),
                Some(b'>') => (invalid("unexpected token '>>'"), 2),
                _ => (Tok::Gt, 1),
            },
            '&' if next == Some(b'&') => (invalid("unexpected token '&&' (use AND)"), 2),
            '|' if next == Some(b'|') => (invalid("unexpected token '||' (use OR)"), 2),
            '\'' => return self.quoted(start, '\''),
            '"' | '`' => return self.quoted(start, c),
            '0'..='9' => return self.number(start),
            '.' if next.is_some_and(|b| b.is_ascii_digit()) => return self.number(start),
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut end = start + 1;
                while self.byte_at(end).is_some_and(is_ident_continue) {
                    end += 1;
                }
                (Tok::Ident, end - start)
            }
            c => (
                Tok::Invalid(format!(
                    "unexpected character {}",
                    quote_text(c.encode_utf8(&mut [0; 4]))
                )),
                c.len_utf8(),
            ),
        };
        self.pos = start + len;
        Token {
            tok,
            span: Span::new(start, start + len),
        }
    }

    fn skip_digits(&self, mut pos: usize) -> usize {
        while self.byte_at(pos).is_some_and(|b| b.is_ascii_digit()) {
            pos += 1;
        }
        pos
    }

    /// `digits [. digits] [e [+-] digits]` or `. digits [e ...]`; the text is converted by
    /// the parser.
    fn number(&mut self, start: usize) -> Token {
        let mut end = self.skip_digits(start);
        if self.byte_at(end) == Some(b'.') {
            end = self.skip_digits(end + 1);
        }
        if matches!(self.byte_at(end), Some(b'e' | b'E')) {
            let mut exp = end + 1;
            if matches!(self.byte_at(exp), Some(b'+' | b'-')) {
                exp += 1;
            }
            if self.byte_at(exp).is_some_and(|b| b.is_ascii_digit()) {
                end = self.skip_digits(exp);
            }
        }
        if self.byte_at(end).is_some_and(is_ident_continue) {
            // `1abc`, `1.2.3`, `1e`: one malformed token rather than a confusing split.
            while self.byte_at(end).is_some_and(is_ident_continue) {
                end += 1;
            }
            self.pos = end;
            let text = self.src.get(start..end).unwrap_or("");
            return Token {
                tok: Tok::Invalid(format!("malformed number {}", quote_text(text))),
                span: Span::new(start, end),
            };
        }
        self.pos = end;
        Token {
            tok: Tok::Number,
            span: Span::new(start, end),
        }
    }

    /// A string (`'...'`) or quoted identifier (`"..."`, `` `...` ``); a doubled quote stands
    /// for one quote character.
    fn quoted(&mut self, start: usize, quote: char) -> Token {
        let mut text = String::new();
        let mut pos = start + 1;
        loop {
            let Some(c) = self.char_at(pos) else {
                self.pos = self.src.len();
                let what = if quote == '\'' {
                    "unterminated string literal"
                } else {
                    "unterminated quoted identifier"
                };
                return Token {
                    tok: invalid(what),
                    span: Span::new(start, self.src.len()),
                };
            };
            pos += c.len_utf8();
            if c == quote {
                if self.char_at(pos) == Some(quote) {
                    text.push(quote);
                    pos += 1;
                    continue;
                }
                break;
            }
            text.push(c);
        }
        self.pos = pos;
        let span = Span::new(start, pos);
        let tok = if quote == '\'' {
            Tok::Str(text)
        } else if text.is_empty() {
            invalid("empty quoted identifier")
        } else {
            Tok::QuotedIdent(text)
        };
        Token { tok, span }
    }
}

fn invalid(message: &str) -> Tok {
    Tok::Invalid(message.to_owned())
}

/// `'text'` for messages: long text shortened, control characters escaped.
fn quote_text(text: &str) -> String {
    const MAX_CHARS: usize = 24;
    let mut out = String::from("'");
    for (i, c) in text.chars().enumerate() {
        if i == MAX_CHARS {
            out.push_str("...");
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

// ---------------------------------------------------------------------------------------------
// Parser

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kw {
    And,
    Or,
    Not,
    In,
    Is,
    Null,
    Between,
    Like,
    True,
    False,
}

fn keyword(word: &str) -> Option<Kw> {
    const KEYWORDS: [(&str, Kw); 10] = [
        ("AND", Kw::And),
        ("OR", Kw::Or),
        ("NOT", Kw::Not),
        ("IN", Kw::In),
        ("IS", Kw::Is),
        ("NULL", Kw::Null),
        ("BETWEEN", Kw::Between),
        ("LIKE", Kw::Like),
        ("TRUE", Kw::True),
        ("FALSE", Kw::False),
    ];
    KEYWORDS
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(word))
        .map(|(_, kw)| *kw)
}

fn comparison_op(tok: &Tok) -> Option<BinOp> {
    match tok {
        Tok::Eq | Tok::EqEq => Some(BinOp::Eq),
        Tok::NotEq => Some(BinOp::NotEq),
        Tok::Lt => Some(BinOp::Lt),
        Tok::LtEq => Some(BinOp::LtEq),
        Tok::Gt => Some(BinOp::Gt),
        Tok::GtEq => Some(BinOp::GtEq),
        _ => None,
    }
}

/// Converts a number token's text; `negative` folds a leading minus in (for IN lists).
fn number_literal(text: &str, negative: bool) -> Result<Literal, &'static str> {
    if text.bytes().all(|b| b.is_ascii_digit()) {
        let parsed = if negative {
            format!("-{text}").parse::<i64>()
        } else {
            text.parse::<i64>()
        };
        if let Ok(v) = parsed {
            return Ok(Literal::Int(v));
        }
        // Too large for i64: fall through to a float.
    }
    let v: f64 = text.parse().map_err(|_| "malformed number")?;
    if !v.is_finite() {
        return Err("number is out of range");
    }
    Ok(Literal::Float(if negative { -v } else { v }))
}

struct Parser<'a> {
    src: &'a str,
    toks: Vec<Token>,
    /// Returned when peeking past the last token.
    eof: Token,
    pos: usize,
    depth: usize,
    /// Span of the last consumed token.
    prev: Option<Span>,
    max_in_list: usize,
}

type PResult<T> = Result<T, ConditionError>;

impl<'a> Parser<'a> {
    fn new(src: &'a str, max_in_list: usize) -> Self {
        Parser {
            src,
            toks: lex(src),
            eof: Token {
                tok: Tok::Eof,
                span: Span::new(src.len(), src.len()),
            },
            pos: 0,
            depth: 0,
            prev: None,
            max_in_list,
        }
    }

    fn parse_condition(mut self) -> PResult<Expr> {
        if self.peek().tok == Tok::Eof {
            return Err(self.error("condition is empty", self.peek().span));
        }
        let expr = self.parse_or()?.expr;
        if self.peek().tok == Tok::Eof {
            Ok(expr)
        } else {
            let what = self.describe(self.peek());
            Err(self.error_here(format!("unexpected {what} after the end of the condition")))
        }
    }

    // -- token helpers ------------------------------------------------------------------------

    fn peek(&self) -> &Token {
        self.toks.get(self.pos).unwrap_or(&self.eof)
    }

    fn peek_nth(&self, n: usize) -> &Token {
        self.toks.get(self.pos + n).unwrap_or(&self.eof)
    }

    /// Consumes the current token; `Eof` and `Invalid` are never consumed.
    fn bump(&mut self) -> Token {
        let token = self.peek().clone();
        if !matches!(token.tok, Tok::Eof | Tok::Invalid(_)) {
            self.pos += 1;
            self.prev = Some(token.span);
        }
        token
    }

    fn prev_end(&self) -> usize {
        self.prev.map_or(0, |s| s.end)
    }

    fn text(&self, span: Span) -> &'a str {
        self.src.get(span.start..span.end).unwrap_or("")
    }

    fn kw_of(&self, token: &Token) -> Option<Kw> {
        match token.tok {
            Tok::Ident => keyword(self.text(token.span)),
            _ => None,
        }
    }

    fn peek_kw(&self) -> Option<Kw> {
        self.kw_of(self.peek())
    }

    fn eat_kw(&mut self, kw: Kw) -> bool {
        if self.peek_kw() == Some(kw) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn eat(&mut self, tok: &Tok) -> bool {
        if &self.peek().tok == tok {
            self.bump();
            true
        } else {
            false
        }
    }

    fn describe(&self, token: &Token) -> String {
        match token.tok {
            Tok::Eof => "end of input".to_owned(),
            _ => quote_text(self.text(token.span)),
        }
    }

    fn error(&self, message: impl Into<String>, span: Span) -> ConditionError {
        ConditionError::new(message, span, self.src)
    }

    /// An error about `token`; a lexical error there takes precedence over `message`.
    fn error_at(&self, token: &Token, message: impl Into<String>) -> ConditionError {
        match &token.tok {
            Tok::Invalid(lex_message) => self.error(lex_message.clone(), token.span),
            _ => self.error(message, token.span),
        }
    }

    fn error_here(&self, message: impl Into<String>) -> ConditionError {
        self.error_at(self.peek(), message)
    }

    fn expected_value(&self) -> ConditionError {
        let message = match self.prev {
            Some(span) => format!("expected a value after {}", quote_text(self.text(span))),
            None => "expected a value".to_owned(),
        };
        self.error_here(message)
    }

    /// Enters one level of nesting opened by the token at `span`.
    fn enter(&mut self, span: Span) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(
                format!("condition is nested too deeply (at most {MAX_DEPTH} levels)"),
                span,
            ));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// Checks a new node's height against [`MAX_TREE_HEIGHT`]; `at` is the operator or
    /// keyword that built the node, where an error points.
    fn node(&self, expr: Expr, height: usize, at: Span) -> PResult<Node> {
        if height > MAX_TREE_HEIGHT {
            return Err(self.error(
                format!(
                    "condition is too complex: its expression tree is more than \
                     {MAX_TREE_HEIGHT} levels deep (split it into several conditions)"
                ),
                at,
            ));
        }
        Ok(Node { expr, height })
    }

    fn binary(&self, op: BinOp, at: Span, left: Node, right: Node, start: usize) -> PResult<Node> {
        let height = left.height.max(right.height) + 1;
        let expr = Expr::Binary {
            op,
            left: Box::new(left.expr),
            right: Box::new(right.expr),
            span: Span::new(start, self.prev_end()),
        };
        self.node(expr, height, at)
    }

    // -- grammar ------------------------------------------------------------------------------

    fn parse_or(&mut self) -> PResult<Node> {
        let start = self.peek().span.start;
        let mut left = self.parse_and()?;
        while self.peek_kw() == Some(Kw::Or) {
            let at = self.bump().span;
            let right = self.parse_and()?;
            left = self.binary(BinOp::Or, at, left, right, start)?;
        }
        Ok(left)
    }

    fn parse_and(&mut self) -> PResult<Node> {
        let start = self.peek().span.start;
        let mut left = self.parse_not()?;
        while self.peek_kw() == Some(Kw::And) {
            let at = self.bump().span;
            let right = self.parse_not()?;
            left = self.binary(BinOp::And, at, left, right, start)?;
        }
        Ok(left)
    }

    fn parse_not(&mut self) -> PResult<Node> {
        if self.peek_kw() != Some(Kw::Not) {
            return self.parse_cmp();
        }
        let not = self.bump();
        self.enter(not.span)?;
        let inner = self.parse_not()?;
        self.leave();
        let span = Span::new(not.span.start, self.prev_end());
        let expr = Expr::Not {
            expr: Box::new(inner.expr),
            span,
        };
        self.node(expr, inner.height + 1, not.span)
    }

    fn parse_cmp(&mut self) -> PResult<Node> {
        let start = self.peek().span.start;
        let left = self.parse_sum()?;
        let node = if let Some(op) = comparison_op(&self.peek().tok) {
            let at = self.bump().span;
            let right = self.parse_sum()?;
            self.binary(op, at, left, right, start)?
        } else {
            match self.peek_kw() {
                Some(Kw::Not) => {
                    let after = self.peek_nth(1);
                    match self.kw_of(after) {
                        Some(kw @ (Kw::In | Kw::Between | Kw::Like)) => {
                            self.bump();
                            let at = self.bump().span;
                            self.parse_cmp_tail(kw, at, left, true, start)?
                        }
                        _ => {
                            return Err(
                                self.error_at(after, "expected IN, BETWEEN or LIKE after NOT")
                            )
                        }
                    }
                }
                Some(kw @ (Kw::In | Kw::Between | Kw::Like)) => {
                    let at = self.bump().span;
                    self.parse_cmp_tail(kw, at, left, false, start)?
                }
                Some(Kw::Is) => {
                    let at = self.bump().span;
                    let negated = self.eat_kw(Kw::Not);
                    if !self.eat_kw(Kw::Null) {
                        let message = if negated {
                            "expected NULL after IS NOT"
                        } else {
                            "expected NULL or NOT NULL after IS"
                        };
                        return Err(self.error_here(message));
                    }
                    let expr = Expr::IsNull {
                        expr: Box::new(left.expr),
                        negated,
                        span: Span::new(start, self.prev_end()),
                    };
                    self.node(expr, left.height + 1, at)?
                }
                _ => return Ok(left),
            }
        };
        let chained = comparison_op(&self.peek().tok).is_some()
            || matches!(
                self.peek_kw(),
                Some(Kw::In | Kw::Is | Kw::Between | Kw::Like)
            );
        if chained {
            return Err(self.error_here(
                "comparisons cannot be chained; combine them with AND or use parentheses",
            ));
        }
        Ok(node)
    }

    /// The rest of `IN (...)`, `BETWEEN .. AND ..` or `LIKE '...'` after the keyword at `at`.
    fn parse_cmp_tail(
        &mut self,
        kw: Kw,
        at: Span,
        left: Node,
        negated: bool,
        start: usize,
    ) -> PResult<Node> {
        let expr = Box::new(left.expr);
        match kw {
            Kw::In => {
                let list = self.parse_in_list()?;
                let span = Span::new(start, self.prev_end());
                let expr = Expr::InList {
                    expr,
                    list,
                    negated,
                    span,
                };
                self.node(expr, left.height + 1, at)
            }
            Kw::Between => {
                let low = self.parse_sum()?;
                if !self.eat_kw(Kw::And) {
                    return Err(self.error_here("expected AND between the bounds of BETWEEN"));
                }
                let high = self.parse_sum()?;
                let height = left.height.max(low.height).max(high.height) + 1;
                let expr = Expr::Between {
                    expr,
                    low: Box::new(low.expr),
                    high: Box::new(high.expr),
                    negated,
                    span: Span::new(start, self.prev_end()),
                };
                self.node(expr, height, at)
            }
            _ => {
                let Tok::Str(pattern) = self.peek().tok.clone() else {
                    return Err(self.error_here("LIKE pattern must be a string literal"));
                };
                self.bump();
                let expr = Expr::Like {
                    expr,
                    pattern,
                    negated,
                    span: Span::new(start, self.prev_end()),
                };
                self.node(expr, left.height + 1, at)
            }
        }
    }

    fn parse_in_list(&mut self) -> PResult<Vec<Literal>> {
        if !self.eat(&Tok::LParen) {
            return Err(self.error_here("expected '(' after IN"));
        }
        let mut list = Vec::new();
        loop {
            let item_start = self.peek().span;
            let item = self.parse_list_literal()?;
            if list.len() >= self.max_in_list {
                return Err(self.error(
                    format!("IN list has more than {} items", self.max_in_list),
                    Span::new(item_start.start, self.prev_end()),
                ));
            }
            list.push(item);
            if self.eat(&Tok::Comma) {
                continue;
            }
            if self.eat(&Tok::RParen) {
                return Ok(list);
            }
            return Err(self.error_here("expected ',' or ')'"));
        }
    }

    /// One IN-list item: a literal, or a number with a leading minus.
    fn parse_list_literal(&mut self) -> PResult<Literal> {
        let token = self.peek().clone();
        let value = match &token.tok {
            Tok::Number => {
                self.bump();
                number_literal(self.text(token.span), false)
                    .map_err(|m| self.error(m, token.span))?
            }
            Tok::Minus if self.peek_nth(1).tok == Tok::Number => {
                self.bump();
                let number = self.bump();
                number_literal(self.text(number.span), true)
                    .map_err(|m| self.error(m, Span::new(token.span.start, number.span.end)))?
            }
            Tok::Str(s) => {
                self.bump();
                Literal::Str(s.clone())
            }
            Tok::Ident => {
                let value = match self.kw_of(&token) {
                    Some(Kw::True) => Literal::Bool(true),
                    Some(Kw::False) => Literal::Bool(false),
                    Some(Kw::Null) => Literal::Null,
                    _ => return Err(self.error_here("IN list items must be literals")),
                };
                self.bump();
                value
            }
            Tok::QuotedIdent(_) | Tok::LParen | Tok::Minus => {
                return Err(self.error_here("IN list items must be literals"))
            }
            _ => {
                let message = match self.prev {
                    Some(span) => format!(
                        "expected a literal value after {}",
                        quote_text(self.text(span))
                    ),
                    None => "expected a literal value".to_owned(),
                };
                return Err(self.error_here(message));
            }
        };
        Ok(value)
    }

    fn parse_sum(&mut self) -> PResult<Node> {
        let start = self.peek().span.start;
        let mut left = self.parse_prod()?;
        loop {
            let op = match self.peek().tok {
                Tok::Plus => BinOp::Add,
                Tok::Minus => BinOp::Sub,
                _ => return Ok(left),
            };
            let at = self.bump().span;
            let right = self.parse_prod()?;
            left = self.binary(op, at, left, right, start)?;
        }
    }

    fn parse_prod(&mut self) -> PResult<Node> {
        let start = self.peek().span.start;
        let mut left = self.parse_unary()?;
        loop {
            let op = match self.peek().tok {
                Tok::Star => BinOp::Mul,
                Tok::Slash => BinOp::Div,
                Tok::Percent => BinOp::Mod,
                _ => return Ok(left),
            };
            let at = self.bump().span;
            let right = self.parse_unary()?;
            left = self.binary(op, at, left, right, start)?;
        }
    }

    fn parse_unary(&mut self) -> PResult<Node> {
        if self.peek().tok != Tok::Minus {
            return self.parse_atom();
        }
        let minus = self.bump();
        self.enter(minus.span)?;
        let inner = self.parse_unary()?;
        self.leave();
        let expr = Expr::Neg {
            expr: Box::new(inner.expr),
            span: Span::new(minus.span.start, self.prev_end()),
        };
        self.node(expr, inner.height + 1, minus.span)
    }

    fn parse_atom(&mut self) -> PResult<Node> {
        let token = self.peek().clone();
        let span = token.span;
        let expr = match token.tok {
            Tok::Number => {
                let value =
                    number_literal(self.text(span), false).map_err(|m| self.error(m, span))?;
                Expr::Literal { value, span }
            }
            Tok::Str(s) => Expr::Literal {
                value: Literal::Str(s),
                span,
            },
            Tok::QuotedIdent(name) => Expr::Column { name, span },
            Tok::Ident => {
                let value = match self.kw_of(&token) {
                    Some(Kw::True) => Literal::Bool(true),
                    Some(Kw::False) => Literal::Bool(false),
                    Some(Kw::Null) => Literal::Null,
                    Some(_) => return Err(self.expected_value()),
                    None if self.peek_nth(1).tok == Tok::LParen => return self.parse_call(),
                    None => {
                        self.bump();
                        return Ok(Node::leaf(Expr::Column {
                            name: self.text(span).to_owned(),
                            span,
                        }));
                    }
                };
                Expr::Literal { value, span }
            }
            Tok::LParen => {
                self.bump();
                self.enter(span)?;
                let inner = self.parse_or()?;
                if !self.eat(&Tok::RParen) {
                    return Err(self.error_here("expected ')'"));
                }
                self.leave();
                return Ok(inner);
            }
            _ => return Err(self.expected_value()),
        };
        self.bump();
        Ok(Node::leaf(expr))
    }

    /// `name ( expr, ... )`; the current token is the name and the next one is `(`.
    fn parse_call(&mut self) -> PResult<Node> {
        let name = self.bump();
        let name_text = self.text(name.span);
        let Some(func) = Func::from_name(name_text) else {
            return Err(self.error(
                format!(
                    "unknown function {}; expected one of ABS, LENGTH, LOWER, UPPER, COALESCE",
                    quote_text(name_text)
                ),
                name.span,
            ));
        };
        let open = self.bump();
        self.enter(open.span)?;
        let mut args = Vec::new();
        let mut height = 0;
        if !self.eat(&Tok::RParen) {
            loop {
                let arg = self.parse_or()?;
                height = height.max(arg.height);
                args.push(arg.expr);
                if self.eat(&Tok::Comma) {
                    continue;
                }
                if self.eat(&Tok::RParen) {
                    break;
                }
                return Err(self.error_here("expected ',' or ')'"));
            }
        }
        self.leave();
        let span = Span::new(name.span.start, self.prev_end());
        if let Some(message) = func.arity_error(args.len()) {
            return Err(self.error(message, span));
        }
        self.node(Expr::Call { func, args, span }, height + 1, name.span)
    }
}

/// A parsed subtree and its height (a leaf has height 1).
struct Node {
    expr: Expr,
    height: usize,
}

impl Node {
    fn leaf(expr: Expr) -> Node {
        Node { expr, height: 1 }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    // -- helpers ------------------------------------------------------------------------------

    /// The tree with every span zeroed, for comparisons that ignore positions.
    fn strip(e: &Expr) -> Expr {
        let z = Span::default();
        let b = |e: &Expr| Box::new(strip(e));
        match e {
            Expr::Column { name, .. } => Expr::Column {
                name: name.clone(),
                span: z,
            },
            Expr::Literal { value, .. } => Expr::Literal {
                value: value.clone(),
                span: z,
            },
            Expr::Binary {
                op, left, right, ..
            } => Expr::Binary {
                op: *op,
                left: b(left),
                right: b(right),
                span: z,
            },
            Expr::Not { expr, .. } => Expr::Not {
                expr: b(expr),
                span: z,
            },
            Expr::Neg { expr, .. } => Expr::Neg {
                expr: b(expr),
                span: z,
            },
            Expr::InList {
                expr,
                list,
                negated,
                ..
            } => Expr::InList {
                expr: b(expr),
                list: list.clone(),
                negated: *negated,
                span: z,
            },
            Expr::IsNull { expr, negated, .. } => Expr::IsNull {
                expr: b(expr),
                negated: *negated,
                span: z,
            },
            Expr::Between {
                expr,
                low,
                high,
                negated,
                ..
            } => Expr::Between {
                expr: b(expr),
                low: b(low),
                high: b(high),
                negated: *negated,
                span: z,
            },
            Expr::Like {
                expr,
                pattern,
                negated,
                ..
            } => Expr::Like {
                expr: b(expr),
                pattern: pattern.clone(),
                negated: *negated,
                span: z,
            },
            Expr::Call { func, args, .. } => Expr::Call {
                func: *func,
                args: args.iter().map(strip).collect(),
                span: z,
            },
        }
    }

    fn p(src: &str) -> Expr {
        match parse(src) {
            Ok(e) => strip(&e),
            Err(e) => panic!("{src:?} failed to parse:\n{}", e.render()),
        }
    }

    /// Normalized text of a condition.
    fn n(src: &str) -> String {
        p(src).to_string()
    }

    fn err(src: &str) -> ConditionError {
        match parse(src) {
            Ok(e) => panic!("{src:?} parsed unexpectedly as {e}"),
            Err(e) => e,
        }
    }

    /// Asserts the error message and the source text under its span.
    fn assert_err(src: &str, message: &str, under_span: &str) {
        let e = err(src);
        assert_eq!(e.message, message, "message for {src:?}");
        assert_eq!(
            &src[e.span.start..e.span.end],
            under_span,
            "span for {src:?}: {:?}",
            e.span
        );
    }

    fn col(name: &str) -> Expr {
        Expr::Column {
            name: name.into(),
            span: Span::default(),
        }
    }

    fn lit(value: Literal) -> Expr {
        Expr::Literal {
            value,
            span: Span::default(),
        }
    }

    fn int(v: i64) -> Expr {
        lit(Literal::Int(v))
    }

    fn bin(op: BinOp, l: Expr, r: Expr) -> Expr {
        Expr::Binary {
            op,
            left: Box::new(l),
            right: Box::new(r),
            span: Span::default(),
        }
    }

    fn not(e: Expr) -> Expr {
        Expr::Not {
            expr: Box::new(e),
            span: Span::default(),
        }
    }

    fn neg(e: Expr) -> Expr {
        Expr::Neg {
            expr: Box::new(e),
            span: Span::default(),
        }
    }

    fn all_spans(e: &Expr, out: &mut Vec<Span>) {
        out.push(e.span());
        match e {
            Expr::Column { .. } | Expr::Literal { .. } => {}
            Expr::Binary { left, right, .. } => {
                all_spans(left, out);
                all_spans(right, out);
            }
            Expr::Not { expr, .. }
            | Expr::Neg { expr, .. }
            | Expr::InList { expr, .. }
            | Expr::IsNull { expr, .. }
            | Expr::Like { expr, .. } => all_spans(expr, out),
            Expr::Between {
                expr, low, high, ..
            } => {
                all_spans(expr, out);
                all_spans(low, out);
                all_spans(high, out);
            }
            Expr::Call { args, .. } => args.iter().for_each(|a| all_spans(a, out)),
        }
    }

    fn span_ok(src: &str, s: Span) -> bool {
        s.start <= s.end
            && s.end <= src.len()
            && src.is_char_boundary(s.start)
            && src.is_char_boundary(s.end)
    }

    // -- precedence ---------------------------------------------------------------------------

    #[test]
    fn and_binds_tighter_than_or() {
        use BinOp::*;
        assert_eq!(
            p("a OR b AND c"),
            bin(Or, col("a"), bin(And, col("b"), col("c")))
        );
        assert_eq!(
            p("a AND b OR c"),
            bin(Or, bin(And, col("a"), col("b")), col("c"))
        );
        assert_eq!(
            p("(a OR b) AND c"),
            bin(And, bin(Or, col("a"), col("b")), col("c"))
        );
        assert_eq!(
            p("a OR b OR c"),
            bin(Or, bin(Or, col("a"), col("b")), col("c"))
        );
    }

    #[test]
    fn not_binds_looser_than_comparison_and_tighter_than_and() {
        use BinOp::*;
        assert_eq!(p("NOT a = 1"), not(bin(Eq, col("a"), int(1))));
        assert_eq!(p("NOT a AND b"), bin(And, not(col("a")), col("b")));
        assert_eq!(p("a AND NOT b"), bin(And, col("a"), not(col("b"))));
        assert_eq!(p("NOT NOT a"), not(not(col("a"))));
        assert_eq!(
            p("NOT x IN (1)"),
            not(Expr::InList {
                expr: Box::new(col("x")),
                list: vec![Literal::Int(1)],
                negated: false,
                span: Span::default()
            })
        );
    }

    #[test]
    fn arithmetic_precedence_and_associativity() {
        use BinOp::*;
        assert_eq!(p("1 + 2 * 3"), bin(Add, int(1), bin(Mul, int(2), int(3))));
        assert_eq!(p("1 * 2 + 3"), bin(Add, bin(Mul, int(1), int(2)), int(3)));
        assert_eq!(p("1 - 2 - 3"), bin(Sub, bin(Sub, int(1), int(2)), int(3)));
        assert_eq!(p("8 / 4 % 3"), bin(Mod, bin(Div, int(8), int(4)), int(3)));
        assert_eq!(p("(1 + 2) * 3"), bin(Mul, bin(Add, int(1), int(2)), int(3)));
        assert_eq!(p("-a * b"), bin(Mul, neg(col("a")), col("b")));
        assert_eq!(p("a - -b"), bin(Sub, col("a"), neg(col("b"))));
        assert_eq!(p("--a"), neg(neg(col("a"))));
        assert_eq!(
            p("a + 1 > b * 2"),
            bin(Gt, bin(Add, col("a"), int(1)), bin(Mul, col("b"), int(2)))
        );
        assert_eq!(
            p("a > 1 AND b < 2 OR c"),
            bin(
                Or,
                bin(And, bin(Gt, col("a"), int(1)), bin(Lt, col("b"), int(2))),
                col("c")
            )
        );
    }

    // -- constructs ---------------------------------------------------------------------------

    #[test]
    fn comparison_operators() {
        for (src, op) in [
            ("a = 1", BinOp::Eq),
            ("a == 1", BinOp::Eq),
            ("a != 1", BinOp::NotEq),
            ("a <> 1", BinOp::NotEq),
            ("a < 1", BinOp::Lt),
            ("a <= 1", BinOp::LtEq),
            ("a > 1", BinOp::Gt),
            ("a >= 1", BinOp::GtEq),
            ("a>=1", BinOp::GtEq),
        ] {
            assert_eq!(p(src), bin(op, col("a"), int(1)), "{src}");
        }
    }

    #[test]
    fn literals() {
        assert_eq!(p("42"), int(42));
        assert_eq!(p("3.25"), lit(Literal::Float(3.25)));
        assert_eq!(p("1e-3"), lit(Literal::Float(1e-3)));
        assert_eq!(p("2E+2"), lit(Literal::Float(200.0)));
        assert_eq!(p(".5"), lit(Literal::Float(0.5)));
        assert_eq!(p("1."), lit(Literal::Float(1.0)));
        assert_eq!(p("'it''s'"), lit(Literal::Str("it's".into())));
        assert_eq!(p("''"), lit(Literal::Str(String::new())));
        assert_eq!(p("TRUE"), lit(Literal::Bool(true)));
        assert_eq!(p("false"), lit(Literal::Bool(false)));
        assert_eq!(p("Null"), lit(Literal::Null));
        assert_eq!(p("9223372036854775807"), int(i64::MAX));
        assert_eq!(
            p("9223372036854775808"),
            lit(Literal::Float(9_223_372_036_854_775_808.0))
        );
        assert_eq!(
            p("123456789012345678901234567890"),
            lit(Literal::Float(1.2345678901234568e29))
        );
        assert_eq!(p("'héllo ✓'"), lit(Literal::Str("héllo ✓".into())));
    }

    #[test]
    fn identifiers() {
        assert_eq!(p("f10"), col("f10"));
        assert_eq!(p("_a.b_2"), col("_a.b_2"));
        assert_eq!(p("\"my col\""), col("my col"));
        assert_eq!(p("\"say \"\"hi\"\"\""), col("say \"hi\""));
        assert_eq!(p("`back tick`"), col("back tick"));
        assert_eq!(p("`a``b`"), col("a`b"));
        assert_eq!(p("\"AND\""), col("AND"));
        assert_eq!(
            p("\"prénom\" = 'é'"),
            bin(BinOp::Eq, col("prénom"), lit(Literal::Str("é".into())))
        );
        // A function name not followed by '(' is a column.
        assert_eq!(p("length > 3"), bin(BinOp::Gt, col("length"), int(3)));
    }

    #[test]
    fn in_lists() {
        let e = p("c0 IN ('a', 'b')");
        assert_eq!(
            e,
            Expr::InList {
                expr: Box::new(col("c0")),
                list: vec![Literal::Str("a".into()), Literal::Str("b".into())],
                negated: false,
                span: Span::default()
            }
        );
        let e = p("x not in (1, -2, 3.5, -4e1, TRUE, null, 'z', -9223372036854775808)");
        assert_eq!(
            e,
            Expr::InList {
                expr: Box::new(col("x")),
                list: vec![
                    Literal::Int(1),
                    Literal::Int(-2),
                    Literal::Float(3.5),
                    Literal::Float(-40.0),
                    Literal::Bool(true),
                    Literal::Null,
                    Literal::Str("z".into()),
                    Literal::Int(i64::MIN),
                ],
                negated: true,
                span: Span::default()
            }
        );
    }

    #[test]
    fn is_null_between_like() {
        assert_eq!(
            p("a IS NULL"),
            Expr::IsNull {
                expr: Box::new(col("a")),
                negated: false,
                span: Span::default()
            }
        );
        assert_eq!(
            p("a is not null"),
            Expr::IsNull {
                expr: Box::new(col("a")),
                negated: true,
                span: Span::default()
            }
        );
        assert_eq!(
            p("a BETWEEN 1 AND b + 1"),
            Expr::Between {
                expr: Box::new(col("a")),
                low: Box::new(int(1)),
                high: Box::new(bin(BinOp::Add, col("b"), int(1))),
                negated: false,
                span: Span::default()
            }
        );
        // BETWEEN's AND is not the logical AND.
        assert_eq!(
            p("a NOT BETWEEN 1 AND 2 AND c"),
            bin(
                BinOp::And,
                Expr::Between {
                    expr: Box::new(col("a")),
                    low: Box::new(int(1)),
                    high: Box::new(int(2)),
                    negated: true,
                    span: Span::default()
                },
                col("c")
            )
        );
        assert_eq!(
            p("name LIKE 'a%''_'"),
            Expr::Like {
                expr: Box::new(col("name")),
                pattern: "a%'_".into(),
                negated: false,
                span: Span::default()
            }
        );
        assert_eq!(
            p("lower(name) not like '%x'"),
            Expr::Like {
                expr: Box::new(Expr::Call {
                    func: Func::Lower,
                    args: vec![col("name")],
                    span: Span::default()
                }),
                pattern: "%x".into(),
                negated: true,
                span: Span::default()
            }
        );
    }

    #[test]
    fn function_calls() {
        let call = |func, args| Expr::Call {
            func,
            args,
            span: Span::default(),
        };
        assert_eq!(p("ABS(x)"), call(Func::Abs, vec![col("x")]));
        assert_eq!(
            p("abs (x - 1)"),
            call(Func::Abs, vec![bin(BinOp::Sub, col("x"), int(1))])
        );
        assert_eq!(p("Length(s)"), call(Func::Length, vec![col("s")]));
        assert_eq!(p("lower(s)"), call(Func::Lower, vec![col("s")]));
        assert_eq!(p("UPPER(s)"), call(Func::Upper, vec![col("s")]));
        assert_eq!(
            p("coalesce(a, b, 0)"),
            call(Func::Coalesce, vec![col("a"), col("b"), int(0)])
        );
        assert_eq!(
            p("COALESCE(a > 1, b IS NULL)"),
            call(
                Func::Coalesce,
                vec![
                    bin(BinOp::Gt, col("a"), int(1)),
                    Expr::IsNull {
                        expr: Box::new(col("b")),
                        negated: false,
                        span: Span::default()
                    }
                ]
            )
        );
    }

    #[test]
    fn keywords_are_case_insensitive() {
        assert_eq!(
            p("a > 1 and not b is NULL Or c In (1) AND d bEtWeEn 1 aNd 2 and e LiKe 'x'"),
            p("a > 1 AND NOT b IS NULL OR c IN (1) AND d BETWEEN 1 AND 2 AND e LIKE 'x'")
        );
        assert_eq!(p("true OR False"), p("TRUE OR FALSE"));
    }

    #[test]
    fn whitespace_including_newlines_is_ignored() {
        assert_eq!(p("  a\n>\t1\r\n "), p("a > 1"));
    }

    #[test]
    fn spans_cover_the_construct() {
        let src = "(a + b) * 2 > abs(c) AND x NOT IN ('p', 'q')";
        let e = parse(src).unwrap();
        assert_eq!(e.span(), Span::new(0, src.len()));
        let Expr::Binary { left, right, .. } = &e else {
            panic!()
        };
        assert_eq!(
            &src[left.span().start..left.span().end],
            "(a + b) * 2 > abs(c)"
        );
        assert_eq!(
            &src[right.span().start..right.span().end],
            "x NOT IN ('p', 'q')"
        );
        let Expr::Binary {
            left: prod,
            right: call,
            ..
        } = left.as_ref()
        else {
            panic!()
        };
        assert_eq!(&src[prod.span().start..prod.span().end], "(a + b) * 2");
        assert_eq!(&src[call.span().start..call.span().end], "abs(c)");
        let Expr::Binary { left: sum, .. } = prod.as_ref() else {
            panic!()
        };
        assert_eq!(&src[sum.span().start..sum.span().end], "a + b");

        let src = "NOT -x IS NULL";
        let e = parse(src).unwrap();
        assert_eq!(e.span(), Span::new(0, 14));
        let Expr::Not { expr, .. } = &e else { panic!() };
        assert_eq!(expr.span(), Span::new(4, 14));
        let Expr::IsNull { expr, .. } = expr.as_ref() else {
            panic!()
        };
        assert_eq!(expr.span(), Span::new(4, 6));
    }

    #[test]
    fn columns_in_source_order() {
        let src = "\"é x\" > 1 AND coalesce(b, a) BETWEEN c AND d + a OR e LIKE 'z'";
        let cols = parse(src).unwrap().columns();
        let names: Vec<&str> = cols.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["é x", "b", "a", "c", "d", "a", "e"]);
        let texts: Vec<&str> = cols.iter().map(|(_, s)| &src[s.start..s.end]).collect();
        assert_eq!(texts, ["\"é x\"", "b", "a", "c", "d", "a", "e"]);
        assert!(parse("1 + 2 = 3").unwrap().columns().is_empty());
    }

    // -- display ------------------------------------------------------------------------------

    #[test]
    fn display_normalizes() {
        assert_eq!(
            n("f10 > 0 and c0 in ('a', 'b')"),
            "((f10 > 0) AND c0 IN ('a', 'b'))"
        );
        assert_eq!(n("a == 1 or b <> 2"), "((a = 1) OR (b != 2))");
        assert_eq!(n("not a is not null"), "NOT a IS NOT NULL");
        assert_eq!(n("-(a + 1) * 2.0"), "(-(a + 1) * 2.0)");
        assert_eq!(n("-(not a)"), "-(NOT a)");
        assert_eq!(n("(a is null) = true"), "((a IS NULL) = TRUE)");
        assert_eq!(n("x between -1 and 1e3"), "x BETWEEN -1 AND 1000.0");
        assert_eq!(n("`and` like 'it''s'"), "\"and\" LIKE 'it''s'");
        assert_eq!(n("coalesce(a, 1.5e-9)"), "COALESCE(a, 1.5e-9)");
        assert_eq!(n("x not in (-1, 2.0, null)"), "x NOT IN (-1, 2.0, NULL)");
        assert_eq!(n("\"a b\" + `c\"d`"), "(\"a b\" + \"c\"\"d\")");
        assert_eq!(n("99999999999999999999"), "1e20");
    }

    #[test]
    fn display_round_trips_a_corpus() {
        let corpus = [
            "f10 > 0 AND c0 IN ('a', 'b')",
            "NOT (a OR b) AND NOT c",
            "-x * -(y - 2) % 3 >= abs(z) / 2",
            "(a BETWEEN 1 AND 2) = FALSE",
            "a NOT BETWEEN -1.5 AND .5 OR b NOT LIKE '%_%'",
            "coalesce(a, b IS NULL, NOT c, d IN (1), 'x') != TRUE",
            "length(upper(lower(s))) <= 10",
            "\"weird \"\"col\"\"\" IS NOT NULL",
            "((((a))))",
            "x IN (-9223372036854775808, 9223372036854775807, 1e308, -0.0, '', 'it''s')",
            "NOT NOT NOT a = --b",
            "(a = b) = (c != d)",
            "1 - (2 - 3) - 4",
            "a * (b + c) * d",
            "(NOT a) = b",
            "(x IN (1)) IN (TRUE)",
        ];
        for src in corpus {
            let e = p(src);
            let shown = e.to_string();
            assert_eq!(p(&shown), e, "{src} -> {shown}");
            assert_eq!(p(&shown).to_string(), shown);
        }
    }

    // -- errors -------------------------------------------------------------------------------

    #[test]
    fn error_missing_value_points_at_next_token() {
        assert_err("f10 > AND x", "expected a value after '>'", "AND");
        assert_err("f10 >", "expected a value after '>'", "");
        assert_eq!(err("f10 >").span, Span::new(5, 5));
        assert_err("a = )", "expected a value after '='", ")");
        assert_err("a AND", "expected a value after 'AND'", "");
        assert_err("(", "expected a value after '('", "");
        assert_err("a = NOT b", "expected a value after '='", "NOT");
        assert_err("AND a", "expected a value", "AND");
        assert_err("+1", "expected a value", "+");
    }

    #[test]
    fn error_unclosed_in_list_at_end_of_input() {
        let src = "c0 IN ('a', 'b'";
        let e = err(src);
        assert_eq!(e.message, "expected ',' or ')'");
        assert_eq!(e.span, Span::new(src.len(), src.len()));
        assert_eq!(e.to_string(), "expected ',' or ')' at column 16");
        assert_eq!(
            e.render(),
            "expected ',' or ')' at column 16\n  | c0 IN ('a', 'b'\n  |                ^"
        );
    }

    #[test]
    fn error_unterminated_strings_and_identifiers() {
        assert_err("a = 'abc", "unterminated string literal", "'abc");
        assert_err("a = 'it''s", "unterminated string literal", "'it''s");
        assert_err("\"col = 1", "unterminated quoted identifier", "\"col = 1");
        assert_err("`col", "unterminated quoted identifier", "`col");
        assert_err("\"\" = 1", "empty quoted identifier", "\"\"");
        assert_err("a = 'é…", "unterminated string literal", "'é…");
    }

    #[test]
    fn error_unknown_function_points_at_name() {
        let e = err("x > 1 AND foo(x)");
        assert!(
            e.message.starts_with("unknown function 'foo'"),
            "{}",
            e.message
        );
        assert_eq!(e.span, Span::new(10, 13));
    }

    #[test]
    fn error_function_arity() {
        assert_err(
            "abs(a, b) > 1",
            "ABS takes exactly 1 argument, got 2 arguments",
            "abs(a, b)",
        );
        assert_err(
            "LENGTH() > 1",
            "LENGTH takes exactly 1 argument, got 0 arguments",
            "LENGTH()",
        );
        assert_err(
            "coalesce(a)",
            "COALESCE takes at least 2 arguments, got 1 argument",
            "coalesce(a)",
        );
        assert_err("abs(a b)", "expected ',' or ')'", "b");
        assert_err("abs(a,)", "expected a value after ','", ")");
    }

    #[test]
    fn error_unexpected_tokens() {
        assert_err("f10 >> 3", "unexpected token '>>'", ">>");
        assert_err("a << 3", "unexpected token '<<'", "<<");
        assert_err("a && b", "unexpected token '&&' (use AND)", "&&");
        assert_err("a || b", "unexpected token '||' (use OR)", "||");
        assert_err("!a", "unexpected token '!' (use NOT to negate)", "!");
        assert_err("a = 1;", "unexpected character ';'", ";");
        assert_err("a = $x", "unexpected character '$'", "$");
        assert_err("é = 1", "unexpected character 'é'", "é");
        assert_err("a = 1abc", "malformed number '1abc'", "1abc");
        assert_err("a = 1.2.3", "malformed number '1.2.3'", "1.2.3");
        assert_err("a = 1e", "malformed number '1e'", "1e");
        assert_err("a = 1e999", "number is out of range", "1e999");
    }

    #[test]
    fn error_trailing_garbage() {
        assert_err(
            "x > 1 y",
            "unexpected 'y' after the end of the condition",
            "y",
        );
        assert_err("(a))", "unexpected ')' after the end of the condition", ")");
        assert_err(
            "a 'b'",
            "unexpected ''b'' after the end of the condition",
            "'b'",
        );
        // A lexical error is reported as such, even in trailing position.
        assert_err("x > 1 @", "unexpected character '@'", "@");
    }

    #[test]
    fn error_chained_comparisons() {
        let m = "comparisons cannot be chained; combine them with AND or use parentheses";
        assert_err("a < b < c", m, "<");
        assert_err("a IS NULL = TRUE", m, "=");
        assert_err("a = b IN (1)", m, "IN");
    }

    #[test]
    fn error_in_list_items_must_be_literals() {
        assert_err("c0 IN (a, 'b')", "IN list items must be literals", "a");
        assert_err(
            "c0 IN ('a', \"b\")",
            "IN list items must be literals",
            "\"b\"",
        );
        assert_err("c0 IN ((1))", "IN list items must be literals", "(");
        assert_err("c0 IN (-a)", "IN list items must be literals", "-");
        assert_err("c0 IN (1 + 2)", "expected ',' or ')'", "+");
        assert_err("c0 IN ()", "expected a literal value after '('", ")");
        assert_err("c0 IN (1,)", "expected a literal value after ','", ")");
        assert_err("c0 IN 'a'", "expected '(' after IN", "'a'");
        assert_err("c0 IN ('a", "unterminated string literal", "'a");
        assert_err("c0 IN (1e999)", "number is out of range", "1e999");
        assert_err("c0 IN (-1e999)", "number is out of range", "-1e999");
    }

    #[test]
    fn error_other_constructs() {
        assert_err("a LIKE b", "LIKE pattern must be a string literal", "b");
        assert_err("a LIKE 5", "LIKE pattern must be a string literal", "5");
        assert_err("a NOT LIKE", "LIKE pattern must be a string literal", "");
        assert_err("a IS 1", "expected NULL or NOT NULL after IS", "1");
        assert_err("a IS NOT TRUE", "expected NULL after IS NOT", "TRUE");
        assert_err(
            "a BETWEEN 1 OR 2",
            "expected AND between the bounds of BETWEEN",
            "OR",
        );
        assert_err("a NOT b", "expected IN, BETWEEN or LIKE after NOT", "b");
        assert_err("a NOT", "expected IN, BETWEEN or LIKE after NOT", "");
        assert_err("(a = 1", "expected ')'", "");
        assert_err("(a = 1 b", "expected ')'", "b");
    }

    #[test]
    fn error_empty_condition() {
        assert_err("", "condition is empty", "");
        assert_err("  \n ", "condition is empty", "");
    }

    #[test]
    fn error_source_too_long() {
        let src = format!("a = {}", "1".repeat(MAX_SOURCE_LEN));
        let e = err(&src);
        assert!(
            e.message.starts_with("condition is too long"),
            "{}",
            e.message
        );
        assert_eq!(e.span, Span::new(MAX_SOURCE_LEN, src.len()));
        // Exactly at the limit is fine.
        let src = format!("a = '{}'", "x".repeat(MAX_SOURCE_LEN - 6));
        assert_eq!(src.len(), MAX_SOURCE_LEN);
        assert!(parse(&src).is_ok());
        // The span stays on a character boundary.
        let src = "é".repeat(MAX_SOURCE_LEN);
        let e = err(&src);
        assert!(span_ok(&src, e.span));
        e.render();
    }

    #[test]
    fn depth_limit() {
        let nested = |open: &str, close: &str, depth: usize| {
            format!("{}x{}", open.repeat(depth), close.repeat(depth))
        };
        let msg = format!("condition is nested too deeply (at most {MAX_DEPTH} levels)");
        for (open, close) in [("(", ")"), ("NOT ", ""), ("-", ""), ("abs(", ")")] {
            assert!(parse(&nested(open, close, MAX_DEPTH)).is_ok(), "{open}");
            let src = nested(open, close, MAX_DEPTH + 1);
            let e = err(&src);
            assert_eq!(e.message, msg, "{open}");
            let token = open.trim_end();
            let at = token.len() * MAX_DEPTH + (open.len() - token.len()) * MAX_DEPTH;
            let at = if open == "abs(" { at + 3 } else { at };
            assert_eq!(e.span.start, at, "{open}");
        }
        // Mixed nesting counts together; siblings do not.
        assert!(parse(&nested("(NOT -", ")", 22)).is_err());
        assert!(parse(&nested("(NOT -", ")", 21)).is_ok());
        let wide = vec![nested("(", ")", 60); 30].join(" AND ");
        assert!(parse(&wide).is_ok());
        // Far deeper than the limit: an error, not a stack overflow.
        let deep = "(".repeat(MAX_SOURCE_LEN);
        assert_eq!(err(&deep).message, msg);
    }

    #[test]
    fn in_list_item_limit() {
        let mut parser = Parser::new("x IN (1, 2, 3)", 3);
        assert!(parser.parse_or().is_ok());
        let e = Parser::new("x IN (1, 2, 3, -4)", 3)
            .parse_condition()
            .unwrap_err();
        assert_eq!(e.message, "IN list has more than 3 items");
        assert_eq!(e.span, Span::new(15, 17));
        // The real limit is far beyond what fits in the maximum source length.
        let items = vec!["1"; MAX_SOURCE_LEN / 2 - 5].join(",");
        assert!(parse(&format!("x IN ({items})")).is_ok());
    }

    #[test]
    fn tree_height_limit() {
        let msg = format!(
            "condition is too complex: its expression tree is more than {MAX_TREE_HEIGHT} \
             levels deep (split it into several conditions)"
        );
        for op in ["+", "*", " AND ", " OR ", " % "] {
            // A chain of n operands is a left-deep tree of height n.
            let src = vec!["a"; MAX_TREE_HEIGHT].join(op);
            let e = parse(&src).unwrap();
            assert_eq!(e.columns().len(), MAX_TREE_HEIGHT);
            assert!(e.to_string().len() > src.len());
            assert_eq!(e.clone(), e);
            assert!(!format!("{e:?}").is_empty());

            let src = vec!["a"; MAX_TREE_HEIGHT + 1].join(op);
            let e = err(&src);
            assert_eq!(e.message, msg);
            // The error points at the last operator.
            let last = src.rfind(op.trim()).unwrap();
            assert_eq!(e.span, Span::new(last, last + op.trim().len()));

            // As long as the source allows: an error, not a stack overflow.
            let count = (MAX_SOURCE_LEN - 1) / (op.len() + 1);
            assert_eq!(err(&vec!["a"; count].join(op)).message, msg);
        }
        // Height adds up across nesting: NOT over a parenthesized chain.
        let chain = vec!["a"; MAX_TREE_HEIGHT - 1].join(" OR ");
        assert!(parse(&format!("NOT ({chain})")).is_ok());
        assert_eq!(err(&format!("NOT NOT ({chain})")).message, msg);
        assert_eq!(err(&format!("NOT NOT ({chain})")).span, Span::new(0, 3));
        assert!(parse(&format!(
            "abs({})",
            vec!["a"; MAX_TREE_HEIGHT - 1].join("+")
        ))
        .is_ok());
        assert!(parse(&format!("abs({})", vec!["a"; MAX_TREE_HEIGHT].join("+"))).is_err());
        // Sibling chains do not add up.
        let src = format!("({chain}) AND ({chain})");
        assert!(parse(&src).is_ok());
    }

    // -- error rendering ----------------------------------------------------------------------

    #[test]
    fn error_display_and_render() {
        let e = err("f10 > AND x");
        assert_eq!(e.to_string(), "expected a value after '>' at column 7");
        assert_eq!(
            e.render(),
            "expected a value after '>' at column 7\n  | f10 > AND x\n  |       ^^^"
        );
        // Columns count characters, not bytes.
        let e = err("'é' = é");
        assert_eq!(e.span, Span::new(7, 9));
        assert_eq!(e.to_string(), "unexpected character 'é' at column 7");
        assert_eq!(
            e.render(),
            "unexpected character 'é' at column 7\n  | 'é' = é\n  |       ^"
        );
        // Multi-line sources name the line and show only it; tabs keep the caret aligned.
        let e = err("a > 1\nAND\tb >> 2");
        assert_eq!(e.to_string(), "unexpected token '>>' at line 2, column 7");
        assert_eq!(
            e.render(),
            "unexpected token '>>' at line 2, column 7\n  | AND\tb >> 2\n  |    \t  ^^"
        );
        // A span running past its line is clipped to it.
        let e = err("a = 'x\ny");
        assert_eq!(
            e.render(),
            "unterminated string literal at line 1, column 5\n  | a = 'x\n  |     ^^"
        );
    }

    #[test]
    fn error_new_accepts_any_span() {
        let e = ConditionError::new("boom", Span::new(2, 1000), "aé\u{1b}b");
        assert_eq!(e.to_string(), "boom at column 2");
        assert_eq!(e.render(), "boom at column 2\n  | aé\u{FFFD}b\n  |  ^^^");
        let e = ConditionError::new("boom", Span::new(99, 3), "ab");
        assert_eq!(e.to_string(), "boom at column 3");
        assert_eq!(e.render(), "boom at column 3\n  | ab\n  |   ^");
        let e = ConditionError::new(String::from("x"), Span::default(), "");
        assert_eq!(e.render(), "x at column 1\n  | \n  | ^");
    }

    #[test]
    fn error_messages_escape_control_characters() {
        let e = err("a = 1 \u{7}");
        assert_eq!(e.message, "unexpected character '\\u{7}'");
        let long = format!("x > 1 {}", "y".repeat(40));
        assert_eq!(
            err(&long).message,
            format!(
                "unexpected '{}...' after the end of the condition",
                "y".repeat(24)
            )
        );
    }

    // -- properties ---------------------------------------------------------------------------

    fn check_any_input(src: &str) {
        match parse(src) {
            Ok(e) => {
                let mut spans = Vec::new();
                all_spans(&e, &mut spans);
                for s in spans {
                    assert!(span_ok(src, s), "bad span {s:?} in {src:?}");
                }
                for (_, s) in e.columns() {
                    assert!(span_ok(src, s));
                }
                let shown = e.to_string();
                if let Ok(again) = parse(&shown) {
                    assert_eq!(strip(&again), strip(&e), "{src:?} -> {shown:?}");
                }
            }
            Err(e) => {
                assert!(
                    span_ok(src, e.span),
                    "bad error span {:?} in {src:?}",
                    e.span
                );
                assert!(!e.message.is_empty());
                let rendered = e.render();
                assert!(rendered.contains('^'));
                assert_eq!(rendered.lines().count(), 3);
            }
        }
    }

    fn arb_token() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "a",
            "b_1",
            "x.y",
            "\"q c\"",
            "`t`",
            "1",
            "2.5",
            ".5",
            "1e3",
            "9999999999999999999",
            "'s'",
            "'it''s'",
            "'",
            "\"",
            "TRUE",
            "null",
            "AND",
            "or",
            "NOT",
            "IN",
            "IS",
            "BETWEEN",
            "LIKE",
            "abs",
            "coalesce",
            "length",
            "foo",
            "(",
            ")",
            ",",
            "=",
            "==",
            "!=",
            "<>",
            "<",
            "<=",
            ">",
            ">=",
            ">>",
            "+",
            "-",
            "*",
            "/",
            "%",
            "!",
            "é",
            "\n",
            " ",
            "@",
        ])
    }

    fn arb_name() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-zA-Z_][a-zA-Z0-9_.]{0,6}",
            "\\PC{1,6}",
            Just("and".to_owned()),
            Just("Null".to_owned()),
            Just("abs".to_owned()),
            Just("a\"b".to_owned()),
            Just("1x".to_owned()),
        ]
    }

    fn arb_string() -> impl Strategy<Value = String> {
        prop_oneof!["\\PC{0,6}", "[ 'a%_\"]{0,6}", ".{0,4}"]
    }

    /// Literals that stand alone in an expression: non-negative numbers (a negative one reads
    /// back as a negation).
    fn arb_expr_literal() -> impl Strategy<Value = Literal> {
        use prop::num::f64::{NORMAL, POSITIVE, SUBNORMAL, ZERO};
        prop_oneof![
            (0..=i64::MAX).prop_map(Literal::Int),
            (POSITIVE | NORMAL | SUBNORMAL | ZERO).prop_map(Literal::Float),
            arb_string().prop_map(Literal::Str),
            any::<bool>().prop_map(Literal::Bool),
            Just(Literal::Null),
        ]
    }

    fn arb_list_literal() -> impl Strategy<Value = Literal> {
        use prop::num::f64::{NEGATIVE, NORMAL, POSITIVE, SUBNORMAL, ZERO};
        prop_oneof![
            any::<i64>().prop_map(Literal::Int),
            (POSITIVE | NEGATIVE | NORMAL | SUBNORMAL | ZERO).prop_map(Literal::Float),
            arb_string().prop_map(Literal::Str),
            any::<bool>().prop_map(Literal::Bool),
            Just(Literal::Null),
        ]
    }

    fn arb_expr() -> impl Strategy<Value = Expr> {
        let z = Span::default();
        let leaf = prop_oneof![
            arb_name().prop_map(move |name| Expr::Column { name, span: z }),
            arb_expr_literal().prop_map(move |value| Expr::Literal { value, span: z }),
        ];
        leaf.prop_recursive(5, 48, 4, move |inner| {
            let boxed = inner.clone().prop_map(Box::new);
            let op = prop::sample::select(vec![
                BinOp::Eq,
                BinOp::NotEq,
                BinOp::Lt,
                BinOp::LtEq,
                BinOp::Gt,
                BinOp::GtEq,
                BinOp::And,
                BinOp::Or,
                BinOp::Add,
                BinOp::Sub,
                BinOp::Mul,
                BinOp::Div,
                BinOp::Mod,
            ]);
            let unary_func =
                prop::sample::select(vec![Func::Abs, Func::Length, Func::Lower, Func::Upper]);
            prop_oneof![
                (op, boxed.clone(), boxed.clone()).prop_map(move |(op, left, right)| {
                    Expr::Binary {
                        op,
                        left,
                        right,
                        span: z,
                    }
                }),
                boxed
                    .clone()
                    .prop_map(move |expr| Expr::Not { expr, span: z }),
                boxed
                    .clone()
                    .prop_map(move |expr| Expr::Neg { expr, span: z }),
                (
                    boxed.clone(),
                    prop::collection::vec(arb_list_literal(), 1..4),
                    any::<bool>()
                )
                    .prop_map(move |(expr, list, negated)| Expr::InList {
                        expr,
                        list,
                        negated,
                        span: z
                    }),
                (boxed.clone(), any::<bool>()).prop_map(move |(expr, negated)| Expr::IsNull {
                    expr,
                    negated,
                    span: z
                }),
                (boxed.clone(), boxed.clone(), boxed.clone(), any::<bool>()).prop_map(
                    move |(expr, low, high, negated)| Expr::Between {
                        expr,
                        low,
                        high,
                        negated,
                        span: z
                    }
                ),
                (boxed.clone(), arb_string(), any::<bool>()).prop_map(
                    move |(expr, pattern, negated)| Expr::Like {
                        expr,
                        pattern,
                        negated,
                        span: z
                    }
                ),
                (unary_func, inner.clone()).prop_map(move |(func, arg)| Expr::Call {
                    func,
                    args: vec![arg],
                    span: z
                }),
                prop::collection::vec(inner, 2..4).prop_map(move |args| Expr::Call {
                    func: Func::Coalesce,
                    args,
                    span: z
                }),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn arbitrary_strings_never_panic(src in any::<String>()) {
            check_any_input(&src);
        }

        #[test]
        fn arbitrary_ascii_never_panics(src in "[ -~\\t\\n]{0,64}") {
            check_any_input(&src);
        }

        #[test]
        fn token_soup_never_panics(tokens in prop::collection::vec(arb_token(), 0..40)) {
            check_any_input(&tokens.join(" "));
            check_any_input(&tokens.concat());
        }

        #[test]
        fn deep_or_long_inputs_never_panic(
            token in arb_token(),
            count in 0usize..3000,
            tail in prop::collection::vec(arb_token(), 0..8),
        ) {
            let src = format!("{}{}", token.repeat(count), tail.concat());
            check_any_input(&src);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn display_round_trips(e in arb_expr()) {
            let shown = e.to_string();
            prop_assume!(shown.len() <= MAX_SOURCE_LEN);
            let parsed = parse(&shown).map_err(|err| {
                TestCaseError::fail(format!("{shown:?} does not parse:\n{}", err.render()))
            })?;
            prop_assert_eq!(strip(&parsed), e);
            prop_assert_eq!(parsed.to_string(), shown.clone());
            let mut spans = Vec::new();
            all_spans(&parsed, &mut spans);
            for s in spans {
                prop_assert!(span_ok(&shown, s));
            }
        }
    }
}
