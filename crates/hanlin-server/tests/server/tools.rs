//! Structured output and tool calls through the HTTP layer (the fake backend plays the model).

use std::sync::Arc;

use hanlin_api::{
    BackendError, GenerationRequest, GenerationStream, InferenceBackend, ModelCard, ModelDetails,
    OutputConstraint,
};
use hanlin_server::{router, AppState, ServerConfig};
use hanlin_test_support::fake_backend::{FakeBackend, FakeConfig};
use serde_json::{json, Value};

use super::{app_with, post};

fn weather_tools() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}])
}

fn scripted(words: &[&str]) -> FakeConfig {
    FakeConfig {
        script: Some(words.iter().map(|w| w.to_string()).collect()),
        ..FakeConfig::default()
    }
}

const CALL: [&str; 3] = [
    "<tool_call>\n{\"name\": \"get_weather\", ",
    "\"arguments\": {\"city\": ",
    "\"Paris\"}}\n</tool_call>",
];

#[tokio::test]
async fn tool_call_response_has_openai_shape() {
    let (app, fake) = app_with(scripted(&CALL), ServerConfig::default());
    let body = json!({"model": "fake", "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": weather_tools(), "tool_choice": "required"});
    let r = post(&app, "/v1/chat/completions", body).await;
    let v = r.json();
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls", "{v}");
    assert_eq!(choice["message"]["content"], Value::Null);
    let call = &choice["message"]["tool_calls"][0];
    assert!(
        call["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("call_")),
        "{v}"
    );
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["function"]["arguments"], "{\"city\":\"Paris\"}");
    // The backend got a grammar for the call and, the fake having no template, a system
    // message describing the tool.
    let req = fake.last_request().expect("a request");
    let c = req.constraint.expect("a tool grammar");
    assert_eq!(c.param, "tools");
    assert!(
        matches!(&c.kind, OutputConstraint::Lark(g) if g.contains("get_weather") && g.starts_with("start: calls"))
    );
    let hanlin_api::PromptInput::Chat { messages, .. } = &req.input else {
        panic!("chat input expected")
    };
    assert_eq!(messages[0]["role"], "system");
    assert!(messages[0]["content"]
        .as_str()
        .unwrap_or("")
        .contains("get_weather"));
}

#[tokio::test]
async fn streamed_tool_call_fragments() {
    let (app, _) = app_with(scripted(&CALL), ServerConfig::default());
    let body = json!({"model": "fake", "messages": [{"role": "user", "content": "Weather?"}],
        "tools": weather_tools(), "stream": true});
    let r = post(&app, "/v1/chat/completions", body).await;
    let data = r.sse_data();
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).expect("chunk json"))
        .collect();
    let deltas: Vec<&Value> = chunks.iter().map(|c| &c["choices"][0]["delta"]).collect();
    assert_eq!(deltas[0]["role"], "assistant");
    let calls: Vec<&Value> = deltas.iter().filter_map(|d| d.get("tool_calls")).collect();
    assert_eq!(calls.len(), 2, "{chunks:?}");
    assert_eq!(calls[0][0]["index"], 0);
    assert_eq!(calls[0][0]["type"], "function");
    assert_eq!(calls[0][0]["function"]["name"], "get_weather");
    assert_eq!(calls[1][0]["function"]["arguments"], "{\"city\":\"Paris\"}");
    assert!(calls[1][0].get("id").is_none());
    // No call text leaks out as content.
    assert!(deltas
        .iter()
        .all(|d| d["content"].as_str().unwrap_or("").is_empty()));
    let last = &chunks[chunks.len() - 1]["choices"][0];
    assert_eq!(last["finish_reason"], "tool_calls");
}

#[tokio::test]
async fn plain_text_with_tools_streams_as_content() {
    let (app, _) = app_with(scripted(&["Hello", " there"]), ServerConfig::default());
    let body = json!({"model": "fake", "messages": [{"role": "user", "content": "Hi"}],
        "tools": weather_tools(), "stream": true});
    let data = post(&app, "/v1/chat/completions", body).await.sse_data();
    let text: String = data[..data.len() - 1]
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(text, "Hello there");
    assert!(data
        .iter()
        .any(|d| d.contains("\"finish_reason\":\"stop\"")));
}

#[tokio::test]
async fn response_format_reaches_the_backend() {
    let (app, fake) = app_with(scripted(&["{}"]), ServerConfig::default());
    let schema =
        json!({"type": "object", "properties": {"profile": {"type": "string", "maxLength": 30}}});
    let body = json!({"model": "fake", "messages": [{"role": "user", "content": "x"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "t", "schema": schema, "strict": true}}});
    assert_eq!(post(&app, "/v1/chat/completions", body).await.status, 200);
    let c = fake
        .last_request()
        .and_then(|r| r.constraint)
        .expect("constraint");
    assert_eq!(c.kind, OutputConstraint::JsonSchema(schema));
    let body = json!({"model": "fake", "prompt": "x", "guided_regex": "[a-z]+"});
    assert_eq!(post(&app, "/v1/completions", body).await.status, 200);
    let c = fake
        .last_request()
        .and_then(|r| r.constraint)
        .expect("constraint");
    assert_eq!(c.kind, OutputConstraint::Regex("[a-z]+".into()));
}

#[tokio::test]
async fn ollama_tool_calls_have_object_arguments() {
    let (app, _) = app_with(scripted(&CALL), ServerConfig::default());
    let body = json!({"model": "fake", "stream": false, "tools": weather_tools(),
        "messages": [{"role": "user", "content": "Weather?"}]});
    let v = post(&app, "/api/chat", body).await.json();
    assert_eq!(
        v["message"]["tool_calls"][0]["function"]["arguments"],
        json!({"city": "Paris"}),
        "{v}"
    );
    assert_eq!(v["message"]["content"], "");
    let body = json!({"model": "fake", "stream": true, "tools": weather_tools(),
        "messages": [{"role": "user", "content": "Weather?"}]});
    let lines = post(&app, "/api/chat", body).await.ndjson();
    let with_calls: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"].get("tool_calls").is_some())
        .collect();
    assert_eq!(with_calls.len(), 1, "{lines:?}");
    assert_eq!(lines.last().map(|l| l["done"].clone()), Some(json!(true)));
}

/// The fake backend with a chosen digest and runtime identity.
struct Tagged {
    inner: FakeBackend,
    digest: &'static str,
    runtime: &'static str,
}

impl InferenceBackend for Tagged {
    fn models(&self) -> Vec<ModelCard> {
        self.inner.models()
    }
    fn generate(&self, req: GenerationRequest) -> Result<GenerationStream, BackendError> {
        self.inner.generate(req)
    }
    fn tokenize(&self, model: &str, text: &str) -> Result<Vec<u32>, BackendError> {
        self.inner.tokenize(model, text)
    }
    fn detokenize(&self, model: &str, tokens: &[u32]) -> Result<String, BackendError> {
        self.inner.detokenize(model, tokens)
    }
    fn model_details(&self, model: &str) -> Option<ModelDetails> {
        self.inner.model_details(model).map(|mut d| {
            d.digest = self.digest.into();
            d
        })
    }
    fn runtime_identity(&self) -> String {
        self.runtime.into()
    }
}

#[tokio::test]
async fn fingerprint_follows_model_digest_and_isa() {
    let fp = |digest, runtime| {
        let b = Tagged {
            inner: FakeBackend::new(FakeConfig::default()),
            digest,
            runtime,
        };
        AppState::new(Arc::new(b), ServerConfig::default())
            .fingerprint()
            .to_string()
    };
    let base = fp("sha256:aa", "isa=avx2");
    assert_eq!(
        base,
        fp("sha256:aa", "isa=avx2"),
        "stable for the same inputs"
    );
    assert_ne!(base, fp("sha256:ab", "isa=avx2"), "model digest");
    assert_ne!(base, fp("sha256:aa", "isa=avx512"), "kernel ISA");
    let state = AppState::new(
        Arc::new(FakeBackend::new(FakeConfig::default())),
        ServerConfig::default(),
    );
    let app = router(state.clone());
    let r = post(&app, "/v1/chat/completions", super::chat_body("hi")).await;
    assert_eq!(r.json()["system_fingerprint"], state.fingerprint());
}
