//! SSD's prediction heads (torchvision's `SSDHead` and `SSDLiteHead`): per feature map, one
//! predictor giving `num_columns` numbers for each default box of each cell (class logits, or
//! the four box offsets), laid out as `(N, Σ H·W·A, num_columns)` level after level.

use tch::nn::{self, Init, Module, Path};
use tch::Tensor;

use ferrovis_core::nn::{Activation, Conv2dSpec, ConvNormAct, NormLayer};

/// One entry of a head's `module_list`. A head holds one kind only.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
enum Predictor {
    /// SSD300: a 3×3 convolution (`module_list.i.{weight,bias}`).
    Conv(nn::Conv2D),
    /// SSDlite's `_prediction_block`: a depthwise 3×3 conv-BN-ReLU6 (`module_list.i.0.*`)
    /// then a 1×1 convolution (`module_list.i.1.*`).
    Lite {
        depthwise: ConvNormAct,
        pointwise: nn::Conv2D,
    },
}

impl Predictor {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        match self {
            Predictor::Conv(conv) => conv.forward(x),
            Predictor::Lite {
                depthwise,
                pointwise,
            } => pointwise.forward(&depthwise.forward_t(x, train)),
        }
    }
}

/// torchvision's `SSDScoringHead`: the predictors of one kind of output over every level.
#[derive(Debug)]
pub struct ScoringHead {
    module_list: Vec<Predictor>,
    num_columns: i64,
}

/// Xavier-uniform weights (gain 1) and zero bias, SSD300's `_xavier_init`.
pub fn xavier_conv(
    p: &Path,
    c_in: i64,
    c_out: i64,
    kernel: i64,
    cfg: nn::ConvConfig,
) -> nn::Conv2D {
    let fan_in = (c_in / cfg.groups) * kernel * kernel;
    let fan_out = c_out * kernel * kernel / cfg.groups;
    let bound = (6.0 / (fan_in + fan_out) as f64).sqrt();
    nn::conv2d(
        p,
        c_in,
        c_out,
        kernel,
        nn::ConvConfig {
            ws_init: Init::Uniform {
                lo: -bound,
                up: bound,
            },
            bs_init: Init::Const(0.0),
            ..cfg
        },
    )
}

/// N(0, 0.03) weights and zero bias, SSDlite's `_normal_init`.
pub fn normal_init() -> (Init, Init) {
    (
        Init::Randn {
            mean: 0.0,
            stdev: 0.03,
        },
        Init::Const(0.0),
    )
}

impl ScoringHead {
    /// SSD300's head under `p` (`p.module_list.i`): a 3×3 convolution per level to
    /// `anchors[i] · num_columns` channels.
    pub fn ssd(p: &Path, in_channels: &[i64], anchors: &[i64], num_columns: i64) -> Self {
        let list = p / "module_list";
        let module_list = in_channels
            .iter()
            .zip(anchors)
            .enumerate()
            .map(|(i, (&c, &a))| {
                Predictor::Conv(xavier_conv(
                    &(&list / i.to_string()),
                    c,
                    num_columns * a,
                    3,
                    nn::ConvConfig {
                        padding: 1,
                        ..Default::default()
                    },
                ))
            })
            .collect();
        ScoringHead {
            module_list,
            num_columns,
        }
    }

    /// SSDlite's head under `p`: per level a depthwise 3×3 conv-BN-ReLU6 with `norm` and a 1×1
    /// convolution to `anchors[i] · num_columns` channels, every convolution N(0, 0.03).
    pub fn ssdlite(
        p: &Path,
        in_channels: &[i64],
        anchors: &[i64],
        num_columns: i64,
        norm: NormLayer,
    ) -> Self {
        let list = p / "module_list";
        let (ws_init, bs_init) = normal_init();
        let module_list = in_channels
            .iter()
            .zip(anchors)
            .enumerate()
            .map(|(i, (&c, &a))| {
                let block = &list / i.to_string();
                let depthwise = ConvNormAct::with_norm(
                    &(&block / "0"),
                    c,
                    c,
                    Conv2dSpec::new(3).groups(c),
                    Activation::ReLU6,
                    norm,
                    (0.001, 0.03),
                );
                reinit_normal(&depthwise.conv);
                let pointwise = nn::conv2d(
                    &block / "1",
                    c,
                    num_columns * a,
                    1,
                    nn::ConvConfig {
                        ws_init,
                        bs_init,
                        ..Default::default()
                    },
                );
                Predictor::Lite {
                    depthwise,
                    pointwise,
                }
            })
            .collect();
        ScoringHead {
            module_list,
            num_columns,
        }
    }

    /// `(N, Σ H·W·A, num_columns)`: each level's output viewed as `(N, A, K, H, W)` and laid out
    /// cell by cell, then the levels concatenated.
    pub fn forward_t(&self, features: &[Tensor], train: bool) -> Tensor {
        let parts: Vec<Tensor> = self
            .module_list
            .iter()
            .zip(features)
            .map(|(m, x)| {
                let y = m.forward_t(x, train);
                let (n, h, w) = (y.size()[0], y.size()[2], y.size()[3]);
                y.view([n, -1, self.num_columns, h, w])
                    .permute([0, 3, 4, 1, 2])
                    .reshape([n, -1, self.num_columns])
            })
            .collect();
        Tensor::cat(&parts, 1)
    }
}

/// Draws a convolution's weights again from N(0, 0.03) (SSDlite's `_normal_init` for the
/// convolutions inside conv-norm-activation blocks).
pub fn reinit_normal(conv: &nn::Conv2D) {
    tch::no_grad(|| {
        let mut ws = conv.ws.shallow_clone();
        let _ = ws.normal_(0.0, 0.03);
        if let Some(bs) = &conv.bs {
            let _ = bs.shallow_clone().zero_();
        }
    });
}

/// torchvision's `SSDHead` / `SSDLiteHead`.
#[derive(Debug)]
pub struct SsdHead {
    /// Class logits per default box (`head.classification_head`).
    pub classification_head: ScoringHead,
    /// Box offsets per default box (`head.regression_head`).
    pub regression_head: ScoringHead,
}

impl SsdHead {
    /// `(bbox_regression (N, B, 4), cls_logits (N, B, classes))`.
    pub fn forward_t(&self, features: &[Tensor], train: bool) -> (Tensor, Tensor) {
        (
            self.regression_head.forward_t(features, train),
            self.classification_head.forward_t(features, train),
        )
    }
}
