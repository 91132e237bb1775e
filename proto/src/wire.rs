//! Rules for what travels between the planes, written once: the control plane validates
//! with them and the data plane parses with them, so every entry one accepts the other
//! routes. Trigger and event type names (DESIGN §3), routing entry keys (DESIGN §4), Meta's
//! `phone_number_id` and E.164 numbers.

use std::fmt;

/// A trigger type; the name is also `system.trigger_type` (DESIGN §3, §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TriggerType {
    InboundMessage,
    WhatsappEvent,
    ApiCall,
}

impl TriggerType {
    pub const ALL: [TriggerType; 3] = [
        TriggerType::InboundMessage,
        TriggerType::WhatsappEvent,
        TriggerType::ApiCall,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            TriggerType::InboundMessage => "inbound_message",
            TriggerType::WhatsappEvent => "whatsapp_event",
            TriggerType::ApiCall => "api_call",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// Every name, for error messages: `inbound_message, whatsapp_event, api_call`.
    pub fn names() -> String {
        names(Self::ALL.map(Self::as_str))
    }
}

impl fmt::Display for TriggerType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event a `whatsapp_event` trigger can observe (DESIGN §3, §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    MessageReceived,
    MessageSent,
    MessageDelivered,
    MessageRead,
    MessageFailed,
    ConversationCreated,
    ConversationEnded,
}

impl EventType {
    pub const ALL: [EventType; 7] = [
        EventType::MessageReceived,
        EventType::MessageSent,
        EventType::MessageDelivered,
        EventType::MessageRead,
        EventType::MessageFailed,
        EventType::ConversationCreated,
        EventType::ConversationEnded,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            EventType::MessageReceived => "whatsapp.message.received",
            EventType::MessageSent => "whatsapp.message.sent",
            EventType::MessageDelivered => "whatsapp.message.delivered",
            EventType::MessageRead => "whatsapp.message.read",
            EventType::MessageFailed => "whatsapp.message.failed",
            EventType::ConversationCreated => "whatsapp.conversation.created",
            EventType::ConversationEnded => "whatsapp.conversation.ended",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == name)
    }

    /// The message status a message event names (`received`, `sent`, …); `None` for
    /// conversation events.
    pub fn message_status(self) -> Option<&'static str> {
        self.as_str().strip_prefix("whatsapp.message.")
    }

    /// Every name, for error messages.
    pub fn names() -> String {
        names(Self::ALL.map(Self::as_str))
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn names<const N: usize>(names: [&str; N]) -> String {
    names.join(", ")
}

/// The key of a routing entry (DESIGN §4): its kind's prefix and its id. Deltas name
/// removed entries by key, so both planes must spell keys alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKey<'a> {
    /// `k:<api key id>`
    ApiKey(&'a str),
    /// `n:<whatsapp_config_id>`
    Number(i64),
    /// `w:<workflow id>`
    Workflow(&'a str),
    /// `t:<trigger id>`
    Trigger(&'a str),
}

impl EntryKey<'_> {
    pub const API_KEY: &'static str = "k:";
    pub const NUMBER: &'static str = "n:";
    pub const WORKFLOW: &'static str = "w:";
    pub const TRIGGER: &'static str = "t:";

    /// The key's kind and id, if `key` is one of the four kinds (a number's id must be an
    /// integer written as [`EntryKey::to_key`] writes it; the others' ids are taken as they
    /// are).
    pub fn parse(key: &str) -> Option<EntryKey<'_>> {
        let (kind, id) = key.split_at_checked(2)?;
        match kind {
            Self::API_KEY => Some(EntryKey::ApiKey(id)),
            Self::NUMBER => canonical_integer(id)
                .then(|| id.parse().ok())
                .flatten()
                .map(EntryKey::Number),
            Self::WORKFLOW => Some(EntryKey::Workflow(id)),
            Self::TRIGGER => Some(EntryKey::Trigger(id)),
            _ => None,
        }
    }

    /// The key as text, allocated once (`format!` costs more, a million times a compile).
    pub fn to_key(self) -> String {
        let (prefix, id) = match self {
            EntryKey::ApiKey(id) => (Self::API_KEY, id),
            EntryKey::Workflow(id) => (Self::WORKFLOW, id),
            EntryKey::Trigger(id) => (Self::TRIGGER, id),
            EntryKey::Number(id) => return format!("{}{id}", Self::NUMBER),
        };
        let mut key = String::with_capacity(prefix.len() + id.len());
        key.push_str(prefix);
        key.push_str(id);
        key
    }
}

impl fmt::Display for EntryKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntryKey::ApiKey(id) => write!(f, "{}{id}", Self::API_KEY),
            EntryKey::Number(id) => write!(f, "{}{id}", Self::NUMBER),
            EntryKey::Workflow(id) => write!(f, "{}{id}", Self::WORKFLOW),
            EntryKey::Trigger(id) => write!(f, "{}{id}", Self::TRIGGER),
        }
    }
}

/// Whether `text` is an integer as Rust prints one: digits, an optional `-`, no leading
/// zero, no `+`.
fn canonical_integer(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (!digits.starts_with('0') || text == "0")
}

/// Most digits of a Meta `phone_number_id` (Meta's are 15 or 16 today).
pub const PHONE_NUMBER_ID_MAX_DIGITS: usize = 20;

/// Whether `value` is a Meta `phone_number_id`: 1 to [`PHONE_NUMBER_ID_MAX_DIGITS`] ASCII
/// digits, leading zeros allowed (the id is text: `0123` and `123` are two numbers).
pub fn is_phone_number_id(value: &str) -> bool {
    (1..=PHONE_NUMBER_ID_MAX_DIGITS).contains(&value.len())
        && value.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `value` is an E.164 number as Switchboard writes them: `+`, then 7 to 15 digits,
/// the first not 0 (display numbers, and phone numbers after normalization).
pub fn is_e164(value: &str) -> bool {
    value.strip_prefix('+').is_some_and(|digits| {
        (7..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0')
    })
}

/// Most alphanumerics after the country code of a BSUID.
pub const BSUID_MAX_ID: usize = 128;

/// Whether `value` is a business-scoped user id (Meta's "Business-scoped user IDs"): a
/// two-letter country code, `.`, `ENT.` for a parent BSUID, then 1 to [`BSUID_MAX_ID`]
/// ASCII letters and digits (`US.13491208655302741918`, `US.ENT.11815799212886844830`).
pub fn is_bsuid(value: &str) -> bool {
    let Some((country, rest)) = value.split_once('.') else {
        return false;
    };
    let id = rest.strip_prefix("ENT.").unwrap_or(rest);
    country.len() == 2
        && country.bytes().all(|b| b.is_ascii_uppercase())
        && (1..=BSUID_MAX_ID).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_round_trip() {
        for t in TriggerType::ALL {
            assert_eq!(TriggerType::parse(t.as_str()), Some(t));
        }
        for e in EventType::ALL {
            assert_eq!(EventType::parse(e.as_str()), Some(e));
            assert_eq!(e.to_string(), e.as_str());
        }
        assert_eq!(TriggerType::parse("Api_Call"), None);
        assert_eq!(EventType::parse("whatsapp.message.played"), None);
        assert_eq!(EventType::MessageRead.message_status(), Some("read"));
        assert_eq!(EventType::ConversationEnded.message_status(), None);
        assert_eq!(
            TriggerType::names(),
            "inbound_message, whatsapp_event, api_call"
        );
    }

    #[test]
    fn entry_keys_round_trip() {
        let id = "0193a1b2-0000-7000-8000-000000000001";
        for key in [
            EntryKey::ApiKey(id),
            EntryKey::Number(42),
            EntryKey::Number(-1),
            EntryKey::Workflow(id),
            EntryKey::Trigger(id),
        ] {
            assert_eq!(key.to_key(), key.to_string());
            assert_eq!(EntryKey::parse(&key.to_key()), Some(key));
        }
        assert_eq!(EntryKey::Number(7).to_key(), "n:7");
        assert_eq!(EntryKey::Trigger("x").to_key(), "t:x");
        for bad in ["", "k", "x:1", "n:one", "n:", "n:+1", "n:01", "n:-0", "é:1"] {
            assert_eq!(EntryKey::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn phone_number_ids_are_up_to_twenty_digits() {
        for good in [
            "1",
            "0",
            "0106540352242922",
            "106540352242922",
            &"9".repeat(20),
        ] {
            assert!(is_phone_number_id(good), "{good:?}");
        }
        for bad in ["", &"1".repeat(21), "12a", "+123", " 123", "１２３"] {
            assert!(!is_phone_number_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn e164_is_plus_and_seven_to_fifteen_digits() {
        for good in ["+1234567", "+15550000000", "+123456789012345"] {
            assert!(is_e164(good), "{good}");
        }
        for bad in [
            "1234567",
            "+123456",
            "+1234567890123456",
            "+0123456789",
            "+1234a67",
            "+",
        ] {
            assert!(!is_e164(bad), "{bad}");
        }
    }

    #[test]
    fn bsuids_are_a_country_a_dot_and_alphanumerics() {
        for good in [
            "US.13491208655302741918",
            "US.ENT.11815799212886844830",
            "BR.a1",
        ] {
            assert!(is_bsuid(good), "{good}");
        }
        let long = format!("US.{}", "1".repeat(BSUID_MAX_ID + 1));
        for bad in [
            "", "US", "US.", "us.123", "USA.123", "US.ENT.", "US.12 3", "15551234", &long,
        ] {
            assert!(!is_bsuid(bad), "{bad}");
        }
    }
}
