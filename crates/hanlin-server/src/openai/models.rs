//! `GET /v1/models`, `GET /v1/models/{id}`, `POST /v1/embeddings`, and the tokenizer routes
//! `POST /v1/tokenize` / `POST /v1/detokenize` (vLLM's shapes).

use axum::extract::{Path, State};
use axum::Json;
use hanlin_api::openai::{
    f32_base64, DetokenizeResponse, Embedding, EmbeddingList, EmbeddingUsage, Model, ModelList,
    TokenizeResponse,
};
use hanlin_api::validate::{self, body_object, missing, wrong_type, Fields};
use hanlin_api::{ApiError, ModelCard};
use serde_json::Value;

use crate::body::OpenAiJson;
use crate::error::{from_backend, OpenAiError};
use crate::AppState;

/// The card of `id`, or a 404 naming it.
pub fn find_model(state: &AppState, id: &str) -> Result<ModelCard, ApiError> {
    state
        .backend()
        .models()
        .into_iter()
        .find(|c| c.id == id)
        .ok_or_else(|| ApiError::model_not_found(id))
}

/// `GET /v1/models`.
pub async fn list(State(state): State<AppState>) -> Json<ModelList> {
    Json(ModelList {
        object: "list".into(),
        data: state.backend().models().iter().map(Model::from).collect(),
    })
}

/// `GET /v1/models/{id}`; ids may contain `/`, hence the wildcard.
pub async fn retrieve(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Model>, OpenAiError> {
    Ok(Json(Model::from(&find_model(&state, &id)?)))
}

/// `POST /v1/tokenize`: `{"model", "prompt"}`.
pub async fn tokenize(
    State(state): State<AppState>,
    OpenAiJson(body): OpenAiJson,
) -> Result<Json<TokenizeResponse>, OpenAiError> {
    let f = Fields::new(body_object(&body)?, "");
    let model = f.required_str("model")?;
    let prompt = f.str("prompt")?.ok_or_else(|| missing("prompt"))?;
    let card = find_model(&state, model)?;
    let tokens = state
        .backend()
        .tokenize(model, prompt)
        .map_err(from_backend)?;
    Ok(Json(TokenizeResponse {
        count: tokens.len(),
        max_model_len: card.context_length,
        tokens,
    }))
}

/// `POST /v1/detokenize`: `{"model", "tokens"}`.
pub async fn detokenize(
    State(state): State<AppState>,
    OpenAiJson(body): OpenAiJson,
) -> Result<Json<DetokenizeResponse>, OpenAiError> {
    let f = Fields::new(body_object(&body)?, "");
    let model = f.required_str("model")?;
    let tokens = match f.get("tokens") {
        None => return Err(missing("tokens").into()),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_u64()
                    .and_then(|x| u32::try_from(x).ok())
                    .ok_or_else(|| wrong_type(&format!("tokens.[{i}]"), "a token id", v))
            })
            .collect::<Result<Vec<u32>, _>>()?,
        Some(v) => return Err(wrong_type("tokens", "an array", v).into()),
    };
    find_model(&state, model)?;
    let prompt = state
        .backend()
        .detokenize(model, &tokens)
        .map_err(from_backend)?;
    Ok(Json(DetokenizeResponse { prompt }))
}

/// `POST /v1/embeddings`.
pub async fn embeddings(
    State(state): State<AppState>,
    OpenAiJson(body): OpenAiJson,
) -> Result<Json<EmbeddingList>, OpenAiError> {
    let req = validate::embedding_request(&body)?;
    find_model(&state, &req.model)?;
    let job = state
        .backend()
        .embed(&req.model, req.inputs)
        .map_err(from_backend)?;
    let out = match job.await {
        Ok(r) => r.map_err(from_backend)?,
        Err(_) => {
            tracing::error!("embedding job dropped without an answer");
            return Err(ApiError::internal().into());
        }
    };
    let data = out
        .embeddings
        .iter()
        .enumerate()
        .map(|(index, v)| Embedding {
            object: "embedding".into(),
            index,
            embedding: if req.base64 {
                Value::String(f32_base64(v))
            } else {
                Value::from(v.clone())
            },
        })
        .collect();
    Ok(Json(EmbeddingList {
        object: "list".into(),
        data,
        model: req.model,
        usage: EmbeddingUsage {
            prompt_tokens: out.prompt_tokens,
            total_tokens: out.prompt_tokens,
        },
    }))
}
