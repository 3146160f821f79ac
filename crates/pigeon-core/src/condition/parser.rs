//! The syntax tree, Symfony's parser that builds it, and the translation of
//! PCRE patterns for `matches`.

use std::borrow::Cow;

use super::functions::{FUNCTIONS, Func};
use super::lexer::{Tok, Token, lex, unexpected};
use super::value::{Value, php_float_string};
use super::{ConditionError, Result, invalid};

/// Deepest accepted syntax tree: bounds the recursion of parsing,
/// evaluation, cloning and dropping.
const MAX_DEPTH: usize = 100;
/// Compiled-size cap for user regexes.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

// ---------------------------------------------------------------------------
// Syntax tree

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Var {
    Contact,
    Metas,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum UnOp {
    Not,
    Neg,
    Plus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BinOp {
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
pub(super) struct Pattern(pub(super) regex::Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Expr {
    pub(super) kind: Kind,
    depth: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Kind {
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

/// Parses a whole condition; an empty one or trailing tokens are errors.
pub(super) fn parse(chars: &[char]) -> Result<Expr> {
    let tokens = lex(chars)?;
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
    Ok(root)
}

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

// ---------------------------------------------------------------------------
// PCRE patterns

/// Translates a PCRE literal (`/^jo/i`, `#a|b#`, `{x}`) for the regex crate.
/// PCRE-only features (look-around, back-references) are errors.
pub(super) fn compile_pcre(source: &str) -> Result<regex::Regex> {
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
