//! The Meta WhatsApp Cloud API webhook envelope (DESIGN §7), parsed into the updates
//! Switchboard acts on: inbound messages and statuses of outbound messages.
//!
//! Parsing borrows from the request body and keeps every message and status object as raw
//! JSON, so unknown message types, unknown members and future fields reach the workflows as
//! Meta sent them. Only the members routing needs are read. A malformed envelope is an
//! error (400); a malformed *update* inside a well-formed envelope is skipped and counted,
//! so one odd element never makes Meta retry the whole batch.

use super::unrouted::Reason;
use crate::store::conversations::Customer;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use switchboard_proto::wire::{self, EventType};

/// The `object` of WhatsApp Business Account webhooks.
pub const OBJECT: &str = "whatsapp_business_account";

/// Longest message id and customer id accepted (Meta's are far shorter); longer ones are
/// skipped, so a hostile body cannot make keys of unbounded size.
const ID_MAX: usize = 256;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PayloadError(String);

#[derive(Debug)]
pub struct Parsed<'a> {
    /// `false` when `object` is not [`OBJECT`]: the whole body is ignored.
    pub known_object: bool,
    /// The envelope's `object`.
    pub object: Option<Cow<'a, str>>,
    pub updates: Vec<Update<'a>>,
    /// Elements skipped: changes of another `field`, statuses Switchboard does not act on
    /// (`played`, …), updates missing what routing needs.
    pub ignored: Vec<Skipped<'a>>,
}

/// An element of a webhook body skipped, and what is known of it.
#[derive(Debug, PartialEq, Eq)]
pub struct Skipped<'a> {
    pub reason: Reason,
    pub phone_number_id: Option<&'a str>,
    /// The field or status named, when that is the reason.
    pub detail: Option<Cow<'a, str>>,
}

impl<'a> Skipped<'a> {
    fn new(reason: Reason, phone_number_id: Option<&'a str>) -> Self {
        Self {
            reason,
            phone_number_id,
            detail: None,
        }
    }
}

#[derive(Debug)]
pub enum Update<'a> {
    Message(Message<'a>),
    Status(Status<'a>),
}

/// The `value.metadata` of a change: the business number.
#[derive(Clone, Copy, Debug)]
pub struct Metadata<'a> {
    pub phone_number_id: &'a str,
    pub raw: &'a RawValue,
}

/// A customer as an update names them (DESIGN §12, Meta's business-scoped user ids): the
/// phone number (wa_id) when Meta shares it, the BSUID, the username when they set one. At
/// least one of `wa_id` and `user_id` is there, else the update is skipped.
#[derive(Debug, Default)]
pub struct Sender<'a> {
    pub wa_id: Option<Cow<'a, str>>,
    pub user_id: Option<Cow<'a, str>>,
    pub username: Option<Cow<'a, str>>,
}

impl Sender<'_> {
    /// The store's form of the customer.
    pub fn customer(&self) -> Customer {
        Customer {
            phone: self.wa_id.as_deref().map(str::to_owned),
            user_id: self.user_id.as_deref().map(str::to_owned),
            username: self.username.as_deref().map(str::to_owned),
        }
    }

    /// `+<wa_id>`, when the phone number is known.
    pub fn phone_number(&self) -> Option<String> {
        self.wa_id.as_deref().map(|p| format!("+{p}"))
    }
}

/// Reads a sender from what an update names: `id` (Meta's `from` or `recipient_id`: a wa_id,
/// or a BSUID when that is all Meta has), `user_id` (`from_user_id` or
/// `recipient_user_id`), and the update's `contacts` (the one of this wa_id or BSUID, or
/// the only one) for the BSUID and username. `None` when neither a wa_id nor a BSUID is
/// usable.
fn sender<'a>(
    id: Option<Cow<'a, str>>,
    user_id: Option<Cow<'a, str>>,
    contacts: &[Contact<'a>],
) -> Option<Sender<'a>> {
    let (mut wa_id, mut bsuid) = (None, user_id.filter(|u| wire::is_bsuid(u)));
    match id {
        Some(id) if is_wa_id(&id) => wa_id = Some(id),
        Some(id) if wire::is_bsuid(&id) => bsuid = bsuid.or(Some(id)),
        Some(_) => return None,
        None => {}
    }
    let contact = contacts
        .iter()
        .find(|c| wa_id.is_some() && c.wa_id == wa_id)
        .or_else(|| {
            contacts
                .iter()
                .find(|c| bsuid.is_some() && c.user_id == bsuid)
        })
        .or(match contacts {
            [only] => Some(only),
            _ => None,
        });
    if let Some(c) = contact {
        if bsuid.is_none() {
            bsuid = c.user_id.clone().filter(|u| wire::is_bsuid(u));
        }
        if wa_id.is_none() {
            wa_id = c.wa_id.clone().filter(|w| is_wa_id(w));
        }
    }
    if wa_id.is_none() && bsuid.is_none() {
        return None;
    }
    let username = contact
        .and_then(|c| c.profile.as_ref())
        .and_then(|p| p.username.clone())
        .filter(|u| usable_username(u));
    Some(Sender {
        wa_id,
        user_id: bsuid,
        username,
    })
}

/// A username Switchboard keeps: up to 64 characters, none of them blank or control.
fn usable_username(name: &str) -> bool {
    (1..=64).contains(&name.chars().count())
        && !name.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[derive(Debug)]
pub struct Message<'a> {
    pub metadata: Metadata<'a>,
    pub id: Cow<'a, str>,
    /// Who sent it: wa_id, BSUID, username, as far as Meta told.
    pub from: Sender<'a>,
    /// Meta's `type` (`text`, `interactive`, `image`, …; `unknown` when absent).
    pub kind: Cow<'a, str>,
    /// DESIGN §6 `last_user_input`.
    pub text: String,
    /// `contacts[].profile.name` of the sender, when given.
    pub contact_name: Option<Cow<'a, str>>,
    pub raw: &'a RawValue,
}

/// Statuses Switchboard tracks, in their monotonic order (`failed` is final).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Delivery {
    Sent,
    Delivered,
    Read,
    Failed,
}

impl Delivery {
    pub const ALL: [Delivery; 4] = [
        Delivery::Sent,
        Delivery::Delivered,
        Delivery::Read,
        Delivery::Failed,
    ];

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::Sent => "sent",
            Delivery::Delivered => "delivered",
            Delivery::Read => "read",
            Delivery::Failed => "failed",
        }
    }

    /// Position in the monotonic order: a status only replaces a lower one.
    pub fn rank(self) -> u8 {
        self as u8 + 1
    }

    pub fn event_type(self) -> EventType {
        match self {
            Delivery::Sent => EventType::MessageSent,
            Delivery::Delivered => EventType::MessageDelivered,
            Delivery::Read => EventType::MessageRead,
            Delivery::Failed => EventType::MessageFailed,
        }
    }
}

#[derive(Debug)]
pub struct Status<'a> {
    pub metadata: Metadata<'a>,
    /// The wamid of the outbound message.
    pub id: Cow<'a, str>,
    pub status: Delivery,
    pub recipient: Sender<'a>,
    pub raw: &'a RawValue,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    object: Option<Cow<'a, str>>,
    /// Read only once `object` is known: other objects are ignored whatever their shape.
    #[serde(borrow, default)]
    entry: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Entry<'a> {
    #[serde(borrow, default)]
    changes: Vec<Change<'a>>,
}

#[derive(Deserialize)]
struct Change<'a> {
    #[serde(borrow, default)]
    field: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    value: Option<Value<'a>>,
}

#[derive(Deserialize)]
struct Value<'a> {
    #[serde(borrow, default)]
    metadata: Option<&'a RawValue>,
    #[serde(borrow, default)]
    contacts: Vec<&'a RawValue>,
    #[serde(borrow, default)]
    messages: Vec<&'a RawValue>,
    #[serde(borrow, default)]
    statuses: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
struct MetadataFields<'a> {
    #[serde(borrow)]
    phone_number_id: &'a str,
}

#[derive(Deserialize)]
struct Contact<'a> {
    #[serde(borrow, default)]
    wa_id: Option<Cow<'a, str>>,
    /// The BSUID.
    #[serde(borrow, default)]
    user_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    profile: Option<Profile<'a>>,
}

#[derive(Deserialize)]
struct Profile<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    username: Option<Cow<'a, str>>,
}

/// The members of a message routing reads.
#[derive(Deserialize)]
struct MessageHead<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow, default)]
    from: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    from_user_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "type")]
    kind: Option<Cow<'a, str>>,
}

/// The members `last_user_input` is read from. Parsed separately from [`MessageHead`], so a
/// message whose content has an unexpected shape is still routed (with empty input).
#[derive(Deserialize, Default)]
struct MessageBody<'a> {
    #[serde(borrow, default)]
    text: Option<Body<'a>>,
    #[serde(borrow, default)]
    interactive: Option<Interactive<'a>>,
    #[serde(borrow, default)]
    button: Option<Button<'a>>,
    #[serde(borrow, default)]
    image: Option<Media<'a>>,
    #[serde(borrow, default)]
    video: Option<Media<'a>>,
    #[serde(borrow, default)]
    document: Option<Media<'a>>,
    #[serde(borrow, default)]
    audio: Option<Media<'a>>,
    #[serde(borrow, default)]
    sticker: Option<Media<'a>>,
}

#[derive(Deserialize)]
struct Body<'a> {
    #[serde(borrow, default)]
    body: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Interactive<'a> {
    #[serde(borrow, default)]
    button_reply: Option<Reply<'a>>,
    #[serde(borrow, default)]
    list_reply: Option<Reply<'a>>,
}

#[derive(Deserialize)]
struct Reply<'a> {
    #[serde(borrow, default)]
    title: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Button<'a> {
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Media<'a> {
    #[serde(borrow, default)]
    caption: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct StatusHead<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    status: Cow<'a, str>,
    #[serde(borrow, default)]
    recipient_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    recipient_user_id: Option<Cow<'a, str>>,
}

impl<'a> MessageBody<'a> {
    /// DESIGN §6: text body; the chosen title of an interactive reply; a button's text; a
    /// media caption; otherwise "".
    fn user_input(self, kind: &str) -> String {
        let caption = |m: Option<Media<'a>>| m.and_then(|m| m.caption);
        let text = match kind {
            "text" => self.text.and_then(|t| t.body),
            "interactive" => self
                .interactive
                .and_then(|i| i.button_reply.or(i.list_reply))
                .and_then(|r| r.title),
            "button" => self.button.and_then(|b| b.text),
            "image" => caption(self.image),
            "video" => caption(self.video),
            "document" => caption(self.document),
            "audio" => caption(self.audio),
            "sticker" => caption(self.sticker),
            _ => None,
        };
        text.map(Cow::into_owned).unwrap_or_default()
    }
}

fn is_wa_id(id: &str) -> bool {
    (1..=32).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_digit())
}

fn usable_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= ID_MAX
}

/// Parses a webhook body. Errors only when the body is not JSON or not an envelope.
pub fn parse(body: &[u8]) -> Result<Parsed<'_>, PayloadError> {
    let envelope: Envelope<'_> =
        serde_json::from_slice(body).map_err(|e| PayloadError(e.to_string()))?;
    let mut parsed = Parsed {
        known_object: envelope.object.as_deref() == Some(OBJECT),
        object: envelope.object,
        updates: Vec::new(),
        ignored: Vec::new(),
    };
    if !parsed.known_object {
        return Ok(parsed);
    }
    let entries: Vec<Entry<'_>> = match envelope.entry {
        Some(raw) => serde_json::from_str(raw.get()).map_err(|e| PayloadError(e.to_string()))?,
        None => Vec::new(),
    };
    for change in entries.into_iter().flat_map(|e| e.changes) {
        if change.field.as_deref().is_some_and(|f| f != "messages") {
            parsed.ignored.push(Skipped {
                detail: change.field,
                ..Skipped::new(Reason::Field, None)
            });
            continue;
        }
        let Some(value) = change.value else {
            parsed.ignored.push(Skipped::new(Reason::Malformed, None));
            continue;
        };
        let Some(metadata) = value.metadata.and_then(|raw| {
            let fields: MetadataFields<'_> = serde_json::from_str(raw.get()).ok()?;
            Some(Metadata {
                phone_number_id: fields.phone_number_id,
                raw,
            })
        }) else {
            parsed.ignored.push(Skipped::new(Reason::Malformed, None));
            continue;
        };
        let pnid = Some(metadata.phone_number_id);
        let contacts: Vec<Contact<'_>> = value
            .contacts
            .iter()
            .filter_map(|raw| serde_json::from_str(raw.get()).ok())
            .collect();
        for raw in value.messages {
            match parse_message(raw, metadata, &contacts) {
                Some(message) => parsed.updates.push(Update::Message(message)),
                None => parsed.ignored.push(Skipped::new(Reason::Malformed, pnid)),
            }
        }
        for raw in value.statuses {
            let Some(head) = serde_json::from_str::<StatusHead<'_>>(raw.get())
                .ok()
                .filter(|head| usable_id(&head.id))
            else {
                parsed.ignored.push(Skipped::new(Reason::Malformed, pnid));
                continue;
            };
            let Some(recipient) = sender(head.recipient_id, head.recipient_user_id, &contacts)
            else {
                parsed.ignored.push(Skipped::new(Reason::Malformed, pnid));
                continue;
            };
            match Delivery::parse(&head.status) {
                Some(status) => parsed.updates.push(Update::Status(Status {
                    metadata,
                    id: head.id,
                    status,
                    recipient,
                    raw,
                })),
                None => parsed.ignored.push(Skipped {
                    detail: Some(head.status),
                    ..Skipped::new(Reason::Status, pnid)
                }),
            }
        }
    }
    Ok(parsed)
}

fn parse_message<'a>(
    raw: &'a RawValue,
    metadata: Metadata<'a>,
    contacts: &[Contact<'a>],
) -> Option<Message<'a>> {
    let head: MessageHead<'a> = serde_json::from_str(raw.get()).ok()?;
    if !usable_id(&head.id) {
        return None;
    }
    let from = sender(head.from, head.from_user_id, contacts)?;
    let kind = head.kind.unwrap_or(Cow::Borrowed("unknown"));
    let text = serde_json::from_str::<MessageBody<'_>>(raw.get())
        .unwrap_or_default()
        .user_input(&kind);
    let contact_name = contacts
        .iter()
        .find(|c| {
            (from.wa_id.is_some() && c.wa_id == from.wa_id)
                || (from.user_id.is_some() && c.user_id == from.user_id)
        })
        .and_then(|c| c.profile.as_ref())
        .and_then(|p| p.name.clone());
    Some(Message {
        metadata,
        id: head.id,
        from,
        kind,
        text,
        contact_name,
        raw,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(json: &str) -> String {
        let body = format!(
            r#"{{"object":"whatsapp_business_account","entry":[{{"changes":[{{"field":"messages",
            "value":{{"metadata":{{"phone_number_id":"1"}},"messages":[{json}]}}}}]}}]}}"#
        );
        let parsed = parse(body.as_bytes()).expect("parses");
        match parsed.updates.as_slice() {
            [Update::Message(m)] => m.text.clone(),
            other => panic!("one message expected, got {other:?}"),
        }
    }

    #[test]
    fn last_user_input_of_each_message_type() {
        let m = |rest: &str| message(&format!(r#"{{"from":"15","id":"w",{rest}}}"#));
        assert_eq!(m(r#""type":"text","text":{"body":"hi"}"#), "hi");
        assert_eq!(
            m(
                r#""type":"interactive","interactive":{"type":"button_reply","button_reply":{"id":"b","title":"Yes"}}"#
            ),
            "Yes"
        );
        assert_eq!(
            m(
                r#""type":"interactive","interactive":{"type":"list_reply","list_reply":{"id":"l","title":"Row"}}"#
            ),
            "Row"
        );
        assert_eq!(
            m(r#""type":"button","button":{"text":"Stop","payload":"p"}"#),
            "Stop"
        );
        for media in ["image", "video", "document", "audio", "sticker"] {
            assert_eq!(
                m(&format!(
                    r#""type":"{media}","{media}":{{"id":"m","caption":"look"}}"#
                )),
                "look"
            );
        }
        assert_eq!(m(r#""type":"image","image":{"id":"m"}"#), "");
        assert_eq!(
            m(r#""type":"location","location":{"latitude":1.5,"longitude":2}"#),
            ""
        );
        assert_eq!(
            m(r#""type":"reaction","reaction":{"message_id":"x","emoji":"👍"}"#),
            ""
        );
        assert_eq!(m(r#""type":"hologram","hologram":{"depth":3}"#), "");
        // Content of an unexpected shape: still a message, with empty input.
        assert_eq!(m(r#""type":"text","text":"flat""#), "");
    }

    #[test]
    fn statuses_outside_the_tracked_four_and_other_fields_are_ignored() {
        let body = br#"{"object":"whatsapp_business_account","entry":[{"changes":[
            {"field":"messages","value":{"metadata":{"phone_number_id":"1"},"statuses":[
              {"id":"w","status":"played","recipient_id":"15"},
              {"id":"w","status":"read","recipient_id":"15"},
              {"id":"w","status":"read","recipient_id":"not digits"}]}},
            {"field":"account_update","value":{"metadata":{"phone_number_id":"1"}}}]}]}"#;
        let parsed = parse(body).expect("parses");
        assert_eq!(parsed.updates.len(), 1);
        let reasons: Vec<Reason> = parsed.ignored.iter().map(|s| s.reason).collect();
        assert_eq!(reasons, [Reason::Status, Reason::Malformed, Reason::Field]);
        assert_eq!(parsed.ignored[0].detail.as_deref(), Some("played"));
        assert_eq!(parsed.ignored[0].phone_number_id, Some("1"));
        assert_eq!(parsed.ignored[2].detail.as_deref(), Some("account_update"));
    }

    #[test]
    fn other_objects_and_broken_bodies() {
        let parsed = parse(br#"{"object":"page","entry":[{"changes":[1]}]}"#).expect("parses");
        assert!(!parsed.known_object);
        assert!(parse(b"{").is_err());
        assert!(parse(br#"{"object":"whatsapp_business_account","entry":"x"}"#).is_err());
    }

    mod fuzz {
        use super::super::parse;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            /// Arbitrary bytes: an error or a parse, never a panic.
            #[test]
            fn never_panics_on_bytes(body in proptest::collection::vec(any::<u8>(), 0..512)) {
                let _ = parse(&body);
            }

            /// Envelopes with arbitrary JSON in every position routing reads.
            #[test]
            fn never_panics_on_shaped_envelopes(
                kind in "[a-z_]{0,12}",
                content in any_json(),
                status in any_json(),
                metadata in any_json(),
            ) {
                let body = format!(
                    r#"{{"object":"whatsapp_business_account","entry":[{{"changes":[{{"field":"messages","value":{{"metadata":{metadata},"contacts":[{content}],"messages":[{{"id":"w","from":"1","type":"{kind}","{kind}":{content}}},{content}],"statuses":[{status}]}}}}]}}]}}"#
                );
                if let Ok(parsed) = parse(body.as_bytes()) {
                    prop_assert!(parsed.updates.len() <= 3);
                }
            }
        }

        fn any_json() -> impl Strategy<Value = String> {
            let leaf = prop_oneof![
                Just("null".to_owned()),
                any::<bool>().prop_map(|b| b.to_string()),
                any::<i64>().prop_map(|n| n.to_string()),
                "[a-zA-Z0-9 ]{0,8}".prop_map(|s| format!("{s:?}")),
            ];
            leaf.prop_recursive(3, 24, 4, |inner| {
                prop_oneof![
                    proptest::collection::vec(inner.clone(), 0..4)
                        .prop_map(|v| format!("[{}]", v.join(","))),
                    proptest::collection::vec(("[a-z_]{1,12}", inner), 0..4).prop_map(|v| {
                        let members: Vec<String> =
                            v.into_iter().map(|(k, v)| format!("{k:?}:{v}")).collect();
                        format!("{{{}}}", members.join(","))
                    }),
                ]
            })
        }
    }
}
