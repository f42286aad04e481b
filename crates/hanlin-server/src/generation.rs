//! Driving the [`GenerationStream`]s of one request (one per choice, `n`) for a handler: wait
//! for every prompt to be accepted (so that refusals become HTTP statuses, not broken streams),
//! then hand out deltas as they arrive, recording metrics and metering the request once.

use std::sync::Arc;
use std::task::Poll;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use hanlin_api::choices::choice_requests;
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

/// One choice's backend stream and what it has produced so far.
#[derive(Debug)]
struct Choice {
    stream: GenerationStream,
    /// Tokens delivered so far: what a stream cut short is billed for.
    generated: usize,
    /// Set by `Finished`.
    usage: Option<Usage>,
}

/// A generation whose prompt the backend accepted: one backend request per choice (`n`), their
/// events merged in arrival order. Usage is reported to the gateway once, for all choices.
#[derive(Debug)]
pub struct Generation {
    choices: Vec<Choice>,
    /// Prompt tokens (counted once: every choice has the same prompt).
    pub prompt_tokens: usize,
    /// Of those, cached (as choice 0 reported it).
    pub cached_tokens: usize,
    /// When the request arrived.
    pub t_request: Instant,
    /// When the prompt was accepted.
    pub t_started: Instant,
    /// When generation ended (set by the last `Finished`).
    pub t_finished: Option<Instant>,
    first_token: bool,
    /// Choices still running.
    running: usize,
    /// An error ended every choice.
    failed: bool,
    /// Where the next poll starts, so that a fast choice cannot starve the others.
    cursor: usize,
    metrics: Arc<Metrics>,
    _in_flight: InFlight,
    /// The gateway's meter for this request, until usage is reported to it (once).
    meter: Option<Arc<RequestMeter>>,
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
        Self::start_n(state, req, 1, t_request).await
    }

    /// Submits `n` samples of `req` (seeds per [`choice_requests`]) at once, so the engine
    /// batches them, and waits until the backend accepts every prompt. If any is refused, that
    /// refusal is the answer and the others are cancelled (dropped).
    pub async fn start_n(
        state: &AppState,
        req: GenerationRequest,
        n: usize,
        t_request: Instant,
    ) -> Result<Self, ApiError> {
        let mut streams = Vec::with_capacity(n);
        for r in choice_requests(&req, n) {
            streams.push(state.backend().generate(r).map_err(from_backend)?);
        }
        let metrics = state.metrics_arc();
        let in_flight = metrics.in_flight();
        let mut choices = Vec::with_capacity(n);
        let mut counts = None;
        for mut stream in streams {
            match stream.events.recv().await {
                Some(Ok(GenerationEvent::Started {
                    prompt_tokens,
                    cached_tokens,
                })) => {
                    if counts.is_none() {
                        counts = Some((prompt_tokens, cached_tokens));
                    }
                    choices.push(Choice {
                        stream,
                        generated: 0,
                        usage: None,
                    });
                }
                Some(Err(e)) => return Err(from_backend(e)),
                Some(Ok(other)) => {
                    tracing::error!(event = ?other, "backend sent an event before Started");
                    return Err(ApiError::internal());
                }
                None => {
                    tracing::error!("backend closed the stream before Started");
                    return Err(ApiError::internal());
                }
            }
        }
        let Some((prompt_tokens, cached_tokens)) = counts else {
            tracing::error!("a generation with no choices");
            return Err(ApiError::internal());
        };
        Ok(Generation {
            meter: meter::current().inspect(|m| m.attach()),
            running: choices.len(),
            choices,
            prompt_tokens,
            cached_tokens,
            t_request,
            t_started: Instant::now(),
            t_finished: None,
            first_token: false,
            failed: false,
            cursor: 0,
            metrics,
            _in_flight: in_flight,
        })
    }

    /// Number of choices.
    pub fn n(&self) -> usize {
        self.choices.len()
    }

    /// Counts of the whole request: prompt once, completion tokens summed over choices
    /// (finished ones as the backend counted them, others as delivered so far).
    pub fn usage(&self) -> Usage {
        Usage {
            prompt_tokens: self.prompt_tokens,
            cached_tokens: self.cached_tokens,
            completion_tokens: self
                .choices
                .iter()
                .map(|c| c.usage.map_or(c.generated, |u| u.completion_tokens))
                .sum(),
        }
    }

    /// The next step of a one-choice generation; `None` after `Finished` or an error.
    pub async fn next(&mut self) -> Option<Result<Step, ApiError>> {
        self.next_choice().await.map(|(_, step)| step)
    }

    /// The next step of any choice, with that choice's index; `None` once every choice finished
    /// or one failed (an error ends them all, as a failed single choice ends its response).
    pub async fn next_choice(&mut self) -> Option<(usize, Result<Step, ApiError>)> {
        if self.failed || self.running == 0 {
            return None;
        }
        let n = self.choices.len();
        let start = self.cursor;
        let choices = &mut self.choices;
        let (i, ev) = std::future::poll_fn(|cx| {
            for k in 0..n {
                let i = (start + k) % n;
                let c = &mut choices[i];
                if c.usage.is_some() {
                    continue;
                }
                if let Poll::Ready(ev) = c.stream.events.poll_recv(cx) {
                    return Poll::Ready((i, ev));
                }
            }
            Poll::Pending
        })
        .await;
        self.cursor = (i + 1) % n;
        let step = match ev {
            Some(Ok(GenerationEvent::Delta { text, logprob })) => {
                self.choices[i].generated += 1;
                if !self.first_token {
                    self.first_token = true;
                    self.metrics.observe_ttft(self.t_request.elapsed());
                }
                Ok(Step::Delta { text, logprob })
            }
            Some(Ok(GenerationEvent::Finished {
                finish_reason,
                usage,
            })) => {
                self.choices[i].usage = Some(usage);
                self.running -= 1;
                self.metrics.record_tokens(
                    usage.prompt_tokens,
                    usage.cached_tokens,
                    usage.completion_tokens,
                );
                if self.running == 0 {
                    self.t_finished = Some(Instant::now());
                    // The ledger row is written before the last chunk (or the JSON body) goes
                    // out.
                    self.settle(200).await;
                }
                Ok(Step::Finished {
                    reason: finish_reason,
                    usage,
                })
            }
            Some(Ok(GenerationEvent::Started { .. })) => {
                tracing::error!("backend sent Started twice");
                self.fail().await;
                Err(ApiError::internal())
            }
            Some(Err(e)) => {
                self.fail().await;
                Err(from_backend(e))
            }
            None => {
                tracing::error!("backend closed the stream without Finished");
                self.fail().await;
                Err(ApiError::internal())
            }
        };
        Some((i, step))
    }

    /// Ends every choice after an error: the others are cancelled (their tokens would never be
    /// sent) and what was generated so far is reported.
    async fn fail(&mut self) {
        self.failed = true;
        for c in &self.choices {
            c.stream.cancel.cancel();
        }
        self.settle(500).await;
    }

    /// Reports the request's usage to the gateway (once).
    async fn settle(&mut self, status: u16) {
        if let Some(m) = self.meter.take() {
            let u = self.usage();
            m.finish(
                u.prompt_tokens,
                u.cached_tokens,
                u.completion_tokens,
                status,
            )
            .await;
        }
    }

    /// Runs a one-choice generation to the end, gathering text and log-probabilities.
    pub async fn collect(&mut self) -> Result<Collected, ApiError> {
        let mut all = self.collect_all().await?;
        if all.len() != 1 {
            tracing::error!(
                n = all.len(),
                "collect() on a generation of several choices"
            );
            return Err(ApiError::internal());
        }
        all.pop().ok_or_else(ApiError::internal)
    }

    /// Runs every choice to the end; the result is in choice order.
    pub async fn collect_all(&mut self) -> Result<Vec<Collected>, ApiError> {
        let n = self.choices.len();
        let mut bodies: Vec<(String, Vec<TokenLogprob>)> = vec![(String::new(), Vec::new()); n];
        let mut ends: Vec<Option<(FinishReason, Usage)>> = vec![None; n];
        while let Some((i, step)) = self.next_choice().await {
            match step? {
                Step::Delta { text, logprob } => {
                    bodies[i].0.push_str(&text);
                    bodies[i].1.extend(logprob);
                }
                Step::Finished { reason, usage } => ends[i] = Some((reason, usage)),
            }
        }
        bodies
            .into_iter()
            .zip(ends)
            .map(|((text, logprobs), end)| match end {
                Some((reason, usage)) => Ok(Collected {
                    text,
                    logprobs,
                    reason,
                    usage,
                }),
                None => {
                    tracing::error!("generation ended without Finished");
                    Err(ApiError::internal())
                }
            })
            .collect()
    }
}

impl Drop for Generation {
    /// A stream the client abandoned (or a handler that gave up early) is billed for the tokens
    /// it was sent, all choices together; 499 marks it in the ledger. Dropping the streams
    /// cancels every choice's backend work.
    fn drop(&mut self) {
        if let Some(m) = self.meter.take() {
            let u = self.usage();
            m.finish_in_background(u.prompt_tokens, u.cached_tokens, u.completion_tokens, 499);
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
