//! OpenAI/Ollama wire types, validation and the InferenceBackend trait.
