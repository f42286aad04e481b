//! Architecture tables, per-arch forward passes and a naive reference forward.
