//! The OpenAI-compatible `/v1` routes and their shared server-sent-events plumbing.

pub mod chat;
pub mod completions;
pub mod models;

use std::convert::Infallible;

use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use hanlin_api::{FinishReason, TokenLogprob, Usage};

use crate::generation::{Generation, Step};

/// One piece of a streamed response, rendered to a `data:` payload by the route.
pub enum Part {
    /// Before any token (chat: the `role` chunk; completions: the echoed prompt).
    Start,
    /// New text.
    Delta(String, Option<TokenLogprob>),
    /// The closing chunk with `finish_reason`.
    Finish(FinishReason),
    /// The usage-only chunk (`choices: []`).
    Usage(Usage),
}

enum Phase {
    Start,
    Body,
    Usage(Usage),
    Done,
    End,
}

/// Streams `gen` as SSE: `render` turns each [`Part`] into a JSON payload (`None` skips it);
/// the stream ends with `data: [DONE]`, or with an error envelope if generation fails midway.
/// Dropping the response body (client gone) drops `gen`, which cancels the backend's work.
pub fn sse<R>(gen: Generation, include_usage: bool, render: R) -> Response
where
    R: FnMut(Part) -> Option<String> + Send + 'static,
{
    let events = stream::unfold(
        (gen, render, Phase::Start),
        move |(mut gen, mut render, phase)| async move {
            let mut phase = phase;
            loop {
                let (payload, next) = match phase {
                    Phase::Start => (render(Part::Start), Phase::Body),
                    Phase::Body => match gen.next().await {
                        Some(Ok(Step::Delta { text, logprob })) => {
                            if text.is_empty() && logprob.is_none() {
                                (None, Phase::Body)
                            } else {
                                (render(Part::Delta(text, logprob)), Phase::Body)
                            }
                        }
                        Some(Ok(Step::Finished { reason, usage })) => {
                            let next = if include_usage {
                                Phase::Usage(usage)
                            } else {
                                Phase::Done
                            };
                            (render(Part::Finish(reason)), next)
                        }
                        Some(Err(e)) => {
                            let body = serde_json::to_string(&e.openai_body()).ok();
                            (body, Phase::End)
                        }
                        None => (None, Phase::End),
                    },
                    Phase::Usage(u) => (render(Part::Usage(u)), Phase::Done),
                    Phase::Done => (Some("[DONE]".to_string()), Phase::End),
                    Phase::End => return None,
                };
                phase = next;
                if let Some(data) = payload {
                    let ev: Result<Event, Infallible> = Ok(Event::default().data(data));
                    return Some((ev, (gen, render, phase)));
                }
            }
        },
    );
    Sse::new(events).into_response()
}

/// Serializes a wire value; our own types cannot fail to serialize, but never panic on it.
pub fn to_json<T: serde::Serialize>(v: &T) -> Option<String> {
    match serde_json::to_string(v) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!(error = %e, "could not serialize a response chunk");
            None
        }
    }
}
