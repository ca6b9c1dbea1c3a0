//! ConvNeXt (Liu et al., "A ConvNet for the 2020s", 2022) as torchvision builds it: `features.0`
//! the 4×4 stride-4 patchify stem with a channel LayerNorm, `features.1/3/5/7` the four stages of
//! CNBlocks, `features.2/4/6` the downsampling layers (LayerNorm, 2×2 stride-2 convolution), and
//! `classifier` = LayerNorm (`classifier.0`), flatten, linear (`classifier.2`).
//!
//! As in the paper, a CNBlock is a depthwise 7×7 convolution, then — channels last — LayerNorm,
//! a linear expansion ×4, GELU and a linear projection, scaled per channel by `layer_scale`
//! (initialised to 1e-6) and added to its input through stochastic depth rising linearly to the
//! size's rate. Where torchvision differs from the paper: its weights were trained with its own
//! recipe, and their `IMAGENET1K_V1` transforms resize to 230–236 (by size) before the 224 crop.

use tch::nn::{self, Module, Path};
use tch::Tensor;

use super::{
    global_pool, Backbone, BackboneOptions, FeatureInfo, Interpolation, PretrainedCfg, Stage,
    IMAGENET_MEAN, IMAGENET_STD,
};
use crate::error::{Error, Result};
use crate::nn::{stochastic_depth, trunc_normal_, LayerNorm2d};

/// The LayerNorm eps of every ConvNeXt normalisation.
const LN_EPS: f64 = 1e-6;

/// The initial value of every `layer_scale`.
const LAYER_SCALE: f64 = 1e-6;

/// A ConvNeXt size.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvNextConfig {
    /// Channels and number of blocks of the four stages.
    pub stages: [(i64, usize); 4],
    /// Stochastic-depth probability of the last block (torchvision's `stochastic_depth_prob`).
    pub stochastic_depth: f64,
    /// Shorter side before the 224 crop in the weights' evaluation transforms.
    pub resize: i64,
}

impl ConvNextConfig {
    /// `convnext_tiny`, `convnext_small`, `convnext_base` and `convnext_large` as torchvision
    /// defines them.
    pub fn by_name(name: &str) -> Option<Self> {
        let (stages, stochastic_depth, resize) = match name {
            "convnext_tiny" => ([(96, 3), (192, 3), (384, 9), (768, 3)], 0.1, 236),
            "convnext_small" => ([(96, 3), (192, 3), (384, 27), (768, 3)], 0.4, 230),
            "convnext_base" => ([(128, 3), (256, 3), (512, 27), (1024, 3)], 0.5, 232),
            "convnext_large" => ([(192, 3), (384, 3), (768, 27), (1536, 3)], 0.5, 232),
            _ => return None,
        };
        Some(ConvNextConfig {
            stages,
            stochastic_depth,
            resize,
        })
    }
}

/// A convolution with bias, initialised as ConvNeXt initialises all its convolutions and linear
/// layers: weights truncated-normal with std 0.02, zero bias.
fn conv(p: &Path, c_in: i64, c_out: i64, kernel: i64, stride: i64, groups: i64) -> nn::Conv2D {
    let cfg = nn::ConvConfig {
        stride,
        // ConvNeXt pads only its 7×7 depthwise convolutions; the patchify ones tile the input.
        padding: (kernel - stride) / 2,
        groups,
        bias: true,
        ws_init: nn::Init::Const(0.0),
        bs_init: nn::Init::Const(0.0),
        ..Default::default()
    };
    let c = nn::conv2d(p, c_in, c_out, kernel, cfg);
    trunc_normal_(&c.ws, 0.0, 0.02, -2.0, 2.0);
    c
}

/// A linear layer initialised as [`conv`].
fn linear(p: &Path, c_in: i64, c_out: i64) -> nn::Linear {
    let cfg = nn::LinearConfig {
        ws_init: nn::Init::Const(0.0),
        bs_init: Some(nn::Init::Const(0.0)),
        bias: true,
    };
    let l = nn::linear(p, c_in, c_out, cfg);
    trunc_normal_(&l.ws, 0.0, 0.02, -2.0, 2.0);
    l
}

/// The ConvNeXt block (`features.S.B`): `block.0` depthwise 7×7, `block.2` LayerNorm,
/// `block.3` / `block.5` the inverted-bottleneck linear layers, `layer_scale` (`C×1×1`).
#[derive(Debug)]
struct CNBlock {
    dwconv: nn::Conv2D,
    norm: nn::LayerNorm,
    fc1: nn::Linear,
    fc2: nn::Linear,
    layer_scale: Tensor,
    drop_prob: f64,
}

impl CNBlock {
    fn new(p: &Path, dim: i64, drop_prob: f64) -> Self {
        let b = p / "block";
        let norm_cfg = nn::LayerNormConfig {
            eps: LN_EPS,
            ..Default::default()
        };
        CNBlock {
            dwconv: conv(&(&b / "0"), dim, dim, 7, 1, dim),
            norm: nn::layer_norm(&b / "2", vec![dim], norm_cfg),
            fc1: linear(&(&b / "3"), dim, 4 * dim),
            fc2: linear(&(&b / "5"), 4 * dim, dim),
            layer_scale: p.var("layer_scale", &[dim, 1, 1], nn::Init::Const(LAYER_SCALE)),
            drop_prob,
        }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let y = self.dwconv.forward(x).permute([0, 2, 3, 1]);
        let y = self.fc1.forward(&self.norm.forward(&y)).gelu("none");
        let y = self.fc2.forward(&y).permute([0, 3, 1, 2]);
        // The scaled branch is a fresh tensor: the residual is added in place, as torchvision
        // does (the product's backward needs its inputs, not its output).
        let mut out = stochastic_depth(&(&self.layer_scale * y), self.drop_prob, train);
        out += x;
        out
    }
}

/// A downsampling layer (`features.2/4/6`): LayerNorm2d (`.0`), 2×2 stride-2 convolution (`.1`).
#[derive(Debug)]
struct Downsample {
    norm: LayerNorm2d,
    conv: nn::Conv2D,
}

impl Downsample {
    fn new(p: &Path, c_in: i64, c_out: i64) -> Self {
        Downsample {
            norm: LayerNorm2d::with_eps(&(p / "0"), c_in, LN_EPS),
            conv: conv(&(p / "1"), c_in, c_out, 2, 2, 1),
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        self.conv.forward(&self.norm.forward(x))
    }
}

/// ConvNeXt with torchvision's names.
#[derive(Debug)]
pub struct ConvNext {
    stem_conv: nn::Conv2D,
    stem_norm: LayerNorm2d,
    /// `downsamples[i]` precedes `stages[i + 1]`.
    downsamples: Vec<Downsample>,
    stages: Vec<Vec<CNBlock>>,
    /// `classifier.0`, kept in an encoder too: the pooled features are normalised, as the
    /// pretrained classifier saw them.
    head_norm: LayerNorm2d,
    /// `classifier.2`; `None` for an encoder (`num_classes` 0).
    fc: Option<nn::Linear>,
    dropout: f64,
    info: Vec<FeatureInfo>,
    cfg: ConvNextConfig,
}

impl ConvNext {
    /// Builds the network under `p`. `opts.stochastic_depth` replaces the size's rate;
    /// `opts.dropout` adds dropout before the linear classifier, which torchvision's ConvNeXt
    /// does not have (default 0).
    pub fn new(p: &Path, cfg: &ConvNextConfig, opts: &BackboneOptions) -> Result<Self> {
        let sd_prob = opts.stochastic_depth.unwrap_or(cfg.stochastic_depth);
        let dropout = opts.dropout.unwrap_or(0.0);
        for (what, v) in [("stochastic_depth", sd_prob), ("dropout", dropout)] {
            if !(0.0..=1.0).contains(&v) {
                return Err(Error::Invalid(format!(
                    "ConvNeXt: {what} must be a probability in [0, 1], got {v}"
                )));
            }
        }
        let f = p / "features";
        let c0 = cfg.stages[0].0;
        let stem_conv = conv(&(&f / "0" / "0"), 3, c0, 4, 4, 1);
        let stem_norm = LayerNorm2d::with_eps(&(&f / "0" / "1"), c0, LN_EPS);
        let total: usize = cfg.stages.iter().map(|s| s.1).sum();
        let mut block_id = 0;
        let (mut stages, mut downsamples, mut info) = (Vec::new(), Vec::new(), Vec::new());
        for (s, &(c, n)) in cfg.stages.iter().enumerate() {
            if s > 0 {
                let c_prev = cfg.stages[s - 1].0;
                downsamples.push(Downsample::new(&(&f / (2 * s).to_string()), c_prev, c));
            }
            let sp = &f / (2 * s + 1).to_string();
            let blocks = (0..n)
                .map(|i| {
                    let drop = sd_prob * block_id as f64 / (total - 1) as f64;
                    block_id += 1;
                    CNBlock::new(&(&sp / i.to_string()), c, drop)
                })
                .collect();
            stages.push(blocks);
            info.push(FeatureInfo {
                module: format!("features.{}", 2 * s + 1),
                channels: c,
                stride: 4 << s,
            });
        }
        let c_last = cfg.stages[3].0;
        let head_norm = LayerNorm2d::with_eps(&(p / "classifier" / "0"), c_last, LN_EPS);
        let fc = (opts.num_classes > 0)
            .then(|| linear(&(p / "classifier" / "2"), c_last, opts.num_classes));
        Ok(ConvNext {
            stem_conv,
            stem_norm,
            downsamples,
            stages,
            head_norm,
            fc,
            dropout,
            info,
            cfg: cfg.clone(),
        })
    }
}

impl Backbone for ConvNext {
    fn forward_head(&self, pooled: &Tensor, train: bool) -> Tensor {
        match &self.fc {
            Some(fc) => fc.forward(&pooled.dropout(self.dropout, train)),
            None => pooled.shallow_clone(),
        }
    }

    fn features(&self, x: &Tensor, train: bool) -> Vec<Tensor> {
        let mut y = self.stem_norm.forward(&self.stem_conv.forward(x));
        let mut out = Vec::with_capacity(self.stages.len());
        for (s, blocks) in self.stages.iter().enumerate() {
            if s > 0 {
                y = self.downsamples[s - 1].forward(&y);
            }
            for b in blocks {
                y = b.forward_t(&y, train);
            }
            out.push(y.shallow_clone());
        }
        out
    }

    fn pooled_features(&self, x: &Tensor, train: bool) -> Tensor {
        let last = self.final_features(x, train);
        // classifier.0 on the pooled N×C×1×1 map is a layer norm of the N×C vectors.
        self.head_norm.forward_channels_last(&global_pool(&last))
    }

    fn feature_info(&self) -> Vec<FeatureInfo> {
        self.info.clone()
    }

    fn pretrained_cfg(&self) -> PretrainedCfg {
        PretrainedCfg {
            input_size: 224,
            resize_size: self.cfg.resize,
            interpolation: Interpolation::Bilinear,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
        }
    }

    fn stages(&self) -> Vec<Stage> {
        vec![
            Stage::new("stem", &["features.0"]),
            Stage::new("stage1", &["features.1"]),
            Stage::new("stage2", &["features.2", "features.3"]),
            Stage::new("stage3", &["features.4", "features.5"]),
            // The pooled features' LayerNorm goes with the last stage, apart from the linear
            // layer: a new class count (which re-initialises the head) keeps it pretrained, and
            // `partial` with 2 stages trains stage 4 and the head, as in the other families.
            Stage::new("stage4", &["features.6", "features.7", "classifier.0"]),
            Stage::new("head", &["classifier.2"]),
        ]
    }
}
