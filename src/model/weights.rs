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

/// The ten layers of one pre-LN block, generic over how a linear layer (`L`) and a LayerNorm
/// (`N`) are held: plain weights ([`BlockWeights`]), dfdx tensors for training
/// (`model::net::Block`), packed panels for decoding (`decode::Model`). The contract order of
/// the layers is the field order; [`Block::layers`], [`Block::layers_mut`] and [`Block::map`]
/// are the only places that list it.
#[derive(Debug, Clone, PartialEq)]
pub struct Block<L, N> {
    pub ln1: N,
    pub attn_in: L,
    pub q: L,
    pub k: L,
    pub v: L,
    pub o: L,
    pub attn_out: L,
    pub ln2: N,
    pub ff_up: L,
    pub ff_down: L,
}

/// One pre-LN transformer block of plain weights.
pub type BlockWeights = Block<LinearWeights, LayerNormWeights>;

/// A parameter holder as the contract visits it: the token embedding, a linear layer (tensors
/// `weight`, then `bias`) or a LayerNorm (`weight`, then `bias`).
pub enum Param<E, L, N> {
    Emb(E),
    Lin(L),
    Ln(N),
}

impl<L, N> Block<L, N> {
    /// The layers with their contract names, in contract order.
    pub fn layers(&self) -> [(&'static str, Param<(), &L, &N>); 10] {
        use Param::{Lin, Ln};
        [
            ("ln1", Ln(&self.ln1)),
            ("attn_in", Lin(&self.attn_in)),
            ("attn.q", Lin(&self.q)),
            ("attn.k", Lin(&self.k)),
            ("attn.v", Lin(&self.v)),
            ("attn.o", Lin(&self.o)),
            ("attn_out", Lin(&self.attn_out)),
            ("ln2", Ln(&self.ln2)),
            ("ff.up", Lin(&self.ff_up)),
            ("ff.down", Lin(&self.ff_down)),
        ]
    }

    /// [`Block::layers`], mutably.
    pub fn layers_mut(&mut self) -> [(&'static str, Param<(), &mut L, &mut N>); 10] {
        use Param::{Lin, Ln};
        [
            ("ln1", Ln(&mut self.ln1)),
            ("attn_in", Lin(&mut self.attn_in)),
            ("attn.q", Lin(&mut self.q)),
            ("attn.k", Lin(&mut self.k)),
            ("attn.v", Lin(&mut self.v)),
            ("attn.o", Lin(&mut self.o)),
            ("attn_out", Lin(&mut self.attn_out)),
            ("ln2", Ln(&mut self.ln2)),
            ("ff.up", Lin(&mut self.ff_up)),
            ("ff.down", Lin(&mut self.ff_down)),
        ]
    }

    /// The same block with every layer converted, layer by layer in contract order (so a
    /// random initialisation draws in that order).
    pub fn map<L2, N2>(
        &self,
        mut lin: impl FnMut(&L) -> L2,
        mut ln: impl FnMut(&N) -> N2,
    ) -> Block<L2, N2> {
        Block {
            ln1: ln(&self.ln1),
            attn_in: lin(&self.attn_in),
            q: lin(&self.q),
            k: lin(&self.k),
            v: lin(&self.v),
            o: lin(&self.o),
            attn_out: lin(&self.attn_out),
            ln2: ln(&self.ln2),
            ff_up: lin(&self.ff_up),
            ff_down: lin(&self.ff_down),
        }
    }
}

impl Block<(usize, usize), usize> {
    /// The shapes of one block: `(out, in)` per linear layer, the width per LayerNorm.
    pub fn shapes(c: &ModelConfig) -> Self {
        let (dm, da, df) = (c.d_model, c.d_attn, c.d_ff);
        Block {
            ln1: dm,
            attn_in: (da, dm),
            q: (da, da),
            k: (da, da),
            v: (da, da),
            o: (da, da),
            attn_out: (dm, da),
            ln2: dm,
            ff_up: (df, dm),
            ff_down: (dm, df),
        }
    }
}

/// Visits a model's parameter holders in contract order: `tok_emb`, each block's layers (in
/// [`Block::layers`] order, named `blocks.<i>.<layer>`), `ln_f`, `head`. `f` gets the holder's
/// name; its tensors are named `<name>.weight` and `<name>.bias`.
pub fn visit<'a, E, L, N>(
    tok_emb: &'a E,
    blocks: &'a [Block<L, N>],
    ln_f: &'a N,
    head: &'a L,
    mut f: impl FnMut(&str, Param<&'a E, &'a L, &'a N>),
) {
    f("tok_emb", Param::Emb(tok_emb));
    for (i, b) in blocks.iter().enumerate() {
        for (name, layer) in b.layers() {
            let name = format!("blocks.{i}.{name}");
            match layer {
                Param::Lin(l) => f(&name, Param::Lin(l)),
                Param::Ln(l) => f(&name, Param::Ln(l)),
                Param::Emb(()) => {}
            }
        }
    }
    f("ln_f", Param::Ln(ln_f));
    f("head", Param::Lin(head));
}

/// [`visit`], mutably.
pub fn visit_mut<'a, E, L, N>(
    tok_emb: &'a mut E,
    blocks: &'a mut [Block<L, N>],
    ln_f: &'a mut N,
    head: &'a mut L,
    mut f: impl FnMut(&str, Param<&'a mut E, &'a mut L, &'a mut N>),
) {
    f("tok_emb", Param::Emb(tok_emb));
    for (i, b) in blocks.iter_mut().enumerate() {
        for (name, layer) in b.layers_mut() {
            let name = format!("blocks.{i}.{name}");
            match layer {
                Param::Lin(l) => f(&name, Param::Lin(l)),
                Param::Ln(l) => f(&name, Param::Ln(l)),
                Param::Emb(()) => {}
            }
        }
    }
    f("ln_f", Param::Ln(ln_f));
    f("head", Param::Lin(head));
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
    /// Random initialisation: embedding N(0, 1), linears as PyTorch, LayerNorm ones/zeros;
    /// drawn in contract order (embedding, each block's linears, head).
    pub fn init(config: &ModelConfig, rng: &mut impl Rng) -> Self {
        let c = config;
        let normal = Normal::new(0.0f32, 1.0).expect("valid normal");
        let tok_emb = (0..c.vocab_size * c.d_model)
            .map(|_| normal.sample(rng))
            .collect();
        let shapes = Block::shapes(c);
        let blocks = (0..c.n_layers)
            .map(|_| {
                shapes.map(
                    |&(o, i)| LinearWeights::init(o, i, rng),
                    |&d| LayerNormWeights::new(d),
                )
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

    /// All-zero weights of the right shapes (LayerNorm weights are ones).
    pub fn zeros(config: &ModelConfig) -> Self {
        let c = config;
        let block = Block::shapes(c).map(
            |&(o, i)| LinearWeights::zeros(o, i),
            |&d| LayerNormWeights::new(d),
        );
        Weights {
            config: c.clone(),
            tok_emb: vec![0.0; c.vocab_size * c.d_model],
            blocks: vec![block; c.n_layers],
            ln_f: LayerNormWeights::new(c.d_model),
            head: LinearWeights::zeros(c.vocab_size, c.d_model),
        }
    }

    /// [`visit`] over these weights.
    pub fn visit<'a>(
        &'a self,
        f: impl FnMut(&str, Param<&'a Vec<f32>, &'a LinearWeights, &'a LayerNormWeights>),
    ) {
        visit(&self.tok_emb, &self.blocks, &self.ln_f, &self.head, f)
    }

    /// Every tensor in contract order: `f(name, shape, data)`.
    pub fn for_each_tensor<'a>(&'a self, mut f: impl FnMut(String, Vec<usize>, &'a [f32])) {
        let (v, d) = (self.config.vocab_size, self.config.d_model);
        self.visit(|name, p| match p {
            Param::Emb(e) => f(format!("{name}.weight"), vec![v, d], e),
            Param::Lin(l) => {
                f(
                    format!("{name}.weight"),
                    vec![l.out_dim, l.in_dim],
                    &l.weight,
                );
                f(format!("{name}.bias"), vec![l.out_dim], &l.bias);
            }
            Param::Ln(l) => {
                f(format!("{name}.weight"), vec![l.weight.len()], &l.weight);
                f(format!("{name}.bias"), vec![l.bias.len()], &l.bias);
            }
        });
    }

    /// Every tensor with its contract name and shape, in contract order.
    pub fn named(&self) -> Vec<(String, Vec<usize>, &[f32])> {
        let mut out = Vec::new();
        self.for_each_tensor(|n, s, d| out.push((n, s, d)));
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
        for (slot, data) in shell.slots_mut().into_iter().zip(values) {
            *slot = data;
        }
        Ok(shell)
    }

    /// Mutable access to every tensor's data in contract order (that of [`Weights::named`]).
    pub fn slots_mut(&mut self) -> Vec<&mut Vec<f32>> {
        let mut out: Vec<&mut Vec<f32>> = Vec::new();
        visit_mut(
            &mut self.tok_emb,
            &mut self.blocks,
            &mut self.ln_f,
            &mut self.head,
            |_, p| match p {
                Param::Emb(e) => out.push(e),
                Param::Lin(l) => {
                    out.push(&mut l.weight);
                    out.push(&mut l.bias);
                }
                Param::Ln(l) => {
                    out.push(&mut l.weight);
                    out.push(&mut l.bias);
                }
            },
        );
        out
    }
}

/// Whether every element is finite (vectorises: an OR over the exponent bits).
pub fn all_finite(x: &[f32]) -> bool {
    const EXP: u32 = 0x7F80_0000;
    x.chunks(4096).all(|c| {
        c.iter()
            .fold(0u32, |acc, v| acc | u32::from((v.to_bits() & EXP) == EXP))
            == 0
    })
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
