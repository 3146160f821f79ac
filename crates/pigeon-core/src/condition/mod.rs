//! Conditional-group expressions.
//!
//! RaspiSMS evaluates these with Symfony ExpressionLanguage 5 on PHP 8, so
//! this is a small hand-written parser (Symfony's precedence climbing) and an
//! evaluator that reproduces PHP's loose comparisons, truthiness and string
//! conversions. Only the variables `contact` and `contact_metas` and the
//! functions of RaspiSMS's `ExpressionProvider` exist.
//!
//! The source goes through `lexer`, then `parser` (which builds the syntax
//! tree and compiles constant regexes); `eval` walks the tree with the PHP
//! semantics of `value` and the built-ins of `functions`.

use jiff::civil::{Date, DateTime, Time};
use serde_json::Value as Json;

use crate::time::php_date;

mod eval;
mod functions;
mod lexer;
mod parser;
mod value;

#[cfg(test)]
mod tests;

pub(crate) use functions::{mb_substr, php_slice};
pub(crate) use value::php_float_string;

/// Longest accepted source, in characters.
pub const MAX_SOURCE_CHARS: usize = 1000;

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
    root: parser::Expr,
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
        let root = parser::parse(&chars)?;
        Ok(Condition { root })
    }

    /// Evaluates against one contact, "today" being the local date.
    /// `contact` is the contact's data object, `contact_metas` the object with
    /// `id`, `name`, `number`, `created_at` and `updated_at`.
    pub fn evaluate(&self, contact: &Json, contact_metas: &Json) -> Result<Json> {
        Ok(self
            .run(contact, contact_metas, php_date::now())?
            .into_json())
    }

    /// Like [`evaluate`](Self::evaluate) with a fixed "today" (its midnight
    /// is "now" for `date('now')`).
    pub fn evaluate_at(&self, contact: &Json, contact_metas: &Json, today: Date) -> Result<Json> {
        Ok(self
            .run(contact, contact_metas, midnight(today))?
            .into_json())
    }

    /// RaspiSMS semantics: the contact matches when evaluation succeeds and
    /// the result is truthy for PHP; any evaluation error is a non-match.
    pub fn matches(&self, contact: &Json, contact_metas: &Json) -> bool {
        self.run(contact, contact_metas, php_date::now())
            .is_ok_and(|v| v.truthy())
    }

    /// Like [`matches`](Self::matches) with a fixed "today".
    pub fn matches_at(&self, contact: &Json, contact_metas: &Json, today: Date) -> bool {
        self.run(contact, contact_metas, midnight(today))
            .is_ok_and(|v| v.truthy())
    }

    fn run(&self, contact: &Json, metas: &Json, now: DateTime) -> Result<value::Value> {
        self.root.eval(&eval::Ctx {
            contact,
            metas,
            now,
        })
    }
}

fn midnight(today: Date) -> DateTime {
    today.to_datetime(Time::midnight())
}
