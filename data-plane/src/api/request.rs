//! The `workflow_execution` object of the API trigger: parsed and validated field by field
//! (DESIGN §5), every refusal naming its field.

use super::error::ApiError;
use super::phone;
use crate::routing::{Number, RoutingTable};
use serde_json::{Map, Value};
use uuid::Uuid;

const FIELD: &str = "workflow_execution";

/// A valid request, resolved against the routing table.
#[derive(Debug)]
pub struct ApiCall<'t> {
    /// Normalized, `+` and digits.
    pub phone_number: String,
    pub number: Option<&'t Number>,
    pub variables: Map<String, Value>,
    pub context: Map<String, Value>,
    pub initial_data: Value,
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

/// An optional object member; `null` counts as absent.
fn object(body: &mut Map<String, Value>, name: &str) -> Result<Map<String, Value>, ApiError> {
    match body.remove(name) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(map)) => Ok(map),
        Some(_) => Err(wrong_type(name, "an object")),
    }
}

/// The `workflow_execution` member of a whole HTTP body.
pub fn unwrap_body(body: Value) -> Result<Map<String, Value>, ApiError> {
    let missing = || {
        ApiError::field(
            "missing_field",
            FIELD,
            "the body must be an object with a workflow_execution object",
        )
    };
    match body {
        Value::Object(mut map) => match map.remove(FIELD) {
            Some(Value::Object(inner)) => Ok(inner),
            Some(Value::Null) | None => Err(missing()),
            Some(_) => Err(ApiError::field(
                "invalid_type",
                FIELD,
                "workflow_execution must be an object",
            )),
        },
        _ => Err(missing()),
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

/// Validates `body` (the `workflow_execution` object) for a key of `project_id`.
pub fn parse<'t>(
    mut body: Map<String, Value>,
    table: &'t RoutingTable,
    project_id: &Uuid,
) -> Result<ApiCall<'t>, ApiError> {
    let phone_number = match body.remove("phone_number") {
        None | Some(Value::Null) => {
            return Err(ApiError::field(
                "missing_field",
                field("phone_number"),
                "phone_number is required",
            ));
        }
        Some(Value::String(raw)) => phone::normalize(&raw).ok_or_else(|| {
            ApiError::field(
                "invalid_phone_number",
                field("phone_number"),
                "phone_number must be an international number: + and 7-15 digits, not starting with 0",
            )
        })?,
        Some(_) => return Err(wrong_type("phone_number", "a string")),
    };

    let by_meta_id = match body.remove("phone_number_id") {
        None | Some(Value::Null) => None,
        Some(value) => {
            let id = digits_of(&value).ok_or_else(|| wrong_type("phone_number_id", "a string"))?;
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
    let by_config_id = match body.remove("whatsapp_config_id") {
        None | Some(Value::Null) => None,
        Some(value) => {
            let id = match &value {
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

    let variables = object(&mut body, "variables")?;
    let context = object(&mut body, "context")?;
    let initial_data = match body.remove("initial_data") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(Value::Object(map)) => Value::Object(map),
        Some(_) => return Err(wrong_type("initial_data", "an object")),
    };
    Ok(ApiCall {
        phone_number,
        number,
        variables,
        context,
        initial_data,
    })
}
