//! SMS text encoding: which alphabet a text needs, how many units and
//! segments it costs, and how it is cut into parts.
//!
//! National language shift tables are not used: handset support varies and
//! neither Jasmin nor the usual SMPP stacks send them.

mod gsm7;
mod segments;

use segments::Parts;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Gsm7,
    Ucs2,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Gsm7 => "gsm7",
            Encoding::Ucs2 => "ucs2",
        }
    }

    pub fn parse(s: &str) -> Option<Encoding> {
        match s {
            "gsm7" => Some(Encoding::Gsm7),
            "ucs2" => Some(Encoding::Ucs2),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Analysis {
    pub encoding: Encoding,
    /// septets (GSM-7, extension chars count 2) or UTF-16 units (UCS-2)
    pub units: usize,
    pub segments: usize,
}

/// Picks GSM-7 when every char is in the GSM 03.38 default table or
/// extension table (^ { } \ [ ~ ] | € and form feed), UCS-2 otherwise, and
/// counts segments: single 160/70, concatenated 153/67 per part; an escape
/// pair (extension char) is never split across parts (so a part may carry
/// 152), a UTF-16 surrogate pair (emoji) is never split (a part may carry
/// 66). Empty text = 1 segment, 0 units.
pub fn analyse(text: &str) -> Analysis {
    let encoding = encoding_of(text);
    let units = text.chars().map(|c| segments::cost(encoding, c)).sum();
    let segments = if units <= segments::limits(encoding).0 {
        1
    } else {
        Parts::new(text, encoding).count()
    };
    Analysis {
        encoding,
        units,
        segments,
    }
}

/// The parts a long message is cut into (same rules), as strings;
/// concatenated they give back `text`. An empty text is one empty part, so
/// `split(t).len() == analyse(t).segments` always holds.
pub fn split(text: &str) -> Vec<String> {
    let Analysis {
        encoding, segments, ..
    } = analyse(text);
    if segments == 1 {
        return vec![text.to_owned()];
    }
    Parts::new(text, encoding).map(str::to_owned).collect()
}

pub fn is_gsm7(text: &str) -> bool {
    text.chars().all(|c| gsm7::septets(c).is_some())
}

fn encoding_of(text: &str) -> Encoding {
    if is_gsm7(text) {
        Encoding::Gsm7
    } else {
        Encoding::Ucs2
    }
}

/// RaspiSMS's credit count: ceil(len/160) if every character is in the BASIC
/// GSM table (extension chars count as unicode there), else ceil(len/70);
/// used only for compatibility displays.
///
/// Like RaspiSMS, `len` is the number of code points (`mb_strlen`), a raw ESC
/// counts as a basic character (its table lists 0x1B), and an empty text
/// costs 0 credits.
pub fn raspisms_credits(text: &str) -> usize {
    let len = text.chars().count();
    let basic = text.chars().all(|c| c == '\u{1B}' || gsm7::is_basic(c));
    len.div_ceil(if basic { 160 } else { 70 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rep(s: &str, n: usize) -> String {
        s.repeat(n)
    }

    #[test]
    fn encoding_names_round_trip() {
        for e in [Encoding::Gsm7, Encoding::Ucs2] {
            assert_eq!(Encoding::parse(e.as_str()), Some(e));
        }
        assert_eq!(Encoding::parse("GSM7"), None);
        assert_eq!(Encoding::parse(""), None);
    }

    #[test]
    fn analysis_table() {
        use Encoding::{Gsm7, Ucs2};
        let cases: Vec<(&str, String, Encoding, usize, usize)> = vec![
            ("empty", String::new(), Gsm7, 0, 1),
            ("hello", "hello".into(), Gsm7, 5, 1),
            ("160 a", rep("a", 160), Gsm7, 160, 1),
            ("161 a", rep("a", 161), Gsm7, 161, 2),
            ("306 a", rep("a", 306), Gsm7, 306, 2),
            ("307 a", rep("a", 307), Gsm7, 307, 3),
            ("159 a + €", rep("a", 159) + "€", Gsm7, 161, 2),
            ("158 a + €", rep("a", 158) + "€", Gsm7, 160, 1),
            // 152 + 2 would be 154 > 153: the escape pair opens part 2.
            (
                "escape straddles 153",
                rep("a", 152) + "€" + &rep("a", 10),
                Gsm7,
                164,
                2,
            ),
            // 76 pairs (152 septets) per part: 76 + 76 + 1.
            ("all escapes", rep("€", 153), Gsm7, 306, 3),
            ("é is GSM", "é".into(), Gsm7, 1, 1),
            ("ç forces UCS-2", "ç".into(), Ucs2, 1, 1),
            ("ç in GSM text", "Ça va ? ça va.".into(), Ucs2, 14, 1),
            ("70 é + ç", rep("é", 70) + "ç", Ucs2, 71, 2),
            ("70 ucs2", rep("ç", 70), Ucs2, 70, 1),
            ("71 ucs2", rep("ç", 71), Ucs2, 71, 2),
            ("134 ucs2", rep("ç", 134), Ucs2, 134, 2),
            ("135 ucs2", rep("ç", 135), Ucs2, 135, 3),
            ("emoji", "😀".into(), Ucs2, 2, 1),
            ("66 ç + emoji", rep("ç", 66) + "😀", Ucs2, 68, 1),
            // 66 + 2 would be 68 > 67: the surrogate pair opens part 2.
            (
                "surrogate straddles 67",
                rep("ç", 66) + "😀" + &rep("ç", 5),
                Ucs2,
                73,
                2,
            ),
            ("emoji + 69 ç", "😀".to_owned() + &rep("ç", 69), Ucs2, 71, 2),
            ("backtick", "`".into(), Ucs2, 1, 1),
            ("curly quote", "l’été".into(), Ucs2, 5, 1),
            ("extension only", "^{}\\[~]|€\u{0C}".into(), Gsm7, 20, 1),
            ("CRLF", "a\r\nb".into(), Gsm7, 4, 1),
        ];
        for (name, text, encoding, units, segments) in cases {
            let got = analyse(&text);
            assert_eq!(
                got,
                Analysis {
                    encoding,
                    units,
                    segments
                },
                "{name}"
            );
            assert_eq!(split(&text).len(), segments, "{name}");
        }
    }

    #[test]
    fn split_moves_pairs_to_the_next_part() {
        let parts = split(&(rep("a", 152) + "€" + &rep("a", 10)));
        assert_eq!(parts, vec![rep("a", 152), "€".to_owned() + &rep("a", 10)]);

        let parts = split(&(rep("a", 159) + "€"));
        assert_eq!(parts, vec![rep("a", 153), rep("a", 6) + "€"]);

        let parts = split(&(rep("ç", 66) + "😀" + &rep("ç", 5)));
        assert_eq!(parts, vec![rep("ç", 66), "😀".to_owned() + &rep("ç", 5)]);

        let parts = split(&("😀".to_owned() + &rep("ç", 69)));
        assert_eq!(parts, vec!["😀".to_owned() + &rep("ç", 65), rep("ç", 4)]);
    }

    #[test]
    fn split_empty_is_one_empty_part() {
        assert_eq!(split(""), vec![String::new()]);
    }

    #[test]
    fn is_gsm7_cases() {
        assert!(is_gsm7(""));
        assert!(is_gsm7("Hello {name}, 5€ [ok]"));
        assert!(!is_gsm7("ça"));
        assert!(!is_gsm7("hi 😀"));
        assert!(!is_gsm7("tab\there"));
    }

    #[test]
    fn raspisms_credit_cases() {
        assert_eq!(raspisms_credits(""), 0);
        assert_eq!(raspisms_credits("hello"), 1);
        assert_eq!(raspisms_credits(&rep("a", 160)), 1);
        assert_eq!(raspisms_credits(&rep("a", 161)), 2);
        // No multipart headers in RaspiSMS's count: 306 chars are 2 credits
        // there, and 307 too (ceil(307/160) = 2, where a real send is 3).
        assert_eq!(raspisms_credits(&rep("a", 307)), 2);
        // Extension chars make the whole text "unicode" for RaspiSMS.
        assert_eq!(raspisms_credits(&rep("a", 70)), 1);
        assert_eq!(raspisms_credits(&(rep("a", 70) + "€")), 2);
        assert_eq!(raspisms_credits("["), 1);
        assert_eq!(raspisms_credits(&rep("é", 141)), 1);
        assert_eq!(raspisms_credits(&rep("ç", 71)), 2);
        // Code points, not UTF-16 units: 70 emoji are 1 credit there.
        assert_eq!(raspisms_credits(&rep("😀", 70)), 1);
        assert_eq!(raspisms_credits("\u{1B}"), 1);
    }

    /// Texts that hit both encodings, escape pairs and surrogate pairs, long
    /// enough to need several parts.
    fn sms_text() -> impl Strategy<Value = String> {
        let basic = prop::sample::select(
            "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./09:;<=>?¡AZÄÖÑÜ§¿azäöñüà"
                .chars()
                .collect::<Vec<_>>(),
        );
        let extension = prop::sample::select("^{}\\[~]|€\u{0C}".chars().collect::<Vec<_>>());
        let gsm = prop::collection::vec(prop_oneof![4 => basic, 1 => extension], 0..500)
            .prop_map(|v| v.into_iter().collect::<String>());
        let mixed = prop::collection::vec(
            prop_oneof![
                6 => prop::char::range('a', 'z'),
                2 => prop::char::range('\u{80}', '\u{7FF}'),
                1 => prop::char::range('\u{1F600}', '\u{1F64F}'),
                1 => any::<char>(),
            ],
            0..300,
        )
        .prop_map(|v| v.into_iter().collect::<String>());
        prop_oneof![gsm, mixed, any::<String>()]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn split_round_trips_and_fits(text in sms_text()) {
            let analysis = analyse(&text);
            let parts = split(&text);
            prop_assert_eq!(parts.concat(), text.clone());
            prop_assert_eq!(parts.len(), analysis.segments);
            let (single, per_part) = segments::limits(analysis.encoding);
            let limit = if parts.len() == 1 { single } else { per_part };
            let mut total = 0;
            for (i, part) in parts.iter().enumerate() {
                prop_assert!(!part.is_empty() || text.is_empty());
                // Each part keeps the whole message's encoding.
                let units: usize = part.chars().map(|c| segments::cost(analysis.encoding, c)).sum();
                prop_assert!(units <= limit, "part {} has {} units > {}", i, units, limit);
                if analysis.encoding == Encoding::Gsm7 && parts.len() > 1 {
                    prop_assert!(units <= 153);
                }
                // Greedy fill: a non-last part only ends because the next
                // character would not fit.
                if let Some(next) = parts.get(i + 1).and_then(|p| p.chars().next()) {
                    prop_assert!(units + segments::cost(analysis.encoding, next) > limit);
                }
                total += units;
            }
            prop_assert_eq!(total, analysis.units);
        }

        #[test]
        fn units_match_encoding(text in sms_text()) {
            let analysis = analyse(&text);
            prop_assert_eq!(analysis.encoding == Encoding::Gsm7, is_gsm7(&text));
            if analysis.encoding == Encoding::Ucs2 {
                prop_assert_eq!(analysis.units, text.encode_utf16().count());
            }
        }
    }
}
