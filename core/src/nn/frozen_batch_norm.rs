//! torchvision's `FrozenBatchNorm2d`: BatchNorm with fixed statistics and affine parameters, all
//! four buffers (`weight`, `bias`, `running_mean`, `running_var`, nothing trainable), what
//! torchvision's detection models put in their backbones when trained from pretrained weights.
//! The eps is configurable: torchvision's COCO v1 Faster R-CNN weights were trained with 0.0.

use tch::nn::Path;
use tch::Tensor;

use super::BatchNorm2d;

/// `x · γ / √(σ² + ε) + (β − μ · γ / √(σ² + ε))`, per channel, with fixed statistics.
#[derive(Debug)]
pub struct FrozenBatchNorm2d {
    /// Scale γ (buffer).
    pub weight: Tensor,
    /// Shift β (buffer).
    pub bias: Tensor,
    /// Mean μ (buffer).
    pub running_mean: Tensor,
    /// Variance σ² (buffer).
    pub running_var: Tensor,
    /// Added to the variance (torchvision's default 1e-5).
    pub eps: f64,
}

impl FrozenBatchNorm2d {
    /// The four buffers under `p`, initialised as torchvision does (γ 1, β 0, μ 0, σ² 1). A
    /// checkpoint's `num_batches_tracked` has no place here and is skipped on load (see
    /// [`crate::checkpoint::load_into`]), as torchvision's `_load_from_state_dict` drops it.
    pub fn new(p: &Path, channels: i64, eps: f64) -> Self {
        FrozenBatchNorm2d {
            weight: p.ones_no_train("weight", &[channels]),
            bias: p.zeros_no_train("bias", &[channels]),
            running_mean: p.zeros_no_train("running_mean", &[channels]),
            running_var: p.ones_no_train("running_var", &[channels]),
            eps,
        }
    }

    /// torchvision's formula, term by term (the same rounding as its forward).
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let shape = [1, -1, 1, 1];
        let scale =
            self.weight.reshape(shape) * (self.running_var.reshape(shape) + self.eps).rsqrt();
        let shift = self.bias.reshape(shape) - self.running_mean.reshape(shape) * &scale;
        x * scale + shift
    }
}

/// Which normalisation a backbone is built with.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NormLayer {
    /// Trainable BatchNorm with running statistics (the classification default).
    #[default]
    BatchNorm,
    /// Trainable BatchNorm with this eps and momentum instead of the family's own (SSDlite
    /// builds its MobileNetV3 with momentum 0.03).
    BatchNormWith {
        /// Added to the variance.
        eps: f64,
        /// Weight of the new batch in the running statistics.
        momentum: f64,
    },
    /// [`FrozenBatchNorm2d`] with this eps (torchvision's detection backbones: 1e-5, or 0.0 for
    /// the COCO v1 Faster R-CNN weights).
    Frozen {
        /// Added to the variance.
        eps: f64,
    },
}

/// A normalisation of either kind, built from a [`NormLayer`].
#[derive(Debug)]
pub enum Norm2d {
    /// Trainable BatchNorm.
    Batch(BatchNorm2d),
    /// Frozen BatchNorm.
    Frozen(FrozenBatchNorm2d),
}

impl Norm2d {
    /// `kind` over `channels` under `p` (BatchNorm with PyTorch's eps 1e-5 and momentum 0.1).
    pub fn new(p: &Path, channels: i64, kind: NormLayer) -> Self {
        Self::with(p, channels, kind, 1e-5, 0.1)
    }

    /// `kind` over `channels` under `p`, where plain [`NormLayer::BatchNorm`] takes the family's
    /// `eps` and `momentum` (MobileNetV3: 0.001 and 0.01).
    pub fn with(p: &Path, channels: i64, kind: NormLayer, eps: f64, momentum: f64) -> Self {
        match kind {
            NormLayer::BatchNorm => Norm2d::Batch(BatchNorm2d::with(p, channels, eps, momentum)),
            NormLayer::BatchNormWith { eps, momentum } => {
                Norm2d::Batch(BatchNorm2d::with(p, channels, eps, momentum))
            }
            NormLayer::Frozen { eps } => Norm2d::Frozen(FrozenBatchNorm2d::new(p, channels, eps)),
        }
    }

    /// Normalises `x` (a frozen norm ignores `train`).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        match self {
            Norm2d::Batch(bn) => bn.forward_t(x, train),
            Norm2d::Frozen(bn) => bn.forward(x),
        }
    }
}
