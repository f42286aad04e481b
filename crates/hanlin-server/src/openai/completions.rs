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
    let n = req.n;
    let mut gen = Generation::start_n(&state, req.generation, n, t_request).await?;
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
        let choices = gen
            .collect_all()
            .await?
            .into_iter()
            .enumerate()
            .map(|(index, c)| {
                let logprobs = want_logprobs.then(|| {
                    let mut lp = CompletionLogprobs::default();
                    let mut offset = echo.chars().count();
                    for t in &c.logprobs {
                        lp.push(t, offset);
                        offset += t.token.chars().count();
                    }
                    lp
                });
                CompletionChoice {
                    text: echo.clone() + &c.text,
                    index,
                    logprobs,
                    finish_reason: Some(finish_reason(c.reason)),
                }
            })
            .collect();
        let usage: CompletionUsage = gen.usage().into();
        return Ok(Json(wrap(choices, Some(Some(usage)))).into_response());
    }
    let usage_slot = req.include_usage.then_some(None);
    // Character offset of each choice's next token in its whole returned text, for
    // `text_offset`.
    let mut offsets = vec![echo.chars().count(); n];
    let render = move |part: Part| {
        let choice =
            |index: usize, text: String, logprobs, finish: Option<String>| CompletionChoice {
                text,
                index,
                logprobs,
                finish_reason: finish,
            };
        let chunk = match part {
            Part::Start(_) if echo.is_empty() => return None,
            Part::Start(i) => wrap(
                vec![choice(i, echo.clone(), None, None)],
                usage_slot.clone(),
            ),
            Part::Delta(i, text, logprob) => {
                let offset = offsets.get_mut(i)?;
                let logprobs = logprob.as_ref().map(|t| {
                    let mut lp = CompletionLogprobs::default();
                    lp.push(t, *offset);
                    lp
                });
                *offset += text.chars().count();
                wrap(vec![choice(i, text, logprobs, None)], usage_slot.clone())
            }
            Part::Finish(i, reason) => wrap(
                vec![choice(i, String::new(), None, Some(finish_reason(reason)))],
                usage_slot.clone(),
            ),
            Part::Usage(u) => wrap(Vec::new(), Some(Some(u.into()))),
        };
        to_json(&chunk)
    };
    Ok(sse(gen, req.include_usage, render))
}
