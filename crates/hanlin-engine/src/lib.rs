//! Sequences, KV cache, sampler chain and generation loop.
