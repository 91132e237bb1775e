//! The one renderer of `{{ path.to.value }}` templates against an execution context
//! (DESIGN §9): spaces inside the braces are allowed; a missing path (or `null`) renders
//! as empty text; strings render as themselves, numbers and booleans as JSON, objects and
//! arrays as JSON.

use serde_json::Value;

pub fn render(template: &str, context: &Value) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        let Some(close) = rest[open + 2..].find("}}") else {
            break;
        };
        out.push_str(&rest[..open]);
        let path = rest[open + 2..open + 2 + close].trim();
        out.push_str(&lookup(context, path));
        rest = &rest[open + 2 + close + 2..];
    }
    out.push_str(rest);
    out
}

fn lookup(context: &Value, path: &str) -> String {
    let mut value = context;
    for part in path.split('.') {
        let next = match value {
            Value::Object(map) => map.get(part),
            Value::Array(items) => part.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        };
        match next {
            Some(v) => value = v,
            None => return String::new(),
        }
    }
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::render;
    use serde_json::json;

    #[test]
    fn renders_paths_missing_values_and_objects() {
        let context = json!({
            "vars": {"name": "Ada", "n": 3, "ok": true, "none": null, "list": ["a", "b"]},
            "context": {"phone_number": "+15550100"},
            "system": {"event": {"payload": {"x": 1}}},
        });
        assert_eq!(render("Hi {{vars.name}}!", &context), "Hi Ada!");
        assert_eq!(
            render("{{ vars.name }} / {{vars.n}} / {{vars.ok}}", &context),
            "Ada / 3 / true"
        );
        assert_eq!(
            render(
                "[{{vars.missing}}][{{nope.deeper}}][{{vars.none}}]",
                &context
            ),
            "[][][]"
        );
        assert_eq!(render("{{system.event.payload}}", &context), r#"{"x":1}"#);
        assert_eq!(
            render("{{vars.list.1}} {{vars.list}}", &context),
            r#"b ["a","b"]"#
        );
        assert_eq!(render("no templates", &context), "no templates");
        assert_eq!(
            render("open {{ never closed", &context),
            "open {{ never closed"
        );
        assert_eq!(render("{{vars.name}}{{vars.name}}", &context), "AdaAda");
    }
}
