//! `/api` (Ollama) routes.

use axum::http::header;
use serde_json::{json, Value};

use super::{app, get, post};

fn assert_final_line(last: &Value, reason: &str) {
    assert_eq!(last["done"], true, "{last}");
    assert_eq!(last["done_reason"], reason, "{last}");
    for k in [
        "total_duration",
        "load_duration",
        "prompt_eval_duration",
        "eval_duration",
    ] {
        assert!(last[k].is_u64(), "{k} in {last}");
    }
    assert!(last["total_duration"].as_u64() >= last["eval_duration"].as_u64());
}

#[tokio::test]
async fn chat_streams_ndjson() {
    let (app, _) = app();
    let r = post(
        &app,
        "/api/chat",
        json!({"model": "fake", "messages": [{"role": "user", "content": "red green blue"}]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        Some("application/x-ndjson")
    );
    let lines = r.ndjson();
    assert_eq!(lines.len(), 4, "{lines:?}");
    let text: String = lines
        .iter()
        .map(|l| l["message"]["content"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(text, "red green blue");
    for l in &lines[..3] {
        assert_eq!(l["done"], false);
        assert_eq!(l["model"], "fake");
        assert_eq!(l["message"]["role"], "assistant");
        assert!(l["created_at"].as_str().is_some_and(|s| s.ends_with('Z')));
        assert!(l.get("eval_count").is_none());
    }
    let last = &lines[3];
    assert_final_line(last, "stop");
    assert_eq!(last["eval_count"], 3);
    // "user: red green blue\n" is 21 bytes, plus BOS.
    assert_eq!(last["prompt_eval_count"], 22);
}

#[tokio::test]
async fn chat_without_stream_and_with_options() {
    let (app, fake) = app();
    let v = post(
        &app,
        "/api/chat",
        json!({"model": "fake", "stream": false, "options": {"num_predict": 1, "temperature": 0},
               "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "a b"}]}),
    )
    .await
    .json();
    assert_eq!(v["message"], json!({"role": "assistant", "content": "a"}));
    assert_final_line(&v, "length");
    assert_eq!(v["eval_count"], 1);
    assert_eq!(
        fake.last_request().map(|r| r.sampling.temperature),
        Some(0.0)
    );
}

#[tokio::test]
async fn generate_stream_raw_and_load() {
    let (app, fake) = app();
    let lines = post(
        &app,
        "/api/generate",
        json!({"model": "fake", "prompt": "up down"}),
    )
    .await
    .ndjson();
    let text: String = lines
        .iter()
        .filter_map(|l| l["response"].as_str())
        .collect();
    assert_eq!(text, "up down");
    assert_final_line(lines.last().expect("lines"), "stop");
    let v = post(
        &app,
        "/api/generate",
        json!({"model": "fake", "prompt": "raw text", "raw": true, "stream": false}),
    )
    .await
    .json();
    assert_eq!(v["response"], "raw text");
    assert_eq!(v["prompt_eval_count"], 9);
    let before = fake.started();
    let v = post(&app, "/api/generate", json!({"model": "fake"}))
        .await
        .json();
    assert_eq!(
        (v["done"].clone(), v["done_reason"].clone()),
        (json!(true), json!("load"))
    );
    assert_eq!(fake.started(), before, "loading does not generate");
}

#[tokio::test]
async fn errors_are_ollama_shaped() {
    let (app, _) = app();
    let r = post(
        &app,
        "/api/chat",
        json!({"model": "nope", "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json(), json!({"error": "model 'nope' not found"}));
    let r = post(&app, "/api/generate", json!({"model": "nope"})).await;
    assert_eq!(r.status, 404, "load of an unknown model");
    let r = post(
        &app,
        "/api/chat",
        json!({"model": "fake", "options": {"top_p": "x"}}),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]
            .as_str()
            .is_some_and(|e| e.contains("options.top_p")),
        "{}",
        r.body
    );
    let r = post(&app, "/api/show", json!({})).await;
    assert_eq!(r.status, 400);
    let r = post(&app, "/api/show", json!({"model": "nope"})).await;
    assert_eq!(r.status, 404);
    // Ollama accepts bodies without a JSON content type (curl -d).
    let req = axum::http::Request::post("/api/generate")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(axum::body::Body::from(
            r#"{"model":"fake","prompt":"q","stream":false}"#,
        ))
        .expect("request");
    assert_eq!(super::send(&app, req).await.json()["response"], "q");
}

#[tokio::test]
async fn tags_show_ps_version_embed() {
    let (app, _) = app();
    let v = get(&app, "/api/tags").await.json();
    let m = &v["models"][0];
    assert_eq!(
        (m["name"].clone(), m["model"].clone()),
        (json!("fake"), json!("fake"))
    );
    assert_eq!(m["size"], 4096);
    assert_eq!(m["details"]["format"], "gguf");
    assert_eq!(m["details"]["family"], "fake");
    assert_eq!(m["modified_at"], "2023-11-14T22:13:20.000000000Z");
    let v = post(&app, "/api/show", json!({"model": "fake"}))
        .await
        .json();
    assert_eq!(v["model_info"]["fake.context_length"], 512);
    assert_eq!(v["capabilities"], json!(["completion"]));
    let v = post(&app, "/api/show", json!({"name": "fake"}))
        .await
        .json();
    assert_eq!(v["details"]["quantization_level"], "F32");
    let v = get(&app, "/api/ps").await.json();
    assert_eq!(v["models"][0]["context_length"], 512);
    assert_eq!(v["models"][0]["size_vram"], 0);
    let v = get(&app, "/api/version").await.json();
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    let v = post(
        &app,
        "/api/embed",
        json!({"model": "fake", "input": ["a", "b"]}),
    )
    .await
    .json();
    assert_eq!(v["embeddings"].as_array().map(Vec::len), Some(2), "{v}");
    assert_eq!(v["prompt_eval_count"], 4);
}
