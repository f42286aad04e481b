//! `POST /v1/completions` (legacy text completions).

use std::time::Instant;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use hanlin_api::openai::{
    finish_reason, CompletionChoice, CompletionLogprobs, CompletionUsage, TextCompletion,
};
use hanlin_api::{validate, PromptInput};

use super::{sse, to_json, Part};
use crate::body::OpenAiJson;
use crate::error::{from_backend, OpenAiError};
use crate::generation::{response_id, unix_now, Generation};
use crate::AppState;

/// The handler.
pub async fn completions(
    State(state): State<AppState>,
    OpenAiJson(body): OpenAiJson,
) -> Result<Response, OpenAiError> {
    let t_request = Instant::now();
    let req = validate::completion_request(&body)?;
    tracing::debug!(model = %req.generation.model, stream = req.stream, user = ?req.user, "completion");
    let echo = if req.echo {
        match &req.generation.input {
            PromptInput::Text(t) => t.clone(),
            PromptInput::Tokens(ids) => state
                .backend()
                .detokenize(&req.generation.model, ids)
                .map_err(from_backend)?,
            PromptInput::Chat { .. } => String::new(),
        }
    } else {
        String::new()
    };
    let id = response_id("cmpl");
    let created = unix_now();
    let model = req.generation.model.clone();
    let fingerprint = state.fingerprint().to_string();
    let want_logprobs = req.generation.logprobs.is_some();
    let mut gen = Generation::start(&state, req.generation, t_request).await?;
    let wrap = move |choices: Vec<CompletionChoice>, usage| TextCompletion {
        id: id.clone(),
        object: "text_completion".into(),
        created,
        model: model.clone(),
        system_fingerprint: fingerprint.clone(),
        choices,
        usage,
    };
    if !req.stream {
        let c = gen.collect().await?;
        let logprobs = want_logprobs.then(|| {
            let mut lp = CompletionLogprobs::default();
            let mut offset = echo.chars().count();
            for t in &c.logprobs {
                lp.push(t, offset);
                offset += t.token.chars().count();
            }
            lp
        });
        let choice = CompletionChoice {
            text: echo + &c.text,
            index: 0,
            logprobs,
            finish_reason: Some(finish_reason(c.reason)),
        };
        let usage: CompletionUsage = c.usage.into();
        return Ok(Json(wrap(vec![choice], Some(Some(usage)))).into_response());
    }
    let usage_slot = req.include_usage.then_some(None);
    // Character offset of the next token in the whole returned text, for `text_offset`.
    let mut offset = echo.chars().count();
    let render = move |part: Part| {
        let choice = |text: String, logprobs, finish: Option<String>| CompletionChoice {
            text,
            index: 0,
            logprobs,
            finish_reason: finish,
        };
        let chunk = match part {
            Part::Start if echo.is_empty() => return None,
            Part::Start => wrap(vec![choice(echo.clone(), None, None)], usage_slot.clone()),
            Part::Delta(text, logprob) => {
                let logprobs = logprob.as_ref().map(|t| {
                    let mut lp = CompletionLogprobs::default();
                    lp.push(t, offset);
                    lp
                });
                offset += text.chars().count();
                wrap(vec![choice(text, logprobs, None)], usage_slot.clone())
            }
            Part::Finish(reason) => wrap(
                vec![choice(String::new(), None, Some(finish_reason(reason)))],
                usage_slot.clone(),
            ),
            Part::Usage(u) => wrap(Vec::new(), Some(Some(u.into()))),
        };
        to_json(&chunk)
    };
    Ok(sse(gen, req.include_usage, render))
}
