//! `POST /v1/chat/completions`.

use std::time::Instant;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use hanlin_api::openai::{
    finish_reason, AssistantMessage, ChatChoice, ChatCompletion, ChatCompletionChunk, ChatLogprobs,
    ChunkChoice, ChunkDelta, ChunkFunction, ChunkToolCall, CompletionUsage, FunctionCall, ToolCall,
};
use hanlin_api::tools::{parse_tool_calls, prepare_chat, ParsedToolCall, ToolFormat, ToolStream};
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
    let mut req = validate::chat_request(&body)?;
    let format = tool_format(&state, &req.generation.model);
    prepare_chat(&mut req.generation, req.tools.as_ref(), format);
    let with_tools = req.tools.is_some();
    tracing::debug!(model = %req.generation.model, stream = req.stream, user = ?req.user, "chat completion");
    let meta = Meta {
        id: response_id("chatcmpl"),
        created: unix_now(),
        model: req.generation.model.clone(),
        fingerprint: state.fingerprint().to_string(),
    };
    let want_logprobs = req.generation.logprobs.is_some();
    let n = req.n;
    let mut gen = Generation::start_n(&state, req.generation, n, t_request).await?;
    if !req.stream {
        let collected = gen.collect_all().await?;
        let choices = collected
            .into_iter()
            .enumerate()
            .map(|(index, c)| {
                let (content, calls) = if with_tools {
                    parse_tool_calls(format, &c.text)
                } else {
                    (Some(c.text), Vec::new())
                };
                let finish = if calls.is_empty() {
                    finish_reason(c.reason)
                } else {
                    "tool_calls".to_string()
                };
                let tool_calls =
                    (!calls.is_empty()).then(|| calls.into_iter().map(tool_call).collect());
                ChatChoice {
                    index,
                    message: AssistantMessage {
                        role: "assistant".into(),
                        content,
                        refusal: None,
                        tool_calls,
                    },
                    logprobs: want_logprobs.then(|| ChatLogprobs {
                        content: c.logprobs.iter().map(Into::into).collect(),
                        refusal: None,
                    }),
                    finish_reason: finish,
                }
            })
            .collect();
        let resp = ChatCompletion {
            id: meta.id,
            object: "chat.completion".into(),
            created: meta.created,
            model: meta.model,
            system_fingerprint: meta.fingerprint,
            choices,
            usage: gen.usage().into(),
        };
        return Ok(Json(resp).into_response());
    }
    // With include_usage every chunk carries `usage: null` and the last one the counts.
    let usage_slot = req.include_usage.then_some(None);
    // With tools, text that may be a call is held back and sent as `tool_calls` at the end;
    // each choice holds back its own.
    let mut tools: Vec<Option<ToolStream>> = (0..n)
        .map(|_| with_tools.then(|| ToolStream::new(format)))
        .collect();
    let render = move |part: Part| -> Vec<String> {
        let chunk = |index: usize, delta: ChunkDelta, logprobs, finish: Option<String>| {
            meta.chunk(
                vec![ChunkChoice {
                    index,
                    delta,
                    logprobs,
                    finish_reason: finish,
                }],
                usage_slot.clone(),
            )
        };
        let text_chunk = |index: usize, text: String, logprobs| {
            chunk(
                index,
                ChunkDelta {
                    content: Some(text),
                    ..ChunkDelta::default()
                },
                logprobs,
                None,
            )
        };
        let chunks = match part {
            Part::Start(i) => vec![chunk(
                i,
                ChunkDelta {
                    role: Some("assistant".into()),
                    content: Some(String::new()),
                    tool_calls: None,
                },
                None,
                None,
            )],
            Part::Delta(i, text, logprob) => {
                let logprobs = logprob.as_ref().map(|lp| ChatLogprobs {
                    content: vec![lp.into()],
                    refusal: None,
                });
                match tools.get_mut(i).and_then(Option::as_mut) {
                    None => vec![text_chunk(i, text, logprobs)],
                    Some(t) => t
                        .push(&text)
                        .map(|t| text_chunk(i, t, logprobs))
                        .into_iter()
                        .collect(),
                }
            }
            Part::Finish(i, reason) => {
                let mut out = Vec::new();
                let mut finish = finish_reason(reason);
                if let Some(t) = tools.get_mut(i).and_then(Option::take) {
                    let (content, calls) = t.finish();
                    if let Some(c) = content {
                        out.push(text_chunk(i, c, None));
                    }
                    if !calls.is_empty() {
                        finish = "tool_calls".into();
                    }
                    for (index, call) in calls.into_iter().enumerate() {
                        let full = tool_call(call);
                        // The first fragment names the call; the second carries the arguments.
                        for fragment in [
                            ChunkToolCall {
                                index,
                                id: Some(full.id.clone()),
                                kind: Some("function".into()),
                                function: ChunkFunction {
                                    name: Some(full.function.name.clone()),
                                    arguments: Some(String::new()),
                                },
                            },
                            ChunkToolCall {
                                index,
                                id: None,
                                kind: None,
                                function: ChunkFunction {
                                    name: None,
                                    arguments: Some(full.function.arguments),
                                },
                            },
                        ] {
                            out.push(chunk(
                                i,
                                ChunkDelta {
                                    tool_calls: Some(vec![fragment]),
                                    ..ChunkDelta::default()
                                },
                                None,
                                None,
                            ));
                        }
                    }
                }
                out.push(chunk(i, ChunkDelta::default(), None, Some(finish)));
                out
            }
            Part::Usage(u) => vec![meta.chunk(Vec::new(), Some(Some(u.into())))],
        };
        chunks.iter().filter_map(to_json).collect()
    };
    Ok(sse(gen, req.include_usage, render))
}

/// The tool-call format of `model`, from its chat template.
pub(crate) fn tool_format(state: &AppState, model: &str) -> ToolFormat {
    let details = state.backend().model_details(model);
    ToolFormat::detect(details.as_ref().and_then(|d| d.chat_template.as_deref()))
}

/// A parsed call in OpenAI's shape, with a fresh `call_…` id.
fn tool_call(c: ParsedToolCall) -> ToolCall {
    ToolCall {
        id: response_id("call").replace('-', "_"),
        kind: "function".into(),
        function: FunctionCall {
            name: c.name,
            arguments: c.arguments,
        },
    }
}
