//! The sandbox: tag filtering and Twig spellings, on the source before
//! minijinja compiles it.

use std::borrow::Cow;

use super::{TemplateError, invalid};

/// Tags that could load other templates or recurse without bound. Twig's
/// sandbox in RaspiSMS allows only `if`, `for`, `apply` and `set`.
const FORBIDDEN_TAGS: &[&str] = &[
    "macro", "call", "include", "import", "from", "extends", "block", "embed", "use", "sandbox",
];

/// Scans the tags (outside comments, raw blocks and string literals):
/// rejects [`FORBIDDEN_TAGS`] and recursive loops, and rewrites Twig's
/// `apply`/`endapply`/`elseif` to minijinja's `filter`/`endfilter`/`elif`.
/// Malformed input is left for minijinja to report.
pub(super) fn preprocess(src: &str) -> Result<Cow<'_, str>, TemplateError> {
    let b = src.as_bytes();
    let line = |at: usize| src[..at].matches('\n').count() + 1;
    let mut rewrites: Vec<(usize, usize, &str)> = Vec::new();
    let mut i = 0;
    while i + 1 < b.len() {
        if b[i] != b'{' {
            i += 1;
            continue;
        }
        match b[i + 1] {
            b'#' => match src[i + 2..].find("#}") {
                Some(end) => i += 2 + end + 2,
                None => break,
            },
            b'{' => match find_closing(b, i + 2, b"}}") {
                Some(end) => i = end + 2,
                None => break,
            },
            b'%' => {
                let mut j = i + 2;
                if matches!(b.get(j), Some(b'-' | b'+' | b'~')) {
                    j += 1;
                }
                while b.get(j).is_some_and(u8::is_ascii_whitespace) {
                    j += 1;
                }
                let name_start = j;
                while b
                    .get(j)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
                {
                    j += 1;
                }
                let name = &src[name_start..j];
                let Some(end) = find_closing(b, j, b"%}") else {
                    break;
                };
                if FORBIDDEN_TAGS.contains(&name) {
                    return Err(invalid(format!(
                        "`{name}` tags are not allowed in message templates (line {})",
                        line(i)
                    )));
                }
                match name {
                    "for" if words_outside_strings(&b[j..end]).any(|w| w == b"recursive") => {
                        return Err(invalid(format!(
                            "recursive loops are not allowed in message templates (line {})",
                            line(i)
                        )));
                    }
                    "apply" => rewrites.push((name_start, j, "filter")),
                    "endapply" => rewrites.push((name_start, j, "endfilter")),
                    "elseif" => rewrites.push((name_start, j, "elif")),
                    "raw" => {
                        // Skip the raw content up to its `endraw` tag.
                        match find_endraw(src, end + 2) {
                            Some(after) => {
                                i = after;
                                continue;
                            }
                            None => break,
                        }
                    }
                    _ => {}
                }
                i = end + 2;
            }
            _ => i += 1,
        }
    }
    if rewrites.is_empty() {
        return Ok(Cow::Borrowed(src));
    }
    let mut out = String::with_capacity(src.len());
    let mut last = 0;
    for (start, end, replacement) in rewrites {
        out.push_str(&src[last..start]);
        out.push_str(replacement);
        last = end;
    }
    out.push_str(&src[last..]);
    Ok(Cow::Owned(out))
}

/// Index after the string literal whose opening quote is at `open`
/// (backslash escapes skipped); past the end when it is unterminated.
fn after_string(b: &[u8], open: usize) -> usize {
    let quote = b[open];
    let mut i = open + 1;
    while i < b.len() && b[i] != quote {
        i += if b[i] == b'\\' { 2 } else { 1 };
    }
    i + 1
}

/// Index of `close` at or after `from`, skipping quoted strings.
fn find_closing(b: &[u8], from: usize, close: &[u8]) -> Option<usize> {
    let mut i = from;
    while i < b.len() {
        match b[i] {
            b'\'' | b'"' => i = after_string(b, i),
            _ if b[i..].starts_with(close) => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// Identifiers of a tag body, string literals excluded.
fn words_outside_strings(b: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut spans = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\'' | b'"' => i = after_string(b, i),
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                spans.push((start, i));
            }
            _ => i += 1,
        }
    }
    spans.into_iter().filter_map(move |(s, e)| b.get(s..e))
}

/// Position after the `{% endraw %}` tag that closes a raw block.
fn find_endraw(src: &str, from: usize) -> Option<usize> {
    let mut at = from;
    loop {
        let open = at + src.get(at..)?.find("{%")?;
        let rest = src[open + 2..]
            .trim_start_matches(['-', '+', '~'])
            .trim_start();
        if rest.starts_with("endraw") {
            return Some(open + 2 + src[open + 2..].find("%}")? + 2);
        }
        at = open + 2;
    }
}
