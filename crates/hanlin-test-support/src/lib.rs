//! Dev-only helpers: tiny random-weight GGUF builder.
