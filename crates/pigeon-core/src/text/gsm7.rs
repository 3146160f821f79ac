//! The GSM 03.38 (3GPP TS 23.038) default alphabet and its extension table.
//!
//! Only membership matters here: Pigeon counts and splits text, the channels
//! (modem PDU, SMPP) do the actual septet packing.

/// The 128 code points of the default alphabet, in code order (0x00–0x7F).
/// 0x1B is ESC, which introduces an extension character and is not itself
/// a character a user can type, so it is left out (`None`).
const BASIC: [Option<char>; 128] = {
    let chars = [
        '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å', //
        'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', '\x1B', 'Æ', 'æ', 'ß', 'É', //
        ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', //
        '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?', //
        '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', //
        'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§', //
        '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', //
        'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à', //
    ];
    let mut table = [None; 128];
    let mut i = 0;
    while i < 128 {
        if i != 0x1B {
            table[i] = Some(chars[i]);
        }
        i += 1;
    }
    table
};

/// Characters reached through ESC (0x1B); each costs two septets.
const EXTENSION: [char; 10] = ['\u{0C}', '^', '{', '}', '\\', '[', '~', ']', '|', '€'];

/// Is `c` in the default alphabet (one septet)?
pub fn is_basic(c: char) -> bool {
    // Letters and digits are most of any text: skip the scan for them.
    c.is_ascii_alphanumeric() || BASIC.contains(&Some(c))
}

/// Is `c` in the extension table (two septets)?
pub fn is_extension(c: char) -> bool {
    EXTENSION.contains(&c)
}

/// Septets `c` takes in GSM-7, or `None` if it cannot be encoded.
pub fn septets(c: char) -> Option<usize> {
    if is_basic(c) {
        Some(1)
    } else if is_extension(c) {
        Some(2)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_table_has_127_typeable_chars() {
        assert_eq!(BASIC.iter().flatten().count(), 127);
        // No duplicates: each code maps to a distinct character.
        let mut seen: Vec<char> = BASIC.iter().flatten().copied().collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 127);
    }

    #[test]
    fn known_positions() {
        assert_eq!(BASIC[0x00], Some('@'));
        assert_eq!(BASIC[0x09], Some('Ç'));
        assert_eq!(BASIC[0x24], Some('¤'));
        assert_eq!(BASIC[0x40], Some('¡'));
        assert_eq!(BASIC[0x60], Some('¿'));
        assert_eq!(BASIC[0x7F], Some('à'));
        assert_eq!(BASIC[0x1B], None);
    }

    #[test]
    fn membership() {
        for c in "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./:;<=>?¡ÄÖÑÜ§¿äöñüà".chars()
        {
            assert!(is_basic(c), "{c:?} should be basic");
        }
        for c in ('0'..='9').chain('A'..='Z').chain('a'..='z') {
            assert!(is_basic(c), "{c:?} should be basic");
        }
        for c in "^{}\\[~]|€\u{0C}".chars() {
            assert!(!is_basic(c), "{c:?} is not basic");
            assert!(is_extension(c), "{c:?} should be extension");
            assert_eq!(septets(c), Some(2));
        }
        // Look-alikes and near misses that force UCS-2.
        for c in "ç`‘’“”–—\u{1B}\t\u{A0}ÀÈ".chars() {
            assert_eq!(septets(c), None, "{c:?} should not be GSM-7");
        }
        // U+2126 OHM SIGN looks like Ω (U+03A9) but is a different code point.
        assert!(is_basic('\u{03A9}'));
        assert!(!is_basic('\u{2126}'));
    }
}
