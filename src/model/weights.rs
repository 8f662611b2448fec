//! Model weights as plain row-major f32 arrays, named and shaped as the checkpoint contract
//! (DESIGN.md section 5, PyTorch `nn.Linear` convention: weight `[out, in]`).

use super::config::ModelConfig;
use rand::Rng;
use rand_distr::{Distribution, Normal};
use std::collections::BTreeMap;

/// A linear layer `y = x·Wᵀ + b` with `weight` `[out, in]` row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearWeights {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub out_dim: usize,
    pub in_dim: usize,
}

impl LinearWeights {
    pub fn zeros(out_dim: usize, in_dim: usize) -> Self {
        LinearWeights {
            weight: vec![0.0; out_dim * in_dim],
            bias: vec![0.0; out_dim],
            out_dim,
            in_dim,
        }
    }

    /// PyTorch's default init: U(-1/√in, 1/√in) for weight and bias.
    pub fn init(out_dim: usize, in_dim: usize, rng: &mut impl Rng) -> Self {
        let bound = 1.0 / (in_dim as f32).sqrt();
        LinearWeights {
            weight: (0..out_dim * in_dim)
                .map(|_| rng.gen_range(-bound..bound))
                .collect(),
            bias: (0..out_dim).map(|_| rng.gen_range(-bound..bound)).collect(),
            out_dim,
            in_dim,
        }
    }
}

/// LayerNorm affine parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerNormWeights {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

impl LayerNormWeights {
    pub fn new(dim: usize) -> Self {
        LayerNormWeights {
            weight: vec![1.0; dim],
            bias: vec![0.0; dim],
        }
    }
}

/// One pre-LN transformer block.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockWeights {
    pub ln1: LayerNormWeights,
    pub attn_in: LinearWeights,
    pub q: LinearWeights,
    pub k: LinearWeights,
    pub v: LinearWeights,
    pub o: LinearWeights,
    pub attn_out: LinearWeights,
    pub ln2: LayerNormWeights,
    pub ff_up: LinearWeights,
    pub ff_down: LinearWeights,
}

/// All weights of the model.
#[derive(Debug, Clone, PartialEq)]
pub struct Weights {
    pub config: ModelConfig,
    /// `[vocab_size, d_model]` row-major.
    pub tok_emb: Vec<f32>,
    pub blocks: Vec<BlockWeights>,
    pub ln_f: LayerNormWeights,
    pub head: LinearWeights,
}

/// Errors reading weights from named tensors.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("tensor `{0}` is missing")]
    Missing(String),
    #[error("tensor `{name}` has shape {got:?}, expected {want:?}")]
    Shape {
        name: String,
        got: Vec<usize>,
        want: Vec<usize>,
    },
    #[error("unexpected tensor `{0}`")]
    Unexpected(String),
}

impl Weights {
    /// Random initialisation: embedding N(0, 1), linears as PyTorch, LayerNorm ones/zeros.
    pub fn init(config: &ModelConfig, rng: &mut impl Rng) -> Self {
        let c = config;
        let normal = Normal::new(0.0f32, 1.0).expect("valid normal");
        let tok_emb = (0..c.vocab_size * c.d_model)
            .map(|_| normal.sample(rng))
            .collect();
        let blocks = (0..c.n_layers)
            .map(|_| BlockWeights {
                ln1: LayerNormWeights::new(c.d_model),
                attn_in: LinearWeights::init(c.d_attn, c.d_model, rng),
                q: LinearWeights::init(c.d_attn, c.d_attn, rng),
                k: LinearWeights::init(c.d_attn, c.d_attn, rng),
                v: LinearWeights::init(c.d_attn, c.d_attn, rng),
                o: LinearWeights::init(c.d_attn, c.d_attn, rng),
                attn_out: LinearWeights::init(c.d_model, c.d_attn, rng),
                ln2: LayerNormWeights::new(c.d_model),
                ff_up: LinearWeights::init(c.d_ff, c.d_model, rng),
                ff_down: LinearWeights::init(c.d_model, c.d_ff, rng),
            })
            .collect();
        Weights {
            config: c.clone(),
            tok_emb,
            blocks,
            ln_f: LayerNormWeights::new(c.d_model),
            head: LinearWeights::init(c.vocab_size, c.d_model, rng),
        }
    }

    /// Every tensor with its contract name and shape, in a fixed order.
    pub fn named(&self) -> Vec<(String, Vec<usize>, &[f32])> {
        let c = &self.config;
        let mut out: Vec<(String, Vec<usize>, &[f32])> = Vec::new();
        out.push((
            "tok_emb.weight".into(),
            vec![c.vocab_size, c.d_model],
            &self.tok_emb,
        ));
        for (i, b) in self.blocks.iter().enumerate() {
            let p = format!("blocks.{i}");
            push_ln(&mut out, format!("{p}.ln1"), &b.ln1);
            push_lin(&mut out, format!("{p}.attn_in"), &b.attn_in);
            push_lin(&mut out, format!("{p}.attn.q"), &b.q);
            push_lin(&mut out, format!("{p}.attn.k"), &b.k);
            push_lin(&mut out, format!("{p}.attn.v"), &b.v);
            push_lin(&mut out, format!("{p}.attn.o"), &b.o);
            push_lin(&mut out, format!("{p}.attn_out"), &b.attn_out);
            push_ln(&mut out, format!("{p}.ln2"), &b.ln2);
            push_lin(&mut out, format!("{p}.ff.up"), &b.ff_up);
            push_lin(&mut out, format!("{p}.ff.down"), &b.ff_down);
        }
        push_ln(&mut out, "ln_f".into(), &self.ln_f);
        push_lin(&mut out, "head".into(), &self.head);
        out
    }

    /// Rebuilds weights from named tensors (as produced by [`Weights::named`]); shapes are
    /// checked against `config`, and extra or missing names are errors.
    pub fn from_named(
        config: &ModelConfig,
        mut tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    ) -> Result<Self, WeightsError> {
        let mut shell = Weights::zeros(config);
        let expected: Vec<(String, Vec<usize>)> =
            shell.named().into_iter().map(|(n, s, _)| (n, s)).collect();
        let mut values: Vec<Vec<f32>> = Vec::with_capacity(expected.len());
        for (name, shape) in &expected {
            let (got_shape, data) = tensors
                .remove(name)
                .ok_or_else(|| WeightsError::Missing(name.clone()))?;
            if &got_shape != shape {
                return Err(WeightsError::Shape {
                    name: name.clone(),
                    got: got_shape,
                    want: shape.clone(),
                });
            }
            values.push(data);
        }
        if let Some(extra) = tensors.keys().next() {
            return Err(WeightsError::Unexpected(extra.clone()));
        }
        let mut it = values.into_iter();
        for slot in shell.slots_mut() {
            *slot = it.next().expect("same count as named()");
        }
        Ok(shell)
    }

    /// All-zero weights of the right shapes (LayerNorm weights are ones).
    pub fn zeros(config: &ModelConfig) -> Self {
        let c = config;
        Weights {
            config: c.clone(),
            tok_emb: vec![0.0; c.vocab_size * c.d_model],
            blocks: (0..c.n_layers)
                .map(|_| BlockWeights {
                    ln1: LayerNormWeights::new(c.d_model),
                    attn_in: LinearWeights::zeros(c.d_attn, c.d_model),
                    q: LinearWeights::zeros(c.d_attn, c.d_attn),
                    k: LinearWeights::zeros(c.d_attn, c.d_attn),
                    v: LinearWeights::zeros(c.d_attn, c.d_attn),
                    o: LinearWeights::zeros(c.d_attn, c.d_attn),
                    attn_out: LinearWeights::zeros(c.d_model, c.d_attn),
                    ln2: LayerNormWeights::new(c.d_model),
                    ff_up: LinearWeights::zeros(c.d_ff, c.d_model),
                    ff_down: LinearWeights::zeros(c.d_model, c.d_ff),
                })
                .collect(),
            ln_f: LayerNormWeights::new(c.d_model),
            head: LinearWeights::zeros(c.vocab_size, c.d_model),
        }
    }

    /// Mutable access to every tensor's data in the order of [`Weights::named`].
    pub fn slots_mut(&mut self) -> Vec<&mut Vec<f32>> {
        let mut out: Vec<&mut Vec<f32>> = vec![&mut self.tok_emb];
        for b in &mut self.blocks {
            out.push(&mut b.ln1.weight);
            out.push(&mut b.ln1.bias);
            for l in [
                &mut b.attn_in,
                &mut b.q,
                &mut b.k,
                &mut b.v,
                &mut b.o,
                &mut b.attn_out,
            ] {
                out.push(&mut l.weight);
                out.push(&mut l.bias);
            }
            out.push(&mut b.ln2.weight);
            out.push(&mut b.ln2.bias);
            for l in [&mut b.ff_up, &mut b.ff_down] {
                out.push(&mut l.weight);
                out.push(&mut l.bias);
            }
        }
        out.push(&mut self.ln_f.weight);
        out.push(&mut self.ln_f.bias);
        out.push(&mut self.head.weight);
        out.push(&mut self.head.bias);
        out
    }
}

fn push_ln<'a>(out: &mut Vec<(String, Vec<usize>, &'a [f32])>, p: String, l: &'a LayerNormWeights) {
    out.push((format!("{p}.weight"), vec![l.weight.len()], &l.weight));
    out.push((format!("{p}.bias"), vec![l.bias.len()], &l.bias));
}

fn push_lin<'a>(out: &mut Vec<(String, Vec<usize>, &'a [f32])>, p: String, l: &'a LinearWeights) {
    out.push((format!("{p}.weight"), vec![l.out_dim, l.in_dim], &l.weight));
    out.push((format!("{p}.bias"), vec![l.out_dim], &l.bias));
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn tiny() -> ModelConfig {
        ModelConfig {
            vocab_size: 11,
            d_model: 8,
            d_attn: 8,
            n_heads: 2,
            d_ff: 12,
            n_layers: 2,
            context: 6,
        }
    }

    #[test]
    fn named_count_matches_config() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let w = Weights::init(&tiny(), &mut rng);
        let total: usize = w.named().iter().map(|(_, _, d)| d.len()).sum();
        assert_eq!(total, tiny().n_params());
        for (n, s, d) in w.named() {
            assert_eq!(s.iter().product::<usize>(), d.len(), "{n}");
        }
    }

    #[test]
    fn from_named_round_trips_and_rejects_bad_shapes() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let w = Weights::init(&tiny(), &mut rng);
        let map: BTreeMap<_, _> = w
            .named()
            .into_iter()
            .map(|(n, s, d)| (n, (s, d.to_vec())))
            .collect();
        let back = Weights::from_named(&tiny(), map.clone()).unwrap();
        assert_eq!(back, w);
        let mut bad = map;
        bad.insert("head.bias".into(), (vec![3], vec![0.0; 3]));
        assert!(matches!(
            Weights::from_named(&tiny(), bad),
            Err(WeightsError::Shape { .. })
        ));
    }
}
