//! Tape plumbing: an activation on dfdx's tape with a host copy of its data ([`Act`]), and how an
//! op records its backward pass and reads or moves gradients.

use dfdx::prelude::*;
use std::sync::Arc;

/// A 1-D f32 tensor with a run-time length.
pub type T1<Tp = NoneTape> = Tensor<(usize,), f32, Cpu, Tp>;
/// A 2-D f32 tensor with run-time sizes.
pub type T2<Tp = NoneTape> = Tensor<(usize, usize), f32, Cpu, Tp>;

/// Gradient buffer type of the CPU device.
pub type Grads = Gradients<f32, Cpu>;

/// Moves the gradient of `t` out of `grads` (zeros if nothing reached it). Used for an op's own
/// output, whose gradient is complete when the op's backward pass runs and not needed after.
pub(super) fn take_grad<S: Shape>(
    grads: &mut Grads,
    t: &Tensor<S, f32, Cpu>,
) -> Result<Vec<f32>, CpuError> {
    Ok(std::mem::take(&mut **grads.get_or_alloc_mut(t)?))
}

/// The gradient buffer of `t`, allocated (zeros) if absent.
pub(super) fn grad_mut<'g, S: Shape>(
    grads: &'g mut Grads,
    t: &Tensor<S, f32, Cpu>,
) -> Result<&'g mut [f32], CpuError> {
    Ok(&mut grads.get_or_alloc_mut(t)?[..])
}

/// An activation on the tape: the dfdx tensor (whose id keys its gradient and whose tape
/// carries the backward ops) and a host copy of its data, so ops read their inputs without
/// dfdx's element-by-element `as_vec`.
#[derive(Debug)]
pub struct Act<Tp = OwnedTape<f32, Cpu>> {
    pub t: T2<Tp>,
    pub data: Arc<Vec<f32>>,
}

impl<Tp: Tape<f32, Cpu>> Act<Tp> {
    /// Wraps a tensor (copies its data out once).
    pub fn from_tensor(t: T2<Tp>) -> Self {
        let data = Arc::new(t.as_vec());
        Act { t, data }
    }

    /// `[rows, cols]`.
    pub fn shape(&self) -> (usize, usize) {
        *self.t.shape()
    }

    /// The same activation with an empty tape (for a second consumer of it).
    pub fn retaped(&self) -> Self {
        Act {
            t: self.t.retaped::<Tp>(),
            data: self.data.clone(),
        }
    }

    pub(super) fn split(self) -> (T2, Arc<Vec<f32>>, Tp) {
        let (t, tape) = self.t.split_tape();
        (t, self.data, tape)
    }
}

impl Act<NoneTape> {
    /// A constant activation from host data.
    pub fn constant(dev: &Cpu, data: Vec<f32>, shape: (usize, usize)) -> Self {
        Act {
            t: dev.tensor_from_vec(data.clone(), shape),
            data: Arc::new(data),
        }
    }

    /// The same constant on a fresh gradient tape.
    pub fn traced(self) -> Act {
        Act {
            t: self.t.leaky_traced(),
            data: self.data,
        }
    }
}

/// The output activation `y` of an op carrying `tape`; with a real tape, `backward` is recorded
/// and runs with the output's complete gradient.
pub(super) fn finish<Tp, F>(
    dev: &Cpu,
    y: Arc<Vec<f32>>,
    shape: (usize, usize),
    mut tape: Tp,
    backward: F,
) -> Act<Tp>
where
    Tp: Tape<f32, Cpu>,
    F: 'static + FnOnce(&mut Grads, Vec<f32>) -> Result<(), CpuError>,
{
    let t = dev.tensor_from_vec(y.as_ref().clone(), shape);
    if Tp::OWNS_TAPE {
        let key = t.clone();
        tape.add_backward_op(move |grads| {
            let gy = take_grad(grads, &key)?;
            backward(grads, gy)
        });
    }
    Act {
        t: t.put_tape(tape),
        data: y,
    }
}
