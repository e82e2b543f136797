//! Bounds on text read from outside: symbols, comments and ids are stored in text columns
//! and shown in logs, so each has a maximum length in bytes and no control characters
//! (PostgreSQL refuses U+0000 in text; the others corrupt logs and terminals).
//!
//! The limits are far above what MetaTrader 5 produces (symbols and comments of at most
//! 31 characters, tickets of 20 digits) and what a bot's ids need.

/// The longest symbol accepted, in bytes.
pub const MAX_SYMBOL_BYTES: usize = 64;

/// The longest position comment accepted, in bytes.
pub const MAX_COMMENT_BYTES: usize = 255;

/// The longest id accepted (trade id, client id, account id), in bytes.
pub const MAX_ID_BYTES: usize = 128;

/// Why `value` cannot be stored as a text of at most `max` bytes, if it cannot: too long,
/// or holding a control character (U+0000–U+001F, U+007F–U+009F).
pub fn text_problem(value: &str, max: usize) -> Option<String> {
    if value.len() > max {
        return Some(format!(
            "{} bytes, longer than the {max} accepted",
            value.len()
        ));
    }
    value
        .char_indices()
        .find(|(_, c)| c.is_control())
        .map(|(at, c)| {
            format!(
                "control character U+{:04X} at byte {at} (not accepted in text)",
                u32::from(c)
            )
        })
}

/// `text` shortened to `max` characters for an error message, with control characters
/// escaped (`\u{0}`), so that an error never carries what the input was refused for.
pub fn shown(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .take(max)
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_unicode().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect();
    if text.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::plain("EURUSD", 64, None)]
    #[case::unicode_within("Ölpreis", 8, None)]
    #[case::exactly_max("abcd", 4, None)]
    #[case::one_byte_over("abcde", 4, Some("5 bytes, longer than the 4 accepted"))]
    #[case::multibyte_counts_bytes("ÖÖÖ", 4, Some("6 bytes, longer than the 4 accepted"))]
    #[case::nul(
        "EUR\0USD",
        64,
        Some("control character U+0000 at byte 3 (not accepted in text)")
    )]
    #[case::newline(
        "a\nb",
        64,
        Some("control character U+000A at byte 1 (not accepted in text)")
    )]
    #[case::tab(
        "\t",
        64,
        Some("control character U+0009 at byte 0 (not accepted in text)")
    )]
    #[case::delete(
        "x\u{7f}",
        64,
        Some("control character U+007F at byte 1 (not accepted in text)")
    )]
    #[case::c1(
        "x\u{85}",
        64,
        Some("control character U+0085 at byte 1 (not accepted in text)")
    )]
    fn text_is_bounded_and_free_of_control_characters(
        #[case] value: &str,
        #[case] max: usize,
        #[case] problem: Option<&str>,
    ) {
        assert_eq!(text_problem(value, max).as_deref(), problem);
    }

    #[test]
    fn shown_text_is_short_and_escaped() {
        assert_eq!(shown("EURUSD", 60), "EURUSD");
        assert_eq!(shown("a\0b", 60), "a\\u{0}b");
        assert_eq!(shown(&"x".repeat(100), 3), "xxx…");
    }
}
