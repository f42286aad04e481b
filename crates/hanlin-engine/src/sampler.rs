//! The sampler chain: logit bias → penalties → top-k → typical → top-p → min-p →
//! temperature → draw. Greedy when the temperature is zero.
//!
//! Buffers are sized once per sampler; sampling a token allocates nothing.

use crate::rng::SeededRng;

/// User-facing sampling parameters (OpenAI / llama.cpp names).
#[derive(Clone, Debug, PartialEq)]
pub struct SamplingParams {
    /// 0 = greedy.
    pub temperature: f32,
    /// 0 = disabled.
    pub top_k: usize,
    /// 1.0 = disabled.
    pub top_p: f32,
    /// 0.0 = disabled.
    pub min_p: f32,
    /// 1.0 = disabled (locally typical sampling).
    pub typical_p: f32,
    /// 1.0 = disabled (CTRL-style: divide positive logits, multiply negative).
    pub repetition_penalty: f32,
    /// OpenAI presence penalty (subtracted once per seen token).
    pub presence_penalty: f32,
    /// OpenAI frequency penalty (subtracted per occurrence).
    pub frequency_penalty: f32,
    /// How many recent tokens the penalties look at (0 = all).
    pub penalty_last_n: usize,
    /// Added to the logits of these tokens (`f32::NEG_INFINITY` bans a token).
    pub logit_bias: Vec<(u32, f32)>,
    /// RNG seed.
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            typical_p: 1.0,
            repetition_penalty: 1.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            penalty_last_n: 64,
            logit_bias: Vec::new(),
            seed: 0,
        }
    }
}

impl SamplingParams {
    /// Greedy decoding (argmax), no penalties.
    pub fn greedy() -> Self {
        SamplingParams {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            ..Default::default()
        }
    }
}

/// A stateful sampler for one sequence.
#[derive(Debug)]
pub struct Sampler {
    params: SamplingParams,
    rng: SeededRng,
    history: Vec<u32>,
    counts: Vec<u32>,
    logits: Vec<f32>,
    cand: Vec<(u32, f32)>,
}

impl Sampler {
    /// A sampler over a vocabulary of `n_vocab`.
    pub fn new(params: SamplingParams, n_vocab: usize) -> Self {
        Sampler {
            rng: SeededRng::new(params.seed),
            params,
            history: Vec::with_capacity(4096),
            counts: vec![0; n_vocab],
            logits: vec![0.0; n_vocab],
            cand: Vec::with_capacity(n_vocab),
        }
    }

    /// The parameters in use.
    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// Records a token as part of the context (prompt or generated) for penalties.
    pub fn accept(&mut self, token: u32) {
        self.history.push(token);
        if let Some(c) = self.counts.get_mut(token as usize) {
            *c += 1;
        }
        let n = self.params.penalty_last_n;
        if n > 0 && self.history.len() > n {
            let old = self.history[self.history.len() - n - 1];
            if let Some(c) = self.counts.get_mut(old as usize) {
                *c -= 1;
            }
        }
    }

    /// Picks the next token from raw logits.
    pub fn sample(&mut self, raw: &[f32]) -> u32 {
        self.sample_masked(raw, None)
    }

    /// Picks the next token among those `mask` allows (bit `i % 32` of word `i / 32` set:
    /// token `i` allowed; tokens past the mask are banned), e.g. under a grammar. Masked
    /// tokens get `-inf` before penalties and truncation, so the chain runs on the allowed
    /// set only and greedy picks the best allowed token.
    pub fn sample_masked(&mut self, raw: &[f32], mask: Option<&[u32]>) -> u32 {
        let n = raw.len().min(self.logits.len());
        self.logits[..n].copy_from_slice(&raw[..n]);
        let p = &self.params;
        for &(id, bias) in &p.logit_bias {
            if let Some(l) = self.logits.get_mut(id as usize) {
                *l += bias;
            }
        }
        if let Some(mask) = mask {
            for (w, chunk) in self.logits[..n].chunks_mut(32).enumerate() {
                let bits = mask.get(w).copied().unwrap_or(0);
                if bits == u32::MAX {
                    continue;
                }
                for (b, l) in chunk.iter_mut().enumerate() {
                    if (bits >> b) & 1 == 0 {
                        *l = f32::NEG_INFINITY;
                    }
                }
            }
        }
        let penalize =
            p.repetition_penalty != 1.0 || p.presence_penalty != 0.0 || p.frequency_penalty != 0.0;
        if penalize {
            let start = if p.penalty_last_n == 0 {
                0
            } else {
                self.history.len().saturating_sub(p.penalty_last_n)
            };
            for &tok in &self.history[start..] {
                let (i, c) = (
                    tok as usize,
                    self.counts.get(tok as usize).copied().unwrap_or(0),
                );
                // Each distinct token is penalised once: mark it done by the count sign trick below.
                if i >= n || c == 0 {
                    continue;
                }
                let l = &mut self.logits[i];
                if p.repetition_penalty != 1.0 {
                    *l = if *l > 0.0 {
                        *l / p.repetition_penalty
                    } else {
                        *l * p.repetition_penalty
                    };
                }
                *l -= c as f32 * p.frequency_penalty + p.presence_penalty;
                self.counts[i] |= 1 << 31;
            }
            for &tok in &self.history[start..] {
                if let Some(c) = self.counts.get_mut(tok as usize) {
                    *c &= !(1 << 31);
                }
            }
        }
        let logits = &self.logits[..n];
        if p.temperature <= 0.0 {
            return argmax(logits);
        }

        let by_logit = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        let no_top_k = p.top_k == 0 || p.top_k >= n;
        if no_top_k && p.typical_p >= 1.0 {
            // Large vocabularies (262k for Gemma): never sort the whole vocabulary. The
            // normalizer is global, min-p is a logit threshold, and top-p only needs the head.
            let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            if max == f32::NEG_INFINITY {
                return argmax(logits);
            }
            if p.top_p >= 1.0 && p.min_p <= 0.0 {
                return self.draw_all(max);
            }
            let z: f64 = logits.iter().map(|&l| f64::from(l - max).exp()).sum();
            let floor = if p.min_p > 0.0 {
                max + p.min_p.ln()
            } else {
                f32::NEG_INFINITY
            };
            self.cand.clear();
            self.cand.extend(
                logits
                    .iter()
                    .enumerate()
                    .filter(|(_, &l)| l >= floor)
                    .map(|(i, &l)| (i as u32, l)),
            );
            let mut head = 256.min(self.cand.len());
            loop {
                if head < self.cand.len() {
                    self.cand.select_nth_unstable_by(head - 1, by_logit);
                }
                self.cand[..head].sort_unstable_by(by_logit);
                let mut cum = 0.0f64;
                let mut keep = None;
                for (i, c) in self.cand[..head].iter().enumerate() {
                    cum += f64::from(c.1 - max).exp() / z;
                    if p.top_p < 1.0 && cum >= f64::from(p.top_p) {
                        keep = Some(i + 1);
                        break;
                    }
                }
                match keep {
                    Some(k) => {
                        self.cand.truncate(k);
                        break;
                    }
                    None if head == self.cand.len() => break,
                    None => head = (head * 4).min(self.cand.len()),
                }
            }
            return self.draw_sorted(max);
        }

        self.cand.clear();
        self.cand
            .extend(logits.iter().enumerate().map(|(i, &l)| (i as u32, l)));
        self.cand.retain(|c| c.1 > f32::NEG_INFINITY);
        if self.cand.is_empty() {
            return argmax(logits);
        }
        // Keep a sorted head of top-k (or everything when typical sampling needs it).
        let k = if p.top_k > 0 {
            p.top_k.min(self.cand.len())
        } else {
            self.cand.len()
        };
        if k < self.cand.len() {
            self.cand.select_nth_unstable_by(k - 1, by_logit);
            self.cand.truncate(k);
        }
        self.cand.sort_unstable_by(by_logit);
        softmax_cand(&mut self.cand);

        if p.typical_p < 1.0 {
            typical(&mut self.cand, p.typical_p);
        }
        if p.top_p < 1.0 {
            let mut cum = 0.0;
            let mut keep = self.cand.len();
            for (i, c) in self.cand.iter().enumerate() {
                cum += c.1;
                if cum >= p.top_p {
                    keep = i + 1;
                    break;
                }
            }
            self.cand.truncate(keep.max(1));
        }
        if p.min_p > 0.0 {
            let thresh = self.cand[0].1 * p.min_p;
            let keep = self
                .cand
                .iter()
                .take_while(|c| c.1 >= thresh)
                .count()
                .max(1);
            self.cand.truncate(keep);
        }
        // Temperature on the surviving candidates' logits: p_i ∝ exp(log p_i / T).
        let t = p.temperature;
        let max = self.cand[0].1.ln();
        let mut sum = 0.0f64;
        for c in self.cand.iter_mut() {
            let w = ((c.1.ln() - max) / t).exp();
            c.1 = w;
            sum += f64::from(w);
        }
        let mut r = self.rng.next_f64() * sum;
        for c in &self.cand {
            r -= f64::from(c.1);
            if r < 0.0 {
                return c.0;
            }
        }
        self.cand[self.cand.len() - 1].0
    }
}

impl Sampler {
    /// Temperature-scaled draw over every token (no truncation), in index order.
    fn draw_all(&mut self, max: f32) -> u32 {
        let t = self.params.temperature;
        let n = self.logits.len();
        let sum: f64 = self
            .logits
            .iter()
            .map(|&l| f64::from((l - max) / t).exp())
            .sum();
        let mut r = self.rng.next_f64() * sum;
        for (i, &l) in self.logits.iter().enumerate() {
            r -= f64::from((l - max) / t).exp();
            if r < 0.0 {
                return i as u32;
            }
        }
        argmax(&self.logits[..n])
    }

    /// Temperature-scaled draw over the sorted candidates (logits in `cand`).
    fn draw_sorted(&mut self, max: f32) -> u32 {
        let t = self.params.temperature;
        let sum: f64 = self
            .cand
            .iter()
            .map(|c| f64::from((c.1 - max) / t).exp())
            .sum();
        let mut r = self.rng.next_f64() * sum;
        for c in &self.cand {
            r -= f64::from((c.1 - max) / t).exp();
            if r < 0.0 {
                return c.0;
            }
        }
        self.cand[self.cand.len() - 1].0
    }
}

/// Index of the largest logit (lowest index on ties, like llama.cpp's greedy sampler).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0usize;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

fn softmax_cand(c: &mut [(u32, f32)]) {
    let max = c[0].1;
    let mut sum = 0.0f64;
    for x in c.iter_mut() {
        x.1 = (x.1 - max).exp();
        sum += f64::from(x.1);
    }
    for x in c.iter_mut() {
        x.1 = (f64::from(x.1) / sum) as f32;
    }
}

/// Locally typical sampling: keep tokens whose surprise is closest to the entropy until mass p.
fn typical(c: &mut Vec<(u32, f32)>, p: f32) {
    let entropy: f32 = c
        .iter()
        .filter(|x| x.1 > 0.0)
        .map(|x| -x.1 * x.1.ln())
        .sum();
    let dist = |x: &(u32, f32)| {
        if x.1 > 0.0 {
            (-x.1.ln() - entropy).abs()
        } else {
            f32::INFINITY
        }
    };
    c.sort_by(|a, b| dist(a).total_cmp(&dist(b)));
    let mut cum = 0.0;
    let mut keep = c.len();
    for (i, x) in c.iter().enumerate() {
        cum += x.1;
        if cum >= p {
            keep = i + 1;
            break;
        }
    }
    c.truncate(keep.max(1));
    c.sort_by(|a, b| b.1.total_cmp(&a.1));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logits() -> Vec<f32> {
        vec![1.0, 3.0, 2.5, -1.0, 0.0, 2.9, -5.0, 0.5]
    }

    #[test]
    fn greedy_is_argmax() {
        let mut s = Sampler::new(SamplingParams::greedy(), 8);
        assert_eq!(s.sample(&logits()), 1);
    }

    #[test]
    fn mask_limits_every_path_to_allowed_tokens() {
        // Allowed: 0, 3, 4, 6; the best allowed is 0 (logit 1.0), not the overall best 1.
        let mask = [0b0101_1001u32];
        let mut s = Sampler::new(SamplingParams::greedy(), 8);
        assert_eq!(s.sample_masked(&logits(), Some(&mask)), 0);
        for (seed, top_p, top_k) in [(1, 1.0, 0), (2, 0.9, 0), (3, 1.0, 3), (4, 0.5, 2)] {
            let p = SamplingParams {
                seed,
                top_p,
                top_k,
                temperature: 1.5,
                ..Default::default()
            };
            let mut s = Sampler::new(p, 8);
            for _ in 0..200 {
                let t = s.sample_masked(&logits(), Some(&mask));
                assert!(mask[0] >> t & 1 == 1, "token {t} is masked");
            }
        }
    }

    #[test]
    fn logit_bias_can_ban_and_force() {
        let mut p = SamplingParams::greedy();
        p.logit_bias = vec![(1, f32::NEG_INFINITY), (6, 100.0)];
        let mut s = Sampler::new(p, 8);
        assert_eq!(s.sample(&logits()), 6);
    }

    #[test]
    fn penalties_change_the_choice() {
        let mut p = SamplingParams::greedy();
        p.presence_penalty = 0.5;
        let mut s = Sampler::new(p, 8);
        s.accept(1);
        assert_eq!(s.sample(&logits()), 5); // 3.0-0.5 = 2.5 < 2.9
        let mut p = SamplingParams::greedy();
        p.frequency_penalty = 0.06;
        let mut s = Sampler::new(p, 8);
        s.accept(1);
        s.accept(1);
        assert_eq!(s.sample(&logits()), 5); // 3.0 - 0.12 < 2.9
        let mut p = SamplingParams::greedy();
        p.repetition_penalty = 1.1;
        let mut s = Sampler::new(p, 8);
        s.accept(1);
        assert_eq!(s.sample(&logits()), 5); // 3.0/1.1 = 2.73 < 2.9
    }

    #[test]
    fn same_seed_same_draws_and_top_k_one_is_greedy() {
        let p = SamplingParams {
            temperature: 1.5,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            seed: 7,
            ..Default::default()
        };
        let draws = |p: &SamplingParams| {
            let mut s = Sampler::new(p.clone(), 8);
            (0..50).map(|_| s.sample(&logits())).collect::<Vec<_>>()
        };
        assert_eq!(draws(&p), draws(&p));
        let distinct: std::collections::BTreeSet<_> = draws(&p).into_iter().collect();
        assert!(
            distinct.len() > 3,
            "temperature 1.5 should spread draws: {distinct:?}"
        );
        let p1 = SamplingParams { top_k: 1, ..p };
        assert!(draws(&p1).iter().all(|&t| t == 1));
    }

    #[test]
    fn top_p_and_min_p_restrict_the_support() {
        let p = SamplingParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 0.5,
            min_p: 0.0,
            seed: 3,
            ..Default::default()
        };
        let mut s = Sampler::new(p, 8);
        // softmax: token 1 (3.0) ≈ 0.36, 5 (2.9) ≈ 0.33 → top-p 0.5 keeps {1, 5}.
        for _ in 0..100 {
            let t = s.sample(&logits());
            assert!(t == 1 || t == 5, "{t}");
        }
        let p = SamplingParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.7,
            seed: 3,
            ..Default::default()
        };
        let mut s = Sampler::new(p, 8);
        for _ in 0..100 {
            let t = s.sample(&logits());
            // Kept: p ≥ 0.7·p_max, i.e. logit ≥ 3.0 + ln 0.7 ≈ 2.64 → tokens 1 and 5 only.
            assert!(t == 1 || t == 5, "{t}");
        }
    }

    #[test]
    fn large_vocab_top_p_and_min_p_keep_exactly_the_brute_force_support() {
        // Deterministic pseudo-random logits over 5000 tokens.
        let mut g = SeededRng::new(5);
        let logits: Vec<f32> = (0..5000)
            .map(|_| (g.next_f64() * 12.0 - 6.0) as f32)
            .collect();
        let mut order: Vec<usize> = (0..logits.len()).collect();
        order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
        let max = logits[order[0]];
        let z: f64 = logits.iter().map(|&l| f64::from(l - max).exp()).sum();
        for (top_p, min_p) in [(0.3f32, 0.0f32), (0.9, 0.0), (1.0, 0.2), (0.95, 0.05)] {
            let mut cum = 0.0;
            let mut allowed = std::collections::BTreeSet::new();
            for &i in &order {
                let pr = f64::from(logits[i] - max).exp() / z;
                if min_p > 0.0 && (logits[i] - max) < min_p.ln() {
                    break;
                }
                allowed.insert(i as u32);
                cum += pr;
                if top_p < 1.0 && cum >= f64::from(top_p) {
                    break;
                }
            }
            let params = SamplingParams {
                temperature: 1.0,
                top_k: 0,
                top_p,
                min_p,
                seed: 9,
                ..Default::default()
            };
            let mut s = Sampler::new(params, logits.len());
            let mut seen = std::collections::BTreeSet::new();
            for _ in 0..400 {
                let t = s.sample(&logits);
                assert!(
                    allowed.contains(&t),
                    "top_p {top_p} min_p {min_p}: {t} outside the support"
                );
                seen.insert(t);
            }
            assert!(seen.len() > 1 || allowed.len() == 1);
        }
    }
}
