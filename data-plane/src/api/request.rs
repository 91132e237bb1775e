//! The `workflow_execution` object of the API trigger: parsed and validated field by field
//! (DESIGN §5), every refusal naming its field.
//!
//! Parsing reads the body once, into [`Fields`]: the scalar members it needs as values, the
//! free-form objects (`variables`, `context`, `initial_data`) as members borrowed from the
//! body, each value kept as its raw JSON text to be written into the context unchanged, and
//! nothing else kept. Every value is still checked exactly as a `serde_json::Value` parse
//! checks it (numbers in range, valid escapes), so a body is refused or accepted as before;
//! only the tree of values is not built.

use super::error::ApiError;
use super::phone;
use crate::routing::{Number, RoutingTable};
use crate::store::OnConflict;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use switchboard_proto::wire;
use uuid::Uuid;

const FIELD: &str = "workflow_execution";

/// The members of a JSON object of the request, borrowed from its body: sorted by name, a
/// repeated name keeping its last value (as a `serde_json::Map` would), each value its raw
/// JSON text.
pub type Members<'b> = BTreeMap<Cow<'b, str>, &'b RawValue>;

/// A valid request, resolved against the routing table.
#[derive(Debug)]
pub struct ApiCall<'b, 't> {
    /// Normalized, `+` and digits; `None` when only a `recipient` is given.
    pub phone_number: Option<String>,
    /// `recipient`: the customer's BSUID (DESIGN §12), instead of or beside the phone
    /// number (with both, the phone number routes and the BSUID is kept).
    pub recipient: Option<String>,
    pub number: Option<&'t Number>,
    pub variables: Members<'b>,
    pub context: Members<'b>,
    pub initial_data: Members<'b>,
    /// What to do when another execution holds the customer's conversation (DESIGN §12).
    pub on_conflict: OnConflict,
}

/// The members of `workflow_execution` the API trigger reads; others are checked and
/// dropped. Absent and `null` are alike.
#[derive(Debug, Default)]
pub struct Fields<'b> {
    phone_number: Text,
    recipient: Text,
    phone_number_id: Value,
    whatsapp_config_id: Value,
    on_conflict: Choice,
    variables: Json<'b>,
    context: Json<'b>,
    initial_data: Json<'b>,
}

/// A member that must be a string, as read: the text, anything else only noted (small,
/// like [`Choice`]).
#[derive(Debug, Default)]
enum Text {
    #[default]
    Absent,
    String(Box<str>),
    NotString,
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match Value::deserialize(deserializer)? {
            Value::Null => Text::Absent,
            Value::String(text) => Text::String(text.into()),
            _ => Text::NotString,
        })
    }
}

/// `on_conflict` as read (checked when the request is resolved): small, so a body's fields
/// stay small.
#[derive(Debug, Default)]
enum Choice {
    #[default]
    Absent,
    Known(OnConflict),
    Unknown,
    NotString,
}

impl Choice {
    fn of(value: Value) -> Self {
        match value {
            Value::Null => Self::Absent,
            Value::String(name) => OnConflict::parse(&name).map_or(Self::Unknown, Self::Known),
            _ => Self::NotString,
        }
    }
}

/// A free-form member: `null` (or absent), an object, or some other value.
#[derive(Debug, Default)]
enum Json<'b> {
    #[default]
    Null,
    Object(Members<'b>),
    Other,
}

fn field(name: &str) -> String {
    format!("{FIELD}.{name}")
}

fn wrong_type(name: &str, expected: &str) -> ApiError {
    ApiError::field(
        "invalid_type",
        field(name),
        format!("{} must be {expected}", field(name)),
    )
}

/// An optional object member.
fn object<'b>(value: Json<'b>, name: &str) -> Result<Members<'b>, ApiError> {
    match value {
        Json::Null => Ok(Members::new()),
        Json::Object(members) => Ok(members),
        Json::Other => Err(wrong_type(name, "an object")),
    }
}

/// A whole HTTP body, `{"workflow_execution": {…}}`: 400 unless it is JSON, 422 unless
/// `workflow_execution` is an object.
pub fn parse_http(body: &[u8]) -> Result<Fields<'_>, ApiError> {
    let missing = || {
        ApiError::field(
            "missing_field",
            FIELD,
            "the body must be an object with a workflow_execution object",
        )
    };
    match serde_json::from_slice::<Envelope<'_>>(body).map_err(|e| ApiError::invalid_json(&e))? {
        Envelope::Object(Inner::Object(fields)) => Ok(fields),
        Envelope::Object(Inner::Null) | Envelope::NotObject => Err(missing()),
        Envelope::Object(Inner::Other) => Err(ApiError::field(
            "invalid_type",
            FIELD,
            "workflow_execution must be an object",
        )),
    }
}

/// The `workflow_execution` object alone (gRPC).
pub fn parse_inner(body: &[u8]) -> Result<Fields<'_>, ApiError> {
    match serde_json::from_slice::<Inner<'_>>(body).map_err(|e| ApiError::invalid_json(&e))? {
        Inner::Object(fields) => Ok(fields),
        Inner::Null | Inner::Other => Err(ApiError::field(
            "invalid_type",
            FIELD,
            "workflow_execution must be an object",
        )),
    }
}

/// A Meta phone_number_id given as a string or a number.
fn digits_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) if n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

/// Validates the fields of a request for a key of `project_id`.
pub fn resolve<'b, 't>(
    body: Fields<'b>,
    table: &'t RoutingTable,
    project_id: &Uuid,
) -> Result<ApiCall<'b, 't>, ApiError> {
    let recipient = match body.recipient {
        Text::Absent => None,
        Text::String(raw) if wire::is_bsuid(&raw) => Some(raw.into()),
        Text::String(_) => {
            return Err(ApiError::field(
                "invalid_recipient",
                field("recipient"),
                "recipient must be a business-scoped user id: a country code, '.', then letters and digits (US.13491208655302741918)",
            ));
        }
        Text::NotString => return Err(wrong_type("recipient", "a string")),
    };
    let phone_number = match body.phone_number {
        Text::Absent if recipient.is_some() => None,
        Text::Absent => {
            return Err(ApiError::field(
                "missing_field",
                field("phone_number"),
                "phone_number (or recipient, a business-scoped user id) is required",
            ));
        }
        Text::String(raw) => Some(phone::normalize(&raw).ok_or_else(|| {
            ApiError::field(
                "invalid_phone_number",
                field("phone_number"),
                "phone_number must be an international number: + and 7-15 digits, not starting with 0",
            )
        })?),
        Text::NotString => return Err(wrong_type("phone_number", "a string")),
    };

    let by_meta_id = match &body.phone_number_id {
        Value::Null => None,
        value => {
            let id = digits_of(value).ok_or_else(|| wrong_type("phone_number_id", "a string"))?;
            let number = table
                .number(&id)
                .filter(|n| n.project_id == *project_id)
                .ok_or_else(|| {
                    ApiError::field(
                        "invalid_phone_number_id",
                        field("phone_number_id"),
                        "phone_number_id is not a WhatsApp number of this project",
                    )
                })?;
            Some(number)
        }
    };
    let by_config_id = match &body.whatsapp_config_id {
        Value::Null => None,
        value => {
            let id = match value {
                Value::Number(n) => n.as_i64(),
                Value::String(s) => s.parse::<i64>().ok(),
                _ => None,
            }
            .ok_or_else(|| wrong_type("whatsapp_config_id", "an integer"))?;
            let number = table
                .number_by_config_id(id)
                .filter(|n| n.project_id == *project_id)
                .ok_or_else(|| {
                    ApiError::field(
                        "invalid_whatsapp_config_id",
                        field("whatsapp_config_id"),
                        "whatsapp_config_id is not a WhatsApp number of this project",
                    )
                })?;
            Some(number)
        }
    };
    let number = match (by_meta_id, by_config_id) {
        (Some(a), Some(b)) if a.whatsapp_config_id != b.whatsapp_config_id => {
            return Err(ApiError::field(
                "invalid_whatsapp_config_id",
                field("whatsapp_config_id"),
                "whatsapp_config_id and phone_number_id name different numbers",
            ));
        }
        (Some(a), _) => Some(a),
        (None, Some(b)) => Some(b),
        (None, None) => table.default_number(project_id),
    };

    let on_conflict = match body.on_conflict {
        Choice::Absent => OnConflict::default(),
        Choice::Known(choice) => choice,
        Choice::Unknown => {
            return Err(ApiError::field(
                "invalid_on_conflict",
                field("on_conflict"),
                "on_conflict must be end_existing or fail",
            ));
        }
        Choice::NotString => return Err(wrong_type("on_conflict", "a string")),
    };

    Ok(ApiCall {
        phone_number,
        recipient,
        number,
        on_conflict,
        variables: object(body.variables, "variables")?,
        context: object(body.context, "context")?,
        initial_data: object(body.initial_data, "initial_data")?,
    })
}

/// Whether a raw value may hold what skipping over it does not check but a `Value` parse
/// refuses: an unpaired surrogate (in an escape) or a number out of range (with an exponent,
/// or hundreds of digits long). Such a value is parsed again, so that a body is refused
/// exactly when a `Value` parse would refuse it and a stored context always parses again.
fn needs_check(raw: &str) -> bool {
    match raw.as_bytes().first() {
        Some(b'"') => raw.contains('\\'),
        Some(b't' | b'f' | b'n') => false,
        _ => raw.len() > 300 || raw.contains(['\\', 'e', 'E']),
    }
}

/// The `Visitor` methods of every kind of JSON value but objects: `null` answers `$null`,
/// every other kind `$other` (an array's elements are checked).
macro_rules! visit_non_objects {
    ($de:lifetime, null: $null:expr, other: $other:expr) => {
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON value")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($null)
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_seq<A: SeqAccess<$de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<Checked>()?.is_some() {}
            Ok($other)
        }
    };
}

/// A whole HTTP body: an object, with what its `workflow_execution` holds, or not. One
/// lives on the stack per request; boxing the fields would add an allocation to the hot
/// path for nothing.
#[allow(clippy::large_enum_variant)]
enum Envelope<'b> {
    NotObject,
    Object(Inner<'b>),
}

/// What `workflow_execution` holds (unboxed, as [`Envelope`]).
#[allow(clippy::large_enum_variant)]
enum Inner<'b> {
    Null,
    Object(Fields<'b>),
    Other,
}

/// Any JSON value, checked as a `serde_json::Value` parse checks it, and dropped.
struct Checked;

/// A member name, borrowed from the body unless it has escapes.
struct Name<'b>(Cow<'b, str>);

impl<'de> Deserialize<'de> for Envelope<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EnvelopeVisitor;
        impl<'de> Visitor<'de> for EnvelopeVisitor {
            type Value = Envelope<'de>;
            visit_non_objects!('de, null: Envelope::NotObject, other: Envelope::NotObject);
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut inner = Inner::Null;
                while let Some(Name(name)) = map.next_key()? {
                    if name == FIELD {
                        inner = map.next_value()?;
                    } else {
                        map.next_value::<Checked>()?;
                    }
                }
                Ok(Envelope::Object(inner))
            }
        }
        deserializer.deserialize_any(EnvelopeVisitor)
    }
}

impl<'de> Deserialize<'de> for Inner<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct InnerVisitor;
        impl<'de> Visitor<'de> for InnerVisitor {
            type Value = Inner<'de>;
            visit_non_objects!('de, null: Inner::Null, other: Inner::Other);
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields = Fields::default();
                while let Some(Name(name)) = map.next_key()? {
                    match &*name {
                        "phone_number" => fields.phone_number = map.next_value()?,
                        "recipient" => fields.recipient = map.next_value()?,
                        "phone_number_id" => fields.phone_number_id = map.next_value()?,
                        "whatsapp_config_id" => fields.whatsapp_config_id = map.next_value()?,
                        "on_conflict" => fields.on_conflict = Choice::of(map.next_value()?),
                        "variables" => fields.variables = map.next_value()?,
                        "context" => fields.context = map.next_value()?,
                        "initial_data" => fields.initial_data = map.next_value()?,
                        _ => {
                            map.next_value::<Checked>()?;
                        }
                    }
                }
                Ok(Inner::Object(fields))
            }
        }
        deserializer.deserialize_any(InnerVisitor)
    }
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct JsonVisitor;
        impl<'de> Visitor<'de> for JsonVisitor {
            type Value = Json<'de>;
            visit_non_objects!('de, null: Json::Null, other: Json::Other);
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Members::new();
                while let Some(Name(name)) = map.next_key()? {
                    let value: &'de RawValue = map.next_value()?;
                    if needs_check(value.get()) {
                        serde_json::from_str::<Checked>(value.get()).map_err(de::Error::custom)?;
                    }
                    members.insert(name, value);
                }
                Ok(Json::Object(members))
            }
        }
        deserializer.deserialize_any(JsonVisitor)
    }
}

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CheckedVisitor;
        impl<'de> Visitor<'de> for CheckedVisitor {
            type Value = Checked;
            visit_non_objects!('de, null: Checked, other: Checked);
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<Checked, Checked>()?.is_some() {}
                Ok(Checked)
            }
        }
        deserializer.deserialize_any(CheckedVisitor)
    }
}

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl<'de> Visitor<'de> for NameVisitor {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Name(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Name(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Name(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(NameVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The members of a resolved call as a `Value`, read back from their raw text.
    fn tree(members: &Members<'_>) -> Value {
        Value::Object(
            members
                .iter()
                .map(|(name, raw)| {
                    let value = serde_json::from_str(raw.get()).expect("a raw value parses");
                    (name.to_string(), value)
                })
                .collect(),
        )
    }

    /// What a `serde_json::Value` parse of the body makes of a free-form member: `None`
    /// when it is neither an object nor null (a 422).
    fn expected(whole: &Value, name: &str) -> Option<Value> {
        match &whole[FIELD][name] {
            Value::Null => Some(Value::Object(serde_json::Map::new())),
            object @ Value::Object(_) => Some(object.clone()),
            _ => None,
        }
    }

    /// The borrowed parse refuses exactly the bodies a `Value` parse refuses, and reads
    /// the same members from the others.
    fn agrees_with_a_value_parse(body: &str) -> Result<(), TestCaseError> {
        let table = RoutingTable::build(1, []);
        let project = Uuid::nil();
        let tree_parse = serde_json::from_str::<Value>(body);
        let parsed = parse_http(body.as_bytes());
        prop_assert_eq!(parsed.is_ok(), tree_parse.is_ok(), "{}", body);
        let (Ok(fields), Ok(whole)) = (parsed, tree_parse) else {
            return Ok(());
        };
        let want = ["variables", "context", "initial_data"].map(|name| expected(&whole, name));
        match resolve(fields, &table, &project) {
            Ok(call) => {
                let got = [&call.variables, &call.context, &call.initial_data].map(tree);
                for (got, want) in got.iter().zip(&want) {
                    prop_assert_eq!(Some(got), want.as_ref(), "{}", body);
                }
            }
            Err(err) => {
                let refused =
                    want.iter().any(Option::is_none) || !whole[FIELD]["phone_number"].is_string();
                prop_assert!(refused, "{body}: {err:?}");
            }
        }
        Ok(())
    }

    #[test]
    fn bodies_a_value_parse_refuses_are_refused() {
        for value in [
            r#""\ud800""#,
            r#""a\udc00b""#,
            "1e400",
            "-1E400",
            &"9".repeat(400),
            r#"[1, {"x": 1e999}]"#,
            r#"{"y": "\ud800"}"#,
            "\"\u{1}\"",
        ] {
            for body in [
                format!(
                    r#"{{"workflow_execution": {{"phone_number": "+1234567890", "variables": {{"v": {value}}}}}}}"#
                ),
                format!(
                    r#"{{"workflow_execution": {{"phone_number": "+1234567890", "context": {{"v": {value}}}}}}}"#
                ),
                format!(
                    r#"{{"workflow_execution": {{"phone_number": "+1234567890", "other": {value}}}}}"#
                ),
                format!(
                    r#"{{"workflow_execution": {{"phone_number": "+1234567890"}}, "other": {value}}}"#
                ),
                format!(r#"{{"workflow_execution": [{value}]}}"#),
                format!("[{value}]"),
            ] {
                let err = parse_http(body.as_bytes()).expect_err(&body);
                assert_eq!(err.code, "invalid_json", "{body}");
            }
        }
    }

    #[test]
    fn members_are_read_as_a_value_parse_reads_them() {
        let body = r#"{"workflow_execution": {"phone_number": "+1234567890",
            "variables": {"a\u0062": 1, "ab": 2, "x": "\ud83d\ude00", "x": "last", "big": 123456789012345678901234567890,
                          "e": 1.5e3, "nested": {"k": [true, null, "t\te"]}},
            "context": null, "initial_data": {"cart": [1, 2]}}}"#;
        let table = RoutingTable::build(1, []);
        let call = resolve(
            parse_http(body.as_bytes()).expect("parses"),
            &table,
            &Uuid::nil(),
        )
        .expect("valid");
        let whole: Value = serde_json::from_str(body).expect("JSON");
        assert_eq!(tree(&call.variables), whole[FIELD]["variables"]);
        assert_eq!(tree(&call.variables)["ab"], 2);
        assert_eq!(tree(&call.variables)["x"], "last");
        assert!(call.context.is_empty());
        assert_eq!(tree(&call.initial_data), whole[FIELD]["initial_data"]);
        // Values keep the request's own text: a big integer stays exact.
        assert_eq!(
            call.variables["big"].get(),
            "123456789012345678901234567890"
        );
    }

    fn fragment() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("null".to_owned()),
            Just("true".to_owned()),
            Just(r#""\ud800""#.to_owned()),
            Just(r#""\ud83d\ude00""#.to_owned()),
            Just(r#""a\"b\\c""#.to_owned()),
            Just("1e400".to_owned()),
            Just("-2.5E-3".to_owned()),
            Just("123456789012345678901234567890".to_owned()),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<String>().prop_map(|s| Value::String(s).to_string()),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            let name = prop_oneof![
                Just(r#""a""#),
                Just(r#""ab""#),
                Just(r#""a\u0062""#),
                Just(r#""phone_number""#),
                Just(r#""system""#),
                Just(r#""\ud800""#),
            ];
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                proptest::collection::vec((name, inner), 0..4).prop_map(|v| {
                    let members: Vec<String> =
                        v.into_iter().map(|(k, v)| format!("{k}:{v}")).collect();
                    format!("{{{}}}", members.join(","))
                }),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn the_borrowed_parse_agrees_with_a_value_parse(
            variables in fragment(),
            context in fragment(),
            initial_data in fragment(),
            other in fragment(),
        ) {
            let body = format!(
                r#"{{"workflow_execution": {{"phone_number": "+1234567890", "variables": {variables}, "context": {context}, "initial_data": {initial_data}, "other": {other}}}, "other": {other}}}"#
            );
            agrees_with_a_value_parse(&body)?;
        }

        #[test]
        fn arbitrary_bytes_are_refused_or_read_never_a_panic(
            body in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let table = RoutingTable::build(1, []);
            if let Ok(fields) = parse_http(&body) {
                let _ = resolve(fields, &table, &Uuid::nil());
            }
        }
    }
}
