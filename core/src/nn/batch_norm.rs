//! BatchNorm2d with PyTorch's exact state: `weight`, `bias`, `running_mean`, `running_var` and the
//! int64 `num_batches_tracked` buffer that tch's own BatchNorm lacks (so strict loads of
//! torchvision checkpoints, and PyTorch loading ours, both work).

use tch::nn::{Init, Path};
use tch::{Kind, Tensor};

/// 2-D batch normalisation over `(N, C, H, W)`.
#[derive(Debug)]
pub struct BatchNorm2d {
    /// Scale γ (trainable).
    pub weight: Tensor,
    /// Shift β (trainable).
    pub bias: Tensor,
    /// Running mean (buffer).
    pub running_mean: Tensor,
    /// Running (unbiased) variance (buffer).
    pub running_var: Tensor,
    /// Number of training batches seen (buffer, int64 scalar).
    pub num_batches_tracked: Tensor,
    /// Added to the variance.
    pub eps: f64,
    /// Weight of the new batch statistic in the running average (PyTorch's convention).
    pub momentum: f64,
}

impl BatchNorm2d {
    /// A BatchNorm with PyTorch's defaults (eps 1e-5, momentum 0.1).
    pub fn new(p: &Path, channels: i64) -> Self {
        Self::with(p, channels, 1e-5, 0.1)
    }

    /// A BatchNorm with the given eps and momentum (e.g. 1e-3 / 0.01 for TF-ported weights).
    pub fn with(p: &Path, channels: i64, eps: f64, momentum: f64) -> Self {
        let nbt = Tensor::zeros([], (Kind::Int64, p.device()));
        BatchNorm2d {
            weight: p.var("weight", &[channels], Init::Const(1.0)),
            bias: p.var("bias", &[channels], Init::Const(0.0)),
            running_mean: p.zeros_no_train("running_mean", &[channels]),
            running_var: p.ones_no_train("running_var", &[channels]),
            num_batches_tracked: p.add("num_batches_tracked", nbt, false),
            eps,
            momentum,
        }
    }

    /// Normalises with batch statistics (updating the running ones) when `train`, else with the
    /// running statistics. A frozen BatchNorm (weight not requiring grad, see [`crate::freeze`])
    /// behaves as in evaluation even when `train`, so its statistics do not move.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let train = train && self.weight.requires_grad();
        if train {
            tch::no_grad(|| {
                let _ = self.num_batches_tracked.shallow_clone().g_add_scalar_(1);
            });
        }
        x.batch_norm(
            Some(&self.weight),
            Some(&self.bias),
            Some(&self.running_mean),
            Some(&self.running_var),
            train,
            self.momentum,
            self.eps,
            false,
        )
    }
}
