//! Phone number normalization of the API trigger (DESIGN §5).

/// Drops spaces, `-`, `.`, `(`, `)`; accepts a leading `+`, a leading `00`, or bare digits
/// (read as country code first, like a WhatsApp wa_id). The result is E.164 as both planes
/// check it (`wire::is_e164`): `+` and 7–15 digits, the first not 0.
pub fn normalize(raw: &str) -> Option<String> {
    let mut digits = String::with_capacity(16);
    let mut plus = false;
    for (i, c) in raw.trim().chars().enumerate() {
        match c {
            ' ' | '-' | '.' | '(' | ')' => {}
            '+' if i == 0 => plus = true,
            '0'..='9' => digits.push(c),
            _ => return None,
        }
    }
    let digits = match digits.strip_prefix("00") {
        Some(rest) if !plus => rest,
        _ => digits.as_str(),
    };
    let normalized = format!("+{digits}");
    switchboard_proto::wire::is_e164(&normalized).then_some(normalized)
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn accepts_the_documented_forms() {
        for (raw, want) in [
            ("+1234567890", "+1234567890"),
            ("1234567890", "+1234567890"),
            ("001234567890", "+1234567890"),
            ("+1 (234) 567-890", "+1234567890"),
            ("+56.9.1234.5678", "+56912345678"),
            (" +447911123456 ", "+447911123456"),
            ("+1234567", "+1234567"),
            ("+123456789012345", "+123456789012345"),
        ] {
            assert_eq!(normalize(raw).as_deref(), Some(want), "{raw}");
        }
    }

    #[test]
    fn refuses_everything_else() {
        for raw in [
            "",
            "+",
            "+123456",
            "+1234567890123456",
            "+0123456789",
            "0123456789",
            "+1234a567890",
            "12+34567890",
            "++1234567890",
            "+001234567890",
            "00",
            "phone",
            "+1234567890\u{0}",
        ] {
            assert_eq!(normalize(raw), None, "{raw:?}");
        }
    }
}
