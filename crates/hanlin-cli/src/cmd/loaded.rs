//! Loading a model, its tokenizer and its chat template from a `--model` argument.

use anyhow::Context;
use hanlin_models::Model;
use hanlin_tokenizer::template::{ChatTemplate, SpecialTokens};
use hanlin_tokenizer::Tokenizer;

use super::resolve::resolve_model;

/// A model ready to run.
pub struct LoadedModel {
    /// Weights and forward pass.
    pub model: Model,
    /// The model's tokenizer.
    pub tokenizer: Tokenizer,
}

impl LoadedModel {
    /// Resolves (pulling on first use), maps and checks the model.
    pub fn load(arg: &str, threads: Option<usize>) -> anyhow::Result<Self> {
        let path = resolve_model(arg)?;
        let mut model =
            Model::load(&path).with_context(|| format!("loading {}", path.display()))?;
        if let Some(n) = threads {
            model.set_threads(n);
        }
        let tokenizer = Tokenizer::from_gguf(model.gguf()).context("loading the tokenizer")?;
        model.release_vocab_metadata();
        Ok(LoadedModel { model, tokenizer })
    }

    /// The model's chat template, or the built-in one for its architecture.
    pub fn chat_template(&self) -> anyhow::Result<ChatTemplate> {
        let f = self.model.gguf();
        let text = |id: Option<u32>| {
            id.and_then(|i| self.tokenizer.token_text(i))
                .unwrap_or_default()
                .to_string()
        };
        let special = SpecialTokens {
            bos_token: text(self.tokenizer.bos_id()),
            eos_token: text(self.tokenizer.eos_id()),
        };
        let source = f.get_str("tokenizer.chat_template").ok().flatten();
        Ok(ChatTemplate::for_model(
            source,
            self.model.config.arch.name(),
            special,
        )?)
    }
}
