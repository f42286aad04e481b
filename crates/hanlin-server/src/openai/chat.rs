//! `POST /v1/chat/completions`.

use std::time::Instant;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use hanlin_api::openai::{
    finish_reason, AssistantMessage, ChatChoice, ChatCompletion, ChatCompletionChunk, ChatLogprobs,
    ChunkChoice, ChunkDelta, CompletionUsage,
};
use hanlin_api::validate;

use super::{sse, to_json, Part};
use crate::body::OpenAiJson;
use crate::error::OpenAiError;
use crate::generation::{response_id, unix_now, Generation};
use crate::AppState;

/// Fields every chunk of one response repeats.
#[derive(Clone)]
struct Meta {
    id: String,
    created: u64,
    model: String,
    fingerprint: String,
}

impl Meta {
    fn chunk(
        &self,
        choices: Vec<ChunkChoice>,
        usage: Option<Option<CompletionUsage>>,
    ) -> ChatCompletionChunk {
        ChatCompletionChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".into(),
            created: self.created,
            model: self.model.clone(),
            system_fingerprint: self.fingerprint.clone(),
            choices,
            usage,
        }
    }
}

/// The handler.
pub async fn chat_completions(
    State(state): State<AppState>,
    OpenAiJson(body): OpenAiJson,
) -> Result<Response, OpenAiError> {
    let t_request = Instant::now();
    let req = validate::chat_request(&body)?;
    tracing::debug!(model = %req.generation.model, stream = req.stream, user = ?req.user, "chat completion");
    let meta = Meta {
        id: response_id("chatcmpl"),
        created: unix_now(),
        model: req.generation.model.clone(),
        fingerprint: state.fingerprint().to_string(),
    };
    let want_logprobs = req.generation.logprobs.is_some();
    let mut gen = Generation::start(&state, req.generation, t_request).await?;
    if !req.stream {
        let c = gen.collect().await?;
        let resp = ChatCompletion {
            id: meta.id,
            object: "chat.completion".into(),
            created: meta.created,
            model: meta.model,
            system_fingerprint: meta.fingerprint,
            choices: vec![ChatChoice {
                index: 0,
                message: AssistantMessage {
                    role: "assistant".into(),
                    content: Some(c.text),
                    refusal: None,
                },
                logprobs: want_logprobs.then(|| ChatLogprobs {
                    content: c.logprobs.iter().map(Into::into).collect(),
                    refusal: None,
                }),
                finish_reason: finish_reason(c.reason),
            }],
            usage: c.usage.into(),
        };
        return Ok(Json(resp).into_response());
    }
    // With include_usage every chunk carries `usage: null` and the last one the counts.
    let usage_slot = req.include_usage.then_some(None);
    let render = move |part: Part| {
        let choice = |delta: ChunkDelta, logprobs, finish: Option<String>| ChunkChoice {
            index: 0,
            delta,
            logprobs,
            finish_reason: finish,
        };
        let chunk = match part {
            Part::Start => meta.chunk(
                vec![choice(
                    ChunkDelta {
                        role: Some("assistant".into()),
                        content: Some(String::new()),
                    },
                    None,
                    None,
                )],
                usage_slot.clone(),
            ),
            Part::Delta(text, logprob) => meta.chunk(
                vec![choice(
                    ChunkDelta {
                        role: None,
                        content: Some(text),
                    },
                    logprob.as_ref().map(|lp| ChatLogprobs {
                        content: vec![lp.into()],
                        refusal: None,
                    }),
                    None,
                )],
                usage_slot.clone(),
            ),
            Part::Finish(reason) => meta.chunk(
                vec![choice(
                    ChunkDelta::default(),
                    None,
                    Some(finish_reason(reason)),
                )],
                usage_slot.clone(),
            ),
            Part::Usage(u) => meta.chunk(Vec::new(), Some(Some(u.into()))),
        };
        to_json(&chunk)
    };
    Ok(sse(gen, req.include_usage, render))
}
