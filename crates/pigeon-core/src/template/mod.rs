//! Message templating.
//!
//! RaspiSMS renders messages with Twig 3 in a global sandbox. Pigeon uses
//! minijinja (Jinja2 syntax, which Twig's is based on) with Twig's lenient
//! settings: undefined variables and missing keys render as empty, no
//! autoescape, the newline after a block tag is dropped like Twig does.
//! The Twig functions and filters RaspiSMS allows that minijinja lacks are
//! added in `twig`; `sandbox` rejects the tags that could escape it and
//! rewrites `apply`/`endapply` and `elseif` to their minijinja spelling.

use std::io;
use std::sync::LazyLock;

use minijinja::value::Value;
use minijinja::{Environment, Error, ErrorKind};
use serde_json::Value as Json;

mod sandbox;
mod twig;

#[cfg(test)]
mod tests;

/// Longest accepted template source, in characters.
pub const MAX_TEMPLATE_CHARS: usize = 10_000;
/// Longest rendered message, in characters.
pub const MAX_OUTPUT_CHARS: usize = 10_000;
const TEMPLATE_NAME: &str = "message";

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum TemplateError {
    #[error("{0}")]
    Invalid(String),
}

fn invalid(msg: impl Into<String>) -> TemplateError {
    TemplateError::Invalid(msg.into())
}

/// Checks that `text` is a valid template, for a clear error at create time.
/// Beyond the syntax, a dry run with empty data reports unknown filters,
/// functions and tests and wrong argument counts in the branches it reaches.
pub fn validate(text: &str) -> Result<(), TemplateError> {
    let template = Template::new(text)?;
    let empty = Json::Object(serde_json::Map::new());
    match template.render_raw(&empty, &empty) {
        Err(RenderFailure::Engine(e))
            if matches!(
                e.kind(),
                ErrorKind::UnknownFilter
                    | ErrorKind::UnknownTest
                    | ErrorKind::UnknownFunction
                    | ErrorKind::UnknownMethod
                    | ErrorKind::TooManyArguments
                    | ErrorKind::MissingArgument
            ) =>
        {
            Err(describe(&e))
        }
        // Other failures may depend on the recipient's data.
        _ => Ok(()),
    }
}

/// Renders `text` for one recipient. `contact` is the recipient's data
/// object, `contact_metas` the object with `name`, `number`, ….
/// To render the same text for many recipients, build a [`Template`] once.
pub fn render(text: &str, contact: &Json, contact_metas: &Json) -> Result<String, TemplateError> {
    Template::new(text)?.render(contact, contact_metas)
}

/// A template compiled once, to render many recipients cheaply.
#[derive(Debug, Clone)]
pub struct Template {
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    /// No template syntax at all: the text is the message.
    Plain(String),
    /// An environment holding only this template (compiled on creation).
    Compiled(Box<Environment<'static>>),
}

enum RenderFailure {
    TooLong,
    Engine(Error),
}

impl Template {
    /// Compiles `text`; syntax errors and forbidden tags are reported here.
    pub fn new(text: &str) -> Result<Template, TemplateError> {
        let chars = text.chars().count();
        if chars > MAX_TEMPLATE_CHARS {
            return Err(invalid(format!(
                "template is too long ({chars} characters, at most {MAX_TEMPLATE_CHARS})"
            )));
        }
        if !["{{", "{%", "{#"].iter().any(|d| text.contains(d)) {
            return Ok(Template {
                kind: Kind::Plain(text.to_owned()),
            });
        }
        let source = sandbox::preprocess(text)?;
        let mut env = BASE_ENV.clone();
        env.add_template_owned(TEMPLATE_NAME, source.into_owned())
            .map_err(|e| describe(&e))?;
        Ok(Template {
            kind: Kind::Compiled(Box::new(env)),
        })
    }

    /// Renders for one recipient.
    pub fn render(&self, contact: &Json, contact_metas: &Json) -> Result<String, TemplateError> {
        self.render_raw(contact, contact_metas)
            .map_err(|f| match f {
                RenderFailure::TooLong => invalid(format!(
                    "rendered message is too long (more than {MAX_OUTPUT_CHARS} characters)"
                )),
                RenderFailure::Engine(e) => describe(&e),
            })
    }

    fn render_raw(&self, contact: &Json, metas: &Json) -> Result<String, RenderFailure> {
        let env = match &self.kind {
            Kind::Plain(text) => return Ok(text.clone()),
            Kind::Compiled(env) => env,
        };
        let template = env
            .get_template(TEMPLATE_NAME)
            .map_err(RenderFailure::Engine)?;
        let ctx = minijinja::context! {
            contact => Value::from_serialize(contact),
            contact_metas => Value::from_serialize(metas),
        };
        let mut out = BoundedWriter::default();
        match template.render_captured_to(ctx, &mut out) {
            Ok(_) => String::from_utf8(out.buf).map_err(|_| {
                RenderFailure::Engine(Error::new(ErrorKind::WriteFailure, "invalid UTF-8 output"))
            }),
            Err(_) if out.exceeded => Err(RenderFailure::TooLong),
            Err(e) => Err(RenderFailure::Engine(e)),
        }
    }
}

/// A one-line message: kind, detail and line, without minijinja's source dump.
fn describe(e: &Error) -> TemplateError {
    let mut msg = e.kind().to_string();
    if let Some(detail) = e.detail() {
        msg.push_str(": ");
        msg.push_str(detail);
    }
    if let Some(line) = e.line() {
        msg.push_str(&format!(" (line {line})"));
    }
    invalid(msg)
}

/// Collects the output and fails as soon as it exceeds [`MAX_OUTPUT_CHARS`],
/// so a runaway loop stops early instead of filling memory.
#[derive(Default)]
struct BoundedWriter {
    buf: Vec<u8>,
    chars: usize,
    exceeded: bool,
}

impl io::Write for BoundedWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        // minijinja writes whole UTF-8 fragments: count the non-continuation bytes.
        let added = data.iter().filter(|&&b| b & 0xC0 != 0x80).count();
        if self.chars + added > MAX_OUTPUT_CHARS {
            self.exceeded = true;
            return Err(io::Error::other("output limit reached"));
        }
        self.chars += added;
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The settings and functions every template starts from.
static BASE_ENV: LazyLock<Environment<'static>> = LazyLock::new(twig::build_env);
