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

    /// With PyTorch's default initialisation (see [`Conv2dSpec::pytorch_init`]).
    pub fn pytorch_default_init(mut self) -> Self {
        self.pytorch_init = true;
        self
    }
}

/// A convolution with weights drawn Kaiming-normal (fan-out, ReLU gain) and zero bias, as
/// torchvision's ResNet, MobileNetV2 and EfficientNet initialise theirs; with
/// [`Conv2dSpec::pytorch_init`], as PyTorch initialises any `nn.Conv2d` (tch's default).
pub fn conv2d(p: &Path, c_in: i64, c_out: i64, spec: Conv2dSpec) -> nn::Conv2D {
    let mut cfg = nn::ConvConfig {
        stride: spec.stride,
        padding: spec.padding,
        dilation: spec.dilation,
        groups: spec.groups,
        bias: spec.bias,
        ..Default::default()
    };
    if !spec.pytorch_init {
        cfg.ws_init = Init::Kaiming {
            dist: NormalOrUniform::Normal,
            fan: FanInOut::FanOut,
            non_linearity: NonLinearity::ReLU,
        };
        cfg.bs_init = Init::Const(0.0);
    }
    nn::conv2d(p, c_in, c_out, spec.kernel, cfg)
}
