//! Model hyper-parameters: every size is chosen at run time.

use serde::{Deserialize, Serialize};

/// LayerNorm epsilon of the contract (DESIGN.md section 5), for training and decoding alike.
pub const LN_EPS: f32 = 1e-5;

/// The shape of the model. `d_attn` must be divisible by `n_heads`; `d_model` must be even
/// (the sinusoidal position table pairs sin and cos).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub vocab_size: usize,
    pub d_model: usize,
    pub d_attn: usize,
    pub n_heads: usize,
    pub d_ff: usize,
    pub n_layers: usize,
    /// Attention window in tokens (training windows are this long).
    pub context: usize,
}

impl ModelConfig {
    /// The seed study's configuration (DESIGN.md section 1).
    pub fn seed(vocab_size: usize) -> Self {
        ModelConfig {
            vocab_size,
            d_model: 300,
            d_attn: 304,
            n_heads: 8,
            d_ff: 512,
            n_layers: 3,
            context: 64,
        }
    }

    /// Panics when a sequence of `t` tokens does not fit the context (a caller bug: batching
    /// cuts windows to `context`).
    pub fn check_len(&self, t: usize) {
        assert!(
            t <= self.context,
            "sequence of {t} tokens exceeds context {}",
            self.context
        );
    }

    /// Width of one attention head.
    pub fn d_k(&self) -> usize {
        self.d_attn / self.n_heads
    }

    /// Checks the sizes fit together; the message names the offending field.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("vocab_size", self.vocab_size),
            ("d_model", self.d_model),
            ("d_attn", self.d_attn),
            ("n_heads", self.n_heads),
            ("d_ff", self.d_ff),
            ("n_layers", self.n_layers),
            ("context", self.context),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(format!("{name} must be at least 1"));
            }
        }
        if !self.d_attn.is_multiple_of(self.n_heads) {
            return Err(format!(
                "d_attn ({}) must be divisible by n_heads ({})",
                self.d_attn, self.n_heads
            ));
        }
        if !self.d_model.is_multiple_of(2) {
            return Err(format!("d_model ({}) must be even", self.d_model));
        }
        if self.context < 2 {
            return Err(format!("context ({}) must be at least 2", self.context));
        }
        Ok(())
    }

    /// Number of scalar parameters (including the embedding).
    pub fn n_params(&self) -> usize {
        let lin = |i: usize, o: usize| i * o + o;
        let block = 2 * self.d_model * 2
            + lin(self.d_model, self.d_attn)
            + 4 * lin(self.d_attn, self.d_attn)
            + lin(self.d_attn, self.d_model)
            + lin(self.d_model, self.d_ff)
            + lin(self.d_ff, self.d_model);
        self.vocab_size * self.d_model
            + self.n_layers * block
            + 2 * self.d_model
            + lin(self.d_model, self.vocab_size)
    }
}

/// The sinusoidal position encoding row for absolute position `pos`, written into `out`
/// (length d_model): `PE[p, 2i] = sin(p / 10000^(2i/d))`, `PE[p, 2i+1] = cos(…)`.
pub fn position_encoding(pos: usize, out: &mut [f32]) {
    let d = out.len();
    for i in 0..d / 2 {
        let angle = pos as f64 / 10000f64.powf((2 * i) as f64 / d as f64);
        out[2 * i] = angle.sin() as f32;
        out[2 * i + 1] = angle.cos() as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_names_field() {
        let mut c = ModelConfig::seed(100);
        c.n_heads = 7;
        assert!(c.validate().unwrap_err().contains("n_heads"));
    }

    #[test]
    fn position_zero_is_sin0_cos0() {
        let mut row = vec![0.0; 4];
        position_encoding(0, &mut row);
        assert_eq!(row, vec![0.0, 1.0, 0.0, 1.0]);
    }
}
