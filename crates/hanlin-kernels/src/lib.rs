//! SIMD kernels with runtime dispatch and a thread pool.
//!
//! - [`Kernels`]: dot products of a weight row in a ggml format with an activation row in the
//!   matching [`activation_type`], activation quantizers, and [`Kernels::matvec`] /
//!   [`Kernels::matmul`] over a [`WeightMatrix`]. One table per [`Isa`], picked once at run
//!   time by [`detect`] (cap it with `HANLIN_ISA=generic|avx2|avxvnni|avx512`);
//!   [`Kernels::detected`] is the process-wide choice. AVX2 needs AVX2 + FMA + F16C; AvxVnni
//!   adds AVX-VNNI, Avx512Vnni AVX-512 F/BW/VL + AVX512_VNNI (both run the same 256-bit VNNI
//!   kernels for Q4_0/Q4_1/Q5_0/Q5_1/Q8_0/Q4_K/Q5_K/Q6_K and AVX2 for the rest); everything
//!   else runs the portable scalar kernels.
//!   On Avx512Vnni, batched mat-muls (4+ tokens) of Q4_0/Q5_0/Q8_0 run a 512-bit 8 × 4
//!   register-blocked GEMM over activations packed once per call (`arch/x86_64/gemm512.rs`).
//! - [`PackedMatrix`] / [`Kernels::matmul_packed`]: Q4_0 and Q4_K matrices with a multiple of
//!   8 rows and Q8_0 / Q5_0 matrices of 16+ rows repacked at load into 16-row interleaved groups, so
//!   one 512-bit `vpdpbusd` serves 16 rows and the weights stay one sequential stream; used by
//!   the models for every batch size (see `packed.rs` for layouts and float orders).
//! - [`Kernels::attn_scores_f16`] / [`Kernels::attn_softmax`] / [`Kernels::attn_values_f16`]:
//!   attention over an f16 KV cache for up to [`ATTN_GROUP`] queries at once, each key and
//!   value row read once per group.
//! - [`ThreadPool`]: persistent workers, spin-then-park, no allocation per job.
//!
//! **llama.cpp's float order.** For Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q6_K and F16, and for
//! attention, every ISA computes exactly what llama.cpp's CPU backend (built for AVX-512)
//! computes for a single token, including its repacked `q4_0_8x8` / `q4_K_8x8` orders for the
//! Q4_0 / Q4_K matrices it repacks: the same exact integer lanes, the same fused multiply-adds in
//! the same order, the same horizontal reductions (see each kernel and
//! `docs/correctness.md`). Results are therefore bit-identical across ISAs, and to llama.cpp
//! evaluating one token at a time. The other types sum in their own order and agree with the
//! scalar oracle in `hanlin-quant` to a relative 1e-5 of `sum |w_i * a_i|`. Activation
//! quantizers are byte-identical to hanlin-quant's `quantize_activation` (Q8_0/Q8_1 in ggml's
//! x86 flavour) on every ISA.
//!
//! Results are batch- and thread-invariant: each output of a mat-mul is bit-identical to the
//! single dot product of its row and token, whatever the thread count or batch size.
//!
//! Activations must come from the quantizers here (or hanlin-quant's): like ggml, the AVX2 and
//! VNNI kernels assume quantized activations never hold -128.

mod arch;
mod attn;
mod error;
mod isa;
mod kernels;
mod layout;
mod matmul;
mod packed;
mod pool;
mod table;

pub use attn::{exp_ggml, ATTN_GROUP};
pub use error::KernelError;
pub use hanlin_gguf::GgmlType;
pub use isa::{detect, Isa, ISA_ENV};
pub use kernels::{activation_type, Kernels};
pub use layout::row_bytes;
pub use matmul::WeightMatrix;
pub use packed::{packs, PackedLayout, PackedMatrix};
pub use pool::{ThreadPool, DEFAULT_SPIN};
