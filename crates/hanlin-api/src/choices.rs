//! `n > 1` on `/v1/chat/completions` and `/v1/completions`: several independent samples of
//! one prompt, run as `n` backend requests that differ only in their seed.
//!
//! Seed derivation (documented in `docs/serving.md`, and stable: a change would break every
//! client that replays a seeded request):
//!
//! - choice 0 uses the request's `seed` as given, so `n: 1` and choice 0 of `n: 3` are the same
//!   sample;
//! - choice `i ≥ 1` uses `splitmix64(seed + i)` (wrapping add), a bijection of `seed + i`, so
//!   two choices of one request never share a seed;
//! - without a `seed`, a base seed is drawn from the clock once per request and derived the same
//!   way, so the choices still differ from each other (a per-request clock seed could repeat
//!   when `n` requests start within one clock tick).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::backend::GenerationRequest;

/// Most choices one request may ask for: each one is a running sequence in the engine.
pub const MAX_CHOICES: usize = 16;

/// SplitMix64's output function of `x` (Steele, Lea and Flood, 2014): cheap, and a bijection.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The seed of choice `index` of a request whose seed is `seed` (see the module docs).
pub fn choice_seed(seed: u64, index: usize) -> u64 {
    if index == 0 {
        seed
    } else {
        splitmix64(seed.wrapping_add(index as u64))
    }
}

/// A base seed for a request that set none: the clock mixed with a process-wide counter, so two
/// requests in the same clock tick still differ.
fn fresh_seed() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    splitmix64(nanos ^ NEXT.fetch_add(1, Ordering::Relaxed).rotate_left(32))
}

/// The `n` backend requests of one client request, choice `i` at position `i`. With `n == 1`
/// the request is returned unchanged (its seed stays `None` if it had none).
pub fn choice_requests(req: &GenerationRequest, n: usize) -> Vec<GenerationRequest> {
    if n <= 1 {
        return vec![req.clone()];
    }
    let base = req.sampling.seed.unwrap_or_else(fresh_seed);
    (0..n)
        .map(|i| {
            let mut r = req.clone();
            r.sampling.seed = Some(choice_seed(base, i));
            r
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{PromptInput, SamplingOptions};

    fn req(seed: Option<u64>) -> GenerationRequest {
        GenerationRequest {
            model: "m".into(),
            input: PromptInput::Text("x".into()),
            max_tokens: Some(4),
            sampling: SamplingOptions {
                seed,
                ..SamplingOptions::default()
            },
            stop: Vec::new(),
            logprobs: None,
            constraint: None,
        }
    }

    #[test]
    fn choice_zero_keeps_the_seed_and_the_rest_differ() {
        let seeds: Vec<_> = choice_requests(&req(Some(42)), 16)
            .iter()
            .map(|r| r.sampling.seed)
            .collect();
        assert_eq!(seeds[0], Some(42));
        let mut unique = seeds.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), 16, "{seeds:?}");
        // Reproducible, and pinned: changing the derivation breaks replayed requests.
        assert_eq!(choice_seed(42, 1), splitmix64(43));
        assert_eq!(splitmix64(0), 0xE220_A839_7B1D_CDAF);
        let again: Vec<_> = choice_requests(&req(Some(42)), 16)
            .iter()
            .map(|r| r.sampling.seed)
            .collect();
        assert_eq!(seeds, again);
    }

    #[test]
    fn one_choice_is_unchanged_and_unseeded_choices_still_differ() {
        assert_eq!(choice_requests(&req(None), 1), vec![req(None)]);
        assert_eq!(choice_requests(&req(Some(7)), 1), vec![req(Some(7))]);
        let rs = choice_requests(&req(None), 3);
        assert!(rs.iter().all(|r| r.sampling.seed.is_some()));
        assert_ne!(rs[0].sampling.seed, rs[1].sampling.seed);
        assert_ne!(rs[1].sampling.seed, rs[2].sampling.seed);
        // Only the seed differs.
        let mut r1 = rs[1].clone();
        r1.sampling.seed = rs[0].sampling.seed;
        assert_eq!(r1, rs[0]);
    }
}
