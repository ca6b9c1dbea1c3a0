//! Stochastic depth (Huang et al.), "row" mode: in training, each sample's residual branch is
//! dropped with probability `p` and survivors are scaled by `1/(1−p)`; identity in evaluation.

use tch::{Kind, Tensor};

/// Applies row-wise stochastic depth to a residual branch output `x` of shape `(N, …)`.
pub fn stochastic_depth(x: &Tensor, p: f64, train: bool) -> Tensor {
    if !train || p == 0.0 {
        return x.shallow_clone();
    }
    let survival = 1.0 - p;
    let mut shape = vec![1i64; x.dim()];
    shape[0] = x.size()[0];
    let mut keep = Tensor::empty(&shape, (Kind::Float, x.device()))
        .bernoulli_float_(survival)
        .to_kind(x.kind());
    // The scale goes on the per-sample mask (N numbers), as torchvision's does: one full-size
    // multiplication, one autograd node.
    if survival > 0.0 {
        let _ = keep.g_div_scalar_(survival);
    }
    x * keep
}
