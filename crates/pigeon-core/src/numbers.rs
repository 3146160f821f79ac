//! E.164 phone numbers, validated like RaspiSMS's `parse_phone`.

use rlibphonenumber::{PhoneNumber, PhoneNumberFormat};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NumberError {
    #[error("invalid phone number")]
    Invalid,
}

/// Longest raw input we hand to libphonenumber; real numbers with
/// formatting are far shorter, and it keeps pathological input cheap.
const MAX_RAW_LEN: usize = 64;
/// E.164 allows at most 15 digits (country code included).
const MAX_DIGITS: usize = 15;

/// RaspiSMS's `parse_phone`: libphonenumber with no default region, so only
/// `+CC…` international numbers validate. Returns E.164 (`+33612345678`).
///
/// Spaces, dots, dashes and parentheses are accepted as separators.
/// National numbers, short codes, letters (vanity numbers), extensions and
/// anything libphonenumber does not consider valid are rejected.
pub fn parse_e164(raw: &str) -> Result<String, NumberError> {
    let trimmed = raw.trim();
    if trimmed.len() > MAX_RAW_LEN {
        return Err(NumberError::Invalid);
    }
    let Some(rest) = trimmed.strip_prefix('+') else {
        // No default region: a number without `+` can't be placed.
        return Err(NumberError::Invalid);
    };
    // Whitelist the characters ourselves: libphonenumber would otherwise
    // accept letters (vanity numbers), extensions and RFC 3966 syntax.
    let mut digits = 0usize;
    for c in rest.chars() {
        match c {
            '0'..='9' => digits += 1,
            ' ' | '.' | '-' | '(' | ')' => {}
            _ => return Err(NumberError::Invalid),
        }
    }
    if digits == 0 || digits > MAX_DIGITS {
        return Err(NumberError::Invalid);
    }
    // The whitelist leaves no way to write an extension, so a valid number is all there is.
    let number = PhoneNumber::parse(trimmed, None).map_err(|_| NumberError::Invalid)?;
    if !number.is_valid() {
        return Err(NumberError::Invalid);
    }
    Ok(number.format_as(PhoneNumberFormat::E164).into_owned())
}

/// A sender: an E.164 number, or an alphanumeric sender ID (at most 11 letters, digits and
/// spaces, the GSM limit for an alphanumeric originator; a short code is digits only).
pub fn parse_sender(raw: &str) -> Result<String, NumberError> {
    let trimmed = raw.trim();
    if trimmed.starts_with('+') {
        return parse_e164(trimmed);
    }
    let ok = (1..=11).contains(&trimmed.chars().count())
        && trimmed
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == ' ');
    ok.then(|| trimmed.to_string()).ok_or(NumberError::Invalid)
}

/// Masks a number for logs: keeps the `+`, the first three digits (country
/// code region) and the last two digits, e.g. `+33612345678` → `+336******78`.
///
/// Inputs shorter than 10 characters keep only a leading `+`: showing six
/// characters of them would reveal most of the number. The output always has
/// as many characters as the input.
pub fn mask(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    let len = chars.len();
    let (head, tail) = if len >= 10 { (4, 2) } else { (0, 0) };
    chars
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            if i < head || i >= len - tail || (i == 0 && c == '+') {
                c
            } else {
                '*'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn senders_are_numbers_or_short_alphanumeric_names() {
        assert_eq!(
            parse_sender("+237 6 91 23 45 67").as_deref(),
            Ok("+237691234567")
        );
        assert_eq!(parse_sender(" Pigeon ").as_deref(), Ok("Pigeon"));
        assert_eq!(parse_sender("36111").as_deref(), Ok("36111"));
        for bad in ["", "+12", "TwelveLetter", "Pig_eon", "Pigéon"] {
            assert!(parse_sender(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn valid_numbers_are_normalised_to_e164() {
        let cases = [
            ("+33612345678", "+33612345678"),
            ("+33 6 12 34 56 78", "+33612345678"),
            ("  +33 6 12 34 56 78\n", "+33612345678"),
            ("+33.6.12.34.56.78", "+33612345678"),
            ("+33-6-12-34-56-78", "+33612345678"),
            ("+33 (0)6 12 34 56 78", "+33612345678"),
            ("+32 470 12 34 56", "+32470123456"),
            ("+1 (650) 253-0000", "+16502530000"),
            ("+1 650.253.0000", "+16502530000"),
            // Valid for libphonenumber (Java, and the PHP port RaspiSMS uses); the `phonenumber`
            // crate Pigeon used before rejected it.
            ("+7 811 180 97 05", "+78111809705"),
        ];
        for (raw, expected) in cases {
            assert_eq!(parse_e164(raw).as_deref(), Ok(expected), "input {raw:?}");
        }
    }

    #[test]
    fn invalid_numbers_are_rejected() {
        let cases = [
            "",
            "   ",
            "+",
            "0612345678",
            "06 12 34 56 78",
            "0033612345678",
            "36111",
            "+3361234",
            "+33 6 12 34 56 78 90 12 34",
            "+1 800 FLOWERS",
            "Pigeon",
            "+33612345678 ext. 12",
            "tel:+33612345678",
            "+33６12345678",
            "+33 6 12 34 56 7８",
            "＋33612345678",
            "+33 6 12 34 56 78 😀",
            "+33\u{0}612345678",
            "++33612345678",
            // Invalid for libphonenumber; the `phonenumber` crate accepted it.
            "+60 55 139 1142",
        ];
        for raw in cases {
            assert_eq!(parse_e164(raw), Err(NumberError::Invalid), "input {raw:?}");
        }
    }

    #[test]
    fn overlong_input_is_rejected_cheaply() {
        let raw = format!("+33{}", " 6".repeat(10_000));
        assert_eq!(parse_e164(&raw), Err(NumberError::Invalid));
    }

    #[test]
    fn masking_hides_the_middle() {
        assert_eq!(mask("+33612345678"), "+336******78");
        assert_eq!(mask("+16502530000"), "+165******00");
        assert_eq!(mask("+3361234"), "+*******");
        assert_eq!(mask("36111"), "*****");
        assert_eq!(mask(""), "");
        assert_eq!(mask("+"), "+");
        // Multi-byte input must not panic and keeps its length in chars.
        assert_eq!(mask("éééééééééééé").chars().count(), 12);
    }
}
