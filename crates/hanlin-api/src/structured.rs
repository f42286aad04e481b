//! Structured output requests, validated into a [`Constraint`]: OpenAI's `response_format`
//! (`json_object`, `json_schema`), vLLM's raw-grammar extension (`guided_json`,
//! `guided_regex`, `guided_grammar` in Lark, `guided_choice`) and Ollama's `format`.
//!
//! JSON schemas are checked here for keywords that constrained decoding cannot enforce, so that
//! the 400 names the keyword and where it sits, before any backend sees the request.

use serde_json::{Map, Value};

use crate::backend::{Constraint, OutputConstraint};
use crate::error::ApiError;
use crate::validate::{unsupported, wrong_type, Fields};

/// Schema keywords the grammar engine (llguidance) cannot enforce; a schema using any of them
/// is refused rather than silently loosened.
pub const UNSUPPORTED_KEYWORDS: [&str; 18] = [
    "not",
    "if",
    "then",
    "else",
    "dependentRequired",
    "dependentSchemas",
    "dependencies",
    "contains",
    "minContains",
    "maxContains",
    "uniqueItems",
    "propertyNames",
    "unevaluatedProperties",
    "unevaluatedItems",
    "$dynamicRef",
    "$dynamicAnchor",
    "$recursiveRef",
    "$recursiveAnchor",
];

/// String `format`s the grammar engine knows; others are refused.
pub const SUPPORTED_FORMATS: [&str; 10] = [
    "date-time",
    "time",
    "date",
    "duration",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "uuid",
    "uri",
];

/// Keywords whose value is one subschema.
const ONE_SCHEMA: [&str; 3] = ["items", "additionalProperties", "additionalItems"];
/// Keywords whose value is an array of subschemas.
const SCHEMA_LIST: [&str; 4] = ["anyOf", "oneOf", "allOf", "prefixItems"];
/// Keywords whose value maps names to subschemas.
const SCHEMA_MAP: [&str; 4] = ["properties", "patternProperties", "$defs", "definitions"];

/// Refuses schemas with keywords that cannot be enforced; `param` names the schema field.
pub fn check_schema(schema: &Value, param: &str) -> Result<(), ApiError> {
    match schema {
        Value::Bool(_) => Ok(()),
        Value::Object(map) => check_object(map, param),
        other => Err(wrong_type(param, "a JSON schema object", other)),
    }
}

fn check_object(map: &Map<String, Value>, at: &str) -> Result<(), ApiError> {
    for (k, v) in map {
        let here = format!("{at}.{k}");
        if UNSUPPORTED_KEYWORDS.contains(&k.as_str()) {
            return Err(ApiError::invalid(
                here,
                format!(
                    "Invalid schema: the keyword '{k}' cannot be enforced by constrained decoding. Unsupported keywords: {}.",
                    UNSUPPORTED_KEYWORDS.join(", ")
                ),
            ));
        }
        match (k.as_str(), v) {
            ("format", Value::String(f)) if !SUPPORTED_FORMATS.contains(&f.as_str()) => {
                return Err(ApiError::invalid(
                    here,
                    format!(
                        "Invalid schema: format '{f}' cannot be enforced. Supported formats: {}.",
                        SUPPORTED_FORMATS.join(", ")
                    ),
                ));
            }
            ("pattern", v) if !v.is_string() => return Err(wrong_type(&here, "a string", v)),
            (k, Value::Array(items)) if SCHEMA_LIST.contains(&k) || k == "items" => {
                for (i, s) in items.iter().enumerate() {
                    check_schema(s, &format!("{here}.[{i}]"))?;
                }
            }
            (k, s) if ONE_SCHEMA.contains(&k) => check_schema(s, &here)?,
            (k, Value::Object(m)) if SCHEMA_MAP.contains(&k) => {
                for (name, s) in m {
                    check_schema(s, &format!("{here}.{name}"))?;
                }
            }
            (k, other) if SCHEMA_MAP.contains(&k) || SCHEMA_LIST.contains(&k) => {
                return Err(wrong_type(&here, "an object or array of schemas", other));
            }
            _ => {}
        }
    }
    Ok(())
}

/// The constraint of an OpenAI chat or completions request: `response_format`, or one of the
/// vLLM-compatible `guided_json` / `guided_regex` / `guided_grammar` / `guided_choice`.
pub fn openai_constraint(f: &Fields) -> Result<Option<Constraint>, ApiError> {
    let mut found: Vec<Constraint> = Vec::new();
    if let Some(c) = response_format(f)? {
        found.push(c);
    }
    found.extend(guided(f)?);
    if found.len() > 1 {
        return Err(ApiError::invalid(
            found[1].param.clone(),
            "Only one of 'response_format' (json_object / json_schema), 'guided_json', 'guided_regex', 'guided_grammar' and 'guided_choice' may be given.",
        ));
    }
    Ok(found.pop())
}

/// `response_format`: `text`, `json_object` or `json_schema`.
fn response_format(f: &Fields) -> Result<Option<Constraint>, ApiError> {
    let Some(rf) = f.object("response_format")? else {
        return Ok(None);
    };
    let rf = Fields::new(rf, &f.param("response_format."));
    match rf.required_str("type")? {
        "text" => Ok(None),
        "json_object" => Ok(Some(Constraint {
            kind: OutputConstraint::JsonObject,
            param: rf.param("type"),
        })),
        "json_schema" => {
            let js = rf
                .object("json_schema")?
                .ok_or_else(|| crate::validate::missing(&rf.param("json_schema")))?;
            let js = Fields::new(js, &rf.param("json_schema."));
            let name = js.required_str("name")?;
            if name.is_empty()
                || name.len() > 64
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                return Err(ApiError::invalid(
                    js.param("name"),
                    format!("Invalid 'name': '{name}'. Expected a string that matches the pattern '^[a-zA-Z0-9_-]{{1,64}}$'."),
                ));
            }
            js.bool("strict")?;
            js.str("description")?;
            let param = js.param("schema");
            match js.get("schema") {
                // OpenAI accepts a json_schema without a schema: any JSON object.
                None => Ok(Some(Constraint {
                    kind: OutputConstraint::JsonObject,
                    param,
                })),
                Some(schema) => {
                    check_schema(schema, &param)?;
                    Ok(Some(Constraint {
                        kind: OutputConstraint::JsonSchema(schema.clone()),
                        param,
                    }))
                }
            }
        }
        other => Err(ApiError::invalid(
            rf.param("type"),
            format!("Invalid value: '{other}'. Supported values are: 'text', 'json_object' and 'json_schema'."),
        )),
    }
}

/// vLLM's guided-decoding extension fields, each becoming one constraint.
fn guided(f: &Fields) -> Result<Vec<Constraint>, ApiError> {
    let mut out = Vec::new();
    if let Some(v) = f.get("guided_json") {
        let param = f.param("guided_json");
        // vLLM accepts the schema as an object or as a JSON string.
        let schema = match v {
            Value::String(s) => serde_json::from_str(s).map_err(|e| {
                ApiError::invalid(&param, format!("Invalid 'guided_json': not JSON ({e})."))
            })?,
            v => v.clone(),
        };
        check_schema(&schema, &param)?;
        out.push(Constraint {
            kind: OutputConstraint::JsonSchema(schema),
            param,
        });
    }
    if let Some(rx) = f.str("guided_regex")? {
        out.push(Constraint {
            kind: OutputConstraint::Regex(rx.to_string()),
            param: f.param("guided_regex"),
        });
    }
    if let Some(g) = f.str("guided_grammar")? {
        out.push(Constraint {
            kind: OutputConstraint::Lark(g.to_string()),
            param: f.param("guided_grammar"),
        });
    }
    if let Some(v) = f.get("guided_choice") {
        let param = f.param("guided_choice");
        let choices = match v {
            Value::Array(a) if !a.is_empty() => a,
            Value::Array(_) => {
                return Err(ApiError::invalid(
                    &param,
                    "Invalid 'guided_choice': empty array.",
                ))
            }
            v => return Err(wrong_type(&param, "an array of strings", v)),
        };
        out.push(Constraint {
            kind: OutputConstraint::Lark(choice_grammar(choices, &param)?),
            param,
        });
    }
    Ok(out)
}

/// A Lark grammar accepting exactly one of `choices` (JSON string syntax is Lark's).
fn choice_grammar(choices: &[Value], param: &str) -> Result<String, ApiError> {
    let mut alts = Vec::with_capacity(choices.len());
    for (i, c) in choices.iter().enumerate() {
        let s = c
            .as_str()
            .ok_or_else(|| wrong_type(&format!("{param}.[{i}]"), "a string", c))?;
        alts.push(Value::from(s).to_string());
    }
    Ok(format!("start: {}\n", alts.join(" | ")))
}

/// Ollama's `format`: `"json"` (any JSON value, as Ollama enforces an object) or a schema.
pub fn ollama_format(f: &Fields) -> Result<Option<Constraint>, ApiError> {
    let param = f.param("format");
    match f.get("format") {
        None => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) if s == "json" => Ok(Some(Constraint {
            kind: OutputConstraint::JsonObject,
            param,
        })),
        Some(Value::String(s)) => Err(unsupported(
            &param,
            &format!("'{s}'; expected \"json\" or a JSON schema object"),
        )),
        Some(schema @ Value::Object(_)) => {
            check_schema(schema, &param)?;
            Ok(Some(Constraint {
                kind: OutputConstraint::JsonSchema(schema.clone()),
                param,
            }))
        }
        Some(v) => Err(wrong_type(&param, "\"json\" or a schema object", v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn openai(body: Value) -> Result<Option<Constraint>, ApiError> {
        let map = body.as_object().cloned().unwrap_or_default();
        openai_constraint(&Fields::new(&map, ""))
    }

    #[test]
    fn json_schema_is_taken_with_its_param() {
        let schema =
            json!({"type": "object", "properties": {"a": {"type": "string", "maxLength": 30}}});
        let c = openai(json!({"response_format": {"type": "json_schema",
            "json_schema": {"name": "t", "schema": schema, "strict": true}}}))
        .unwrap()
        .unwrap();
        assert_eq!(c.kind, OutputConstraint::JsonSchema(schema));
        assert_eq!(c.param, "response_format.json_schema.schema");
    }

    #[test]
    fn unsupported_keyword_is_named_with_its_path() {
        let e = openai(json!({"response_format": {"type": "json_schema", "json_schema": {"name": "t",
            "schema": {"type": "object", "properties": {"tags": {"type": "array", "uniqueItems": true}}}}}}))
        .unwrap_err();
        assert_eq!(e.status(), 400);
        let body = serde_json::to_value(e.openai_body()).unwrap();
        assert_eq!(
            body["error"]["param"],
            "response_format.json_schema.schema.properties.tags.uniqueItems"
        );
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("'uniqueItems'"));
    }

    #[test]
    fn property_named_like_a_keyword_is_fine() {
        // `not` here is a property name, not the keyword.
        let ok = openai(
            json!({"guided_json": {"type": "object", "properties": {"not": {"type": "string"}},
            "enum": [{"if": 1}]}}),
        );
        assert!(ok.unwrap().is_some());
    }

    #[test]
    fn unknown_format_and_two_constraints_are_refused() {
        let e = openai(json!({"guided_json": {"type": "string", "format": "iri"}})).unwrap_err();
        assert_eq!(
            serde_json::to_value(e.openai_body()).unwrap()["error"]["param"],
            "guided_json.format"
        );
        let e = openai(json!({"guided_regex": "a+", "response_format": {"type": "json_object"}}))
            .unwrap_err();
        assert_eq!(e.status(), 400);
    }

    #[test]
    fn choice_becomes_lark_alternatives() {
        let c = openai(json!({"guided_choice": ["yes", "no \"way\""]}))
            .unwrap()
            .unwrap();
        assert_eq!(
            c.kind,
            OutputConstraint::Lark("start: \"yes\" | \"no \\\"way\\\"\"\n".into())
        );
    }

    #[test]
    fn ollama_format_json_or_schema() {
        let map = json!({"format": "json"}).as_object().cloned().unwrap();
        let c = ollama_format(&Fields::new(&map, "")).unwrap().unwrap();
        assert_eq!(c.kind, OutputConstraint::JsonObject);
        let map = json!({"format": "yaml"}).as_object().cloned().unwrap();
        assert!(ollama_format(&Fields::new(&map, "")).is_err());
    }
}
