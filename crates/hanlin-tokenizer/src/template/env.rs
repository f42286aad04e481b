//! The minijinja environment, configured to behave like the jinja2 sandbox that
//! HF transformers renders chat templates with (`_compile_jinja_template`).

use std::borrow::Cow;
use std::fmt;

use minijinja::value::{Kwargs, ValueKind};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, State, UndefinedBehavior, Value};

use super::pyfmt::{self, JsonOptions};

/// Carried as the source of the minijinja error that `raise_exception` returns, so the
/// renderer can tell a template's own refusal from an engine failure.
#[derive(Debug)]
pub(crate) struct Raised(pub(crate) String);

impl fmt::Display for Raised {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Raised {}

/// A fresh environment with transformers' settings, filters, tests and globals.
pub(crate) fn build_environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_keep_trailing_newline(false);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_undefined_behavior(UndefinedBehavior::Lenient);
    env.set_formatter(|out, _state, value| {
        out.write_str(&pyfmt::py_str(value)).map_err(Error::from)
    });
    env.set_unknown_method_callback(python_method);

    env.add_filter("tojson", tojson);
    env.add_filter("trim", trim);
    env.add_filter("string", |value: &Value| pyfmt::py_str(value));
    env.add_filter("join", join);

    // jinja2's tests are duck-typed: a str or dict is a "sequence", anything with
    // __iter__ (Undefined included) is "iterable", and bool is a "number".
    env.add_test("sequence", |v: &Value| {
        matches!(
            v.kind(),
            ValueKind::String | ValueKind::Seq | ValueKind::Map | ValueKind::Undefined
        )
    });
    env.add_test("iterable", |v: &Value| {
        v.is_undefined() || (v.kind() != ValueKind::None && v.try_iter().is_ok())
    });
    env.add_test("number", |v: &Value| {
        matches!(v.kind(), ValueKind::Number | ValueKind::Bool)
    });

    env.add_function("raise_exception", raise_exception);
    env
}

/// `raise_exception(msg)`: aborts rendering with the template's own message.
fn raise_exception(message: &Value) -> Result<Value, Error> {
    let message = pyfmt::py_str(message);
    Err(Error::new(ErrorKind::InvalidOperation, message.clone()).with_source(Raised(message)))
}

/// A `{{ x | tojson }}` that is Python's `json.dumps(x, ensure_ascii=False, indent=None,
/// separators=None, sort_keys=False)`, as transformers installs it (no HTML escaping).
fn tojson(
    value: &Value,
    ensure_ascii: Option<Value>,
    indent: Option<Value>,
    separators: Option<Value>,
    kwargs: Kwargs,
) -> Result<String, Error> {
    // Positional and keyword spellings are both legal in Python; pick whichever was given.
    let arg = |name: &str, positional: Option<Value>| -> Result<Option<Value>, Error> {
        let keyword: Option<Value> = kwargs.get(name)?;
        match (positional, keyword) {
            (Some(_), Some(_)) => Err(Error::new(
                ErrorKind::TooManyArguments,
                format!("tojson() got multiple values for argument '{name}'"),
            )),
            (p, k) => Ok(p.or(k)),
        }
    };
    let ensure_ascii = arg("ensure_ascii", ensure_ascii)?;
    let indent = arg("indent", indent)?;
    let separators = arg("separators", separators)?;
    // minijinja functions take at most five arguments, so `sort_keys` is keyword-only.
    let sort_keys = arg("sort_keys", None)?;
    kwargs.assert_all_used()?;

    let mut opts = JsonOptions {
        ensure_ascii: ensure_ascii.is_some_and(|v| v.is_true()),
        sort_keys: sort_keys.is_some_and(|v| v.is_true()),
        ..JsonOptions::default()
    };
    opts.indent = match indent {
        None => None,
        Some(v) if v.is_none() => None,
        Some(v) if v.kind() == ValueKind::String => Some(v.as_str().unwrap_or_default().to_owned()),
        Some(v) => match v.as_i64() {
            Some(n) => Some(" ".repeat(usize::try_from(n).unwrap_or(0))),
            None => {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    "tojson indent must be an integer or a string",
                ))
            }
        },
    };
    if opts.indent.is_some() {
        // Python drops the trailing space of the item separator when indenting.
        opts.item_separator = ",".to_owned();
    }
    if let Some(seps) = separators.filter(|v| !v.is_none()) {
        let parts: Vec<Value> = seps.try_iter()?.collect();
        match parts.as_slice() {
            [item, key] if item.as_str().is_some() && key.as_str().is_some() => {
                opts.item_separator = item.as_str().unwrap_or_default().to_owned();
                opts.key_separator = key.as_str().unwrap_or_default().to_owned();
            }
            _ => {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    "tojson separators must be a pair of strings (item_separator, key_separator)",
                ))
            }
        }
    }
    pyfmt::json_dumps(value, &opts)
}

/// jinja2 `trim(value, chars=None)`, i.e. Python `str.strip`.
fn trim(value: &Value, chars: Option<String>) -> String {
    let s = pyfmt::py_str(value);
    pyfmt::py_strip(&s, chars.as_deref(), true, true).to_owned()
}

/// jinja2 `join(value, d='', attribute=None)`: items are turned into text with `str()`.
fn join(value: &Value, separator: Option<String>, kwargs: Kwargs) -> Result<String, Error> {
    let attribute: Option<Value> = kwargs.get("attribute")?;
    kwargs.assert_all_used()?;
    let separator = separator.unwrap_or_default();
    let mut out = String::new();
    for (i, item) in value.try_iter()?.enumerate() {
        if i > 0 {
            out.push_str(&separator);
        }
        let item = match &attribute {
            Some(attr) => item.get_item(attr)?,
            None => item,
        };
        out.push_str(&pyfmt::py_str(&item));
    }
    Ok(out)
}

/// Python methods on template values (`s.strip()`, `d.items()`, `s.split(',')` …).
///
/// The strip family is handled here so it follows Python's whitespace definition;
/// everything else is minijinja-contrib's pycompat layer.
fn python_method(
    state: &State,
    value: &Value,
    method: &str,
    args: &[Value],
) -> Result<Value, Error> {
    if let (Some(s), "strip" | "lstrip" | "rstrip") = (value.as_str(), method) {
        let chars = match args {
            [] => None,
            [c] if c.is_none() => None,
            [c] => Some(c.as_str().ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidOperation,
                    format!("{method} arg must be None or str"),
                )
            })?),
            _ => return Err(Error::from(ErrorKind::TooManyArguments)),
        };
        let (left, right) = match method {
            "lstrip" => (true, false),
            "rstrip" => (false, true),
            _ => (true, true),
        };
        return Ok(Value::from(pyfmt::py_strip(s, chars, left, right)));
    }
    minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args)
}

/// transformers' `AssistantTracker` adds `{% generation %}…{% endgeneration %}` (it marks
/// assistant tokens for training masks and renders its body unchanged). minijinja has no
/// such tag, so rewrite it to `{% if true %}…{% endif %}`, which keeps the same block
/// whitespace handling (trim_blocks, lstrip_blocks, `-` markers).
pub(crate) fn rewrite_generation_tags(source: &str) -> Cow<'_, str> {
    if !source.contains("generation") {
        return Cow::Borrowed(source);
    }
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(start) = rest.find("{%") {
        let Some(len) = rest[start..].find("%}") else {
            break;
        };
        let end = start + len + 2;
        let tag = &rest[start..end];
        out.push_str(&rest[..start]);
        out.push_str(&rewrite_tag(tag));
        rest = &rest[end..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

fn rewrite_tag(tag: &str) -> Cow<'_, str> {
    let inner = &tag[2..tag.len() - 2];
    let open = inner.len() - inner.trim_start_matches(['-', '+']).len();
    let close = inner.len() - inner.trim_end_matches(['-', '+']).len();
    let body = inner[open..inner.len() - close].trim();
    let replacement = match body {
        "generation" => "if true",
        "endgeneration" => "endif",
        _ => return Cow::Borrowed(tag),
    };
    Cow::Owned(format!(
        "{{%{} {} {}%}}",
        &inner[..open],
        replacement,
        &inner[inner.len() - close..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_tags_become_if_blocks() {
        let src = "{% for m in messages %}{%- generation -%}{{ m }}{% endgeneration %}{% endfor %}";
        assert_eq!(
            rewrite_generation_tags(src),
            "{% for m in messages %}{%- if true -%}{{ m }}{% endif %}{% endfor %}"
        );
        let untouched = "{{ 'generation' }}{% if x %}{% endif %}";
        assert_eq!(rewrite_generation_tags(untouched), untouched);
    }
}
