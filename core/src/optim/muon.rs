//! Muon's orthogonalised update (Jordan et al., 2024) as Ultralytics' MuSGD computes it, for
//! results equal to its own: each update matrix (a convolution's weight flattened to
//! `out × in·kh·kw`) is replaced by an approximation of `UVᵀ` from its SVD `USVᵀ`, by five
//! Newton–Schulz iterations in bfloat16.
//!
//! Matrices with the same column count are zero-padded in rows to a common height and
//! orthogonalised in one batched call (zero rows stay zero), as Ultralytics does; since bfloat16
//! rounding depends on the shapes a product runs at, the batches are formed the same way:
//! grouped by columns in first-seen order, sorted by rows (largest first, ties kept in order),
//! and split where the largest matrix has more than 16 times the rows of the next.

use tch::{Kind, Tensor};

/// The quintic iteration's coefficients `(a, b, c)`: `X ← aX + (bA + cA²)X`, `A = XXᵀ`.
pub const NS_COEFFICIENTS: (f64, f64, f64) = (3.4445, -4.7750, 2.0315);

/// Five Newton–Schulz iterations on a batch of matrices `(n, rows, cols)`, in bfloat16: each
/// divided by its Frobenius norm (+1e-7), transposed first when taller than wide. Returns
/// bfloat16.
pub fn newton_schulz5(g: &Tensor) -> Tensor {
    let size = g.size();
    let (rows, cols) = (size[1], size[2]);
    let x = g.to_kind(Kind::BFloat16);
    let norm = x.norm_scalaropt_dim(2.0, [-2i64, -1].as_slice(), true);
    let mut x = x / (norm + 1e-7);
    let tall = rows > cols;
    if tall {
        x = x.transpose(-2, -1);
    }
    let (a, b, c) = NS_COEFFICIENTS;
    for _ in 0..5 {
        let gram = x.matmul(&x.transpose(-2, -1));
        let poly = gram.baddbmm(&gram, &gram, b, c);
        x = x.baddbmm(&poly, &x, a, 1.0);
    }
    if tall {
        x.transpose(-2, -1)
    } else {
        x
    }
}

/// One update matrix waiting for its batch.
struct Pending {
    index: usize,
    matrix: Tensor,
    /// The update's strides, to write the result back in its own layout (None: row-major).
    stride: Option<Vec<i64>>,
}

/// The orthogonalised form of each update (each the shape of its parameter, at least 2-D), each
/// scaled by `√max(1, rows/cols)` of its last two dimensions (1 for every convolution weight).
pub fn orthogonalise(updates: &[Tensor]) -> Vec<Tensor> {
    // Buckets by (columns, scale), in first-seen order.
    let mut buckets: Vec<((i64, u64), Vec<Pending>)> = Vec::new();
    for (index, u) in updates.iter().enumerate() {
        let size = u.size();
        let dense = u.is_contiguous();
        let nhwc = !dense && crate::memory_format::is_channels_last(u);
        // Flattened in the update's own memory order (a view for NCHW and NHWC alike).
        let matrix = if nhwc {
            u.permute([0, 2, 3, 1]).flatten(1, -1)
        } else if size.len() > 2 {
            u.flatten(1, -1)
        } else {
            u.contiguous()
        };
        let (r, c) = (size[size.len() - 2] as f64, size[size.len() - 1] as f64);
        let scale = (r / c).max(1.0).sqrt();
        let key = (matrix.size()[1], scale.to_bits());
        let pending = Pending {
            index,
            matrix,
            stride: (dense || nhwc).then(|| u.stride()),
        };
        match buckets.iter_mut().find(|(k, _)| *k == key) {
            Some((_, items)) => items.push(pending),
            None => buckets.push((key, vec![pending])),
        }
    }
    let mut out: Vec<Option<Tensor>> = (0..updates.len()).map(|_| None).collect();
    for ((cols, scale_bits), mut items) in buckets {
        let scale = f64::from_bits(scale_bits);
        // Stable: equal heights keep their order.
        items.sort_by_key(|p| -p.matrix.size()[0]);
        let mut start = 0;
        for j in 1..=items.len() {
            let split =
                j == items.len() || items[start].matrix.size()[0] > 16 * items[j].matrix.size()[0];
            if !split {
                continue;
            }
            let batch = &items[start..j];
            let height = batch[0].matrix.size()[0];
            let first = &batch[0].matrix;
            let padded = Tensor::zeros(
                [batch.len() as i64, height, cols],
                (first.kind(), first.device()),
            );
            for (k, p) in batch.iter().enumerate() {
                let rows = p.matrix.size()[0];
                padded.get(k as i64).narrow(0, 0, rows).copy_(&p.matrix);
            }
            let result = newton_schulz5(&padded)
                .contiguous()
                .to_kind(updates[batch[0].index].kind())
                * scale;
            for (k, p) in batch.iter().enumerate() {
                let rows = p.matrix.size()[0];
                let x = result.get(k as i64).narrow(0, 0, rows);
                let shape = updates[p.index].size();
                out[p.index] = Some(match &p.stride {
                    Some(stride) => x.as_strided(shape.as_slice(), stride.as_slice(), None::<i64>),
                    None => x.reshape(shape.as_slice()),
                });
            }
            start = j;
        }
    }
    out.into_iter()
        .zip(updates)
        .map(|(o, u)| o.unwrap_or_else(|| u.zeros_like()))
        .collect()
}
