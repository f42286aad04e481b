//! OpenAI response shapes (`chat.completion`, `chat.completion.chunk`, `text_completion`,
//! `model`, `list`) and the tokenize extension. Requests are not deserialized into structs: they
//! are validated from raw JSON in [`crate::validate`] so that every error names its field.

use serde::{Deserialize, Serialize};

use crate::backend::{FinishReason, ModelCard, TokenLogprob, Usage};

/// `usage` of a response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CompletionUsage {
    /// Prompt tokens, cached ones included.
    pub prompt_tokens: usize,
    /// Generated tokens.
    pub completion_tokens: usize,
    /// Sum of the two.
    pub total_tokens: usize,
    /// Breakdown of the prompt.
    pub prompt_tokens_details: PromptTokensDetails,
}

/// `usage.prompt_tokens_details`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PromptTokensDetails {
    /// Prompt tokens served from the prefix cache.
    pub cached_tokens: usize,
}

impl From<Usage> for CompletionUsage {
    fn from(u: Usage) -> Self {
        CompletionUsage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            total_tokens: u.prompt_tokens + u.completion_tokens,
            prompt_tokens_details: PromptTokensDetails {
                cached_tokens: u.cached_tokens,
            },
        }
    }
}

/// An assistant message in a non-streamed response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AssistantMessage {
    /// Always `assistant`.
    pub role: String,
    /// Generated text (`null` when the reply is only tool calls).
    pub content: Option<String>,
    /// Always `null`: no refusal classifier here.
    pub refusal: Option<String>,
    /// Calls the model made; absent when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
}

/// One tool call of an assistant message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// `call_…`, echoed back by the client in the `tool` message.
    pub id: String,
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The call.
    pub function: FunctionCall,
}

/// Name and arguments of a call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    /// Function name.
    pub name: String,
    /// Arguments as JSON text.
    pub arguments: String,
}

/// One tool call in a streamed `delta`: the first fragment has `id`, `type` and the name,
/// later ones append to `arguments`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChunkToolCall {
    /// Which call this fragment belongs to.
    pub index: usize,
    /// On the first fragment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `function`, on the first fragment.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name and/or an arguments fragment.
    pub function: ChunkFunction,
}

/// `function` of a [`ChunkToolCall`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChunkFunction {
    /// On the first fragment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Text to append to the arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

/// One alternative of a chat token.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TopLogprob {
    /// Token text.
    pub token: String,
    /// Natural-log probability.
    pub logprob: f32,
    /// UTF-8 bytes of the token.
    pub bytes: Option<Vec<u8>>,
}

/// One generated chat token with its log-probability.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatTokenLogprob {
    /// Token text.
    pub token: String,
    /// Natural-log probability.
    pub logprob: f32,
    /// UTF-8 bytes of the token.
    pub bytes: Option<Vec<u8>>,
    /// Most likely alternatives.
    pub top_logprobs: Vec<TopLogprob>,
}

impl From<&TokenLogprob> for ChatTokenLogprob {
    fn from(t: &TokenLogprob) -> Self {
        ChatTokenLogprob {
            token: t.token.clone(),
            logprob: t.logprob,
            bytes: Some(t.bytes.clone()),
            top_logprobs: t
                .top
                .iter()
                .map(|(token, bytes, logprob)| TopLogprob {
                    token: token.clone(),
                    logprob: *logprob,
                    bytes: Some(bytes.clone()),
                })
                .collect(),
        }
    }
}

/// `choices[].logprobs` of a chat response.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatLogprobs {
    /// One entry per generated token.
    pub content: Vec<ChatTokenLogprob>,
    /// Always `null`.
    pub refusal: Option<Vec<ChatTokenLogprob>>,
}

/// One choice of a `chat.completion`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatChoice {
    /// Position among the request's `n` choices.
    pub index: usize,
    /// The reply.
    pub message: AssistantMessage,
    /// Log-probabilities when asked for, else `null`.
    pub logprobs: Option<ChatLogprobs>,
    /// `stop`, `length` or `tool_calls`.
    pub finish_reason: String,
}

/// A non-streamed chat response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletion {
    /// `chatcmpl-…`.
    pub id: String,
    /// Always `chat.completion`.
    pub object: String,
    /// Unix seconds.
    pub created: u64,
    /// Model id.
    pub model: String,
    /// Build/config fingerprint.
    pub system_fingerprint: String,
    /// One per requested choice (`n`), in index order.
    pub choices: Vec<ChatChoice>,
    /// Token counts.
    pub usage: CompletionUsage,
}

/// `delta` of a chunk.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChunkDelta {
    /// `assistant` on the first chunk only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// New text; absent on the closing chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Tool-call fragments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ChunkToolCall>>,
}

/// One choice of a `chat.completion.chunk`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChunkChoice {
    /// Position.
    pub index: usize,
    /// New content.
    pub delta: ChunkDelta,
    /// Log-probabilities of this chunk's tokens when asked for.
    pub logprobs: Option<ChatLogprobs>,
    /// Set on the closing chunk only.
    pub finish_reason: Option<String>,
}

/// One SSE event of a streamed chat response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionChunk {
    /// Same for every chunk of a response.
    pub id: String,
    /// Always `chat.completion.chunk`.
    pub object: String,
    /// Unix seconds.
    pub created: u64,
    /// Model id.
    pub model: String,
    /// Build/config fingerprint.
    pub system_fingerprint: String,
    /// Empty on the usage-only final chunk.
    pub choices: Vec<ChunkChoice>,
    /// Absent unless `stream_options.include_usage`; then `null` on every chunk but the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Option<CompletionUsage>>,
}

/// `choices[].logprobs` of a legacy completion.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CompletionLogprobs {
    /// Token texts.
    pub tokens: Vec<String>,
    /// Their log-probabilities.
    pub token_logprobs: Vec<f32>,
    /// Alternatives per position, token text → logprob.
    pub top_logprobs: Vec<serde_json::Map<String, serde_json::Value>>,
    /// Character offset of each token in the returned text.
    pub text_offset: Vec<usize>,
}

impl CompletionLogprobs {
    /// Appends one token whose text starts at character `offset`.
    pub fn push(&mut self, t: &TokenLogprob, offset: usize) {
        self.tokens.push(t.token.clone());
        self.token_logprobs.push(t.logprob);
        self.top_logprobs.push(
            t.top
                .iter()
                .map(|(tok, _, lp)| (tok.clone(), serde_json::Value::from(f32_as_f64(*lp))))
                .collect(),
        );
        self.text_offset.push(offset);
    }
}

/// `x` widened so that it prints as the f32 does (`-0.03175354`, not `-0.0317535400390625`),
/// as the f32 fields elsewhere in a response print.
fn f32_as_f64(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(f64::from(x))
}

/// One choice of a `text_completion` (streamed or not).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CompletionChoice {
    /// Generated text (or this chunk of it).
    pub text: String,
    /// Position.
    pub index: usize,
    /// Log-probabilities when asked for.
    pub logprobs: Option<CompletionLogprobs>,
    /// `stop`/`length` at the end, `null` on intermediate chunks.
    pub finish_reason: Option<String>,
}

/// A legacy completion response, and each chunk of a streamed one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TextCompletion {
    /// `cmpl-…`.
    pub id: String,
    /// Always `text_completion`.
    pub object: String,
    /// Unix seconds.
    pub created: u64,
    /// Model id.
    pub model: String,
    /// Build/config fingerprint.
    pub system_fingerprint: String,
    /// One per choice (`n`) in a full response; the chunk's choice when streaming; empty on
    /// the usage-only final chunk.
    pub choices: Vec<CompletionChoice>,
    /// Always present when not streaming; when streaming, as for chat chunks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Option<CompletionUsage>>,
}

/// A model entry of `/v1/models`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// Id to use in requests.
    pub id: String,
    /// Always `model`.
    pub object: String,
    /// Unix seconds.
    pub created: u64,
    /// Owner.
    pub owned_by: String,
}

impl From<&ModelCard> for Model {
    fn from(c: &ModelCard) -> Self {
        Model {
            id: c.id.clone(),
            object: "model".into(),
            created: c.created,
            owned_by: c.owned_by.clone(),
        }
    }
}

/// `/v1/models`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelList {
    /// Always `list`.
    pub object: String,
    /// The models.
    pub data: Vec<Model>,
}

/// `/v1/tokenize` response (vLLM's shape).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenizeResponse {
    /// Number of tokens.
    pub count: usize,
    /// Context window of the model.
    pub max_model_len: usize,
    /// Token ids.
    pub tokens: Vec<u32>,
}

/// `/v1/detokenize` response (vLLM's shape).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DetokenizeResponse {
    /// The text.
    pub prompt: String,
}

/// One vector of an embeddings response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Embedding {
    /// Always `embedding`.
    pub object: String,
    /// Position of the input.
    pub index: usize,
    /// Floats, or a base64 string of little-endian f32 when asked for.
    pub embedding: serde_json::Value,
}

/// `usage` of an embeddings response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingUsage {
    /// Tokens read.
    pub prompt_tokens: usize,
    /// Same as `prompt_tokens`.
    pub total_tokens: usize,
}

/// `/v1/embeddings` response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingList {
    /// Always `list`.
    pub object: String,
    /// One per input.
    pub data: Vec<Embedding>,
    /// Model id.
    pub model: String,
    /// Token counts.
    pub usage: EmbeddingUsage,
}

/// Base64 (standard alphabet, padded) of the little-endian bytes of `v`, as OpenAI encodes
/// vectors for `encoding_format: base64`.
pub fn f32_base64(v: &[f32]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(ABC[(n >> shift & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// OpenAI's name for a finish reason, as an owned string for the wire types.
pub fn finish_reason(r: FinishReason) -> String {
    r.as_str().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_usage_absent_null_or_present() {
        let mut c = ChatCompletionChunk {
            id: "x".into(),
            object: "chat.completion.chunk".into(),
            created: 1,
            model: "m".into(),
            system_fingerprint: "fp".into(),
            choices: vec![],
            usage: None,
        };
        let v = serde_json::to_value(&c).unwrap();
        assert!(v.get("usage").is_none());
        c.usage = Some(None);
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["usage"], serde_json::Value::Null);
        c.usage = Some(Some(
            Usage {
                prompt_tokens: 5,
                cached_tokens: 2,
                completion_tokens: 3,
            }
            .into(),
        ));
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(
            v["usage"],
            serde_json::json!({"prompt_tokens":5,"completion_tokens":3,"total_tokens":8,
                "prompt_tokens_details":{"cached_tokens":2}})
        );
    }

    #[test]
    fn base64_of_floats() {
        // 1.0f32 = 00 00 80 3f; base64 of those four bytes.
        assert_eq!(f32_base64(&[1.0]), "AACAPw==");
        assert_eq!(f32_base64(&[1.0, -2.0]), "AACAPwAAAMA=");
        assert_eq!(f32_base64(&[]), "");
        assert_eq!(f32_base64(&[0.0, 0.0, 0.0]), "AAAAAAAAAAAAAAAA");
    }

    #[test]
    fn completion_logprobs_offsets() {
        let mut lp = CompletionLogprobs::default();
        let t = TokenLogprob {
            token: "ab".into(),
            bytes: b"ab".to_vec(),
            logprob: -0.5,
            top: vec![
                ("ab".into(), b"ab".to_vec(), -0.5),
                ("c".into(), b"c".to_vec(), -1.5),
            ],
        };
        lp.push(&t, 0);
        lp.push(&t, 2);
        let v = serde_json::to_value(&lp).unwrap();
        assert_eq!(v["text_offset"], serde_json::json!([0, 2]));
        assert_eq!(v["top_logprobs"][1]["c"], serde_json::json!(-1.5));
        assert_eq!(f32_as_f64(-0.031_753_54), -0.031_753_54_f64);
    }
}
