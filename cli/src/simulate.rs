//! `switchboard simulate`: builds a webhook as Meta would send it (a message, a batch, a
//! status, or a file), signs it with the app secret, posts it to a data plane and prints the
//! answer and the routing decisions it made (DESIGN §14), so trying a webhook needs no script.
//! What is not given (app secret, API key) comes from the credentials `switchboard dev` keeps.

use crate::args::{Output, Simulate, SimulateTarget, SimulatedStatus, SimulatedType};
use crate::commands::{Failure, error_chain, many, print};
use crate::decisions::{connect, with};
use crate::output::Show;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use switchboard_data_plane::whatsapp::signature;
use switchboard_proto::v1 as pb;
use switchboard_proto::wire;

/// Most messages `--count` puts in one webhook.
const MAX_COUNT: u32 = 100;

pub async fn run(command: Simulate, output: Output) -> Result<(), Failure> {
    let (target, body) = match command {
        Simulate::Message {
            target,
            phone_number_id,
            from,
            kind,
            text,
            payload,
            message_id,
            name,
            user_id,
            username,
            count,
        } => {
            let customer = Customer {
                wa_id: wa_id("--from", &from)?,
                name,
                user_id: bsuid(user_id)?,
                username,
            };
            if !(1..=MAX_COUNT).contains(&count) {
                return Err(Failure::Usage(format!("--count: 1 to {MAX_COUNT}")));
            }
            let payload = payload.unwrap_or_else(|| slug(&text));
            let base = message_id.unwrap_or_else(fresh_message_id);
            let messages = (1..=count)
                .map(|i| {
                    let id = if count == 1 {
                        base.clone()
                    } else {
                        format!("{base}.{i}")
                    };
                    message(&customer, &id, kind, &text, &payload)
                })
                .collect();
            let value = json!({
                "messaging_product": "whatsapp",
                "metadata": metadata(&number("--phone-number-id", &phone_number_id)?),
                "contacts": [customer.contact()],
                "messages": Value::Array(messages),
            });
            (target, envelope(value).to_string().into_bytes())
        }
        Simulate::Status {
            target,
            phone_number_id,
            status,
            message_id,
            recipient,
            error_code,
        } => {
            if message_id.trim().is_empty() {
                return Err(Failure::Usage("--message-id: must not be empty".into()));
            }
            let value = json!({
                "messaging_product": "whatsapp",
                "metadata": metadata(&number("--phone-number-id", &phone_number_id)?),
                "statuses": [status_update(
                    &message_id,
                    status,
                    &wa_id("--recipient", &recipient)?,
                    error_code,
                )],
            });
            (target, envelope(value).to_string().into_bytes())
        }
        Simulate::File {
            target,
            path,
            phone_number_id,
        } => {
            let bytes = read_input(&path)?;
            let bytes = match phone_number_id {
                Some(id) => renumber(&bytes, &number("--phone-number-id", &id)?)
                    .map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?,
                None => bytes,
            };
            (target, bytes)
        }
    };
    send(target, body, output).await
}

/// The customer a simulated message comes from.
struct Customer {
    wa_id: String,
    name: String,
    user_id: Option<String>,
    username: Option<String>,
}

impl Customer {
    /// The `contacts[]` entry Meta sends with a message.
    fn contact(&self) -> Value {
        let mut profile = json!({ "name": self.name });
        if let Some(username) = &self.username {
            profile["username"] = json!(username);
        }
        let mut contact = json!({ "profile": profile, "wa_id": self.wa_id });
        if let Some(user_id) = &self.user_id {
            contact["user_id"] = json!(user_id);
        }
        contact
    }
}

/// One `messages[]` entry of the given type.
fn message(customer: &Customer, id: &str, kind: SimulatedType, text: &str, payload: &str) -> Value {
    let mut message = json!({
        "from": customer.wa_id,
        "id": id,
        "timestamp": now().to_string(),
    });
    if let Some(user_id) = &customer.user_id {
        message["from_user_id"] = json!(user_id);
    }
    let (name, content) = match kind {
        SimulatedType::Text => ("text", json!({ "body": text })),
        SimulatedType::Button => ("button", json!({ "text": text, "payload": payload })),
        SimulatedType::Interactive => (
            "interactive",
            json!({ "type": "button_reply", "button_reply": { "id": payload, "title": text } }),
        ),
        SimulatedType::List => (
            "interactive",
            json!({ "type": "list_reply", "list_reply": { "id": payload, "title": text } }),
        ),
        SimulatedType::Image => ("image", media("image/jpeg", Some(text))),
        SimulatedType::Video => ("video", media("video/mp4", Some(text))),
        SimulatedType::Document => {
            let mut document = media("application/pdf", Some(text));
            document["filename"] = json!("document.pdf");
            ("document", document)
        }
        SimulatedType::Audio => ("audio", media("audio/ogg; codecs=opus", None)),
        SimulatedType::Sticker => ("sticker", media("image/webp", None)),
    };
    message["type"] = json!(name);
    message[name] = content;
    message
}

/// A media object (Meta sends the media's id, never its bytes).
fn media(mime_type: &str, caption: Option<&str>) -> Value {
    let mut media = json!({
        "id": rand::random::<u64>().to_string(),
        "mime_type": mime_type,
        "sha256": hex::encode(rand::random::<[u8; 32]>()),
    });
    if let Some(caption) = caption.filter(|c| !c.is_empty()) {
        media["caption"] = json!(caption);
    }
    media
}

/// One `statuses[]` entry; a failed one carries Meta's error.
fn status_update(message_id: &str, status: SimulatedStatus, recipient: &str, code: u32) -> Value {
    let name = match status {
        SimulatedStatus::Sent => "sent",
        SimulatedStatus::Delivered => "delivered",
        SimulatedStatus::Read => "read",
        SimulatedStatus::Failed => "failed",
    };
    let mut update = json!({
        "id": message_id,
        "status": name,
        "timestamp": now().to_string(),
        "recipient_id": recipient,
    });
    if status == SimulatedStatus::Failed {
        update["errors"] = json!([{
            "code": code,
            "title": "Simulated failure",
            "message": "Simulated failure",
            "error_data": { "details": "sent by switchboard simulate" },
        }]);
    }
    update
}

fn metadata(phone_number_id: &str) -> Value {
    json!({ "display_phone_number": "15550000000", "phone_number_id": phone_number_id })
}

/// A WhatsApp Business Account webhook with one `messages` change.
fn envelope(value: Value) -> Value {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": "0", "changes": [{ "field": "messages", "value": value }] }],
    })
}

/// `bytes` with the phone_number_id of every change set to `phone_number_id`.
fn renumber(bytes: &[u8], phone_number_id: &str) -> Result<Vec<u8>, String> {
    let mut body: Value =
        serde_json::from_slice(bytes).map_err(|e| format!("not JSON ({e}); cannot renumber"))?;
    for change in changes_mut(&mut body) {
        if let Some(metadata) = change.pointer_mut("/value/metadata") {
            metadata["phone_number_id"] = json!(phone_number_id);
        }
    }
    Ok(body.to_string().into_bytes())
}

fn changes_mut(body: &mut Value) -> impl Iterator<Item = &mut Value> {
    body.get_mut("entry")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.get_mut("changes").and_then(Value::as_array_mut))
        .flatten()
}

/// How many times each message or status id occurs in a webhook body (every update records
/// one decision under its id).
fn update_ids(bytes: &[u8]) -> BTreeMap<String, u32> {
    let mut ids = BTreeMap::new();
    let Ok(body) = serde_json::from_slice::<Value>(bytes) else {
        return ids;
    };
    let entries = body.get("entry").and_then(Value::as_array);
    let changes = entries
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.get("changes").and_then(Value::as_array))
        .flatten();
    for change in changes {
        for list in ["messages", "statuses"] {
            let updates = change.pointer(&format!("/value/{list}"));
            for update in updates.and_then(Value::as_array).into_iter().flatten() {
                if let Some(id) = update.get("id").and_then(Value::as_str) {
                    *ids.entry(id.to_owned()).or_insert(0) += 1;
                }
            }
        }
    }
    ids
}

/// Signs and posts `body`, then prints the answer and the decisions.
async fn send(target: SimulateTarget, body: Vec<u8>, output: Output) -> Result<(), Failure> {
    let stored = crate::dev::stored_credentials(&target.dev_dir)?;
    let app_secret = match (&target.app_secret, &stored) {
        (Some(secret), _) => secret.clone(),
        (None, Some((secret, _))) => secret.clone(),
        (None, None) => {
            return Err(Failure::Usage(format!(
                "--app-secret (or SWITCHBOARD_META_APP_SECRET) is required: no `switchboard dev` \
                 credentials in {}",
                target.dev_dir.display()
            )));
        }
    };
    let api_key = target
        .api_key
        .clone()
        .or_else(|| stored.and_then(|(_, key)| key));

    let url = format!(
        "{}/webhooks/whatsapp",
        target.data_plane.trim_end_matches('/')
    );
    let response = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .header(
            "x-hub-signature-256",
            signature::sign(app_secret.as_bytes(), &body),
        )
        .body(body.clone())
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| Failure::Refused(format!("cannot post to {url}: {}", error_chain(&e))))?;
    let status = response.status().as_u16();
    let text = response
        .text()
        .await
        .map_err(|e| Failure::Refused(format!("{url}: {}", error_chain(&e))))?;
    let answer = serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text));
    if !(200..300).contains(&status) {
        if output == Output::Json {
            println!("{}", json!({ "status": status, "answer": answer }));
        }
        return Err(Failure::Refused(format!(
            "the data plane answered {status}: {answer}"
        )));
    }

    let decisions = match &api_key {
        Some(key) => Some(decisions(&target.grpc.data_plane_grpc, key, &body).await?),
        None => None,
    };
    match output {
        Output::Json => println!(
            "{}",
            json!({
                "status": status,
                "answer": answer,
                "decisions": decisions
                    .as_deref()
                    .map(|d| d.iter().map(Show::json).collect::<Vec<_>>()),
            })
        ),
        Output::Table => {
            println!("POST {url} -> {status}");
            println!(
                "{}",
                serde_json::to_string_pretty(&answer).unwrap_or_default()
            );
            match decisions {
                None => println!(
                    "\n(no API key: pass --api-key or SWITCHBOARD_API_KEY to see the routing \
                     decisions)"
                ),
                Some(found) if found.is_empty() => println!(
                    "\nno routing decision: no project has this number, or the update was not \
                     a message or status (`switchboard decisions unrouted` says which)"
                ),
                Some(found) => {
                    println!("\nrouting decisions:");
                    print(Output::Table, many(&found));
                }
            }
        }
    }
    Ok(())
}

/// The newest decisions of each update in `body` (as many as it has updates with that id).
async fn decisions(
    grpc: &str,
    api_key: &str,
    body: &[u8],
) -> Result<Vec<pb::RoutingDecision>, Failure> {
    let ids = update_ids(body);
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut client = connect(grpc).await?;
    let mut found = Vec::new();
    for (id, count) in ids {
        let request = pb::ListRoutingDecisionsRequest {
            message_id: Some(id),
            limit: count.min(100),
            ..Default::default()
        };
        let page = client
            .list_routing_decisions(with(request, "x-api-key", api_key)?)
            .await?
            .into_inner();
        found.extend(page.decisions);
    }
    found.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.id.cmp(&b.id)));
    Ok(found)
}

fn read_input(path: &std::path::Path) -> Result<Vec<u8>, Failure> {
    let read = if path.as_os_str() == "-" {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes).map(|_| bytes)
    } else {
        std::fs::read(path)
    };
    read.map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))
}

fn number(flag: &str, value: &str) -> Result<String, Failure> {
    if wire::is_phone_number_id(value) {
        Ok(value.to_owned())
    } else {
        Err(Failure::Usage(format!(
            "{flag}: Meta's phone_number_id is 1 to {} digits, got {value:?}",
            wire::PHONE_NUMBER_ID_MAX_DIGITS
        )))
    }
}

/// A customer's `wa_id`: the E.164 digits without `+`, as Meta writes them.
fn wa_id(flag: &str, value: &str) -> Result<String, Failure> {
    let digits = value.strip_prefix('+').unwrap_or(value);
    if wire::is_e164(&format!("+{digits}")) {
        Ok(digits.to_owned())
    } else {
        Err(Failure::Usage(format!(
            "{flag}: a phone number in E.164 (7 to 15 digits, `+` optional), got {value:?}"
        )))
    }
}

fn bsuid(value: Option<String>) -> Result<Option<String>, Failure> {
    match value {
        Some(id) if !wire::is_bsuid(&id) => Err(Failure::Usage(format!(
            "--user-id: a business-scoped user id like US.13491208655302741918, got {id:?}"
        ))),
        other => Ok(other),
    }
}

/// A reply id from a label: `Large size` → `large_size`.
fn slug(text: &str) -> String {
    let slug: String = text
        .chars()
        .map(|c| {
            if c.is_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if slug.is_empty() {
        "reply".into()
    } else {
        slug
    }
}

fn fresh_message_id() -> String {
    format!("wamid.SIM{}", hex::encode_upper(rand::random::<[u8; 16]>()))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer() -> Customer {
        Customer {
            wa_id: "16505551234".into(),
            name: "Ada".into(),
            user_id: Some("US.1349".into()),
            username: Some("ada".into()),
        }
    }

    #[test]
    fn messages_have_meta_shapes() {
        let c = customer();
        let text = message(&c, "w1", SimulatedType::Text, "Hi", "hi");
        assert_eq!(text["type"], "text");
        assert_eq!(text["text"]["body"], "Hi");
        assert_eq!(text["from"], "16505551234");
        assert_eq!(text["from_user_id"], "US.1349");
        let button = message(&c, "w2", SimulatedType::Button, "Stop", "stop");
        assert_eq!(button["button"], json!({"text": "Stop", "payload": "stop"}));
        let reply = message(&c, "w3", SimulatedType::Interactive, "Large", "size_l");
        assert_eq!(reply["type"], "interactive");
        assert_eq!(
            reply["interactive"],
            json!({"type": "button_reply", "button_reply": {"id": "size_l", "title": "Large"}})
        );
        let row = message(&c, "w4", SimulatedType::List, "Row", "r");
        assert_eq!(row["interactive"]["list_reply"]["id"], "r");
        let image = message(&c, "w5", SimulatedType::Image, "This one", "x");
        assert_eq!(image["image"]["caption"], "This one");
        assert_eq!(image["image"]["mime_type"], "image/jpeg");
        let audio = message(&c, "w6", SimulatedType::Audio, "ignored", "x");
        assert!(audio["audio"].get("caption").is_none());
        assert_eq!(
            c.contact(),
            json!({"profile": {"name": "Ada", "username": "ada"}, "wa_id": "16505551234",
                   "user_id": "US.1349"})
        );
    }

    #[test]
    fn statuses_and_ids() {
        let failed = status_update("wamid.X", SimulatedStatus::Failed, "1555", 131049);
        assert_eq!(failed["status"], "failed");
        assert_eq!(failed["errors"][0]["code"], 131049);
        let read = status_update("wamid.X", SimulatedStatus::Read, "1555", 1);
        assert!(read.get("errors").is_none());
        let body = envelope(json!({
            "metadata": metadata("1"),
            "messages": [{"id": "a"}, {"id": "b"}],
            "statuses": [{"id": "a"}],
        }))
        .to_string();
        let ids = update_ids(body.as_bytes());
        assert_eq!(ids, BTreeMap::from([("a".into(), 2), ("b".into(), 1)]));
        assert!(update_ids(b"not json").is_empty());
    }

    #[test]
    fn renumbers_every_change_and_checks_input() -> Result<(), Box<dyn std::error::Error>> {
        let body = json!({"entry": [
            {"changes": [{"value": {"metadata": {"phone_number_id": "1"}}}]},
            {"changes": [{"value": {"metadata": {"phone_number_id": "2"}}}]},
        ]});
        let out = renumber(body.to_string().as_bytes(), "99").map_err(|e| format!("{e:?}"))?;
        let out: Value = serde_json::from_slice(&out)?;
        assert_eq!(
            out.pointer("/entry/0/changes/0/value/metadata/phone_number_id"),
            Some(&json!("99"))
        );
        assert_eq!(
            out.pointer("/entry/1/changes/0/value/metadata/phone_number_id"),
            Some(&json!("99"))
        );
        assert!(renumber(b"{", "1").is_err());
        assert_eq!(
            wa_id("--from", "+16505551234").ok().as_deref(),
            Some("16505551234")
        );
        assert_eq!(
            wa_id("--from", "16505551234").ok().as_deref(),
            Some("16505551234")
        );
        assert!(wa_id("--from", "12").is_err());
        assert!(number("--phone-number-id", "12a").is_err());
        assert!(bsuid(Some("nope".into())).is_err());
        assert_eq!(slug("Large size"), "large_size");
        Ok(())
    }
}
