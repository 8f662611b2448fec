//! A strided, read-only view of an f32 matrix, the operand type of the matrix products.

/// A read-only matrix operand: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
pub struct MatRef<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl<'a> MatRef<'a> {
    /// A row-major matrix with `cols` columns.
    pub fn rows(data: &'a [f32], cols: usize) -> Self {
        MatRef {
            data,
            rs: cols,
            cs: 1,
        }
    }
    /// The transpose of a row-major matrix with `cols` columns.
    pub fn transposed(data: &'a [f32], cols: usize) -> Self {
        MatRef {
            data,
            rs: 1,
            cs: cols,
        }
    }
    /// Panics unless element `(r − 1, c − 1)` is inside the data.
    pub fn check(&self, r: usize, c: usize) {
        if r > 0 && c > 0 {
            assert!(
                (r - 1) * self.rs + (c - 1) * self.cs < self.data.len(),
                "matrix operand too small"
            );
        }
    }
}
