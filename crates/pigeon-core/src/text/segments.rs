//! Cutting a text into SMS parts without breaking an escape pair or a
//! surrogate pair.

use super::{Encoding, gsm7};

/// Units per message: (single message, each part of a concatenated one).
/// The part sizes assume the usual 6-octet UDH with an 8-bit reference.
pub(super) fn limits(encoding: Encoding) -> (usize, usize) {
    match encoding {
        Encoding::Gsm7 => (160, 153),
        Encoding::Ucs2 => (70, 67),
    }
}

/// Units one character takes: septets in GSM-7, UTF-16 code units in UCS-2.
pub(super) fn cost(encoding: Encoding, c: char) -> usize {
    match encoding {
        // Callers only pick GSM-7 when every char encodes; the fallback keeps
        // this total anyway (2 = worst case, so a part can never overflow).
        Encoding::Gsm7 => gsm7::septets(c).unwrap_or(2),
        Encoding::Ucs2 => c.len_utf16(),
    }
}

/// The parts of a concatenated message, greedily filled up to `per_part`
/// units. A character is never split, so a part ends early (152 septets,
/// 66 units) rather than cut an escape or surrogate pair.
pub(super) struct Parts<'a> {
    rest: &'a str,
    encoding: Encoding,
    per_part: usize,
}

impl<'a> Parts<'a> {
    pub(super) fn new(text: &'a str, encoding: Encoding) -> Self {
        Parts {
            rest: text,
            encoding,
            per_part: limits(encoding).1,
        }
    }
}

impl<'a> Iterator for Parts<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        if self.rest.is_empty() {
            return None;
        }
        let mut used = 0;
        let mut end = self.rest.len();
        for (i, c) in self.rest.char_indices() {
            let cost = cost(self.encoding, c);
            if used + cost > self.per_part {
                end = i;
                break;
            }
            used += cost;
        }
        // Every char costs at most 2 units and a part holds at least 67, so
        // `end > 0` and the iterator always makes progress.
        let (part, rest) = self.rest.split_at(end);
        self.rest = rest;
        Some(part)
    }
}
