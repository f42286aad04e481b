//! Driving one [`GenerationStream`] for a handler: wait for the prompt to be accepted (so that
//! refusals become HTTP statuses, not broken streams), then hand out deltas, recording metrics.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use hanlin_api::{
    ApiError, FinishReason, GenerationEvent, GenerationRequest, GenerationStream, TokenLogprob,
    Usage,
};

use hanlin_gateway::meter::{self, RequestMeter};

use crate::error::from_backend;
use crate::metrics::{InFlight, Metrics};
use crate::AppState;

/// One step after `Started`.
#[derive(Debug)]
pub enum Step {
    /// New text.
    Delta {
        /// Text to append (may be empty).
        text: String,
        /// Log-probability, when asked for.
        logprob: Option<TokenLogprob>,
    },
    /// The end.
    Finished {
        /// Why.
        reason: FinishReason,
        /// Counts.
        usage: Usage,
    },
}

/// A generation whose prompt the backend accepted.
#[derive(Debug)]
pub struct Generation {
    stream: GenerationStream,
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Of those, cached.
    pub cached_tokens: usize,
    /// When the request arrived.
    pub t_request: Instant,
    /// When the prompt was accepted.
    pub t_started: Instant,
    /// When generation ended (set by `Finished`).
    pub t_finished: Option<Instant>,
    first_token: bool,
    done: bool,
    metrics: Arc<Metrics>,
    _in_flight: InFlight,
    /// The gateway's meter for this request, until usage is reported to it (once).
    meter: Option<Arc<RequestMeter>>,
    /// Tokens delivered so far: what a stream cut short is billed for.
    generated: usize,
}

/// Everything a non-streamed response needs.
#[derive(Debug)]
pub struct Collected {
    /// The generated text.
    pub text: String,
    /// Per-token log-probabilities, when asked for.
    pub logprobs: Vec<TokenLogprob>,
    /// Why it ended.
    pub reason: FinishReason,
    /// Counts.
    pub usage: Usage,
}

impl Generation {
    /// Submits `req` and waits until the backend accepts or refuses the prompt.
    pub async fn start(
        state: &AppState,
        req: GenerationRequest,
        t_request: Instant,
    ) -> Result<Self, ApiError> {
        let mut stream = state.backend().generate(req).map_err(from_backend)?;
        let metrics = state.metrics_arc();
        let in_flight = metrics.in_flight();
        match stream.events.recv().await {
            Some(Ok(GenerationEvent::Started {
                prompt_tokens,
                cached_tokens,
            })) => Ok(Generation {
                meter: meter::current().inspect(|m| m.attach()),
                generated: 0,
                stream,
                prompt_tokens,
                cached_tokens,
                t_request,
                t_started: Instant::now(),
                t_finished: None,
                first_token: false,
                done: false,
                metrics,
                _in_flight: in_flight,
            }),
            Some(Err(e)) => Err(from_backend(e)),
            Some(Ok(other)) => {
                tracing::error!(event = ?other, "backend sent an event before Started");
                Err(ApiError::internal())
            }
            None => {
                tracing::error!("backend closed the stream before Started");
                Err(ApiError::internal())
            }
        }
    }

    /// The next step; `None` after `Finished` or an error.
    pub async fn next(&mut self) -> Option<Result<Step, ApiError>> {
        if self.done {
            return None;
        }
        let ev = self.stream.events.recv().await;
        match ev {
            Some(Ok(GenerationEvent::Delta { text, logprob })) => {
                self.generated += 1;
                if !self.first_token {
                    self.first_token = true;
                    self.metrics.observe_ttft(self.t_request.elapsed());
                }
                Some(Ok(Step::Delta { text, logprob }))
            }
            Some(Ok(GenerationEvent::Finished {
                finish_reason,
                usage,
            })) => {
                self.done = true;
                self.t_finished = Some(Instant::now());
                self.metrics.record_tokens(
                    usage.prompt_tokens,
                    usage.cached_tokens,
                    usage.completion_tokens,
                );
                // The ledger row is written before the last chunk (or the JSON body) goes out.
                if let Some(m) = self.meter.take() {
                    m.finish(
                        usage.prompt_tokens,
                        usage.cached_tokens,
                        usage.completion_tokens,
                        200,
                    )
                    .await;
                }
                Some(Ok(Step::Finished {
                    reason: finish_reason,
                    usage,
                }))
            }
            Some(Ok(GenerationEvent::Started { .. })) => {
                self.done = true;
                tracing::error!("backend sent Started twice");
                Some(Err(ApiError::internal()))
            }
            Some(Err(e)) => {
                self.done = true;
                self.finish_partial(500).await;
                Some(Err(from_backend(e)))
            }
            None => {
                self.done = true;
                tracing::error!("backend closed the stream without Finished");
                self.finish_partial(500).await;
                Some(Err(ApiError::internal()))
            }
        }
    }

    /// Reports what was generated so far when generation ends without `Finished`.
    async fn finish_partial(&mut self, status: u16) {
        if let Some(m) = self.meter.take() {
            m.finish(
                self.prompt_tokens,
                self.cached_tokens,
                self.generated,
                status,
            )
            .await;
        }
    }

    /// Runs to the end, gathering text and log-probabilities.
    pub async fn collect(&mut self) -> Result<Collected, ApiError> {
        let mut text = String::new();
        let mut logprobs = Vec::new();
        while let Some(step) = self.next().await {
            match step? {
                Step::Delta { text: t, logprob } => {
                    text.push_str(&t);
                    logprobs.extend(logprob);
                }
                Step::Finished { reason, usage } => {
                    return Ok(Collected {
                        text,
                        logprobs,
                        reason,
                        usage,
                    })
                }
            }
        }
        tracing::error!("generation ended without Finished");
        Err(ApiError::internal())
    }
}

impl Drop for Generation {
    /// A stream the client abandoned (or a handler that gave up early) is billed for the tokens
    /// it was sent; 499 marks it in the ledger.
    fn drop(&mut self) {
        if let Some(m) = self.meter.take() {
            m.finish_in_background(self.prompt_tokens, self.cached_tokens, self.generated, 499);
        }
    }
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A response id such as `chatcmpl-1a2b…`: unique per process run, no randomness needed.
pub fn response_id(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    format!("{prefix}-{nanos:x}{n:06x}")
}
