//! The OpenAI-compatible `/v1` routes and their shared server-sent-events plumbing.

pub mod chat;
pub mod completions;
pub mod models;

use std::collections::VecDeque;
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

/// Streams `gen` as SSE: `render` turns each [`Part`] into JSON payloads (none skips it; a
/// finish with tool calls needs several); the stream ends with `data: [DONE]`, or with an
/// error envelope if generation fails midway. Dropping the response body (client gone) drops
/// `gen`, which cancels the backend's work.
pub fn sse<R, I>(gen: Generation, include_usage: bool, render: R) -> Response
where
    R: FnMut(Part) -> I + Send + 'static,
    I: IntoIterator<Item = String>,
{
    let events = stream::unfold(
        (gen, render, VecDeque::<String>::new(), Phase::Start),
        move |(mut gen, mut render, mut queue, phase)| async move {
            let mut phase = phase;
            loop {
                if let Some(data) = queue.pop_front() {
                    let ev: Result<Event, Infallible> = Ok(Event::default().data(data));
                    return Some((ev, (gen, render, queue, phase)));
                }
                let next = match phase {
                    Phase::Start => {
                        queue.extend(render(Part::Start));
                        Phase::Body
                    }
                    Phase::Body => match gen.next().await {
                        Some(Ok(Step::Delta { text, logprob })) => {
                            if !text.is_empty() || logprob.is_some() {
                                queue.extend(render(Part::Delta(text, logprob)));
                            }
                            Phase::Body
                        }
                        Some(Ok(Step::Finished { reason, usage })) => {
                            queue.extend(render(Part::Finish(reason)));
                            if include_usage {
                                Phase::Usage(usage)
                            } else {
                                Phase::Done
                            }
                        }
                        Some(Err(e)) => {
                            queue.extend(serde_json::to_string(&e.openai_body()).ok());
                            Phase::End
                        }
                        None => Phase::End,
                    },
                    Phase::Usage(u) => {
                        queue.extend(render(Part::Usage(u)));
                        Phase::Done
                    }
                    Phase::Done => {
                        queue.push_back("[DONE]".to_string());
                        Phase::End
                    }
                    Phase::End => return None,
                };
                phase = next;
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
