//! torchvision's `LayerNorm2d` (ConvNeXt's, reused by other families): layer normalisation over
//! the channels of each pixel of an `N×C×H×W` tensor, with `torch.nn.LayerNorm`'s parameters
//! (`weight`, `bias`), so checkpoints load by name.

use tch::nn::{Init, Path};
use tch::Tensor;

/// Per-pixel layer normalisation over the channel dimension of `N×C×H×W` tensors.
#[derive(Debug)]
pub struct LayerNorm2d {
    /// Scale γ, one per channel (trainable, initialised to 1).
    pub weight: Tensor,
    /// Shift β, one per channel (trainable, initialised to 0).
    pub bias: Tensor,
    /// Added to the variance.
    pub eps: f64,
    channels: i64,
}

impl LayerNorm2d {
    /// `<path>.weight` and `<path>.bias` over `channels`, with torchvision's eps 1e-6.
    pub fn new(p: &Path, channels: i64) -> Self {
        Self::with_eps(p, channels, 1e-6)
    }

    /// The same with another eps.
    pub fn with_eps(p: &Path, channels: i64, eps: f64) -> Self {
        LayerNorm2d {
            weight: p.var("weight", &[channels], Init::Const(1.0)),
            bias: p.var("bias", &[channels], Init::Const(0.0)),
            eps,
            channels,
        }
    }

    /// Normalises an `N×C×H×W` tensor over `C`. As torchvision does, the channels are permuted
    /// last for libtorch's fused layer norm and back, which returns a channels-last-strided
    /// view rather than paying for a copy: the convolution that follows accepts it as it is.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.forward_channels_last(&x.permute([0, 2, 3, 1]))
            .permute([0, 3, 1, 2])
    }

    /// The same normalisation on a tensor whose last dimension is the channels (`N×H×W×C`, or
    /// pooled `N×C` features).
    pub fn forward_channels_last(&self, x: &Tensor) -> Tensor {
        x.layer_norm(
            [self.channels],
            Some(&self.weight),
            Some(&self.bias),
            self.eps,
            true,
        )
    }
}
