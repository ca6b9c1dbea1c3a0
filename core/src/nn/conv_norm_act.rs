//! torchvision's `Conv2dNormActivation`: a Sequential of conv (`0`), BatchNorm or frozen
//! BatchNorm (`1`) and an activation (parameter-free, so it owns no name).

use tch::nn::Path;
use tch::Tensor;

use tch::nn::Module as _;

use super::{conv2d, conv2d_live_taps, pad_same, Activation, Conv2dSpec, Norm2d, NormLayer};

/// Convolution without bias, then BatchNorm (or frozen BatchNorm), then an activation.
#[derive(Debug)]
pub struct ConvNormAct {
    /// The convolution (`<path>.0`).
    pub conv: tch::nn::Conv2D,
    /// The normalisation (`<path>.1`).
    pub bn: Norm2d,
    /// The activation.
    pub act: Activation,
    /// The convolution's shape (tch keeps its own private).
    spec: Conv2dSpec,
}

impl ConvNormAct {
    /// Builds `<path>.0` (conv) and `<path>.1` (BatchNorm with `eps`, `momentum`).
    pub fn new(
        p: &Path,
        c_in: i64,
        c_out: i64,
        spec: Conv2dSpec,
        act: Activation,
        eps: f64,
        momentum: f64,
    ) -> Self {
        Self::at(
            &(p / "0"),
            &(p / "1"),
            c_in,
            c_out,
            spec,
            act,
            eps,
            momentum,
        )
    }

    /// The same block with its convolution and BatchNorm at any two paths: inside a longer
    /// torchvision `Sequential` they are `<seq>.<i>` and `<seq>.<i+1>` (DeepLab's image pooling
    /// is `pool.1`, `pool.2` after the pooling layer `pool.0`).
    #[allow(clippy::too_many_arguments)]
    pub fn at(
        conv: &Path,
        bn: &Path,
        c_in: i64,
        c_out: i64,
        spec: Conv2dSpec,
        act: Activation,
        eps: f64,
        momentum: f64,
    ) -> Self {
        ConvNormAct {
            conv: conv2d(conv, c_in, c_out, spec.bias(false)),
            bn: Norm2d::with(bn, c_out, NormLayer::BatchNorm, eps, momentum),
            act,
            spec: spec.bias(false),
        }
    }

    /// Like [`Self::new`] with the normalisation chosen by `norm`; `(eps, momentum)` are the
    /// family's BatchNorm settings, used when `norm` is plain [`NormLayer::BatchNorm`].
    pub fn with_norm(
        p: &Path,
        c_in: i64,
        c_out: i64,
        spec: Conv2dSpec,
        act: Activation,
        norm: NormLayer,
        (eps, momentum): (f64, f64),
    ) -> Self {
        ConvNormAct {
            conv: conv2d(&(p / "0"), c_in, c_out, spec.bias(false)),
            bn: Norm2d::with(&(p / "1"), c_out, norm, eps, momentum),
            act,
            spec: spec.bias(false),
        }
    }

    /// conv (skipping taps that only read padding; TensorFlow's padding first where the spec
    /// asks for it) → BatchNorm → activation.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let y = if self.spec.tf_same {
            let s = &self.spec;
            self.conv
                .forward(&pad_same(x, s.kernel, s.stride, s.dilation))
        } else {
            conv2d_live_taps(&self.conv, &self.spec, x)
        };
        self.act.forward_owned(self.bn.forward_t(&y, train))
    }
}
