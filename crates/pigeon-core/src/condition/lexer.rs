//! Tokens of a condition (Symfony's lexer, with PHP string escapes).

use super::{ConditionError, Result, invalid};

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    Int(i64),
    Float(f64),
    Str(String),
    Name(String),
    Op(&'static str),
    Punct(char),
    End,
}

#[derive(Debug, Clone)]
pub(super) struct Token {
    pub(super) tok: Tok,
    /// Character offset in the source.
    pub(super) pos: usize,
    /// Source text, for error messages.
    text: String,
}

pub(super) fn unexpected(t: &Token) -> ConditionError {
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

pub(super) fn lex(src: &[char]) -> Result<Vec<Token>> {
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
            // `\xH`, `\xHH`.
            'x' if src.get(i).is_some_and(char::is_ascii_hexdigit) => {
                let v = more_digits(src, &mut i, 16, 2, 0);
                out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
            }
            // `\O`, `\OO`, `\OOO`.
            '0'..='7' => {
                let v = more_digits(src, &mut i, 8, 2, e.to_digit(8).unwrap_or(0));
                out.push(char::from_u32(v & 0xff).unwrap_or('\u{fffd}'));
            }
            other => out.push(other),
        }
    }
    Err(invalid(format!(
        "unterminated string starting at position {start}"
    )))
}

/// Appends up to `max` digits in `radix` found at `*i` to `value`,
/// advancing `*i` past them.
fn more_digits(src: &[char], i: &mut usize, radix: u32, max: usize, mut value: u32) -> u32 {
    for _ in 0..max {
        let Some(d) = src.get(*i).and_then(|c| c.to_digit(radix)) else {
            break;
        };
        value = value * radix + d;
        *i += 1;
    }
    value
}
