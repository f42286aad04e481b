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

/// One piece of a streamed response, rendered to a `data:` payload by the route. Every part
/// but `Usage` belongs to one choice, named by its index.
pub enum Part {
    /// Before any token (chat: the `role` chunk; completions: the echoed prompt).
    Start(usize),
    /// New text.
    Delta(usize, String, Option<TokenLogprob>),
    /// The choice's closing chunk with `finish_reason`.
    Finish(usize, FinishReason),
    /// The usage-only chunk (`choices: []`): prompt once, completion summed over choices.
    Usage(Usage),
}

enum Phase {
    /// Sending each choice's start part.
    Start,
    Body,
    Usage(Usage),
    Done,
    End,
}

/// Streams `gen` as SSE: `render` turns each [`Part`] into JSON payloads (none skips it; a
/// finish with tool calls needs several). Choices interleave as their tokens arrive, each ends
/// with its own finish part; after the last one comes the usage part (if asked for) and
/// `data: [DONE]`, or an error envelope if any choice fails midway. Dropping the response body
/// (client gone) drops `gen`, which cancels every choice's backend work.
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
                        for i in 0..gen.n() {
                            queue.extend(render(Part::Start(i)));
                        }
                        Phase::Body
                    }
                    Phase::Body => match gen.next_choice().await {
                        Some((i, Ok(Step::Delta { text, logprob }))) => {
                            if !text.is_empty() || logprob.is_some() {
                                queue.extend(render(Part::Delta(i, text, logprob)));
                            }
                            Phase::Body
                        }
                        Some((i, Ok(Step::Finished { reason, .. }))) => {
                            queue.extend(render(Part::Finish(i, reason)));
                            Phase::Body
                        }
                        Some((_, Err(e))) => {
                            queue.extend(serde_json::to_string(&e.openai_body()).ok());
                            Phase::End
                        }
                        // Every choice finished.
                        None if include_usage => Phase::Usage(gen.usage()),
                        None => Phase::Done,
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
