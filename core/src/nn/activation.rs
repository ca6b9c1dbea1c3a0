//! The activations the backbones use, as a value so blocks can be configured with one.

use tch::Tensor;

/// An element-wise activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// Identity (e.g. the linear bottleneck of inverted residuals).
    None,
    /// `max(x, 0)`.
    ReLU,
    /// `min(max(x, 0), 6)`: MobileNetV2 and EfficientNet-Lite.
    ReLU6,
    /// `x · sigmoid(x)` (swish): EfficientNet.
    SiLU,
    /// `x · relu6(x + 3) / 6`: MobileNetV3.
    Hardswish,
    /// `relu6(x + 3) / 6`: MobileNetV3's squeeze-excite gate.
    Hardsigmoid,
    /// `1 / (1 + e^−x)`: the usual squeeze-excite gate.
    Sigmoid,
}

impl Activation {
    /// Applies the activation.
    pub fn forward(self, x: &Tensor) -> Tensor {
        match self {
            Activation::None => x.shallow_clone(),
            Activation::ReLU => x.relu(),
            Activation::ReLU6 => x.relu6(),
            Activation::SiLU => x.silu(),
            Activation::Hardswish => x.hardswish(),
            Activation::Hardsigmoid => x.hardsigmoid(),
            Activation::Sigmoid => x.sigmoid(),
        }
    }

    /// Applies the activation to a tensor nothing else holds (a normalisation's fresh output),
    /// overwriting it where the activation's backward pass needs only its output — ReLU and
    /// ReLU6, as torchvision's `inplace=True` — and out of place otherwise. Saves a tensor the
    /// size of the activation and a pass over memory.
    pub fn forward_owned(self, mut x: Tensor) -> Tensor {
        match self {
            Activation::ReLU => x.relu_(),
            Activation::ReLU6 => x.relu6_(),
            other => other.forward(&x),
        }
    }
}
