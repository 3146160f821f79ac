//! Conditional-group expressions.
//!
//! RaspiSMS evaluates these with Symfony ExpressionLanguage 5 on PHP 8, so
//! this is a small hand-written parser (Symfony's precedence climbing) and an
//! evaluator that reproduces PHP's loose comparisons, truthiness and string
//! conversions. Only the variables `contact` and `contact_metas` and the
//! functions of RaspiSMS's `ExpressionProvider` exist.

use std::borrow::Cow;
use std::cmp::Ordering;

use jiff::civil::{Date, DateTime, Time};
use serde_json::Value as Json;

/// Longest accepted source, in characters.
pub const MAX_SOURCE_CHARS: usize = 1000;
/// Deepest accepted syntax tree: bounds the recursion of parsing,
/// evaluation, cloning and dropping.
const MAX_DEPTH: usize = 100;
/// Largest array the `..` operator may build.
const MAX_RANGE: usize = 10_000;
/// Compiled-size cap for user regexes.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ConditionError {
    /// Parse, validation or evaluation error, with a human-readable message.
    #[error("{0}")]
    Invalid(String),
}

fn invalid(msg: impl Into<String>) -> ConditionError {
    ConditionError::Invalid(msg.into())
}

type Result<T, E = ConditionError> = std::result::Result<T, E>;

/// A parsed and validated condition, ready to be evaluated against contacts.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    root: Expr,
}

impl Condition {
    /// Parses and validates `source`: only the variables `contact` and
    /// `contact_metas` and RaspiSMS's functions, with the right arity.
    /// A constant `matches` pattern is compiled here, so an invalid regex is
    /// reported at save time.
    pub fn parse(source: &str) -> Result<Condition> {
        let chars: Vec<char> = source.chars().collect();
        if chars.len() > MAX_SOURCE_CHARS {
            return Err(invalid(format!(
                "condition is too long ({} characters, at most {MAX_SOURCE_CHARS})",
                chars.len()
            )));
        }
        let tokens = lex(&chars)?;
        if matches!(tokens.first(), Some(t) if t.tok == Tok::End) {
            return Err(invalid("condition is empty"));
        }
        let mut parser = Parser {
            tokens,
            pos: 0,
            depth: 0,
        };
        let root = parser.parse_expression(0)?;
        let end = parser.current();
        if end.tok != Tok::End {
            return Err(unexpected(end));
        }
        Ok(Condition { root })
    }

    /// Evaluates against one contact, "today" being the local date.
    /// `contact` is the contact's data object, `contact_metas` the object with
    /// `id`, `name`, `number`, `created_at` and `updated_at`.
    pub fn evaluate(&self, contact: &Json, contact_metas: &Json) -> Result<Json> {
        let now = jiff::Zoned::now().datetime();
        self.eval_with(contact, contact_metas, now)
    }

    /// Like [`evaluate`](Self::evaluate) with a fixed "today" (its midnight
    /// is "now" for `date('now')`).
    pub fn evaluate_at(&self, contact: &Json, contact_metas: &Json, today: Date) -> Result<Json> {
        self.eval_with(contact, contact_metas, today.to_datetime(Time::midnight()))
    }

    /// RaspiSMS semantics: the contact matches when evaluation succeeds and
    /// the result is truthy for PHP; any evaluation error is a non-match.
    pub fn matches(&self, contact: &Json, contact_metas: &Json) -> bool {
        let now = jiff::Zoned::now().datetime();
        self.matches_with(contact, contact_metas, now)
    }

    /// Like [`matches`](Self::matches) with a fixed "today".
    pub fn matches_at(&self, contact: &Json, contact_metas: &Json, today: Date) -> bool {
        self.matches_with(contact, contact_metas, today.to_datetime(Time::midnight()))
    }

    fn eval_with(&self, contact: &Json, metas: &Json, now: DateTime) -> Result<Json> {
        let ctx = Ctx {
            contact,
            metas,
            now,
        };
        Ok(self.root.eval(&ctx)?.into_json())
    }

    fn matches_with(&self, contact: &Json, metas: &Json, now: DateTime) -> bool {
        let ctx = Ctx {
            contact,
            metas,
            now,
        };
        self.root.eval(&ctx).is_ok_and(|v| v.truthy())
    }
}

// ---------------------------------------------------------------------------
// Lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Int(i64),
    Float(f64),
    Str(String),
    Name(String),
    Op(&'static str),
    Punct(char),
    End,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    /// Character offset in the source.
    pos: usize,
    /// Source text, for error messages.
    text: String,
}

fn unexpected(t: &Token) -> ConditionError {
    if t.tok == Tok::End {
        invalid(format!("unexpected end of condition at position {}", t.pos))
    } else {
        invalid(format!(
            "unexpected token `{}` at position {}",
            t.text, t.pos
        ))
    }
}

/// Symbolic operators, longest first so that `!==` wins over `!=` and `!`.
const SYMBOL_OPS: &[&str] = &[
    "!==", "===", "==", "!=", ">=", "<=", "**", "..", "&&", "||", "*", "~", "%", "/", ">", "|",
    "!", "^", "&", "+", "<", "-",
];
/// Word operators; like Symfony they must follow the start, a space or `(`.
const WORD_OPS: &[&str] = &["not", "and", "or", "in", "matches"];

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || !c.is_ascii()
}

fn is_name_char(c: char) -> bool {
    is_name_start(c) || c.is_ascii_digit()
}

fn lex(src: &[char]) -> Result<Vec<Token>> {
    let mut tokens = Vec::new();
    let mut i = 0;
    let text = |a: usize, b: usize| src[a..b].iter().collect::<String>();
    while i < src.len() {
        let c = src[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        if c.is_ascii_digit() {
            i = lex_number(src, i, &mut tokens)?;
            continue;
        }
        if c == '\'' || c == '"' {
            let (s, end) = lex_string(src, i)?;
            i = end;
            tokens.push(Token {
                tok: Tok::Str(s),
                pos: start,
                text: text(start, i),
            });
            continue;
        }
        let after_sep = start == 0 || src[start - 1].is_whitespace() || src[start - 1] == '(';
        if after_sep && let Some(len) = word_op_at(src, i, "not in") {
            i += len;
            tokens.push(Token {
                tok: Tok::Op("not in"),
                pos: start,
                text: text(start, i),
            });
            continue;
        }
        if after_sep
            && let Some(op) = WORD_OPS
                .iter()
                .copied()
                .find(|op| word_op_at(src, i, op).is_some())
        {
            i += op.chars().count();
            tokens.push(Token {
                tok: Tok::Op(op),
                pos: start,
                text: op.to_string(),
            });
            continue;
        }
        if let Some(op) = SYMBOL_OPS
            .iter()
            .copied()
            .find(|op| starts_with(src, i, op))
        {
            i += op.len();
            tokens.push(Token {
                tok: Tok::Op(op),
                pos: start,
                text: op.to_string(),
            });
            continue;
        }
        if "()[]{}.,?:".contains(c) {
            i += 1;
            tokens.push(Token {
                tok: Tok::Punct(c),
                pos: start,
                text: c.to_string(),
            });
            continue;
        }
        if is_name_start(c) {
            while i < src.len() && is_name_char(src[i]) {
                i += 1;
            }
            let name = text(start, i);
            tokens.push(Token {
                tok: Tok::Name(name.clone()),
                pos: start,
                text: name,
            });
            continue;
        }
        return Err(invalid(format!(
            "unexpected character `{c}` at position {start}"
        )));
    }
    tokens.push(Token {
        tok: Tok::End,
        pos: src.len(),
        text: String::new(),
    });
    Ok(tokens)
}

fn starts_with(src: &[char], i: usize, s: &str) -> bool {
    (i..).zip(s.chars()).all(|(k, c)| src.get(k) == Some(&c))
}

/// Length of the word operator `op` at `i` (`not in` may span several
/// spaces), if followed by a space or `(` like Symfony requires.
fn word_op_at(src: &[char], i: usize, op: &str) -> Option<usize> {
    let mut k = i;
    for (n, word) in op.split(' ').enumerate() {
        if n > 0 {
            let ws = src[k..].iter().take_while(|c| c.is_whitespace()).count();
            if ws == 0 {
                return None;
            }
            k += ws;
        }
        if !starts_with(src, k, word) {
            return None;
        }
        k += word.len();
    }
    match src.get(k) {
        Some(c) if c.is_whitespace() || *c == '(' => Some(k - i),
        _ => None,
    }
}

fn lex_number(src: &[char], start: usize, tokens: &mut Vec<Token>) -> Result<usize> {
    let digits = |mut k: usize| {
        while k < src.len() && src[k].is_ascii_digit() {
            k += 1;
        }
        k
    };
    let mut i = digits(start);
    let mut float = false;
    // `1..3` is a range, not `1.` followed by `.3`.
    if src.get(i) == Some(&'.') && src.get(i + 1).is_some_and(char::is_ascii_digit) {
        i = digits(i + 1);
        float = true;
    }
    if matches!(src.get(i), Some('e' | 'E')) {
        let mut k = i + 1;
        if matches!(src.get(k), Some('+' | '-')) {
            k += 1;
        }
        if src.get(k).is_some_and(char::is_ascii_digit) {
            i = digits(k);
            float = true;
        }
    }
    let text: String = src[start..i].iter().collect();
    let tok = match (float, text.parse::<i64>()) {
        (false, Ok(n)) => Tok::Int(n),
        // Like PHP, integers too large for i64 become floats.
        _ => Tok::Float(
            text.parse::<f64>()
                .map_err(|_| invalid(format!("invalid number `{text}` at position {start}")))?,
        ),
    };
    tokens.push(Token {
        tok,
        pos: start,
        text,
    });
    Ok(i)
}

/// A quoted string with PHP `stripcslashes` escapes; returns the value and
/// the index after the closing quote.
fn lex_string(src: &[char], start: usize) -> Result<(String, usize)> {
    let quote = src[start];
    let mut out = String::new();
    let mut i = start + 1;
    while i < src.len() {
        let c = src[i];
        if c == quote {
            return Ok((out, i + 1));
        }
        if c != '\\' {
            out.push(c);
            i += 1;
            continue;
        }
        let Some(&e) = src.get(i + 1) else { break };
        i += 2;
        match e {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            'v' => out.push('\u{0b}'),
            'f' => out.push('\u{0c}'),
            'a' => out.push('\u{07}'),
            'b' => out.push('\u{08}'),
            'x' if src.get(i).is_some_and(char::is_ascii_hexdigit) => {
                let mut v = 0u32;
                let mut n = 0;
                while n < 2
                    && let Some(d) = src.get(i).and_then(|c| c.to_digit(16))
                {
                    v = v * 16 + d;
                    i += 1;
                    n += 1;
                }
                out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
            }
            '0'..='7' => {
                let mut v = e.to_digit(8).unwrap_or(0);
                let mut n = 1;
                while n < 3
                    && let Some(d) = src.get(i).and_then(|c| c.to_digit(8))
                {
                    v = v * 8 + d;
                    i += 1;
                    n += 1;
                }
                out.push(char::from_u32(v & 0xff).unwrap_or('\u{fffd}'));
            }
            other => out.push(other),
        }
    }
    Err(invalid(format!(
        "unterminated string starting at position {start}"
    )))
}

// ---------------------------------------------------------------------------
// Syntax tree

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Var {
    Contact,
    Metas,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    Exists,
    IsBirthday,
    Lower,
    Upper,
    Substr,
    Strlen,
    Abs,
    Date,
    DateFromFormat,
    Intval,
    Boolval,
    Count,
    Constant,
}

/// Name, function, accepted argument counts (the PHP signatures').
const FUNCTIONS: &[(&str, Func, usize, usize)] = &[
    ("exists", Func::Exists, 1, 1),
    ("is_birthday", Func::IsBirthday, 1, 1),
    ("lower", Func::Lower, 1, 2),
    ("upper", Func::Upper, 1, 2),
    ("substr", Func::Substr, 2, 4),
    ("strlen", Func::Strlen, 1, 2),
    ("abs", Func::Abs, 1, 1),
    ("date", Func::Date, 0, 1),
    ("date_from_format", Func::DateFromFormat, 2, 2),
    ("intval", Func::Intval, 1, 2),
    ("boolval", Func::Boolval, 1, 1),
    ("count", Func::Count, 1, 2),
    ("constant", Func::Constant, 1, 1),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UnOp {
    Not,
    Neg,
    Plus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BinOp {
    Or,
    And,
    BitOr,
    BitXor,
    BitAnd,
    Eq,
    Identical,
    NotEq,
    NotIdentical,
    Lt,
    Gt,
    Ge,
    Le,
    In,
    NotIn,
    Range,
    Add,
    Sub,
    Concat,
    Mul,
    Div,
    Mod,
    Pow,
}

/// Symfony 5's binary operators: (operator, precedence, right-associative).
const BINARY_OPS: &[(&str, BinOp, u16, bool)] = &[
    ("or", BinOp::Or, 10, false),
    ("||", BinOp::Or, 10, false),
    ("and", BinOp::And, 15, false),
    ("&&", BinOp::And, 15, false),
    ("|", BinOp::BitOr, 16, false),
    ("^", BinOp::BitXor, 17, false),
    ("&", BinOp::BitAnd, 18, false),
    ("==", BinOp::Eq, 20, false),
    ("===", BinOp::Identical, 20, false),
    ("!=", BinOp::NotEq, 20, false),
    ("!==", BinOp::NotIdentical, 20, false),
    ("<", BinOp::Lt, 20, false),
    (">", BinOp::Gt, 20, false),
    (">=", BinOp::Ge, 20, false),
    ("<=", BinOp::Le, 20, false),
    ("not in", BinOp::NotIn, 20, false),
    ("in", BinOp::In, 20, false),
    // `matches` is handled apart: its pattern may be compiled at parse time.
    ("matches", BinOp::Eq, 20, false),
    ("..", BinOp::Range, 25, false),
    ("+", BinOp::Add, 30, false),
    ("-", BinOp::Sub, 30, false),
    ("~", BinOp::Concat, 40, false),
    ("*", BinOp::Mul, 60, false),
    ("/", BinOp::Div, 60, false),
    ("%", BinOp::Mod, 60, false),
    ("**", BinOp::Pow, 200, true),
];

/// Symfony 5's unary operators and their precedence.
const UNARY_OPS: &[(&str, UnOp, u16)] = &[
    ("not", UnOp::Not, 50),
    ("!", UnOp::Not, 50),
    ("-", UnOp::Neg, 500),
    ("+", UnOp::Plus, 500),
];

/// A compiled regex; compared by pattern so that `Condition` can be `PartialEq`.
#[derive(Debug, Clone)]
struct Pattern(regex::Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Expr {
    kind: Kind,
    depth: usize,
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Lit(Value),
    Array(Vec<Expr>),
    Hash(Vec<(String, Expr)>),
    Var(Var),
    Attr(Box<Expr>, String),
    Index(Box<Expr>, Box<Expr>),
    /// `.format(...)` on a date, the only method allowed.
    Format(Box<Expr>, Vec<Expr>),
    Call(Func, Vec<Expr>),
    Unary(UnOp, Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Matches(Box<Expr>, Box<Expr>, Option<Pattern>),
    /// `c ? a : b`; `a` is `None` for `c ?: b`, whose value is `c` itself
    /// (evaluated once: cloning `c` would let nested `?:` grow exponentially).
    Cond(Box<Expr>, Option<Box<Expr>>, Box<Expr>),
}

/// Builds a node, refusing trees deeper than [`MAX_DEPTH`].
fn node(kind: Kind) -> Result<Expr> {
    let deepest = |xs: &[Expr]| xs.iter().map(|e| e.depth).max().unwrap_or(0);
    let children = match &kind {
        Kind::Lit(_) | Kind::Var(_) => 0,
        Kind::Array(xs) | Kind::Call(_, xs) => deepest(xs),
        Kind::Hash(xs) => xs.iter().map(|(_, e)| e.depth).max().unwrap_or(0),
        Kind::Attr(e, _) | Kind::Unary(_, e) => e.depth,
        Kind::Format(e, xs) => e.depth.max(deepest(xs)),
        Kind::Index(a, b) | Kind::Binary(_, a, b) | Kind::Matches(a, b, _) => a.depth.max(b.depth),
        Kind::Cond(a, b, c) => a.depth.max(b.as_ref().map_or(0, |b| b.depth)).max(c.depth),
    };
    let depth = children + 1;
    if depth > MAX_DEPTH {
        return Err(too_deep());
    }
    Ok(Expr { kind, depth })
}

fn too_deep() -> ConditionError {
    invalid(format!(
        "condition is too deeply nested (at most {MAX_DEPTH} levels)"
    ))
}

// ---------------------------------------------------------------------------
// Parser (Symfony's Parser::parseExpression and friends)

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    /// Current recursion depth, bounded so that `((((…` can't overflow the stack.
    depth: usize,
}

impl Parser {
    fn current(&self) -> &Token {
        // The token list always ends with `End`, which is never consumed.
        let last = self.tokens.len().saturating_sub(1);
        &self.tokens[self.pos.min(last)]
    }

    fn advance(&mut self) {
        if self.current().tok != Tok::End {
            self.pos += 1;
        }
    }

    fn is_punct(&self, c: char) -> bool {
        self.current().tok == Tok::Punct(c)
    }

    fn expect_punct(&mut self, c: char) -> Result<()> {
        if self.is_punct(c) {
            self.advance();
            Ok(())
        } else {
            Err(unexpected(self.current()))
        }
    }

    fn parse_expression(&mut self, min_prec: u16) -> Result<Expr> {
        self.depth += 1;
        let result = if self.depth > MAX_DEPTH {
            Err(too_deep())
        } else {
            self.parse_expression_inner(min_prec)
        };
        self.depth -= 1;
        result
    }

    fn parse_expression_inner(&mut self, min_prec: u16) -> Result<Expr> {
        let mut expr = self.primary()?;
        while let Tok::Op(op) = self.current().tok {
            let Some(&(name, bin, prec, right)) = BINARY_OPS.iter().find(|o| o.0 == op) else {
                break;
            };
            if prec < min_prec {
                break;
            }
            self.advance();
            let rhs = self.parse_expression(if right { prec } else { prec + 1 })?;
            expr = if name == "matches" {
                matches_node(expr, rhs)?
            } else {
                node(Kind::Binary(bin, Box::new(expr), Box::new(rhs)))?
            };
        }
        if min_prec == 0 {
            expr = self.conditional(expr)?;
        }
        Ok(expr)
    }

    /// `a ? b : c`, `a ?: b` and Symfony's `a ? b` (null when false).
    fn conditional(&mut self, mut expr: Expr) -> Result<Expr> {
        while self.is_punct('?') {
            self.advance();
            let (then, otherwise) = if self.is_punct(':') {
                self.advance();
                (None, self.parse_expression(0)?)
            } else {
                let then = self.parse_expression(0)?;
                if self.is_punct(':') {
                    self.advance();
                    (Some(Box::new(then)), self.parse_expression(0)?)
                } else {
                    (Some(Box::new(then)), node(Kind::Lit(Value::Null))?)
                }
            };
            expr = node(Kind::Cond(Box::new(expr), then, Box::new(otherwise)))?;
        }
        Ok(expr)
    }

    fn primary(&mut self) -> Result<Expr> {
        if let Tok::Op(op) = self.current().tok
            && let Some(&(_, un, prec)) = UNARY_OPS.iter().find(|o| o.0 == op)
        {
            self.advance();
            let operand = self.parse_expression(prec)?;
            let expr = node(Kind::Unary(un, Box::new(operand)))?;
            return self.postfix(expr);
        }
        if self.is_punct('(') {
            self.advance();
            let expr = self.parse_expression(0)?;
            self.expect_punct(')')?;
            return self.postfix(expr);
        }
        let token = self.current().clone();
        let expr = match token.tok {
            Tok::Name(ref name) => {
                self.advance();
                match name.to_ascii_lowercase().as_str() {
                    "true" => node(Kind::Lit(Value::Bool(true)))?,
                    "false" => node(Kind::Lit(Value::Bool(false)))?,
                    "null" => node(Kind::Lit(Value::Null))?,
                    _ if self.is_punct('(') => self.call(name, token.pos)?,
                    _ => match name.as_str() {
                        "contact" => node(Kind::Var(Var::Contact))?,
                        "contact_metas" => node(Kind::Var(Var::Metas))?,
                        _ => {
                            return Err(invalid(format!(
                                "unknown variable `{name}` at position {} (allowed: contact, contact_metas)",
                                token.pos
                            )));
                        }
                    },
                }
            }
            Tok::Int(n) => {
                self.advance();
                node(Kind::Lit(Value::Int(n)))?
            }
            Tok::Float(f) => {
                self.advance();
                node(Kind::Lit(Value::Float(f)))?
            }
            Tok::Str(ref s) => {
                self.advance();
                node(Kind::Lit(Value::Str(s.clone())))?
            }
            Tok::Punct('[') => {
                self.advance();
                let items = self.list(']', |p| p.parse_expression(0))?;
                node(Kind::Array(items))?
            }
            Tok::Punct('{') => {
                self.advance();
                let items = self.list('}', Parser::hash_entry)?;
                node(Kind::Hash(items))?
            }
            _ => return Err(unexpected(&token)),
        };
        self.postfix(expr)
    }

    fn call(&mut self, name: &str, pos: usize) -> Result<Expr> {
        let Some(&(_, func, min, max)) = FUNCTIONS.iter().find(|f| f.0 == name) else {
            let allowed: Vec<&str> = FUNCTIONS.iter().map(|f| f.0).collect();
            return Err(invalid(format!(
                "unknown function `{name}` at position {pos} (allowed: {})",
                allowed.join(", ")
            )));
        };
        let args = self.arguments()?;
        if args.len() < min || args.len() > max {
            let expected = match (min, max) {
                (a, b) if a == b => format!("{a}"),
                (a, b) => format!("{a} to {b}"),
            };
            return Err(invalid(format!(
                "function `{name}` at position {pos} expects {expected} argument(s), got {}",
                args.len()
            )));
        }
        node(Kind::Call(func, args))
    }

    fn arguments(&mut self) -> Result<Vec<Expr>> {
        self.expect_punct('(')?;
        let mut args = Vec::new();
        while !self.is_punct(')') {
            if !args.is_empty() {
                self.expect_punct(',')?;
            }
            args.push(self.parse_expression(0)?);
        }
        self.advance();
        Ok(args)
    }

    /// Comma-separated items up to `close`, trailing comma allowed (Symfony).
    fn list<T>(
        &mut self,
        close: char,
        mut item: impl FnMut(&mut Self) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut items = Vec::new();
        while !self.is_punct(close) {
            if !items.is_empty() {
                self.expect_punct(',')?;
                if self.is_punct(close) {
                    break;
                }
            }
            items.push(item(self)?);
        }
        self.advance();
        Ok(items)
    }

    fn hash_entry(&mut self) -> Result<(String, Expr)> {
        let token = self.current().clone();
        let key = match token.tok {
            Tok::Name(s) | Tok::Str(s) => s,
            Tok::Int(n) => n.to_string(),
            Tok::Float(f) => php_float_string(f),
            _ => return Err(unexpected(&token)),
        };
        self.advance();
        self.expect_punct(':')?;
        Ok((key, self.parse_expression(0)?))
    }

    fn postfix(&mut self, mut expr: Expr) -> Result<Expr> {
        loop {
            if self.is_punct('.') {
                self.advance();
                let token = self.current().clone();
                let name = match &token.tok {
                    Tok::Name(n) => n.clone(),
                    // Word operators are valid property names (`contact.in`).
                    Tok::Op(op) if op.chars().all(|c| c.is_ascii_alphabetic()) => op.to_string(),
                    _ => return Err(unexpected(&token)),
                };
                self.advance();
                if self.is_punct('(') {
                    if name != "format" {
                        return Err(invalid(format!(
                            "unknown method `{name}` at position {} (only `format` on dates is allowed)",
                            token.pos
                        )));
                    }
                    let args = self.arguments()?;
                    if args.len() != 1 {
                        return Err(invalid(format!(
                            "method `format` at position {} expects 1 argument, got {}",
                            token.pos,
                            args.len()
                        )));
                    }
                    expr = node(Kind::Format(Box::new(expr), args))?;
                } else {
                    expr = node(Kind::Attr(Box::new(expr), name))?;
                }
            } else if self.is_punct('[') {
                self.advance();
                let key = self.parse_expression(0)?;
                self.expect_punct(']')?;
                expr = node(Kind::Index(Box::new(expr), Box::new(key)))?;
            } else {
                return Ok(expr);
            }
        }
    }
}

/// `matches`: a constant pattern is compiled once here, which also reports
/// invalid patterns when the condition is saved.
fn matches_node(subject: Expr, pattern: Expr) -> Result<Expr> {
    let compiled = match &pattern.kind {
        Kind::Lit(Value::Str(p)) => Some(Pattern(compile_pcre(p)?)),
        _ => None,
    };
    node(Kind::Matches(
        Box::new(subject),
        Box::new(pattern),
        compiled,
    ))
}

/// Translates a PCRE literal (`/^jo/i`, `#a|b#`, `{x}`) for the regex crate.
/// PCRE-only features (look-around, back-references) are errors.
fn compile_pcre(source: &str) -> Result<regex::Regex> {
    let s = source.trim_start();
    let mut chars = s.char_indices();
    let Some((_, open)) = chars.next() else {
        return Err(invalid("empty regular expression"));
    };
    if open.is_alphanumeric() || open == '\\' {
        return Err(invalid(format!(
            "invalid regular expression `{source}`: the delimiter must not be alphanumeric or a backslash"
        )));
    }
    let close = match open {
        '(' => ')',
        '[' => ']',
        '{' => '}',
        '<' => '>',
        c => c,
    };
    let mut nesting = 0usize;
    let mut end = None;
    while let Some((i, c)) = chars.next() {
        if c == '\\' {
            chars.next();
        } else if c == close && nesting == 0 {
            end = Some(i);
            break;
        } else if c == close {
            nesting -= 1;
        } else if c == open && open != close {
            nesting += 1;
        }
    }
    let Some(end) = end else {
        return Err(invalid(format!(
            "invalid regular expression `{source}`: no ending delimiter `{close}`"
        )));
    };
    let body = &s[open.len_utf8()..end];
    let flags = &s[end + close.len_utf8()..];
    if let Some(bad) = flags.chars().find(|f| !"imsxuUDA \n\r".contains(*f)) {
        return Err(invalid(format!(
            "invalid regular expression `{source}`: unknown modifier `{bad}`"
        )));
    }
    // PCRE's `A` anchors at the start of the subject only.
    let pattern = if flags.contains('A') {
        Cow::Owned(format!("\\A(?:{body})"))
    } else {
        Cow::Borrowed(body)
    };
    // Unicode is always on, and `$` already means end of text (`u`, `D`).
    let mut builder = regex::RegexBuilder::new(&pattern);
    builder
        .case_insensitive(flags.contains('i'))
        .multi_line(flags.contains('m'))
        .dot_matches_new_line(flags.contains('s'))
        .ignore_whitespace(flags.contains('x'))
        .swap_greed(flags.contains('U'));
    builder
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .nest_limit(100)
        .build()
        .map_err(|e| invalid(format!("invalid regular expression `{source}`: {e}")))
}

// ---------------------------------------------------------------------------
// Values and PHP semantics

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Value>),
    /// A JSON object / PHP hash, in insertion order.
    Map(Vec<(String, Value)>),
    /// A PHP `DateTime` (naive local time, like RaspiSMS).
    Date(DateTime),
}

#[derive(Debug, Clone, Copy)]
enum Num {
    I(i64),
    F(f64),
}

impl Num {
    fn as_f64(self) -> f64 {
        match self {
            Num::I(i) => i as f64,
            Num::F(f) => f,
        }
    }

    fn into_value(self) -> Value {
        match self {
            Num::I(i) => Value::Int(i),
            Num::F(f) => Value::Float(f),
        }
    }
}

fn num_cmp(a: Num, b: Num) -> Option<Ordering> {
    match (a, b) {
        (Num::I(x), Num::I(y)) => Some(x.cmp(&y)),
        _ => a.as_f64().partial_cmp(&b.as_f64()),
    }
}

impl Value {
    fn from_json(json: &Json) -> Value {
        match json {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            Json::String(s) => Value::Str(s.clone()),
            Json::Array(xs) => Value::List(xs.iter().map(Value::from_json).collect()),
            Json::Object(m) => Value::Map(
                m.iter()
                    .map(|(k, v)| (k.clone(), Value::from_json(v)))
                    .collect(),
            ),
        }
    }

    fn into_json(self) -> Json {
        match self {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(b),
            Value::Int(i) => Json::from(i),
            Value::Float(f) => serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number),
            Value::Str(s) => Json::String(s),
            Value::List(xs) => Json::Array(xs.into_iter().map(Value::into_json).collect()),
            Value::Map(m) => Json::Object(m.into_iter().map(|(k, v)| (k, v.into_json())).collect()),
            Value::Date(d) => Json::String(php_date::format(d, "Y-m-d H:i:s")),
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "string",
            Value::List(_) | Value::Map(_) => "array",
            Value::Date(_) => "date",
        }
    }

    /// PHP truthiness: false, 0, 0.0, "", "0", null and [] are false.
    fn truthy(&self) -> bool {
        match self {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !(s.is_empty() || s == "0"),
            Value::List(xs) => !xs.is_empty(),
            Value::Map(m) => !m.is_empty(),
            Value::Date(_) => true,
        }
    }

    /// PHP string conversion; arrays and dates have none.
    fn to_php_string(&self) -> Result<Cow<'_, str>> {
        Ok(match self {
            Value::Null | Value::Bool(false) => Cow::Borrowed(""),
            Value::Bool(true) => Cow::Borrowed("1"),
            Value::Int(i) => Cow::Owned(i.to_string()),
            Value::Float(f) => Cow::Owned(php_float_string(*f)),
            Value::Str(s) => Cow::Borrowed(s.as_str()),
            Value::List(_) | Value::Map(_) | Value::Date(_) => {
                return Err(invalid(format!(
                    "cannot convert {} to string",
                    self.type_name()
                )));
            }
        })
    }

    /// PHP 8 arithmetic operand conversion: non-numeric strings are a
    /// TypeError, leading-numeric ones ("12abc") are accepted.
    fn to_number(&self) -> Result<Num> {
        match self {
            Value::Null => Ok(Num::I(0)),
            Value::Bool(b) => Ok(Num::I(i64::from(*b))),
            Value::Int(i) => Ok(Num::I(*i)),
            Value::Float(f) => Ok(Num::F(*f)),
            Value::Str(s) => match numeric_prefix(s) {
                Some((n, _)) => Ok(n),
                None => Err(invalid(format!("non-numeric value `{s}` in arithmetic"))),
            },
            _ => Err(invalid(format!(
                "unsupported operand type {} in arithmetic",
                self.type_name()
            ))),
        }
    }

    /// Integer argument of a PHP function (`int` parameter, coercive mode).
    fn to_int_arg(&self, what: &str) -> Result<i64> {
        match self {
            Value::Str(s) => match parse_numeric(s) {
                Some(n) => num_to_int(n),
                None => Err(invalid(format!("{what} must be an integer, got `{s}`"))),
            },
            Value::List(_) | Value::Map(_) | Value::Date(_) => Err(invalid(format!(
                "{what} must be an integer, got {}",
                self.type_name()
            ))),
            other => num_to_int(other.to_number()?),
        }
    }
}

fn num_to_int(n: Num) -> Result<i64> {
    match n {
        Num::I(i) => Ok(i),
        Num::F(f) if f.is_finite() && f.abs() < 9.2e18 => Ok(f.trunc() as i64),
        Num::F(f) => Err(invalid(format!("{f} is out of integer range"))),
    }
}

/// Parses PHP 8's numeric prefix of `s` (leading whitespace, sign, digits,
/// fraction, exponent); returns the number and whether the whole string
/// (trailing whitespace allowed) is numeric.
fn numeric_prefix(s: &str) -> Option<(Num, bool)> {
    let b = s.as_bytes();
    let is_ws = |c: u8| matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
    let mut i = 0;
    while i < b.len() && is_ws(b[i]) {
        i += 1;
    }
    let start = i;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let mut digits = i - int_start;
    let mut is_float = false;
    if i < b.len() && b[i] == b'.' {
        let frac_start = i + 1;
        let mut k = frac_start;
        while k < b.len() && b[k].is_ascii_digit() {
            k += 1;
        }
        if digits > 0 || k > frac_start {
            digits += k - frac_start;
            i = k;
            is_float = true;
        }
    }
    if digits == 0 {
        return None;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut k = i + 1;
        if k < b.len() && (b[k] == b'+' || b[k] == b'-') {
            k += 1;
        }
        let exp_start = k;
        while k < b.len() && b[k].is_ascii_digit() {
            k += 1;
        }
        if k > exp_start {
            i = k;
            is_float = true;
        }
    }
    let text = &s[start..i];
    let num = if is_float {
        Num::F(text.parse().ok()?)
    } else {
        match text.parse::<i64>() {
            Ok(n) => Num::I(n),
            Err(_) => Num::F(text.parse().ok()?),
        }
    };
    let whole = b[i..].iter().all(|&c| is_ws(c));
    Some((num, whole))
}

/// A PHP 8 "numeric string" (whitespace around allowed).
fn parse_numeric(s: &str) -> Option<Num> {
    match numeric_prefix(s) {
        Some((n, true)) => Some(n),
        _ => None,
    }
}

/// PHP's float to string conversion (`precision` = 14, `%.14G`).
pub(crate) fn php_float_string(f: f64) -> String {
    if f.is_nan() {
        return "NAN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "INF".into() } else { "-INF".into() };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let sci = format!("{f:.13e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..14).contains(&exp) {
        let mut m = mantissa.trim_end_matches('0').to_string();
        if m.ends_with('.') {
            m.push('0');
        }
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{m}E{sign}{}", exp.abs());
    }
    let decimals = usize::try_from(13 - exp).unwrap_or(0);
    let fixed = format!("{f:.decimals$}");
    if fixed.contains('.') {
        fixed
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    } else {
        fixed
    }
}

/// PHP 8's `<=>` (zend_compare). `None` means uncomparable (every ordering
/// comparison is false).
fn php_compare(a: &Value, b: &Value) -> Result<Option<Ordering>> {
    use Value::*;
    Ok(match (a, b) {
        (Bool(_), _) | (_, Bool(_)) => Some(a.truthy().cmp(&b.truthy())),
        (Null, Null) => Some(Ordering::Equal),
        (Null, Str(s)) => Some(if s.is_empty() {
            Ordering::Equal
        } else {
            Ordering::Less
        }),
        (Str(s), Null) => Some(if s.is_empty() {
            Ordering::Equal
        } else {
            Ordering::Greater
        }),
        (Null, _) | (_, Null) => Some(a.truthy().cmp(&b.truthy())),
        (Date(x), Date(y)) => Some(x.cmp(y)),
        (Date(_), _) | (_, Date(_)) => {
            return Err(invalid(format!(
                "cannot compare {} with {}",
                a.type_name(),
                b.type_name()
            )));
        }
        (Int(_) | Float(_), Int(_) | Float(_)) => num_cmp(a.to_number()?, b.to_number()?),
        (Int(_) | Float(_), Str(s)) => match parse_numeric(s) {
            Some(n) => num_cmp(a.to_number()?, n),
            None => Some(a.to_php_string()?.as_ref().cmp(s.as_str())),
        },
        (Str(s), Int(_) | Float(_)) => match parse_numeric(s) {
            Some(n) => num_cmp(n, b.to_number()?),
            None => Some(s.as_str().cmp(b.to_php_string()?.as_ref())),
        },
        (Str(x), Str(y)) => match (parse_numeric(x), parse_numeric(y)) {
            (Some(m), Some(n)) => num_cmp(m, n),
            _ => Some(x.cmp(y)),
        },
        (List(_) | Map(_), List(_) | Map(_)) => compare_arrays(a, b)?,
        (List(_) | Map(_), _) => Some(Ordering::Greater),
        (_, List(_) | Map(_)) => Some(Ordering::Less),
    })
}

/// An array's (key, value) pairs; list keys are their indexes.
fn array_pairs(v: &Value) -> Vec<(Cow<'_, str>, &Value)> {
    match v {
        Value::List(xs) => xs
            .iter()
            .enumerate()
            .map(|(i, x)| (Cow::Owned(i.to_string()), x))
            .collect(),
        Value::Map(m) => m
            .iter()
            .map(|(k, x)| (Cow::Borrowed(k.as_str()), x))
            .collect(),
        _ => Vec::new(),
    }
}

/// PHP array comparison: by size, then value by value for the keys of `a`.
fn compare_arrays(a: &Value, b: &Value) -> Result<Option<Ordering>> {
    let (pa, pb) = (array_pairs(a), array_pairs(b));
    if pa.len() != pb.len() {
        return Ok(Some(pa.len().cmp(&pb.len())));
    }
    for (k, x) in &pa {
        let Some((_, y)) = pb.iter().find(|(kb, _)| kb == k) else {
            return Ok(None);
        };
        match php_compare(x, y)? {
            Some(Ordering::Equal) => {}
            other => return Ok(other),
        }
    }
    Ok(Some(Ordering::Equal))
}

fn loose_eq(a: &Value, b: &Value) -> Result<bool> {
    Ok(php_compare(a, b)? == Some(Ordering::Equal))
}

/// PHP `===`: same type and value (arrays: same pairs in the same order).
fn identical(a: &Value, b: &Value) -> bool {
    use Value::*;
    match (a, b) {
        (Null, Null) => true,
        (Bool(x), Bool(y)) => x == y,
        (Int(x), Int(y)) => x == y,
        (Float(x), Float(y)) => x == y,
        (Str(x), Str(y)) => x == y,
        (Date(x), Date(y)) => x == y,
        (List(x), List(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| identical(p, q)),
        (Map(x), Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((kp, p), (kq, q))| kp == kq && identical(p, q))
        }
        _ => false,
    }
}

// ---------------------------------------------------------------------------
// Evaluation

struct Ctx<'j> {
    contact: &'j Json,
    metas: &'j Json,
    now: DateTime,
}

/// Either a borrowed piece of the contact's JSON (no copy while walking
/// `contact.a.b`) or a computed value.
enum Ref<'j> {
    Json(&'j Json),
    Val(Value),
}

impl Ref<'_> {
    fn into_value(self) -> Value {
        match self {
            Ref::Json(j) => Value::from_json(j),
            Ref::Val(v) => v,
        }
    }
}

fn missing_property(name: &str) -> ConditionError {
    invalid(format!("undefined property `{name}`"))
}

fn non_object(name: &str) -> ConditionError {
    invalid(format!("cannot get property `{name}` of a non-object"))
}

/// PHP array key of a value (`1`, `"1"` and `true` all address key 1).
fn array_key(key: &Value) -> Result<String> {
    match key {
        Value::Float(f) => Ok(num_to_int(Num::F(*f))?.to_string()),
        Value::Bool(b) => Ok(i64::from(*b).to_string()),
        other => Ok(other.to_php_string()?.into_owned()),
    }
}

impl Expr {
    fn eval(&self, ctx: &Ctx<'_>) -> Result<Value> {
        match &self.kind {
            Kind::Lit(v) => Ok(v.clone()),
            Kind::Var(_) | Kind::Attr(..) | Kind::Index(..) => Ok(self.eval_ref(ctx)?.into_value()),
            Kind::Array(items) => Ok(Value::List(
                items.iter().map(|e| e.eval(ctx)).collect::<Result<_>>()?,
            )),
            Kind::Hash(items) => {
                let mut map: Vec<(String, Value)> = Vec::with_capacity(items.len());
                for (k, e) in items {
                    let v = e.eval(ctx)?;
                    // Later duplicate keys overwrite earlier ones, like PHP.
                    match map.iter_mut().find(|(mk, _)| mk == k) {
                        Some(slot) => slot.1 = v,
                        None => map.push((k.clone(), v)),
                    }
                }
                Ok(Value::Map(map))
            }
            Kind::Format(base, args) => {
                let base = base.eval(ctx)?;
                let Value::Date(d) = base else {
                    return Err(invalid(format!(
                        "format() called on {}, not a date",
                        base.type_name()
                    )));
                };
                let fmt = eval_arg(args, 0, ctx)?;
                Ok(Value::Str(php_date::format(d, &fmt.to_php_string()?)))
            }
            Kind::Call(func, args) => call(*func, args, ctx),
            Kind::Unary(op, e) => {
                let v = e.eval(ctx)?;
                match op {
                    UnOp::Not => Ok(Value::Bool(!v.truthy())),
                    UnOp::Plus => Ok(v.to_number()?.into_value()),
                    UnOp::Neg => Ok(match v.to_number()? {
                        Num::I(i) => i
                            .checked_neg()
                            .map_or(Value::Float(-(i as f64)), Value::Int),
                        Num::F(f) => Value::Float(-f),
                    }),
                }
            }
            Kind::Binary(op, l, r) => binary(*op, l, r, ctx),
            Kind::Matches(l, r, compiled) => {
                let subject = l.eval(ctx)?;
                let subject = subject.to_php_string()?;
                let found = match compiled {
                    Some(p) => p.0.is_match(&subject),
                    None => {
                        let pattern = r.eval(ctx)?;
                        compile_pcre(&pattern.to_php_string()?)?.is_match(&subject)
                    }
                };
                // preg_match returns 1 or 0.
                Ok(Value::Int(i64::from(found)))
            }
            Kind::Cond(c, a, b) => {
                let cond = c.eval(ctx)?;
                match (cond.truthy(), a) {
                    (true, Some(a)) => a.eval(ctx),
                    (true, None) => Ok(cond),
                    (false, _) => b.eval(ctx),
                }
            }
        }
    }

    /// Evaluates variable / property / item chains without copying the JSON
    /// they walk through. Like PHP/Symfony (and RaspiSMS), a missing key or a
    /// property of a non-object is an error.
    fn eval_ref<'j>(&self, ctx: &Ctx<'j>) -> Result<Ref<'j>> {
        match &self.kind {
            Kind::Var(Var::Contact) => Ok(Ref::Json(ctx.contact)),
            Kind::Var(Var::Metas) => Ok(Ref::Json(ctx.metas)),
            Kind::Attr(base, name) => match base.eval_ref(ctx)? {
                Ref::Json(Json::Object(m)) => m
                    .get(name)
                    .map(Ref::Json)
                    .ok_or_else(|| missing_property(name)),
                Ref::Val(Value::Map(m)) => m
                    .into_iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| Ref::Val(v))
                    .ok_or_else(|| missing_property(name)),
                _ => Err(non_object(name)),
            },
            Kind::Index(base, key) => {
                let base = base.eval_ref(ctx)?;
                let key = array_key(&key.eval(ctx)?)?;
                let missing = || invalid(format!("undefined array key `{key}`"));
                let index = || key.parse::<usize>().ok();
                match base {
                    Ref::Json(Json::Object(m)) => m.get(&key).map(Ref::Json).ok_or_else(missing),
                    Ref::Json(Json::Array(xs)) => index()
                        .and_then(|i| xs.get(i))
                        .map(Ref::Json)
                        .ok_or_else(missing),
                    Ref::Val(Value::Map(m)) => m
                        .into_iter()
                        .find(|(k, _)| *k == key)
                        .map(|(_, v)| Ref::Val(v))
                        .ok_or_else(missing),
                    Ref::Val(Value::List(xs)) => index()
                        .and_then(|i| xs.into_iter().nth(i))
                        .map(Ref::Val)
                        .ok_or_else(missing),
                    other => Err(invalid(format!(
                        "cannot get item `{key}` of {}",
                        other.into_value().type_name()
                    ))),
                }
            }
            _ => Ok(Ref::Val(self.eval(ctx)?)),
        }
    }
}

fn eval_arg(args: &[Expr], i: usize, ctx: &Ctx<'_>) -> Result<Value> {
    match args.get(i) {
        Some(e) => e.eval(ctx),
        None => Ok(Value::Null),
    }
}

fn binary(op: BinOp, l: &Expr, r: &Expr, ctx: &Ctx<'_>) -> Result<Value> {
    let left = l.eval(ctx)?;
    // `or` / `and` short-circuit, like PHP's `||` / `&&`.
    match op {
        BinOp::Or if left.truthy() => return Ok(Value::Bool(true)),
        BinOp::And if !left.truthy() => return Ok(Value::Bool(false)),
        BinOp::Or | BinOp::And => return Ok(Value::Bool(r.eval(ctx)?.truthy())),
        _ => {}
    }
    let right = r.eval(ctx)?;
    let ordering = |pred: fn(Ordering) -> bool| -> Result<Value> {
        Ok(Value::Bool(php_compare(&left, &right)?.is_some_and(pred)))
    };
    match op {
        BinOp::Or | BinOp::And => Ok(Value::Null),
        BinOp::Eq => Ok(Value::Bool(loose_eq(&left, &right)?)),
        BinOp::NotEq => Ok(Value::Bool(!loose_eq(&left, &right)?)),
        BinOp::Identical => Ok(Value::Bool(identical(&left, &right))),
        BinOp::NotIdentical => Ok(Value::Bool(!identical(&left, &right))),
        BinOp::Lt => ordering(Ordering::is_lt),
        BinOp::Gt => ordering(Ordering::is_gt),
        BinOp::Le => ordering(Ordering::is_le),
        BinOp::Ge => ordering(Ordering::is_ge),
        BinOp::In => Ok(Value::Bool(in_array(&left, &right)?)),
        BinOp::NotIn => Ok(Value::Bool(!in_array(&left, &right)?)),
        BinOp::Range => php_range(&left, &right),
        BinOp::Concat => {
            let mut s = left.to_php_string()?.into_owned();
            s.push_str(&right.to_php_string()?);
            Ok(Value::Str(s))
        }
        BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod | BinOp::Pow => {
            arithmetic(op, left.to_number()?, right.to_number()?)
        }
        BinOp::BitOr | BinOp::BitAnd | BinOp::BitXor => {
            let a = num_to_int(left.to_number()?)?;
            let b = num_to_int(right.to_number()?)?;
            Ok(Value::Int(match op {
                BinOp::BitOr => a | b,
                BinOp::BitAnd => a & b,
                _ => a ^ b,
            }))
        }
    }
}

/// PHP 8 arithmetic: integer results when exact, floats on overflow.
fn arithmetic(op: BinOp, a: Num, b: Num) -> Result<Value> {
    let float = |f: fn(f64, f64) -> f64| Ok(Value::Float(f(a.as_f64(), b.as_f64())));
    match (op, a, b) {
        (BinOp::Div, _, _) if b.as_f64() == 0.0 => Err(invalid("division by zero")),
        (BinOp::Mod, _, _) => {
            let (x, y) = (num_to_int(a)?, num_to_int(b)?);
            if y == 0 {
                return Err(invalid("modulo by zero"));
            }
            Ok(Value::Int(x.checked_rem(y).unwrap_or(0)))
        }
        (BinOp::Add, Num::I(x), Num::I(y)) => Ok(x
            .checked_add(y)
            .map_or_else(|| Value::Float(x as f64 + y as f64), Value::Int)),
        (BinOp::Sub, Num::I(x), Num::I(y)) => Ok(x
            .checked_sub(y)
            .map_or_else(|| Value::Float(x as f64 - y as f64), Value::Int)),
        (BinOp::Mul, Num::I(x), Num::I(y)) => Ok(x
            .checked_mul(y)
            .map_or_else(|| Value::Float(x as f64 * y as f64), Value::Int)),
        (BinOp::Div, Num::I(x), Num::I(y)) if x.checked_rem(y) == Some(0) => Ok(x
            .checked_div(y)
            .map_or_else(|| Value::Float(x as f64 / y as f64), Value::Int)),
        (BinOp::Pow, Num::I(x), Num::I(y)) if y >= 0 => Ok(u32::try_from(y)
            .ok()
            .and_then(|e| x.checked_pow(e))
            .map_or_else(|| Value::Float((x as f64).powf(y as f64)), Value::Int)),
        (BinOp::Add, _, _) => float(|x, y| x + y),
        (BinOp::Sub, _, _) => float(|x, y| x - y),
        (BinOp::Mul, _, _) => float(|x, y| x * y),
        (BinOp::Div, _, _) => float(|x, y| x / y),
        (BinOp::Pow, _, _) => float(f64::powf),
        _ => Err(invalid("unsupported arithmetic operator")),
    }
}

/// Symfony 5's `in` is PHP's loose `in_array`.
fn in_array(needle: &Value, haystack: &Value) -> Result<bool> {
    let items: Vec<&Value> = match haystack {
        Value::List(xs) => xs.iter().collect(),
        Value::Map(m) => m.iter().map(|(_, v)| v).collect(),
        other => {
            return Err(invalid(format!(
                "`in` expects an array on its right, got {}",
                other.type_name()
            )));
        }
    };
    for item in items {
        if loose_eq(needle, item)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// PHP `range()` behind `..`: inclusive, either direction, single-letter
/// strings give letter ranges.
fn php_range(a: &Value, b: &Value) -> Result<Value> {
    let too_big = || invalid(format!("range is too large (at most {MAX_RANGE} items)"));
    if let (Value::Str(x), Value::Str(y)) = (a, b)
        && x.len() == 1
        && y.len() == 1
        && !(x.as_bytes()[0].is_ascii_digit() && y.as_bytes()[0].is_ascii_digit())
    {
        let (from, to) = (x.as_bytes()[0], y.as_bytes()[0]);
        let bytes: Vec<u8> = if from <= to {
            (from..=to).collect()
        } else {
            (to..=from).rev().collect()
        };
        return Ok(Value::List(
            bytes
                .into_iter()
                .map(|c| Value::Str(char::from(c).to_string()))
                .collect(),
        ));
    }
    let to_num = |v: &Value| match v {
        Value::Str(s) => numeric_prefix(s).map_or(Num::I(0), |(n, _)| n),
        other => other.to_number().unwrap_or(Num::I(0)),
    };
    match (to_num(a), to_num(b)) {
        (Num::I(x), Num::I(y)) => {
            let len = x.abs_diff(y);
            if len >= MAX_RANGE as u64 {
                return Err(too_big());
            }
            let items: Vec<Value> = if x <= y {
                (x..=y).map(Value::Int).collect()
            } else {
                (y..=x).rev().map(Value::Int).collect()
            };
            Ok(Value::List(items))
        }
        (x, y) => {
            let (x, y) = (x.as_f64(), y.as_f64());
            let span = (y - x).abs();
            if !span.is_finite() || span >= MAX_RANGE as f64 {
                return Err(too_big());
            }
            let step = if x <= y { 1.0 } else { -1.0 };
            let count = span.floor() as usize + 1;
            Ok(Value::List(
                (0..count)
                    .map(|i| Value::Float(x + step * i as f64))
                    .collect(),
            ))
        }
    }
}

fn call(func: Func, args: &[Expr], ctx: &Ctx<'_>) -> Result<Value> {
    if func == Func::Exists {
        // isset(): an undefined property (an error here) or null is "unset".
        return Ok(Value::Bool(
            matches!(eval_arg(args, 0, ctx), Ok(v) if v != Value::Null),
        ));
    }
    let values: Vec<Value> = args.iter().map(|e| e.eval(ctx)).collect::<Result<_>>()?;
    let arg = |i: usize| values.get(i).unwrap_or(&Value::Null);
    match func {
        Func::Exists => Ok(Value::Bool(arg(0) != &Value::Null)),
        Func::Constant => Ok(Value::Null),
        Func::Boolval => Ok(Value::Bool(arg(0).truthy())),
        Func::Lower => Ok(Value::Str(arg(0).to_php_string()?.to_lowercase())),
        Func::Upper => Ok(Value::Str(arg(0).to_php_string()?.to_uppercase())),
        Func::Strlen => Ok(Value::Int(
            i64::try_from(arg(0).to_php_string()?.chars().count()).unwrap_or(i64::MAX),
        )),
        Func::Substr => {
            let s = arg(0).to_php_string()?;
            let start = arg(1).to_int_arg("substr() start")?;
            let length = match values.get(2) {
                None | Some(Value::Null) => None,
                Some(v) => Some(v.to_int_arg("substr() length")?),
            };
            Ok(Value::Str(mb_substr(&s, start, length)))
        }
        Func::Abs => Ok(match arg(0).to_number()? {
            Num::I(i) => i
                .checked_abs()
                .map_or(Value::Float((i as f64).abs()), Value::Int),
            Num::F(f) => Value::Float(f.abs()),
        }),
        Func::Intval => {
            let base = match values.get(1) {
                None => 10,
                Some(v) => v.to_int_arg("intval() base")?,
            };
            Ok(Value::Int(php_intval(arg(0), base)?))
        }
        Func::Count => {
            let recursive = values.get(1).is_some_and(Value::truthy);
            match arg(0) {
                v @ (Value::List(_) | Value::Map(_)) => Ok(Value::Int(
                    i64::try_from(php_count(v, recursive)).unwrap_or(i64::MAX),
                )),
                other => Err(invalid(format!(
                    "count() expects an array, got {}",
                    other.type_name()
                ))),
            }
        }
        Func::Date => {
            let parsed = match values.first() {
                None | Some(Value::Null) => Some(ctx.now),
                Some(v) => php_date::parse(&v.to_php_string()?, ctx.now),
            };
            // date_create() returns false on unparsable input.
            Ok(parsed.map_or(Value::Bool(false), Value::Date))
        }
        Func::DateFromFormat => {
            let format = arg(0).to_php_string()?;
            let input = arg(1).to_php_string()?;
            Ok(php_date::parse_with_format(&format, &input, ctx.now)
                .map_or(Value::Bool(false), Value::Date))
        }
        Func::IsBirthday => {
            let date = match arg(0) {
                Value::Date(d) => *d,
                // RaspiSMS wants a DateTime; a date string is accepted too.
                Value::Str(s) => php_date::parse(s, ctx.now)
                    .ok_or_else(|| invalid(format!("is_birthday(): `{s}` is not a date")))?,
                other => {
                    return Err(invalid(format!(
                        "is_birthday() expects a date, got {}",
                        other.type_name()
                    )));
                }
            };
            let today = ctx.now.date();
            Ok(Value::Bool(
                date.month() == today.month() && date.day() == today.day(),
            ))
        }
    }
}

fn php_count(v: &Value, recursive: bool) -> usize {
    let children: Vec<&Value> = match v {
        Value::List(xs) => xs.iter().collect(),
        Value::Map(m) => m.iter().map(|(_, x)| x).collect(),
        _ => return 0,
    };
    let nested = if recursive {
        children.iter().map(|c| php_count(c, true)).sum()
    } else {
        0
    };
    children.len() + nested
}

/// `mb_substr`: character based, negative start / length count from the end.
pub(crate) fn mb_substr(s: &str, start: i64, length: Option<i64>) -> String {
    let chars: Vec<char> = s.chars().collect();
    let n = i64::try_from(chars.len()).unwrap_or(i64::MAX);
    let from = if start < 0 {
        (n + start).max(0)
    } else {
        start.min(n)
    };
    let to = match length {
        None => n,
        Some(l) if l < 0 => (n + l).max(from),
        Some(l) => from.saturating_add(l).min(n),
    };
    let (from, to) = (
        usize::try_from(from).unwrap_or(0),
        usize::try_from(to).unwrap_or(0),
    );
    chars
        .get(from..to)
        .map(|cs| cs.iter().collect())
        .unwrap_or_default()
}

/// PHP `intval()`: leading number of strings, truncation of floats,
/// saturation on overflow.
fn php_intval(v: &Value, base: i64) -> Result<i64> {
    Ok(match v {
        Value::Null => 0,
        Value::Bool(b) => i64::from(*b),
        Value::Int(i) => *i,
        Value::Float(f) if f.is_finite() => *f as i64,
        Value::Float(_) => 0,
        Value::List(xs) => i64::from(!xs.is_empty()),
        Value::Map(m) => i64::from(!m.is_empty()),
        Value::Date(_) => 1,
        Value::Str(s) if base == 10 => match numeric_prefix(s) {
            Some((Num::I(i), _)) => i,
            Some((Num::F(f), _)) if f.is_nan() => 0,
            // `as` saturates, like PHP's string to int conversion.
            Some((Num::F(f), _)) => f as i64,
            None => 0,
        },
        Value::Str(s) => {
            if !(base == 0 || (2..=36).contains(&base)) {
                return Err(invalid("intval(): base must be 0 or between 2 and 36"));
            }
            let t = s.trim_start();
            let (neg, t) = match t.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, t.strip_prefix('+').unwrap_or(t)),
            };
            let lower = t.to_ascii_lowercase();
            let (radix, digits) = match base {
                0 | 16 if lower.starts_with("0x") => (16, &t[2..]),
                0 | 8 if lower.starts_with("0o") => (8, &t[2..]),
                0 | 2 if lower.starts_with("0b") => (2, &t[2..]),
                0 if t.starts_with('0') => (8, t),
                0 => (10, t),
                b => (u32::try_from(b).unwrap_or(10), t),
            };
            let end = digits
                .find(|c: char| !c.is_digit(radix))
                .unwrap_or(digits.len());
            let magnitude = if end == 0 {
                0
            } else {
                i64::from_str_radix(&digits[..end], radix).unwrap_or(i64::MAX)
            };
            if neg {
                magnitude.saturating_neg()
            } else {
                magnitude
            }
        }
    })
}

// ---------------------------------------------------------------------------
// PHP dates

/// The subset of PHP's date parsing and formatting RaspiSMS users rely on,
/// on naive (zone-less) local date-times. Shared with the templates.
pub(crate) mod php_date {
    use jiff::civil::{Date, DateTime, Time};
    use jiff::{Span, Timestamp};

    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    const DAYS: [&str; 7] = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];

    struct Cursor<'a> {
        s: &'a [u8],
        i: usize,
    }

    impl Cursor<'_> {
        fn at_end(&self) -> bool {
            self.i >= self.s.len()
        }

        fn peek(&self) -> Option<u8> {
            self.s.get(self.i).copied()
        }

        fn eat(&mut self, c: u8) -> bool {
            if self.peek() == Some(c) {
                self.i += 1;
                true
            } else {
                false
            }
        }

        fn skip_ws(&mut self) -> usize {
            let start = self.i;
            while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
                self.i += 1;
            }
            self.i - start
        }

        /// Between `min` and `max` ASCII digits.
        fn digits(&mut self, min: usize, max: usize) -> Option<i64> {
            let start = self.i;
            let mut v: i64 = 0;
            while self.i - start < max
                && let Some(c) = self.peek().filter(u8::is_ascii_digit)
            {
                v = v * 10 + i64::from(c - b'0');
                self.i += 1;
            }
            if self.i - start < min {
                self.i = start;
                return None;
            }
            Some(v)
        }

        fn word(&mut self) -> String {
            let start = self.i;
            while self.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
                self.i += 1;
            }
            String::from_utf8_lossy(&self.s[start..self.i]).to_ascii_lowercase()
        }
    }

    fn make_date(y: i64, m: i64, d: i64) -> Option<Date> {
        Date::new(
            i16::try_from(y).ok()?,
            i8::try_from(m).ok()?,
            i8::try_from(d).ok()?,
        )
        .ok()
    }

    fn make_time(h: i64, i: i64, s: i64) -> Option<Time> {
        Time::new(
            i8::try_from(h).ok()?,
            i8::try_from(i).ok()?,
            i8::try_from(s).ok()?,
            0,
        )
        .ok()
    }

    type Ymd = (i64, i64, i64);

    /// `Y-m-d`, `Y/m/d`, `m/d/Y` (American, like PHP) or `d-m-Y` / `d.m.Y`.
    fn absolute_date(c: &mut Cursor<'_>) -> Option<Date> {
        let start = c.i;
        let mut attempt = |f: &dyn Fn(&mut Cursor<'_>) -> Option<Ymd>| {
            c.i = start;
            let r = f(c);
            if r.is_none() {
                c.i = start;
            }
            r
        };
        let ymd = attempt(&|c| {
            let y = c.digits(4, 4)?;
            let sep = c.peek().filter(|s| *s == b'-' || *s == b'/')?;
            c.i += 1;
            let m = c.digits(1, 2)?;
            c.eat(sep).then_some(())?;
            Some((y, m, c.digits(1, 2)?))
        })
        .or_else(|| {
            attempt(&|c| {
                let m = c.digits(1, 2)?;
                c.eat(b'/').then_some(())?;
                let d = c.digits(1, 2)?;
                c.eat(b'/').then_some(())?;
                Some((c.digits(4, 4)?, m, d))
            })
        })
        .or_else(|| {
            attempt(&|c| {
                let d = c.digits(1, 2)?;
                let sep = c.peek().filter(|s| *s == b'-' || *s == b'.')?;
                c.i += 1;
                let m = c.digits(1, 2)?;
                c.eat(sep).then_some(())?;
                Some((c.digits(4, 4)?, m, d))
            })
        })?;
        let date = make_date(ymd.0, ymd.1, ymd.2);
        if date.is_none() {
            // Out-of-range fields: let the caller see the text as unparsed.
            c.i = start;
        }
        date
    }

    /// `HH:MM[:SS[.frac]]`, optionally followed by a zone that is ignored.
    fn time_of_day(c: &mut Cursor<'_>) -> Option<Time> {
        let start = c.i;
        let parsed = (|| {
            let h = c.digits(1, 2)?;
            c.eat(b':').then_some(())?;
            let m = c.digits(2, 2)?;
            let s = if c.eat(b':') { c.digits(2, 2)? } else { 0 };
            if c.eat(b'.') {
                c.digits(1, 9)?;
            }
            make_time(h, m, s)
        })();
        if parsed.is_none() {
            c.i = start;
            return None;
        }
        // Zone designators: `Z`, `+01:00`, `+0100` (naive times ignore them).
        if !c.eat(b'z') {
            let before = c.i;
            let zone = (|| {
                c.peek().filter(|s| *s == b'+' || *s == b'-')?;
                c.i += 1;
                c.digits(2, 2)?;
                c.eat(b':');
                c.digits(2, 2)
            })();
            if zone.is_none() {
                c.i = before;
            }
        }
        parsed
    }

    fn relative(c: &mut Cursor<'_>, base: DateTime) -> Option<DateTime> {
        let mut terms: Vec<(i64, String)> = Vec::new();
        let mut ago = false;
        loop {
            c.skip_ws();
            if c.at_end() {
                break;
            }
            let negative = if c.eat(b'-') {
                true
            } else {
                c.eat(b'+');
                false
            };
            c.skip_ws();
            if !negative && c.peek().is_some_and(|b| b.is_ascii_alphabetic()) {
                // Only `ago` may follow the terms.
                if c.word() == "ago" && !terms.is_empty() {
                    ago = true;
                    continue;
                }
                return None;
            }
            let n = c.digits(1, 9)?;
            c.skip_ws();
            let unit = c.word();
            terms.push((if negative { -n } else { n }, unit));
        }
        let mut dt = base;
        for (n, unit) in terms {
            let n = if ago { -n } else { n };
            let span = match unit.trim_end_matches('s') {
                "sec" | "second" => Span::new().try_seconds(n),
                "min" | "minute" => Span::new().try_minutes(n),
                "hour" => Span::new().try_hours(n),
                "day" => Span::new().try_days(n),
                "week" => Span::new().try_weeks(n),
                "fortnight" => Span::new().try_weeks(n.checked_mul(2)?),
                "month" => Span::new().try_months(n),
                "year" => Span::new().try_years(n),
                _ => return None,
            }
            .ok()?;
            dt = dt.checked_add(span).ok()?;
        }
        Some(dt)
    }

    /// PHP `date_create()` for the formats people actually write: `now`,
    /// `today`, `midnight`, `noon`, `tomorrow`, `yesterday`, absolute dates
    /// with an optional time, then relative terms like `+1 day`, `-18 years`
    /// or `2 weeks ago`. `None` where PHP would return false (or where we
    /// don't support PHP's more exotic formats).
    pub(crate) fn parse(input: &str, now: DateTime) -> Option<DateTime> {
        let lower = input.trim().to_ascii_lowercase();
        let mut c = Cursor {
            s: lower.as_bytes(),
            i: 0,
        };
        let midnight = |d: Date| d.to_datetime(Time::midnight());
        let start = c.i;
        let base = match c.word().as_str() {
            "now" | "" => {
                if c.i == start {
                    // No keyword: an absolute date or time, else "now".
                    if let Some(date) = absolute_date(&mut c) {
                        let mut time = Time::midnight();
                        let before = c.i;
                        if c.eat(b't') || c.skip_ws() > 0 {
                            match time_of_day(&mut c) {
                                Some(t) => time = t,
                                None => c.i = before,
                            }
                        }
                        date.to_datetime(time)
                    } else if let Some(time) = time_of_day(&mut c) {
                        now.date().to_datetime(time)
                    } else {
                        now
                    }
                } else {
                    now
                }
            }
            "today" | "midnight" => midnight(now.date()),
            "noon" => now.date().to_datetime(make_time(12, 0, 0)?),
            "tomorrow" => midnight(now.date().tomorrow().ok()?),
            "yesterday" => midnight(now.date().yesterday().ok()?),
            _ => return None,
        };
        relative(&mut c, base)
    }

    /// PHP `DateTime::createFromFormat()` for the format characters
    /// `d j m n Y y H G h g i s A a M F D l U` plus `\`, `!`, `|`, `?`, `*`,
    /// `+`, `#` and literal characters. Fields the format doesn't set come
    /// from `now` unless `!` or `|` is used, like PHP.
    pub(crate) fn parse_with_format(format: &str, input: &str, now: DateTime) -> Option<DateTime> {
        let mut c = Cursor {
            s: input.as_bytes(),
            i: 0,
        };
        let (mut y, mut mo, mut d) = (None, None, None);
        let (mut h, mut mi, mut s) = (None, None, None);
        let mut pm: Option<bool> = None;
        let mut epoch_defaults = false;
        let mut ignore_trailing = false;
        let mut fmt = format.chars();
        while let Some(f) = fmt.next() {
            match f {
                'd' | 'j' => d = Some(c.digits(1, 2)?),
                'm' | 'n' => mo = Some(c.digits(1, 2)?),
                'Y' => y = Some(c.digits(1, 4)?),
                'y' => {
                    let v = c.digits(2, 2)?;
                    y = Some(if v >= 70 { 1900 + v } else { 2000 + v });
                }
                'H' | 'G' | 'h' | 'g' => h = Some(c.digits(1, 2)?),
                'i' => mi = Some(c.digits(2, 2)?),
                's' => s = Some(c.digits(2, 2)?),
                'A' | 'a' => {
                    pm = Some(match c.word().as_str() {
                        "am" => false,
                        "pm" => true,
                        _ => return None,
                    });
                }
                'M' | 'F' => {
                    let w = c.word();
                    let idx = MONTHS.iter().position(|m| {
                        let m = m.to_ascii_lowercase();
                        w == m || (w.len() == 3 && m.starts_with(&w))
                    })?;
                    mo = Some(i64::try_from(idx).ok()? + 1);
                }
                'D' | 'l' => {
                    if c.word().is_empty() {
                        return None;
                    }
                }
                'U' => {
                    let negative = c.eat(b'-');
                    let secs = c.digits(1, 12)?;
                    let secs = if negative { -secs } else { secs };
                    let dt =
                        jiff::tz::TimeZone::UTC.to_datetime(Timestamp::from_second(secs).ok()?);
                    (y, mo, d) = (
                        Some(dt.year().into()),
                        Some(dt.month().into()),
                        Some(dt.day().into()),
                    );
                    (h, mi, s) = (
                        Some(dt.hour().into()),
                        Some(dt.minute().into()),
                        Some(dt.second().into()),
                    );
                }
                '!' => {
                    (y, mo, d, h, mi, s, pm) = (None, None, None, None, None, None, None);
                    epoch_defaults = true;
                }
                '|' => epoch_defaults = true,
                '+' => ignore_trailing = true,
                '?' => {
                    let rest = std::str::from_utf8(&c.s[c.i..]).ok()?;
                    c.i += rest.chars().next()?.len_utf8();
                }
                '*' => {
                    while c
                        .peek()
                        .is_some_and(|b| !b" ,;:/.-()".contains(&b) && !b.is_ascii_digit())
                    {
                        c.i += 1;
                    }
                }
                '#' => {
                    c.peek().filter(|b| b";:/.,-()".contains(b))?;
                    c.i += 1;
                }
                ' ' => {
                    c.skip_ws();
                }
                '\\' => {
                    let lit = fmt.next()?;
                    let mut buf = [0u8; 4];
                    for b in lit.encode_utf8(&mut buf).bytes() {
                        c.eat(b).then_some(())?;
                    }
                }
                lit => {
                    let mut buf = [0u8; 4];
                    for b in lit.encode_utf8(&mut buf).bytes() {
                        c.eat(b).then_some(())?;
                    }
                }
            }
        }
        if !c.at_end() && !ignore_trailing {
            return None;
        }
        if let (Some(hour), Some(is_pm)) = (h, pm) {
            h = Some(match (hour, is_pm) {
                (12, false) => 0,
                (hh, true) if hh < 12 => hh + 12,
                (hh, _) => hh,
            });
        }
        let date = if epoch_defaults {
            make_date(y.unwrap_or(1970), mo.unwrap_or(1), d.unwrap_or(1))?
        } else {
            let today = now.date();
            make_date(
                y.unwrap_or(today.year().into()),
                mo.unwrap_or(today.month().into()),
                d.unwrap_or(today.day().into()),
            )?
        };
        // As in PHP, setting any time field zeroes the unset ones.
        let time = if epoch_defaults || h.is_some() || mi.is_some() || s.is_some() {
            make_time(h.unwrap_or(0), mi.unwrap_or(0), s.unwrap_or(0))?
        } else {
            now.time().with().subsec_nanosecond(0).build().ok()?
        };
        Some(date.to_datetime(time))
    }

    /// PHP `date()` formatting (`d D j l N S w z W F M m n t L o Y y a A g G
    /// h H i s u v U c`), `\` escapes the next character, other characters
    /// are copied. Zone-dependent characters assume UTC, the times being naive.
    pub(crate) fn format(dt: DateTime, pattern: &str) -> String {
        let mut out = String::new();
        let mut chars = pattern.chars();
        let day_idx = usize::try_from(dt.weekday().to_monday_zero_offset()).unwrap_or(0);
        let month_idx = usize::try_from(dt.month() - 1).unwrap_or(0);
        let hour12 = match dt.hour() % 12 {
            0 => 12,
            h => h,
        };
        while let Some(f) = chars.next() {
            match f {
                'd' => out.push_str(&format!("{:02}", dt.day())),
                'D' => out.push_str(&DAYS[day_idx][..3]),
                'j' => out.push_str(&dt.day().to_string()),
                'l' => out.push_str(DAYS[day_idx]),
                'N' => out.push_str(&dt.weekday().to_monday_one_offset().to_string()),
                'S' => out.push_str(match dt.day() {
                    1 | 21 | 31 => "st",
                    2 | 22 => "nd",
                    3 | 23 => "rd",
                    _ => "th",
                }),
                'w' => out.push_str(&dt.weekday().to_sunday_zero_offset().to_string()),
                'z' => out.push_str(&(dt.day_of_year() - 1).to_string()),
                'W' => out.push_str(&format!("{:02}", dt.date().iso_week_date().week())),
                'o' => out.push_str(&dt.date().iso_week_date().year().to_string()),
                'F' => out.push_str(MONTHS[month_idx]),
                'M' => out.push_str(&MONTHS[month_idx][..3]),
                'm' => out.push_str(&format!("{:02}", dt.month())),
                'n' => out.push_str(&dt.month().to_string()),
                't' => out.push_str(&dt.days_in_month().to_string()),
                'L' => out.push(if dt.in_leap_year() { '1' } else { '0' }),
                'Y' => out.push_str(&format!("{:04}", dt.year())),
                'y' => out.push_str(&format!("{:02}", dt.year().rem_euclid(100))),
                'a' => out.push_str(if dt.hour() < 12 { "am" } else { "pm" }),
                'A' => out.push_str(if dt.hour() < 12 { "AM" } else { "PM" }),
                'g' => out.push_str(&hour12.to_string()),
                'G' => out.push_str(&dt.hour().to_string()),
                'h' => out.push_str(&format!("{hour12:02}")),
                'H' => out.push_str(&format!("{:02}", dt.hour())),
                'i' => out.push_str(&format!("{:02}", dt.minute())),
                's' => out.push_str(&format!("{:02}", dt.second())),
                'u' => out.push_str(&format!("{:06}", dt.subsec_nanosecond() / 1000)),
                'v' => out.push_str(&format!("{:03}", dt.subsec_nanosecond() / 1_000_000)),
                'U' => {
                    if let Ok(z) = dt.to_zoned(jiff::tz::TimeZone::UTC) {
                        out.push_str(&z.timestamp().as_second().to_string());
                    }
                }
                'c' => out.push_str(&format(dt, "Y-m-d\\TH:i:s")),
                '\\' => {
                    if let Some(lit) = chars.next() {
                        out.push(lit);
                    }
                }
                other => out.push(other),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn jane() -> (Json, Json) {
        (
            json!({"lastname":"Doe","firstname":"Jane","birthdate":"1992-08-15","gender":"female","vip":"0"}),
            json!({"id": 1, "name": "Jane Doe", "number": "+33612345678",
                   "created_at": "2024-01-10 10:00:00", "updated_at": "2024-01-10 10:00:00"}),
        )
    }

    fn john() -> (Json, Json) {
        (
            json!({"lastname":"Doe","firstname":"John","birthdate":"1990-10-22","gender":"male","vip":"1"}),
            json!({"id": 2, "name": "John Doe", "number": "+33612345679",
                   "created_at": "2024-02-10 10:00:00", "updated_at": "2024-02-10 10:00:00"}),
        )
    }

    fn today() -> Date {
        Date::new(2025, 8, 15).unwrap_or_default()
    }

    fn eval(src: &str) -> Result<Json> {
        let (contact, metas) = jane();
        Condition::parse(src)?.evaluate_at(&contact, &metas, today())
    }

    fn parse_err(src: &str) -> String {
        match Condition::parse(src) {
            Ok(c) => panic!("{src:?} should not parse, got {c:?}"),
            Err(ConditionError::Invalid(msg)) => msg,
        }
    }

    #[test]
    fn match_table() {
        let (jane_c, jane_m) = jane();
        let (john_c, john_m) = john();
        let empty = json!([]);
        // (expression, contact data, metas, expected match)
        let cases: &[(&str, &Json, &Json, bool)] = &[
            (
                "contact.gender == 'female' && contact.vip == 1",
                &jane_c,
                &jane_m,
                false,
            ),
            (
                "contact.gender == 'female' && contact.vip == 1",
                &john_c,
                &john_m,
                false,
            ),
            (
                "contact.gender == 'male' && contact.vip == 1",
                &john_c,
                &john_m,
                true,
            ),
            (
                "contact.gender == 'female' and contact.vip == 0",
                &jane_c,
                &jane_m,
                true,
            ),
            (
                "(exists(contact.lastname)) && (upper(contact.lastname) == 'DOE')",
                &jane_c,
                &jane_m,
                true,
            ),
            (
                "(exists(contact.lastname)) && (upper(contact.lastname) == 'DOE')",
                &john_c,
                &john_m,
                true,
            ),
            (
                "(exists(contact.surname)) && (upper(contact.surname) == 'DOE')",
                &john_c,
                &john_m,
                false,
            ),
            ("contact_metas.name matches '/^Jo/'", &john_c, &john_m, true),
            (
                "contact_metas.name matches '/^Jo/'",
                &jane_c,
                &jane_m,
                false,
            ),
            (
                "contact_metas.name matches '/^jo/i'",
                &john_c,
                &john_m,
                true,
            ),
            (
                "contact_metas.name matches '#doe$#i'",
                &jane_c,
                &jane_m,
                true,
            ),
            ("contact.vip in ['1', '2']", &john_c, &john_m, true),
            ("contact.vip in ['1', '2']", &jane_c, &jane_m, false),
            ("contact.vip in [1, 2]", &john_c, &john_m, true),
            ("contact.vip not in ['1', '2']", &jane_c, &jane_m, true),
            ("not (contact.gender == 'male')", &jane_c, &jane_m, true),
            ("not (contact.gender == 'male')", &john_c, &john_m, false),
            ("!(contact.gender == 'male')", &jane_c, &jane_m, true),
            (
                "is_birthday(date(contact.birthdate))",
                &jane_c,
                &jane_m,
                true,
            ),
            (
                "is_birthday(date(contact.birthdate))",
                &john_c,
                &john_m,
                false,
            ),
            (
                "lower(contact_metas.name) ~ '!' == 'jane doe!'",
                &jane_c,
                &jane_m,
                true,
            ),
            (
                "lower(contact_metas.name) ~ '!' == 'jane doe!'",
                &john_c,
                &john_m,
                false,
            ),
            ("contact.vip == true", &john_c, &john_m, true),
            ("contact.vip == true", &jane_c, &jane_m, false),
            ("contact.vip", &jane_c, &jane_m, false),
            ("contact.vip", &john_c, &john_m, true),
            ("contact.missing == 'x'", &jane_c, &jane_m, false),
            ("contact.missing != 'x'", &jane_c, &jane_m, false),
            ("not exists(contact.missing)", &jane_c, &jane_m, true),
            ("contact.gender == 'female'", &empty, &jane_m, false),
            ("contact.gender != 'female'", &empty, &jane_m, false),
            ("contact_metas.id + 1 == 3", &john_c, &john_m, true),
            ("contact_metas.id * 10 - 5 > 10", &john_c, &john_m, true),
            (
                "contact_metas.created_at < '2024-02-01'",
                &jane_c,
                &jane_m,
                true,
            ),
            (
                "date(contact_metas.created_at) > date('2024-02-01')",
                &john_c,
                &john_m,
                true,
            ),
            ("contact.vip ?: false", &john_c, &john_m, true),
            (
                "contact.gender == 'male' ? true : false",
                &jane_c,
                &jane_m,
                false,
            ),
            ("contact.lastname.first == 'D'", &jane_c, &jane_m, false),
        ];
        for (src, contact, metas, expected) in cases {
            let cond = match Condition::parse(src) {
                Ok(c) => c,
                Err(e) => panic!("{src:?} should parse: {e}"),
            };
            assert_eq!(
                cond.matches_at(contact, metas, today()),
                *expected,
                "{src:?} with {contact}"
            );
        }
    }

    #[test]
    fn numbers_and_loose_comparison() {
        let (contact, metas) = (
            json!({"age": "42", "score": "7.5", "code": "007"}),
            json!({}),
        );
        let cases: &[(&str, bool)] = &[
            ("contact.age > 30", true),
            ("contact.age > 100", false),
            ("contact.age >= '42'", true),
            ("contact.age < '5'", false), // numeric, not lexical
            ("contact.age == 42", true),
            ("contact.age === 42", false),
            ("contact.age === '42'", true),
            ("contact.code == 7", true),
            ("contact.code == '7'", true),
            ("contact.code == '7.0'", true),
            ("contact.score * 2 == 15", true),
            ("'1' == 1", true),
            ("'01' == '1'", true),
            ("'1.0' == 1", true),
            ("'1e3' == '1000'", true),
            ("'abc' == 0", false),
            ("null == 0", true),
            ("null == false", true),
            ("'' == null", true),
            ("'' == 0", false),
            ("'0' == false", true),
            ("'a' < 'b'", true),
            ("'10' < '9'", false),
            ("'abc' < 5", false),
            ("[1, 2] == [1, 2]", true),
            ("[1, 2] === [1, '2']", false),
            ("1 === 1.0", false),
            ("1 == 1.0", true),
            ("2 ** 3 ** 2 == 512", true),
            ("-2 ** 2 == 4", true),
            ("7 % 3 == 1", true),
            ("7 / 2 == 3.5", true),
            ("6 / 2 === 3", true),
            ("1 + 2 * 3 == 7", true),
            ("(1 + 2) * 3 == 9", true),
            ("1 ~ 2 + 3 == '15'", true),
            ("3 in 1..5", true),
            ("'c' in 'a'..'e'", true),
            ("count(5..1) == 5", true),
            ("abs(-3) == 3", true),
            ("intval('12abc') === 12", true),
            ("intval('0x1A', 16) === 26", true),
            ("boolval('0') === false", true),
            ("strlen('héhé') == 4", true),
            ("substr('Bonjour', -4) == 'jour'", true),
            ("substr('Bonjour', 0, 3) == 'Bon'", true),
            ("substr('Bonjour', 1, -1) == 'onjou'", true),
            ("count([1, [2, 3]], 1) == 4", true),
            ("constant('PHP_VERSION') === null", true),
            ("{a: 1, 'b': 2}.b == 2", true),
            ("[10, 20][1] == 20", true),
            ("contact['age'] == 42", true),
            ("true ? 'x' : 'y'", true),
            ("false ? 'x'", false),
            ("1.5e3 == 1500", true),
            ("\"a\\tb\" == 'a\tb'", true),
            ("TRUE and not FALSE", true),
            ("(5 | 2) == 7", true),
            ("1 or 1/0", true),
            ("0 and 1/0", false),
        ];
        for (src, expected) in cases {
            let cond = match Condition::parse(src) {
                Ok(c) => c,
                Err(e) => panic!("{src:?} should parse: {e}"),
            };
            let got = cond.evaluate_at(&contact, &metas, today());
            assert_eq!(
                cond.matches_at(&contact, &metas, today()),
                *expected,
                "{src:?} evaluated to {got:?}"
            );
        }
    }

    #[test]
    fn evaluation_results() {
        assert_eq!(eval("1 + 2"), Ok(json!(3)));
        assert_eq!(eval("7 / 2"), Ok(json!(3.5)));
        assert_eq!(
            eval("9223372036854775807 + 1"),
            Ok(json!(9.223372036854776e18))
        );
        assert_eq!(eval("'a' ~ 1.0 ~ (0.1 + 0.2)"), Ok(json!("a10.3")));
        assert_eq!(eval("1..3"), Ok(json!([1, 2, 3])));
        assert_eq!(eval("upper(contact.firstname)"), Ok(json!("JANE")));
        assert_eq!(eval("contact_metas.name matches '/Doe/'"), Ok(json!(1)));
        assert_eq!(
            eval("date('2024-03-05 07:08:09')"),
            Ok(json!("2024-03-05 07:08:09"))
        );
        assert_eq!(eval("date('today')"), Ok(json!("2025-08-15 00:00:00")));
        assert_eq!(
            eval("date('today -18 years')"),
            Ok(json!("2007-08-15 00:00:00"))
        );
        assert_eq!(
            eval("date('2024-01-31 +1 day')"),
            Ok(json!("2024-02-01 00:00:00"))
        );
        assert_eq!(eval("date('2 days ago')"), Ok(json!("2025-08-13 00:00:00")));
        assert_eq!(eval("date('15.08.1992')"), Ok(json!("1992-08-15 00:00:00")));
        assert_eq!(
            eval("date('08/15/1992 10:30')"),
            Ok(json!("1992-08-15 10:30:00"))
        );
        assert_eq!(eval("date('not a date')"), Ok(json!(false)));
        assert_eq!(eval("date('1992-02-30')"), Ok(json!(false)));
        assert_eq!(
            eval("date_from_format('d/m/Y', '15/08/1992').format('Y-m-d')"),
            Ok(json!("1992-08-15"))
        );
        assert_eq!(
            eval("date_from_format('!d/m/y H:i', '5/8/92 14:05')"),
            Ok(json!("1992-08-05 14:05:00"))
        );
        assert_eq!(
            eval("date_from_format('d/m/Y', '15-08-1992')"),
            Ok(json!(false))
        );
        assert_eq!(
            eval("date('2024-03-05').format('l jS F Y, D M N w z t L')"),
            Ok(json!("Tuesday 5th March 2024, Tue Mar 2 2 64 31 1"))
        );
        assert_eq!(
            eval("contact.nope"),
            Err(invalid("undefined property `nope`"))
        );
        assert!(eval("1 / 0").is_err());
        assert!(eval("'abc' + 1").is_err());
        assert!(eval("contact.firstname.x").is_err());
        assert!(eval("date('today') == 'x'").is_err());
        assert!(eval("count('abc')").is_err());
        assert!(eval("is_birthday('garbage')").is_err());
        assert!(eval("1..100000").is_err());
    }

    #[test]
    fn birthday_uses_the_given_day() {
        let (contact, metas) = jane();
        let cond = Condition::parse("is_birthday(date(contact.birthdate))");
        let Ok(cond) = cond else {
            panic!("parse failed")
        };
        assert!(cond.matches_at(&contact, &metas, today()));
        let other = Date::new(2025, 8, 16).unwrap_or_default();
        assert!(!cond.matches_at(&contact, &metas, other));
        // The string form is accepted too.
        let Ok(cond) = Condition::parse("is_birthday(contact.birthdate)") else {
            panic!("parse failed")
        };
        assert!(cond.matches_at(&contact, &metas, today()));
    }

    #[test]
    fn regexes() {
        let (contact, metas) = (json!({"t": "Hello\nWorld"}), json!({}));
        let cases: &[(&str, bool)] = &[
            ("contact.t matches '/^World/'", false),
            ("contact.t matches '/^World/m'", true),
            ("contact.t matches '/hello.world/is'", true),
            ("contact.t matches '{^hel}i'", true),
            ("contact.t matches '/ W o r l d /x'", true),
            // `\\/` in the condition is `\/` in the pattern (PHP string escapes).
            ("contact.t matches '/a\\\\/b/'", false),
            ("contact.t matches '/o\\\\nW/'", true),
            ("contact.t matches ('/' ~ 'World' ~ '/')", true),
            ("contact.t matches ('/(' ~ '/')", false),
        ];
        for (src, expected) in cases {
            let Ok(cond) = Condition::parse(src) else {
                panic!("{src:?} should parse")
            };
            assert_eq!(
                cond.matches_at(&contact, &metas, today()),
                *expected,
                "{src:?}"
            );
        }
        assert!(parse_err("contact.t matches '/(?=x)/'").contains("invalid regular expression"));
        assert!(parse_err("contact.t matches '/abc'").contains("no ending delimiter"));
        assert!(parse_err("contact.t matches 'abc'").contains("delimiter"));
        assert!(parse_err("contact.t matches '/a/e'").contains("unknown modifier"));
        assert!(parse_err("contact.t matches '/a\\/b/'").contains("unknown modifier `b`"));
    }

    #[test]
    fn parse_errors() {
        assert_eq!(
            parse_err("foo == 1"),
            "unknown variable `foo` at position 0 (allowed: contact, contact_metas)"
        );
        assert!(parse_err("bar(contact.x)").starts_with("unknown function `bar` at position 0"));
        assert!(parse_err("UPPER(contact.x)").starts_with("unknown function `UPPER`"));
        assert_eq!(
            parse_err("upper()"),
            "function `upper` at position 0 expects 1 to 2 argument(s), got 0"
        );
        assert!(parse_err("exists(contact.a, contact.b)").contains("expects 1 argument(s), got 2"));
        assert_eq!(
            parse_err("(contact.x == 1"),
            "unexpected end of condition at position 15"
        );
        assert_eq!(
            parse_err("contact.x == 1)"),
            "unexpected token `)` at position 14"
        );
        assert_eq!(
            parse_err("contact.x == 1 contact"),
            "unexpected token `contact` at position 15"
        );
        assert_eq!(parse_err(""), "condition is empty");
        assert_eq!(parse_err("   "), "condition is empty");
        assert!(parse_err("contact.x == 'abc").contains("unterminated string"));
        assert!(parse_err("contact.x = 1").contains("unexpected character `=` at position 10"));
        assert!(parse_err("contact.x == @").contains("unexpected character `@`"));
        assert!(parse_err("contact.x.foo()").contains("unknown method `foo`"));
        assert!(parse_err(&"1 + ".repeat(300)).contains("too long"));
        let long = format!("contact.x == '{}'", "a".repeat(1000));
        assert!(parse_err(&long).contains("too long"));
    }

    #[test]
    fn deep_input_is_rejected_without_overflow() {
        let deep = "(".repeat(10_000);
        assert!(Condition::parse(&deep).is_err());
        let deep = format!("{}1{}", "(".repeat(500), ")".repeat(500));
        assert!(Condition::parse(&deep).is_err());
        let negs = format!("{}1", "-".repeat(900));
        assert!(Condition::parse(&negs).is_err());
        let chain = format!("1{}", " + 1".repeat(240));
        assert!(parse_err(&chain).contains("too deeply nested"));
        let attrs = format!("contact{}", ".a".repeat(400));
        assert!(parse_err(&attrs).contains("too deeply nested"));
        // `?:` must not duplicate its condition (exponential growth).
        let elvis = format!("{}1{}", "(".repeat(90), " ?: 1)".repeat(90));
        assert!(Condition::parse(&elvis).is_ok());
        // Moderate nesting is fine.
        let ok = format!("{}1{} == 1", "(".repeat(40), ")".repeat(40));
        assert!(Condition::parse(&ok).is_ok());
    }

    #[test]
    fn php_float_strings() {
        assert_eq!(php_float_string(1.0), "1");
        assert_eq!(php_float_string(0.1 + 0.2), "0.3");
        assert_eq!(php_float_string(-2.5), "-2.5");
        assert_eq!(php_float_string(1e15), "1.0E+15");
        assert_eq!(php_float_string(1.5e-7), "1.5E-7");
        assert_eq!(php_float_string(123456.789), "123456.789");
        assert_eq!(php_float_string(f64::INFINITY), "INF");
    }
}
