//! 2-D convolutions initialised as torchvision initialises its backbones, or as PyTorch
//! initialises any `nn.Conv2d` (what torchvision's and smp's segmentation heads keep).

use tch::nn::init::{FanInOut, NonLinearity, NormalOrUniform};
use tch::nn::{self, Init, Path};

/// Shape of a convolution beyond its channel counts.
#[derive(Debug, Clone, Copy)]
pub struct Conv2dSpec {
    /// Square kernel size.
    pub kernel: i64,
    /// Stride.
    pub stride: i64,
    /// Zero padding on every side.
    pub padding: i64,
    /// Dilation.
    pub dilation: i64,
    /// Groups (= channels for depthwise).
    pub groups: i64,
    /// Whether there is a bias.
    pub bias: bool,
    /// PyTorch's default initialisation (`nn.Conv2d.reset_parameters`: Kaiming-uniform with
    /// a = √5) instead of torchvision's backbone one (Kaiming-normal, fan-out).
    pub pytorch_init: bool,
    /// TensorFlow's "SAME" padding computed from the input size at every call (the extra pixel
    /// of an odd total bottom/right, see [`super::pad_same`]) instead of `padding`: timm's
    /// `tf_` ports of TensorFlow weights were trained with it.
    pub tf_same: bool,
}

impl Conv2dSpec {
    /// A `k`×`k` convolution with stride 1, "same" padding for odd `k`, and no bias (the usual
    /// conv-before-BatchNorm).
    pub fn new(kernel: i64) -> Self {
        Conv2dSpec {
            kernel,
            stride: 1,
            padding: (kernel - 1) / 2,
            dilation: 1,
            groups: 1,
            bias: false,
            pytorch_init: false,
            tf_same: false,
        }
    }

    /// With a stride.
    pub fn stride(mut self, s: i64) -> Self {
        self.stride = s;
        self
    }

    /// With explicit padding.
    pub fn padding(mut self, p: i64) -> Self {
        self.padding = p;
        self
    }

    /// With dilation `d`; padding becomes `d·(k−1)/2` so the size is kept.
    pub fn dilation(mut self, d: i64) -> Self {
        self.dilation = d;
        self.padding = d * (self.kernel - 1) / 2;
        self
    }

    /// With groups.
    pub fn groups(mut self, g: i64) -> Self {
        self.groups = g;
        self
    }

    /// With a bias.
    pub fn bias(mut self, b: bool) -> Self {
        self.bias = b;
        self
    }

    /// With TensorFlow's "SAME" padding when `on` (see [`Conv2dSpec::tf_same`]); the static
    /// padding becomes 0.
    pub fn tf_same(mut self, on: bool) -> Self {
        self.tf_same = on;
        if on {
            self.padding = 0;
        }
        self
    }

    /// With PyTorch's default initialisation (see [`Conv2dSpec::pytorch_init`]).
    pub fn pytorch_default_init(mut self) -> Self {
        self.pytorch_init = true;
        self
    }
}

/// A convolution with weights drawn Kaiming-normal (fan-out, ReLU gain) and zero bias, as
/// torchvision's ResNet, MobileNetV2 and EfficientNet initialise theirs; with
/// [`Conv2dSpec::pytorch_init`], as PyTorch initialises any `nn.Conv2d`.
pub fn conv2d(p: &Path, c_in: i64, c_out: i64, spec: Conv2dSpec) -> nn::Conv2D {
    let mut cfg = nn::ConvConfig {
        stride: spec.stride,
        padding: spec.padding,
        dilation: spec.dilation,
        groups: spec.groups,
        bias: spec.bias,
        ..Default::default()
    };
    if spec.pytorch_init {
        // `nn.Conv2d.reset_parameters`: kaiming_uniform_(a=√5), i.e. gain √(1/3) and bound
        // 1/√fan_in, the bias uniform within the same bound. (tch's own default uses the ReLU
        // gain, a √6 times wider bound, and a zero bias.)
        let fan_in = c_in / spec.groups.max(1) * spec.kernel * spec.kernel;
        let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
        cfg.ws_init = Init::Kaiming {
            dist: NormalOrUniform::Uniform,
            fan: FanInOut::FanIn,
            non_linearity: NonLinearity::ExplicitGain((1.0f64 / 3.0).sqrt()),
        };
        cfg.bs_init = Init::Uniform {
            lo: -bound,
            up: bound,
        };
    } else {
        cfg.ws_init = Init::Kaiming {
            dist: NormalOrUniform::Normal,
            fan: FanInOut::FanOut,
            non_linearity: NonLinearity::ReLU,
        };
        cfg.bs_init = Init::Const(0.0);
    }
    nn::conv2d(p, c_in, c_out, spec.kernel, cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PyTorch's `nn.Conv2d(64, 32, 3)` draws weights and bias uniformly within 1/√(64·9) = 1/24
    /// (std 1/(24√3) ≈ 0.0241 for the weights).
    #[test]
    fn pytorch_init_is_pytorchs_default() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let spec = Conv2dSpec::new(3).bias(true).pytorch_default_init();
        let c = conv2d(&vs.root(), 64, 32, spec);
        let bound = 1.0 / 24.0;
        let max = c.ws.abs().max().double_value(&[]);
        assert!(max <= bound && max > 0.99 * bound, "weight max {max}");
        let std = c.ws.std(true).double_value(&[]);
        assert!(
            (std - bound / 3f64.sqrt()).abs() < 0.002,
            "weight std {std}"
        );
        let b = c.bs.as_ref().unwrap();
        let bmax = b.abs().max().double_value(&[]);
        assert!(bmax <= bound && bmax > 0.5 * bound, "bias max {bmax}");
    }
}
