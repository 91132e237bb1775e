//! Input checks shared by every catalog operation.

use super::{Error, Result};
use switchboard_proto::wire;

/// Longest accepted name, in characters.
const MAX_NAME_CHARS: usize = 200;

/// Parses a UUID id, answering with its canonical lowercase form.
pub(crate) fn id(field: &str, value: &str) -> Result<String> {
    uuid::Uuid::parse_str(value.trim())
        .map(|u| u.hyphenated().to_string())
        .map_err(|_| Error::invalid(field, format!("{value:?} is not a valid id")))
}

/// A trimmed, non-empty, bounded name.
pub(crate) fn name(field: &str, value: &str) -> Result<String> {
    let value = value.trim();
    if value.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if value.chars().count() > MAX_NAME_CHARS {
        return Err(Error::invalid(
            field,
            format!("must be at most {MAX_NAME_CHARS} characters"),
        ));
    }
    Ok(value.to_owned())
}

/// Meta's `phone_number_id`, by the rule every data plane parses it with
/// (`wire::is_phone_number_id`): what is accepted here routes.
pub(crate) fn phone_number_id(field: &str, value: &str) -> Result<String> {
    let value = value.trim();
    if !wire::is_phone_number_id(value) {
        return Err(Error::invalid(
            field,
            format!(
                "{value:?} is not a Meta phone_number_id (1-{} digits)",
                wire::PHONE_NUMBER_ID_MAX_DIGITS
            ),
        ));
    }
    Ok(value.to_owned())
}

/// An E.164 display number: `+` then 7 to 15 digits, the first not 0 (`wire::is_e164`).
pub(crate) fn e164(field: &str, value: &str) -> Result<String> {
    let value = value.trim();
    if !wire::is_e164(value) {
        return Err(Error::invalid(
            field,
            format!("{value:?} is not an E.164 number like +15550000000"),
        ));
    }
    Ok(value.to_owned())
}

/// Workflow status: `active` or `draft`.
pub(crate) fn workflow_status(field: &str, value: &str) -> Result<String> {
    match value {
        "active" | "draft" => Ok(value.to_owned()),
        other => Err(Error::invalid(
            field,
            format!("{other:?} is not a workflow status (active, draft)"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_canonicalised_and_garbage_is_refused() {
        assert_eq!(
            id("x", "0193A1B2-0000-7000-8000-000000000001")
                .ok()
                .as_deref(),
            Some("0193a1b2-0000-7000-8000-000000000001")
        );
        let err = id("workflow_id", "nope").err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("workflow_id: \"nope\" is not a valid id")
        );
    }

    #[test]
    fn names_must_have_content() {
        assert!(name("name", "  ").is_err());
        assert_eq!(name("name", " demo ").ok().as_deref(), Some("demo"));
        assert!(name("name", &"x".repeat(201)).is_err());
    }

    #[test]
    fn display_numbers_are_e164() {
        assert!(e164("n", "+15550000000").is_ok());
        assert!(e164("n", "15550000000").is_err());
        assert!(e164("n", "+0555000000").is_err());
        assert!(e164("n", "+12345").is_err());
        assert!(phone_number_id("p", "1065403522").is_ok());
        assert!(phone_number_id("p", "0106540352242922").is_ok());
        assert!(phone_number_id("p", "10a").is_err());
        assert!(phone_number_id("p", &"1".repeat(21)).is_err());
    }
}
