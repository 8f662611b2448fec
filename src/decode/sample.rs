//! Seeded token samplers: greedy, temperature, top-k, top-p (nucleus), and their combination.

use rand::{Rng, SeedableRng};

/// Temperatures below this are greedy decoding: dividing logits by a smaller one can overflow
/// f32 (at 1e-45 every logit becomes ±inf and the draw is garbage), and the distribution is
/// already the argmax's.
pub const GREEDY_BELOW: f32 = 1e-6;

/// How to pick the next token. `temperature` below [`GREEDY_BELOW`] (0 included) means greedy
/// (argmax, lowest id on ties);
/// `top_k = 0` and `top_p >= 1` switch those filters off.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplerConfig {
    pub temperature: f32,
    pub top_k: usize,
    pub top_p: f32,
}

impl SamplerConfig {
    pub fn greedy() -> Self {
        SamplerConfig {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
        }
    }

    pub fn temperature(t: f32) -> Self {
        SamplerConfig {
            temperature: t,
            top_k: 0,
            top_p: 1.0,
        }
    }

    pub fn is_greedy(&self) -> bool {
        self.temperature < GREEDY_BELOW
    }

    /// Checks the values; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return Err(format!(
                "temperature must be >= 0, got {}",
                self.temperature
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(format!("top_p must be in (0, 1], got {}", self.top_p));
        }
        Ok(())
    }
}

/// A sampler with its own seeded RNG and reusable scratch space.
pub struct Sampler {
    cfg: SamplerConfig,
    rng: rand::rngs::StdRng,
    cand: Vec<(f32, u32)>,
}

/// Index of the largest value, the lowest index on ties, skipping `banned` ids.
pub fn argmax(logits: &[f32], banned: &[u32]) -> u32 {
    let mut best = u32::MAX;
    let mut bv = f32::NEG_INFINITY;
    for (i, &v) in logits.iter().enumerate() {
        if (v > bv || best == u32::MAX) && !banned.contains(&(i as u32)) {
            best = i as u32;
            bv = v;
        }
    }
    best
}

/// Orders candidates by value descending, then id ascending.
fn by_value_then_id(a: &(f32, u32), b: &(f32, u32)) -> std::cmp::Ordering {
    b.0.total_cmp(&a.0).then(a.1.cmp(&b.1))
}

impl Sampler {
    pub fn new(cfg: SamplerConfig, seed: u64) -> Self {
        Sampler {
            cfg,
            rng: rand::rngs::StdRng::seed_from_u64(seed),
            cand: Vec::new(),
        }
    }

    pub fn config(&self) -> &SamplerConfig {
        &self.cfg
    }

    /// Picks a token from one row of logits, never one of `banned`.
    pub fn sample(&mut self, logits: &[f32], banned: &[u32]) -> u32 {
        if self.cfg.is_greedy() {
            return argmax(logits, banned);
        }
        let t = self.cfg.temperature;
        self.cand.clear();
        self.cand.extend(
            logits
                .iter()
                .enumerate()
                .filter(|(i, _)| !banned.contains(&(*i as u32)))
                .map(|(i, &v)| (v / t, i as u32)),
        );
        let k = self.cfg.top_k;
        let filtered = k > 0 && k < self.cand.len() || self.cfg.top_p < 1.0;
        if k > 0 && k < self.cand.len() {
            self.cand.select_nth_unstable_by(k - 1, by_value_then_id);
            self.cand.truncate(k);
        }
        if filtered {
            self.cand.sort_unstable_by(by_value_then_id);
        }
        let m = self
            .cand
            .iter()
            .map(|c| c.0)
            .fold(f32::NEG_INFINITY, f32::max);
        let mut total = 0.0f64;
        for c in &mut self.cand {
            c.0 = ((c.0 - m) as f64).exp() as f32;
            total += c.0 as f64;
        }
        if self.cfg.top_p < 1.0 {
            let want = self.cfg.top_p as f64 * total;
            let mut cum = 0.0f64;
            let mut keep = self.cand.len();
            for (i, c) in self.cand.iter().enumerate() {
                cum += c.0 as f64;
                if cum >= want {
                    keep = i + 1;
                    break;
                }
            }
            self.cand.truncate(keep);
            total = cum.min(self.cand.iter().map(|c| c.0 as f64).sum());
        }
        let u = self.rng.gen::<f64>() * total;
        let mut acc = 0.0f64;
        for c in &self.cand {
            acc += c.0 as f64;
            if u < acc {
                return c.1;
            }
        }
        self.cand.last().map(|c| c.1).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_prefers_lowest_id_and_skips_banned() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 0.0], &[]), 1);
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 0.0], &[1]), 2);
    }

    /// A temperature too small to divide by is greedy decoding, not garbage.
    #[test]
    fn a_vanishing_temperature_is_greedy() {
        let logits = [0.5, 2.0, 1.0, -3.0, 1.5];
        for t in [1e-45, 1e-30, 1e-7, 0.0] {
            let mut s = Sampler::new(SamplerConfig::temperature(t), 9);
            assert!(s.config().is_greedy(), "{t}");
            for _ in 0..20 {
                assert_eq!(s.sample(&logits, &[]), 1, "{t}");
            }
        }
        assert!(!SamplerConfig::temperature(1e-3).is_greedy());
    }
}
