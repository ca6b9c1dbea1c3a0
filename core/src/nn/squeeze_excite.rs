//! Squeeze-and-excitation (Hu et al.) as torchvision names it: `fc1` reduces, `fc2` expands
//! (1×1 convolutions with bias), an activation in between (SiLU for EfficientNet, ReLU for
//! MobileNetV3), a gate (sigmoid, or MobileNetV3's hardsigmoid).

use tch::nn::{Module, Path};
use tch::Tensor;

use super::{conv2d, Activation, Conv2dSpec};

/// Channel attention: `x · gate(fc2(act(fc1(mean_hw(x)))))`.
#[derive(Debug)]
pub struct SqueezeExcitation {
    fc1: tch::nn::Conv2D,
    fc2: tch::nn::Conv2D,
    act: Activation,
    gate: Activation,
}

impl SqueezeExcitation {
    /// Builds `<path>.fc1` (`channels → squeeze`) and `<path>.fc2` (`squeeze → channels`), with a
    /// sigmoid gate.
    pub fn new(p: &Path, channels: i64, squeeze: i64, act: Activation) -> Self {
        Self::with_gate(p, channels, squeeze, act, Activation::Sigmoid)
    }

    /// The same with another gate (MobileNetV3: [`Activation::Hardsigmoid`]).
    pub fn with_gate(
        p: &Path,
        channels: i64,
        squeeze: i64,
        act: Activation,
        gate: Activation,
    ) -> Self {
        SqueezeExcitation {
            fc1: conv2d(
                &(p / "fc1"),
                channels,
                squeeze,
                Conv2dSpec::new(1).bias(true),
            ),
            fc2: conv2d(
                &(p / "fc2"),
                squeeze,
                channels,
                Conv2dSpec::new(1).bias(true),
            ),
            act,
            gate,
        }
    }

    /// Rescales the channels of `x`.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let s = x.adaptive_avg_pool2d([1, 1]);
        let s = self.fc2.forward(&self.act.forward(&self.fc1.forward(&s)));
        x * self.gate.forward(&s)
    }
}
