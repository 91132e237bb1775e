//! Decodes a snapshot chunk (an encoded `RoutingEntries`) straight into parsed entries.
//! Numbers and triggers — the millions of a large table — are read field by field from the
//! received bytes, without first building their protobuf messages and strings. Whatever
//! this reader does not vouch for (another kind of entry, an unknown or repeated field, a
//! value the parser would refuse) goes through prost and [`parse`], so the result is
//! always what decoding the chunk with prost and parsing its entries gives.

use super::entry::{MetaId, Number, Parsed, ParsedChunk, Trigger, parse, trigger_event};
use prost::Message;
use prost::encoding::{WireType, decode_key, decode_varint};
use switchboard_proto::v1 as pb;
use switchboard_proto::wire::{EntryKey, TriggerType};
use uuid::Uuid;

/// Field numbers (`switchboard/v1/routing.proto`).
const ENTRIES: u32 = 1;
const ENTRY_KEY: u32 = 1;
const ENTRY_NUMBER: u32 = 3;
const ENTRY_TRIGGER: u32 = 5;

impl ParsedChunk {
    /// The entries of an encoded `RoutingEntries`, parsed; an error where prost's decoding
    /// of it fails.
    pub fn decode(chunk: &[u8]) -> Result<Self, prost::DecodeError> {
        let mut buf = chunk;
        // Numbers take ~90 bytes on the wire, triggers ~180: room for the small ones (room
        // left unused is never touched).
        let mut parsed = Vec::with_capacity(chunk.len() / 64);
        while !buf.is_empty() {
            let entry = match decode_key(&mut buf) {
                Ok((ENTRIES, WireType::LengthDelimited)) => length_delimited(&mut buf),
                _ => None,
            };
            // Something else at the top, or a malformed entry: prost decides what it means.
            let Some(entry) = entry else {
                return Ok(Self::parse(pb::RoutingEntries::decode(chunk)?.entries));
            };
            parsed.push(match entry_fast(entry) {
                Some(p) => p,
                None => parse(pb::RoutingEntry::decode(entry)?),
            });
        }
        Ok(Self(parsed))
    }
}

/// The next length-delimited value of `buf`, if it is whole.
fn length_delimited<'a>(buf: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = usize::try_from(decode_varint(buf).ok()?).ok()?;
    if len > buf.len() {
        return None;
    }
    let (value, rest) = buf.split_at(len);
    *buf = rest;
    Some(value)
}

/// One field of a message: its number and value.
enum Field<'a> {
    Varint(u32, u64),
    Bytes(u32, &'a [u8]),
}

/// The next field of `buf`; `None` for what the fast path leaves to prost (a malformed
/// field, a wire type other than varint or length-delimited).
fn next_field<'a>(buf: &mut &'a [u8]) -> Option<Field<'a>> {
    let (tag, wire) = decode_key(buf).ok()?;
    match wire {
        WireType::Varint => Some(Field::Varint(tag, decode_varint(buf).ok()?)),
        WireType::LengthDelimited => Some(Field::Bytes(tag, length_delimited(buf)?)),
        _ => None,
    }
}

/// Sets `slot` once; a second occurrence of a field is left to prost (last one wins, or a
/// merge for messages).
fn once<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    match slot {
        Some(_) => None,
        None => {
            *slot = Some(value);
            Some(())
        }
    }
}

/// A number or trigger entry whose every field is known, given once and accepted by the
/// parser; `None` for anything else.
fn entry_fast(mut buf: &[u8]) -> Option<Parsed> {
    let (mut key, mut body) = (None, None);
    while !buf.is_empty() {
        match next_field(&mut buf)? {
            Field::Bytes(ENTRY_KEY, k) => once(&mut key, k)?,
            Field::Bytes(kind @ (ENTRY_NUMBER | ENTRY_TRIGGER), b) => once(&mut body, (kind, b))?,
            _ => return None,
        }
    }
    let key = key.unwrap_or_default();
    match body? {
        (ENTRY_NUMBER, b) => number(key, b).map(Parsed::Number),
        (_, b) => trigger(key, b).map(Parsed::Trigger),
    }
}

fn uuid(bytes: Option<&[u8]>) -> Option<Uuid> {
    Uuid::try_parse_ascii(bytes.unwrap_or_default()).ok()
}

fn text(bytes: &[u8]) -> Option<&str> {
    std::str::from_utf8(bytes).ok()
}

/// `TriggerRoute`: id 1, workflow_id 2, project_id 3, type 4, whatsapp_config_id 5 (optional),
/// event_type 6 (optional).
fn trigger(key: &[u8], mut buf: &[u8]) -> Option<Trigger> {
    let (mut id, mut workflow, mut project, mut kind, mut config, mut event) =
        (None, None, None, None, None, None);
    while !buf.is_empty() {
        match next_field(&mut buf)? {
            Field::Bytes(1, v) => once(&mut id, v)?,
            Field::Bytes(2, v) => once(&mut workflow, v)?,
            Field::Bytes(3, v) => once(&mut project, v)?,
            Field::Bytes(4, v) => once(&mut kind, v)?,
            Field::Varint(5, v) => once(&mut config, v as i64)?,
            Field::Bytes(6, v) => once(&mut event, v)?,
            _ => return None,
        }
    }
    let id_text = id.unwrap_or_default();
    if key.strip_prefix(EntryKey::TRIGGER.as_bytes()) != Some(id_text) {
        return None;
    }
    let kind = TriggerType::parse(text(kind.unwrap_or_default())?);
    let event = match event {
        Some(name) => Some(text(name)?),
        None => None,
    };
    let event = trigger_event(kind, event, config).ok()?;
    Some(Trigger {
        id: uuid(id)?,
        workflow_id: uuid(workflow)?,
        project_id: uuid(project)?,
        event,
        whatsapp_config_id: config,
    })
}

/// `NumberRoute`: whatsapp_config_id 1, project_id 2, phone_number_id 3,
/// display_phone_number 4, is_default 5, access_token 6 (optional).
fn number(key: &[u8], mut buf: &[u8]) -> Option<Number> {
    let (mut config, mut project, mut meta, mut display, mut default, mut token) =
        (None, None, None, None, None, None);
    while !buf.is_empty() {
        match next_field(&mut buf)? {
            Field::Varint(1, v) => once(&mut config, v as i64)?,
            Field::Bytes(2, v) => once(&mut project, v)?,
            Field::Bytes(3, v) => once(&mut meta, v)?,
            Field::Bytes(4, v) => once(&mut display, v)?,
            Field::Varint(5, v) => once(&mut default, v != 0)?,
            Field::Bytes(6, v) => once(&mut token, v)?,
            _ => return None,
        }
    }
    let config = config.unwrap_or_default();
    if EntryKey::parse(std::str::from_utf8(key).ok()?) != Some(EntryKey::Number(config)) {
        return None;
    }
    Some(Number {
        whatsapp_config_id: config,
        project_id: uuid(project)?,
        phone_number_id: MetaId::parse(text(meta.unwrap_or_default())?)?,
        display_phone_number: text(display.unwrap_or_default())?.into(),
        is_default: default.unwrap_or_default(),
        access_token: match token {
            Some(t) => Some(text(t)?.into()),
            None => None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_proto::v1::routing_entry::Entry;

    /// What the chunk gives through prost and the parser.
    fn slow(chunk: &[u8]) -> Result<ParsedChunk, prost::DecodeError> {
        Ok(ParsedChunk::parse(
            pb::RoutingEntries::decode(chunk)?.entries,
        ))
    }

    fn same(chunk: &[u8]) {
        match (ParsedChunk::decode(chunk), slow(chunk)) {
            (Ok(fast), Ok(slow)) => assert_eq!(fast, slow, "{chunk:?}"),
            (Err(_), Err(_)) => {}
            (fast, slow) => panic!("fast {fast:?}, prost {slow:?} for {chunk:?}"),
        }
    }

    fn entry(key: String, entry: Entry) -> pb::RoutingEntry {
        pb::RoutingEntry {
            key,
            entry: Some(entry),
        }
    }

    /// Small deterministic generator (xorshift), so a failure reproduces.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
            from[self.below(from.len() as u64) as usize]
        }
        /// The first of `from` four times in five, else any.
        fn mostly<'a>(&mut self, from: &[&'a str]) -> &'a str {
            if self.below(5) > 0 {
                from[0]
            } else {
                self.pick(from)
            }
        }
    }

    /// Entries of every kind, mostly valid, some with a value the parser refuses.
    fn entries(rng: &mut Rng, n: usize) -> Vec<pb::RoutingEntry> {
        let ids = [
            "0190a000-0000-7000-8000-000000000001",
            "0190a000-0000-7000-8000-000000000002",
            "0190A000000070008000000000000003",
            "not-a-uuid",
            "",
        ];
        let bad_ids = [
            "0190a000-0000-7000-8000-000000000002",
            "not-a-uuid",
            "",
            "ü",
        ];
        let events = [
            "whatsapp.message.read",
            "whatsapp.message.sent",
            "bogus",
            "",
        ];
        (0..n)
            .map(|i| {
                let id = rng.pick(&ids[..3]);
                let key_id = if rng.below(10) == 0 {
                    rng.pick(&ids)
                } else {
                    id
                };
                match rng.below(5) {
                    0 => entry(
                        format!("t:{key_id}"),
                        Entry::Trigger(pb::TriggerRoute {
                            id: id.into(),
                            workflow_id: rng.mostly(&bad_ids).into(),
                            project_id: rng.mostly(&bad_ids).into(),
                            r#type: rng
                                .pick(&["inbound_message", "whatsapp_event", "api_call"])
                                .into(),
                            whatsapp_config_id: (rng.below(4) > 0).then_some(i as i64),
                            event_type: (rng.below(2) == 0).then(|| rng.mostly(&events).into()),
                        }),
                    ),
                    1 => {
                        let config = rng.below(1000) as i64 - 10;
                        let key_config = if rng.below(10) == 0 {
                            config + 1
                        } else {
                            config
                        };
                        entry(
                            format!("n:{key_config}"),
                            Entry::Number(pb::NumberRoute {
                                whatsapp_config_id: config,
                                project_id: rng.mostly(&bad_ids).into(),
                                phone_number_id: rng
                                    .mostly(&["1234567890", "0123", "0", "12a", ""])
                                    .into(),
                                display_phone_number: rng.pick(&["+1 555", "", "ü"]).into(),
                                is_default: rng.below(2) == 0,
                                access_token: (rng.below(2) == 0).then(|| "EAAB".into()),
                            }),
                        )
                    }
                    2 => entry(
                        format!("w:{id}"),
                        Entry::Workflow(pb::WorkflowRoute {
                            id: id.into(),
                            project_id: rng.pick(&ids).into(),
                            status: rng.pick(&["active", "draft"]).into(),
                            api_trigger_id: None,
                            api_trigger_active: false,
                            trigger_types: vec!["inbound_message".into()],
                        }),
                    ),
                    3 => entry(
                        format!("k:{id}"),
                        Entry::ApiKey(pb::ApiKeyRoute {
                            id: id.into(),
                            project_id: rng.pick(&ids).into(),
                            secret_sha256: "ab".repeat(32),
                            burst_limit: None,
                            revoked: false,
                        }),
                    ),
                    _ => pb::RoutingEntry {
                        key: format!("x:{id}"),
                        entry: None,
                    },
                }
            })
            .collect()
    }

    #[test]
    fn decoding_gives_what_prost_and_the_parser_give() {
        let mut rng = Rng(0x5eed);
        let mut fast_parsed = 0;
        let mut all = 0;
        for _ in 0..300 {
            let n = rng.below(40) as usize;
            let chunk = pb::RoutingEntries {
                entries: entries(&mut rng, n),
            }
            .encode_to_vec();
            same(&chunk);
            fast_parsed += chunk_fast_count(&chunk);
            all += n;
            // Corrupted copies: a flipped byte, a truncation, trailing garbage.
            for _ in 0..20 {
                let mut bad = chunk.clone();
                if !bad.is_empty() {
                    let at = rng.below(bad.len() as u64) as usize;
                    match rng.below(3) {
                        0 => bad[at] ^= 1 << rng.below(8),
                        1 => bad.truncate(at),
                        _ => bad.insert(at, rng.below(256) as u8),
                    }
                }
                same(&bad);
            }
        }
        // The generator reaches the fast path, not only the fallback.
        // (Two kinds in five go the fast way when valid.)
        assert!(fast_parsed * 8 > all, "{fast_parsed} of {all}");
    }

    /// Entries of a well-formed chunk the fast path parsed itself.
    fn chunk_fast_count(chunk: &[u8]) -> usize {
        let mut buf = chunk;
        let mut n = 0;
        while !buf.is_empty() {
            let Ok((ENTRIES, WireType::LengthDelimited)) = decode_key(&mut buf) else {
                return n;
            };
            let Some(entry) = length_delimited(&mut buf) else {
                return n;
            };
            n += usize::from(entry_fast(entry).is_some());
        }
        n
    }

    /// `entry` (an encoded `RoutingEntry`) as a chunk of its own.
    fn chunk_of(entry: &[u8]) -> Vec<u8> {
        let mut chunk = vec![0x0a];
        prost::encoding::encode_varint(entry.len() as u64, &mut chunk);
        chunk.extend_from_slice(entry);
        chunk
    }

    #[test]
    fn repeated_and_unknown_fields_follow_prost() {
        let trigger = entry(
            "t:0190a000-0000-7000-8000-000000000001".into(),
            Entry::Trigger(pb::TriggerRoute {
                id: "0190a000-0000-7000-8000-000000000001".into(),
                workflow_id: "0190a000-0000-7000-8000-000000000002".into(),
                project_id: "0190a000-0000-7000-8000-000000000002".into(),
                r#type: "inbound_message".into(),
                whatsapp_config_id: Some(7),
                event_type: None,
            }),
        )
        .encode_to_vec();
        let one = chunk_of(&trigger);
        assert_eq!(chunk_fast_count(&one), 1);
        same(&one);
        // The key twice (prost keeps the last), an unknown field, a second body: each is
        // left to prost, and gives the same.
        for tail in [
            &[0x0a, 0x03, b't', b':', b'x'][..],
            &[0x78, 0x01],
            &[0x2a, 0x00],
        ] {
            let mut variant = trigger.clone();
            variant.extend_from_slice(tail);
            assert!(entry_fast(&variant).is_none(), "{tail:?}");
            same(&chunk_of(&variant));
        }
        // An unknown field at the top, and two entries.
        let mut top = one.clone();
        top.extend_from_slice(&[0x10, 0x01]);
        same(&top);
        let mut doubled = one.clone();
        doubled.extend_from_slice(&one);
        assert_eq!(chunk_fast_count(&doubled), 2);
        same(&doubled);
    }
}
