//! Typed, range-checked access to JSON request fields, with OpenAI's error wording.

use serde_json::{Map, Value};

use crate::error::ApiError;

/// JSON type names as OpenAI's messages spell them.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a decimal",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Error for a value of the wrong JSON type.
pub fn wrong_type(param: &str, expected: &str, got: &Value) -> ApiError {
    ApiError::invalid(
        param,
        format!(
            "Invalid type for '{param}': expected {expected}, but got {} instead.",
            type_name(got)
        ),
    )
}

/// Error for a missing required field.
pub fn missing(param: &str) -> ApiError {
    ApiError::invalid(param, format!("Missing required parameter: '{param}'."))
}

/// Error for a field we understand but do not support (yet).
pub fn unsupported(param: &str, what: &str) -> ApiError {
    ApiError::invalid(param, format!("Unsupported value for '{param}': {what}"))
}

/// The top-level body as an object.
pub fn body_object(body: &Value) -> Result<&Map<String, Value>, ApiError> {
    body.as_object().ok_or_else(|| {
        ApiError::bad_request(format!(
            "The request body must be a JSON object, but got {} instead.",
            type_name(body)
        ))
    })
}

/// Typed, range-checked access to the fields of one JSON object. `null` counts as absent, as it
/// does for OpenAI. `prefix` names the object in errors (`options.` for Ollama).
pub struct Fields<'a> {
    map: &'a Map<String, Value>,
    prefix: String,
}

impl<'a> Fields<'a> {
    /// Fields of `map`, whose params are named `prefix` + key.
    pub fn new(map: &'a Map<String, Value>, prefix: &str) -> Self {
        Fields {
            map,
            prefix: prefix.to_string(),
        }
    }

    /// The full param name of `key`.
    pub fn param(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// The raw value, `None` when absent or `null`.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// A boolean.
    pub fn bool(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(wrong_type(&self.param(key), "a boolean", v)),
        }
    }

    /// A string.
    pub fn str(&self, key: &str) -> Result<Option<&'a str>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(wrong_type(&self.param(key), "a string", v)),
        }
    }

    /// A required, non-empty string.
    pub fn required_str(&self, key: &str) -> Result<&'a str, ApiError> {
        match self.str(key)? {
            None => Err(missing(&self.param(key))),
            Some("") => Err(ApiError::invalid(
                self.param(key),
                format!("Invalid '{}': empty string.", self.param(key)),
            )),
            Some(s) => Ok(s),
        }
    }

    /// A number in `[lo, hi]` (`lo_open`: excluding `lo`).
    pub fn number(
        &self,
        key: &str,
        lo: f64,
        lo_open: bool,
        hi: f64,
    ) -> Result<Option<f32>, ApiError> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let p = self.param(key);
        let x = v.as_f64().ok_or_else(|| wrong_type(&p, "a number", v))?;
        if x < lo || (lo_open && x == lo) {
            let rel = if lo_open { ">" } else { ">=" };
            return Err(ApiError::invalid(
                &p,
                format!("Invalid '{p}': number below minimum value. Expected a value {rel} {lo}, but got {x} instead."),
            ));
        }
        if x > hi {
            return Err(ApiError::invalid(
                &p,
                format!("Invalid '{p}': number above maximum value. Expected a value <= {hi}, but got {x} instead."),
            ));
        }
        Ok(Some(x as f32))
    }

    /// An integer in `[lo, hi]`; integral decimals such as `5.0` are accepted.
    pub fn int(&self, key: &str, lo: i64, hi: i64) -> Result<Option<i64>, ApiError> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let p = self.param(key);
        let x = as_int(v).ok_or_else(|| wrong_type(&p, "an integer", v))?;
        if x < lo {
            return Err(ApiError::invalid(
                &p,
                format!("Invalid '{p}': integer below minimum value. Expected a value >= {lo}, but got {x} instead."),
            ));
        }
        if x > hi {
            return Err(ApiError::invalid(
                &p,
                format!("Invalid '{p}': integer above maximum value. Expected a value <= {hi}, but got {x} instead."),
            ));
        }
        Ok(Some(x))
    }

    /// An object.
    pub fn object(&self, key: &str) -> Result<Option<&'a Map<String, Value>>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(v) => Err(wrong_type(&self.param(key), "an object", v)),
        }
    }

    /// A seed: any integer; negative ones wrap, as two's complement, into `u64`.
    pub fn seed(&self, key: &str) -> Result<Option<u64>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) if n.is_u64() => Ok(n.as_u64()),
            Some(v) => match as_int(v) {
                Some(i) => Ok(Some(i as u64)),
                None => Err(wrong_type(&self.param(key), "an integer", v)),
            },
        }
    }

    /// Stop strings: one string or an array of at most `max` non-empty strings.
    pub fn stop(&self, key: &str, max: usize) -> Result<Vec<String>, ApiError> {
        let p = self.param(key);
        let list = match self.get(key) {
            None => return Ok(Vec::new()),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => {
                if a.len() > max {
                    return Err(ApiError::invalid(
                        &p,
                        format!("Invalid '{p}': array too long. Expected an array with maximum length {max}, but got an array with length {} instead.", a.len()),
                    ));
                }
                a.iter()
                    .enumerate()
                    .map(|(i, v)| match v {
                        Value::String(s) => Ok(s.clone()),
                        v => Err(wrong_type(&format!("{p}.[{i}]"), "a string", v)),
                    })
                    .collect::<Result<_, _>>()?
            }
            Some(v) => return Err(wrong_type(&p, "a string or an array of strings", v)),
        };
        if list.iter().any(String::is_empty) {
            return Err(ApiError::invalid(
                &p,
                format!("Invalid '{p}': stop strings must not be empty."),
            ));
        }
        Ok(list)
    }
}

/// An integer value, accepting integral decimals.
pub(crate) fn as_int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        }),
        _ => None,
    }
}
