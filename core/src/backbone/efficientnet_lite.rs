//! EfficientNet-Lite (Google's 2020 mobile variants of EfficientNet): ReLU6 instead of swish, no
//! squeeze-excite, a fixed 32-channel stem and 1280-channel head, BatchNorm eps 1e-3, and
//! TensorFlow "SAME" padding (asymmetric). Names follow the `EfficientNet-PyTorch` port, in which
//! the public Lite weights are distributed: `_conv_stem`, `_bn0`, `_blocks.N._expand_conv`,
//! `_bn0/_bn1/_bn2`, `_depthwise_conv`, `_project_conv`, `_conv_head`, `_bn1`, `_fc`.
//!
//! Inputs are scaled as `(x·255 − 127) / 128`, i.e. mean 127/255 and std 128/255 on [0, 1] RGB.

use tch::nn::{self, Module, Path};
use tch::Tensor;

use super::{
    global_pool, make_divisible, Backbone, BackboneOptions, FeatureInfo, Interpolation,
    PretrainedCfg, Stage,
};
use crate::nn::{conv2d, pad_same, stochastic_depth, BatchNorm2d, Conv2dSpec};

/// Same stage table as EfficientNet-B0: expansion, kernel, stride, input, output, repeats.
const STAGES: [(i64, i64, i64, i64, i64, usize); 7] = [
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
];

const BN_EPS: f64 = 1e-3;
/// TensorFlow's decay 0.99 in PyTorch's momentum convention.
const BN_MOMENTUM: f64 = 0.01;

/// A Lite variant.
#[derive(Debug, Clone, PartialEq)]
pub struct EfficientNetLiteConfig {
    /// Channel multiplier (stem and head are not scaled).
    pub width: f64,
    /// Depth multiplier (the first and last stages are not scaled).
    pub depth: f64,
    /// Input resolution.
    pub resolution: i64,
    /// Classifier dropout.
    pub dropout: f64,
}

impl EfficientNetLiteConfig {
    /// `efficientnet_lite0` … `efficientnet_lite4`, from TensorFlow's Lite builder table.
    pub fn by_name(name: &str) -> Option<Self> {
        let (width, depth, resolution, dropout) = match name {
            "efficientnet_lite0" => (1.0, 1.0, 224, 0.2),
            "efficientnet_lite1" => (1.0, 1.1, 240, 0.2),
            "efficientnet_lite2" => (1.1, 1.2, 260, 0.3),
            "efficientnet_lite3" => (1.2, 1.4, 280, 0.3),
            "efficientnet_lite4" => (1.4, 1.8, 300, 0.3),
            _ => return None,
        };
        Some(EfficientNetLiteConfig {
            width,
            depth,
            resolution,
            dropout,
        })
    }
}

/// A convolution applied with TensorFlow "SAME" padding.
#[derive(Debug)]
struct SameConv {
    conv: nn::Conv2D,
    kernel: i64,
    stride: i64,
}

impl SameConv {
    fn new(p: &Path, c_in: i64, c_out: i64, kernel: i64, stride: i64, groups: i64) -> Self {
        let spec = Conv2dSpec::new(kernel)
            .stride(stride)
            .padding(0)
            .groups(groups);
        SameConv {
            conv: conv2d(p, c_in, c_out, spec),
            kernel,
            stride,
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        self.conv.forward(&pad_same(x, self.kernel, self.stride, 1))
    }
}

/// An MBConv block without squeeze-excite: `_expand_conv`/`_bn0`, `_depthwise_conv`/`_bn1`,
/// `_project_conv`/`_bn2`.
#[derive(Debug)]
struct LiteBlock {
    expand: Option<(SameConv, BatchNorm2d)>,
    depthwise: (SameConv, BatchNorm2d),
    project: (SameConv, BatchNorm2d),
    residual: bool,
    drop_prob: f64,
}

impl LiteBlock {
    fn new(
        p: &Path,
        c_in: i64,
        c_out: i64,
        expand_ratio: i64,
        kernel: i64,
        stride: i64,
        drop_prob: f64,
    ) -> Self {
        let hidden = c_in * expand_ratio;
        let bn = |name: &str, c| BatchNorm2d::with(&(p / name), c, BN_EPS, BN_MOMENTUM);
        let expand = (expand_ratio != 1).then(|| {
            (
                SameConv::new(&(p / "_expand_conv"), c_in, hidden, 1, 1, 1),
                bn("_bn0", hidden),
            )
        });
        LiteBlock {
            expand,
            depthwise: (
                SameConv::new(
                    &(p / "_depthwise_conv"),
                    hidden,
                    hidden,
                    kernel,
                    stride,
                    hidden,
                ),
                bn("_bn1", hidden),
            ),
            project: (
                SameConv::new(&(p / "_project_conv"), hidden, c_out, 1, 1, 1),
                bn("_bn2", c_out),
            ),
            residual: stride == 1 && c_in == c_out,
            drop_prob,
        }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let relu6 = |t: Tensor| t.relu6();
        let mut y = match &self.expand {
            Some((conv, bn)) => relu6(bn.forward_t(&conv.forward(x), train)),
            None => x.shallow_clone(),
        };
        y = relu6(
            self.depthwise
                .1
                .forward_t(&self.depthwise.0.forward(&y), train),
        );
        y = self.project.1.forward_t(&self.project.0.forward(&y), train);
        if self.residual {
            stochastic_depth(&y, self.drop_prob, train) + x
        } else {
            y
        }
    }
}

/// EfficientNet-Lite with `EfficientNet-PyTorch` names.
#[derive(Debug)]
pub struct EfficientNetLite {
    conv_stem: SameConv,
    bn0: BatchNorm2d,
    blocks: Vec<LiteBlock>,
    conv_head: SameConv,
    bn1: BatchNorm2d,
    /// `None` for an encoder (`num_classes` 0).
    fc: Option<nn::Linear>,
    dropout: f64,
    /// Index of the last block of each pyramid level.
    level_ends: Vec<usize>,
    info: Vec<FeatureInfo>,
    resolution: i64,
}

impl EfficientNetLite {
    /// Builds the network under `p`.
    pub fn new(p: &Path, cfg: &EfficientNetLiteConfig, opts: &BackboneOptions) -> Self {
        let conv_stem = SameConv::new(&(p / "_conv_stem"), 3, 32, 3, 2, 1);
        let bn0 = BatchNorm2d::with(&(p / "_bn0"), 32, BN_EPS, BN_MOMENTUM);
        let repeats: Vec<usize> = STAGES
            .iter()
            .enumerate()
            .map(|(i, s)| {
                if i == 0 || i == STAGES.len() - 1 {
                    s.5
                } else {
                    (s.5 as f64 * cfg.depth).ceil() as usize
                }
            })
            .collect();
        let total: usize = repeats.iter().sum();
        let sd_prob = opts.stochastic_depth.unwrap_or(0.2);
        let mut blocks = Vec::new();
        let (mut level_ends, mut info) = (Vec::new(), Vec::new());
        let mut stride_total = 2;
        let width = |c: i64| make_divisible(c as f64 * cfg.width, 8);
        let mut last_c = 32;
        for (s, &(t, k, stride, c_in, c_out, _)) in STAGES.iter().enumerate() {
            let (c_in, c_out) = (if s == 0 { 32 } else { width(c_in) }, width(c_out));
            for i in 0..repeats[s] {
                let (bi, bs) = if i == 0 { (c_in, stride) } else { (c_out, 1) };
                let idx = blocks.len();
                let drop = sd_prob * idx as f64 / total as f64;
                blocks.push(LiteBlock::new(
                    &(p / "_blocks" / idx.to_string()),
                    bi,
                    c_out,
                    t,
                    k,
                    bs,
                    drop,
                ));
            }
            stride_total *= stride;
            // A level ends where the next stage downsamples (or at the end).
            let next_stride = STAGES.get(s + 1).map_or(2, |n| n.2);
            if next_stride == 2 {
                level_ends.push(blocks.len() - 1);
                info.push(FeatureInfo {
                    module: format!("_blocks.{}", blocks.len() - 1),
                    channels: c_out,
                    stride: stride_total,
                });
            }
            last_c = c_out;
        }
        let conv_head = SameConv::new(&(p / "_conv_head"), last_c, 1280, 1, 1, 1);
        let bn1 = BatchNorm2d::with(&(p / "_bn1"), 1280, BN_EPS, BN_MOMENTUM);
        let fc = (opts.num_classes > 0)
            .then(|| nn::linear(p / "_fc", 1280, opts.num_classes, Default::default()));
        let dropout = opts.dropout.unwrap_or(cfg.dropout);
        EfficientNetLite {
            conv_stem,
            bn0,
            blocks,
            conv_head,
            bn1,
            fc,
            dropout,
            level_ends,
            info,
            resolution: cfg.resolution,
        }
    }
}

impl Backbone for EfficientNetLite {
    fn forward_head(&self, pooled: &Tensor, train: bool) -> Tensor {
        match &self.fc {
            Some(fc) => fc.forward(&pooled.dropout(self.dropout, train)),
            None => pooled.shallow_clone(),
        }
    }

    fn features(&self, x: &Tensor, train: bool) -> Vec<Tensor> {
        let mut y = self
            .bn0
            .forward_t(&self.conv_stem.forward(x), train)
            .relu6();
        let mut out = Vec::new();
        for (i, b) in self.blocks.iter().enumerate() {
            y = b.forward_t(&y, train);
            if self.level_ends.contains(&i) {
                out.push(y.shallow_clone());
            }
        }
        out
    }

    fn final_features(&self, x: &Tensor, train: bool) -> Tensor {
        let last = self.features(x, train).pop().expect("five levels");
        self.bn1
            .forward_t(&self.conv_head.forward(&last), train)
            .relu6()
    }

    fn final_channels(&self) -> i64 {
        1280
    }

    fn pooled_features(&self, x: &Tensor, train: bool) -> Tensor {
        global_pool(&self.final_features(x, train))
    }

    fn feature_info(&self) -> Vec<FeatureInfo> {
        self.info.clone()
    }

    fn pretrained_cfg(&self) -> PretrainedCfg {
        PretrainedCfg {
            input_size: self.resolution,
            resize_size: (self.resolution as f64 / 0.875).round() as i64,
            interpolation: Interpolation::Bilinear,
            mean: [127.0 / 255.0; 3],
            std: [128.0 / 255.0; 3],
        }
    }

    fn stages(&self) -> Vec<Stage> {
        let mut stages = vec![Stage::new("stem", &["_conv_stem", "_bn0"])];
        let mut start = 0;
        for (l, &end) in self.level_ends.iter().enumerate() {
            let prefixes = (start..=end).map(|i| format!("_blocks.{i}")).collect();
            stages.push(Stage {
                name: format!("level{}", l + 1),
                prefixes,
            });
            start = end + 1;
        }
        stages.push(Stage::new("head_conv", &["_conv_head", "_bn1"]));
        stages.push(Stage::new("head", &["_fc"]));
        stages
    }
}
