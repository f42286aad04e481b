//! Ollama-compatible `/api` routes: NDJSON streaming chat and generate, embeddings, and the
//! model listing calls Ollama clients and UIs make on start-up.

use std::convert::Infallible;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream;
use hanlin_api::ollama::{
    self, rfc3339, ChatMessage, ChatResponse, Details, EmbedResponse, GenerateResponse, PsResponse,
    RunningModel, ShowResponse, TagModel, TagsResponse, Timings, VersionResponse,
};
use hanlin_api::tools::{ollama_tool_calls, parse_tool_calls, prepare_chat, ToolStream};
use hanlin_api::{ApiError, KeepAlive, ModelCard, ModelDetails, PromptInput, Usage};
use serde_json::{Map, Value};

use crate::body::OllamaJson;
use crate::error::{from_backend, OllamaError};
use crate::generation::{Generation, Step};
use crate::openai::models::find_model;
use crate::AppState;

fn now_rfc3339() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(d.as_secs(), d.subsec_nanos())
}

fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn timings(gen: &Generation, usage: &Usage) -> Timings {
    let end = gen.t_finished.unwrap_or_else(Instant::now);
    Timings {
        total_duration: nanos(end - gen.t_request),
        load_duration: 0,
        prompt_eval_count: usage.prompt_tokens,
        prompt_eval_duration: nanos(gen.t_started - gen.t_request),
        eval_count: usage.completion_tokens,
        eval_duration: nanos(end - gen.t_started),
    }
}

/// Which endpoint's line shape to produce.
#[derive(Clone, Copy)]
enum Shape {
    Chat,
    Generate,
}

fn line(shape: Shape, model: &str, text: String, done: Option<(&str, Timings)>) -> Value {
    line_with_calls(shape, model, text, None, done)
}

fn line_with_calls(
    shape: Shape,
    model: &str,
    text: String,
    tool_calls: Option<Vec<Value>>,
    done: Option<(&str, Timings)>,
) -> Value {
    let created_at = now_rfc3339();
    let (done_reason, timings) = match done {
        Some((r, t)) => (Some(r.to_string()), Some(t)),
        None => (None, None),
    };
    let v = match shape {
        Shape::Chat => serde_json::to_value(ChatResponse {
            model: model.to_string(),
            created_at,
            message: ChatMessage {
                role: "assistant".into(),
                content: text,
                tool_calls,
            },
            done: done_reason.is_some(),
            done_reason,
            timings,
        }),
        Shape::Generate => serde_json::to_value(GenerateResponse {
            model: model.to_string(),
            created_at,
            response: text,
            done: done_reason.is_some(),
            done_reason,
            timings,
        }),
    };
    v.unwrap_or(Value::Null)
}

/// Runs a validated chat/generate request as one object or an NDJSON stream.
async fn respond(
    state: AppState,
    req: ollama::OllamaRequest,
    shape: Shape,
    t_request: Instant,
) -> Result<Response, OllamaError> {
    let model = req.generation.model.clone();
    if req.load_only {
        // Ollama's "load the model" call (or, with keep_alive 0, "unload it"): nothing to
        // generate; answer once the model is in (or out of) memory.
        find_model(&state, &model)?;
        let reason = match req.keep_alive {
            Some(KeepAlive::For(d)) if d.is_zero() => {
                state.backend().unload(&model).map_err(from_backend)?;
                "unload"
            }
            keep_alive => {
                let job = state
                    .backend()
                    .load(&model, keep_alive)
                    .map_err(from_backend)?;
                job.await
                    .map_err(|_| ApiError::internal())?
                    .map_err(from_backend)?;
                "load"
            }
        };
        let v = line(
            shape,
            &model,
            String::new(),
            Some((reason, Timings::default())),
        );
        return Ok(Json(v).into_response());
    }
    if let Some(keep_alive) = req.keep_alive {
        state.backend().set_keep_alive(&model, keep_alive);
    }
    let mut generation = req.generation;
    let format = crate::openai::chat::tool_format(&state, &model);
    if matches!(shape, Shape::Chat) {
        prepare_chat(&mut generation, req.tools.as_ref(), format);
    }
    let with_tools = req.tools.is_some();
    let mut gen = Generation::start(&state, generation, t_request).await?;
    if !req.stream {
        let c = gen.collect().await?;
        let t = timings(&gen, &c.usage);
        let (content, calls) = if with_tools {
            parse_tool_calls(format, &c.text)
        } else {
            (Some(c.text), Vec::new())
        };
        let calls = (!calls.is_empty()).then(|| ollama_tool_calls(&calls));
        let v = line_with_calls(
            shape,
            &model,
            content.unwrap_or_default(),
            calls,
            Some((c.reason.as_str(), t)),
        );
        return Ok(Json(v).into_response());
    }
    // With tools, text that may be a call is held back; calls go out on one line before the end.
    let tools = with_tools.then(|| ToolStream::new(format));
    let lines = stream::unfold(Some((gen, tools)), move |state| {
        let model = model.clone();
        async move {
            let (mut gen, mut tools) = state?;
            loop {
                let v = match gen.next().await? {
                    Ok(Step::Delta { text, .. }) if text.is_empty() => continue,
                    Ok(Step::Delta { text, .. }) => {
                        let text = match tools.as_mut() {
                            None => text,
                            Some(t) => match t.push(&text) {
                                Some(text) => text,
                                None => continue,
                            },
                        };
                        let v = line(shape, &model, text, None);
                        return Some((ndjson(&v), Some((gen, tools))));
                    }
                    Ok(Step::Finished { reason, usage }) => {
                        let t = timings(&gen, &usage);
                        let mut out = String::new();
                        if let Some(ts) = tools.take() {
                            let (content, calls) = ts.finish();
                            if content.is_some() || !calls.is_empty() {
                                let calls = (!calls.is_empty()).then(|| ollama_tool_calls(&calls));
                                let v = line_with_calls(
                                    shape,
                                    &model,
                                    content.unwrap_or_default(),
                                    calls,
                                    None,
                                );
                                out.push_str(&v.to_string());
                                out.push('\n');
                            }
                        }
                        let v = line(shape, &model, String::new(), Some((reason.as_str(), t)));
                        out.push_str(&v.to_string());
                        out.push('\n');
                        return Some((Ok(Bytes::from(out)), None));
                    }
                    Err(e) => serde_json::to_value(e.ollama_body()).unwrap_or(Value::Null),
                };
                return Some((ndjson(&v), None));
            }
        }
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response())
}

fn ndjson(v: &Value) -> Result<Bytes, Infallible> {
    let mut s = v.to_string();
    s.push('\n');
    Ok(Bytes::from(s))
}

/// `POST /api/chat`.
pub async fn chat(
    State(state): State<AppState>,
    OllamaJson(body): OllamaJson,
) -> Result<Response, OllamaError> {
    let t = Instant::now();
    let req = ollama::chat_request(&body)?;
    respond(state, req, Shape::Chat, t).await
}

/// `POST /api/generate`.
pub async fn generate(
    State(state): State<AppState>,
    OllamaJson(body): OllamaJson,
) -> Result<Response, OllamaError> {
    let t = Instant::now();
    let req = ollama::generate_request(&body)?;
    respond(state, req, Shape::Generate, t).await
}

/// `POST /api/embed`.
pub async fn embed(
    State(state): State<AppState>,
    OllamaJson(body): OllamaJson,
) -> Result<Json<EmbedResponse>, OllamaError> {
    let t = Instant::now();
    let (model, inputs) = ollama::embed_request(&body)?;
    find_model(&state, &model)?;
    let inputs = inputs.into_iter().map(PromptInput::Text).collect();
    let job = state
        .backend()
        .embed(&model, inputs)
        .map_err(from_backend)?;
    let out = match job.await {
        Ok(r) => r.map_err(from_backend)?,
        Err(_) => {
            tracing::error!("embedding job dropped without an answer");
            return Err(ApiError::internal().into());
        }
    };
    Ok(Json(EmbedResponse {
        model,
        embeddings: out.embeddings,
        total_duration: nanos(t.elapsed()),
        load_duration: 0,
        prompt_eval_count: out.prompt_tokens,
    }))
}

fn details_of(state: &AppState, card: &ModelCard) -> ModelDetails {
    state.backend().model_details(&card.id).unwrap_or_default()
}

/// `GET /api/tags`.
pub async fn tags(State(state): State<AppState>) -> Json<TagsResponse> {
    let models = state
        .backend()
        .models()
        .iter()
        .map(|c| TagModel::new(c, &details_of(&state, c)))
        .collect();
    Json(TagsResponse { models })
}

/// `GET /api/ps`: the models in memory and when each will be unloaded if idle.
pub async fn ps(State(state): State<AppState>) -> Json<PsResponse> {
    let cards = state.backend().models();
    // Backends without load management keep every model loaded for good.
    let loaded: Vec<(String, Option<u64>)> = match state.backend().loaded() {
        Some(l) => l.into_iter().map(|m| (m.id, m.expires_at)).collect(),
        None => cards.iter().map(|c| (c.id.clone(), None)).collect(),
    };
    let models = loaded
        .into_iter()
        .filter_map(|(id, expires)| {
            let c = cards.iter().find(|c| c.id == id)?;
            let d = details_of(&state, c);
            Some(RunningModel {
                name: c.id.clone(),
                model: c.id.clone(),
                size: d.size_bytes,
                digest: d.digest.clone(),
                details: Details::from(&d),
                // Year 9999 is how "never" reads to clients that parse the time.
                expires_at: rfc3339(expires.unwrap_or(253_402_300_799), 0),
                size_vram: 0,
                context_length: c.context_length,
            })
        })
        .collect();
    Json(PsResponse { models })
}

/// `POST /api/show`.
pub async fn show(
    State(state): State<AppState>,
    OllamaJson(body): OllamaJson,
) -> Result<Json<ShowResponse>, OllamaError> {
    let name = ollama::model_of(&body)?;
    let card = find_model(&state, &name)?;
    let d = details_of(&state, &card);
    let template = d.chat_template.clone().unwrap_or_default();
    let mut model_info = Map::new();
    let arch = if d.family.is_empty() {
        "unknown"
    } else {
        &d.family
    };
    model_info.insert("general.architecture".into(), arch.into());
    model_info.insert(format!("{arch}.context_length"), card.context_length.into());
    let mut capabilities = vec!["completion".to_string()];
    if template.contains("tools") {
        capabilities.push("tools".into());
    }
    Ok(Json(ShowResponse {
        modelfile: format!("# Modelfile generated by hanlin\nFROM {}\n", card.id),
        parameters: String::new(),
        template,
        details: Details::from(&d),
        model_info,
        capabilities,
        modified_at: rfc3339(card.created, 0),
    }))
}

/// `GET /api/version`.
pub async fn version() -> Json<VersionResponse> {
    Json(VersionResponse {
        version: env!("CARGO_PKG_VERSION").into(),
    })
}
