//! EfficientNet B0–B7 (Tan & Le, "EfficientNet: Rethinking Model Scaling", 2019) and EfficientNetV2
//! S/M/L (Tan & Le, "EfficientNetV2: Smaller Models and Faster Training", 2021) with torchvision's
//! names: `features.0` stem, `features.1..=N` stages of blocks (`features.S.B.block.K.*`),
//! `features.N+1` the 1×1 head convolution, `classifier.1` the linear layer. SiLU, stochastic depth
//! rising linearly to 0.2 over the blocks.
//!
//! V1 stacks MBConv blocks (inverted residuals with squeeze-excite), scaled in width and depth.
//! V2 opens with FusedMBConv blocks (the expansion and depthwise convolutions fused into one
//! k×k convolution, no squeeze-excite). V2-S is the paper's Table 4; the paper gives no table for
//! V2-M and V2-L, whose blocks (a seventh stage included) are those of the released TF code. In all
//! three torchvision uses a 1280-channel head convolution, BatchNorm eps 1e-3 with PyTorch's
//! momentum, stochastic depth rising to 0.2 and classifier dropout 0.2, 0.3, 0.4; the paper's
//! progressive learning (image size and regularisation growing during training) is a training
//! recipe, not part of the network.

use tch::nn::{self, Module, Path};
use tch::Tensor;

use super::{
    global_pool, make_divisible, Backbone, BackboneOptions, FeatureInfo, Interpolation,
    PretrainedCfg, Stage, IMAGENET_MEAN, IMAGENET_STD,
};
use crate::error::{Error, Result};
use crate::nn::{
    stochastic_depth, Activation, Conv2dSpec, ConvNormAct, NormLayer, SqueezeExcitation,
};

/// Which block a stage is built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    /// Inverted residual: 1×1 expansion, k×k depthwise, squeeze-excite, 1×1 projection.
    MBConv,
    /// EfficientNetV2's fused inverted residual: k×k expansion, 1×1 projection (or a single k×k
    /// convolution when the expansion ratio is 1).
    FusedMBConv,
}

/// One row of the block table (torchvision's `MBConvConfig` / `FusedMBConvConfig`), before width
/// and depth scaling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageSpec {
    /// The block type.
    pub block: BlockKind,
    /// Expansion ratio of the hidden channels.
    pub expand: i64,
    /// Kernel size of the spatial convolution.
    pub kernel: i64,
    /// Stride of the stage's first block (1 or 2).
    pub stride: i64,
    /// Input channels.
    pub c_in: i64,
    /// Output channels.
    pub c_out: i64,
    /// Number of blocks.
    pub repeats: usize,
}

const fn mb(
    expand: i64,
    kernel: i64,
    stride: i64,
    c_in: i64,
    c_out: i64,
    repeats: usize,
) -> StageSpec {
    StageSpec {
        block: BlockKind::MBConv,
        expand,
        kernel,
        stride,
        c_in,
        c_out,
        repeats,
    }
}

const fn fused(
    expand: i64,
    kernel: i64,
    stride: i64,
    c_in: i64,
    c_out: i64,
    repeats: usize,
) -> StageSpec {
    StageSpec {
        block: BlockKind::FusedMBConv,
        ..mb(expand, kernel, stride, c_in, c_out, repeats)
    }
}

/// B0's stages, which B1–B7 scale.
const B0_STAGES: [StageSpec; 7] = [
    mb(1, 3, 1, 32, 16, 1),
    mb(6, 3, 2, 16, 24, 2),
    mb(6, 5, 2, 24, 40, 2),
    mb(6, 3, 2, 40, 80, 3),
    mb(6, 5, 1, 80, 112, 3),
    mb(6, 5, 2, 112, 192, 4),
    mb(6, 3, 1, 192, 320, 1),
];

const V2_S_STAGES: [StageSpec; 6] = [
    fused(1, 3, 1, 24, 24, 2),
    fused(4, 3, 2, 24, 48, 4),
    fused(4, 3, 2, 48, 64, 4),
    mb(4, 3, 2, 64, 128, 6),
    mb(6, 3, 1, 128, 160, 9),
    mb(6, 3, 2, 160, 256, 15),
];

const V2_M_STAGES: [StageSpec; 7] = [
    fused(1, 3, 1, 24, 24, 3),
    fused(4, 3, 2, 24, 48, 5),
    fused(4, 3, 2, 48, 80, 5),
    mb(4, 3, 2, 80, 160, 7),
    mb(6, 3, 1, 160, 176, 14),
    mb(6, 3, 2, 176, 304, 18),
    mb(6, 3, 1, 304, 512, 5),
];

const V2_L_STAGES: [StageSpec; 7] = [
    fused(1, 3, 1, 32, 32, 4),
    fused(4, 3, 2, 32, 64, 7),
    fused(4, 3, 2, 64, 96, 7),
    mb(4, 3, 2, 96, 192, 10),
    mb(6, 3, 1, 192, 224, 19),
    mb(6, 3, 2, 224, 384, 25),
    mb(6, 3, 1, 384, 640, 7),
];

/// An EfficientNet variant: its block table, scaling and preprocessing.
#[derive(Debug, Clone, PartialEq)]
pub struct EfficientNetConfig {
    /// The block table (B0's for V1, before scaling).
    pub stages: Vec<StageSpec>,
    /// Channel multiplier (1 for V2).
    pub width: f64,
    /// Depth (repeats) multiplier (1 for V2).
    pub depth: f64,
    /// Channels of the head convolution; `None` is four times the last stage's (V1).
    pub last_channel: Option<i64>,
    /// Classifier dropout.
    pub dropout: f64,
    /// BatchNorm eps (1e-3 for the TF-ported B5–B7 weights and for V2).
    pub bn_eps: f64,
    /// BatchNorm momentum (PyTorch convention).
    pub bn_momentum: f64,
    /// TensorFlow's "SAME" padding in every convolution (timm's `tf_` ports).
    pub tf_same_padding: bool,
    /// Evaluation crop size (torchvision's weights' transforms).
    pub crop: i64,
    /// Shorter side before the crop.
    pub resize: i64,
    /// Resize interpolation.
    pub interpolation: Interpolation,
    /// Normalisation mean.
    pub mean: [f64; 3],
    /// Normalisation standard deviation.
    pub std: [f64; 3],
}

impl EfficientNetConfig {
    /// `efficientnet_b0` … `efficientnet_b7` and `efficientnet_v2_s`, `_m`, `_l` as torchvision
    /// defines them, with the transforms of their IMAGENET1K_V1 weights.
    pub fn by_name(name: &str) -> Option<Self> {
        if let Some(v2) = Self::v2(name) {
            return Some(v2);
        }
        let (width, depth, dropout, crop, resize) = match name {
            "efficientnet_b0" => (1.0, 1.0, 0.2, 224, 256),
            "efficientnet_b1" => (1.0, 1.1, 0.2, 240, 256),
            "efficientnet_b2" => (1.1, 1.2, 0.3, 288, 288),
            "efficientnet_b3" => (1.2, 1.4, 0.3, 300, 320),
            "efficientnet_b4" => (1.4, 1.8, 0.4, 380, 384),
            "efficientnet_b5" => (1.6, 2.2, 0.4, 456, 456),
            "efficientnet_b6" => (1.8, 2.6, 0.5, 528, 528),
            "efficientnet_b7" => (2.0, 3.1, 0.5, 600, 600),
            _ => return None,
        };
        let tf_ported = matches!(
            name,
            "efficientnet_b5" | "efficientnet_b6" | "efficientnet_b7"
        );
        let (bn_eps, bn_momentum) = if tf_ported { (1e-3, 0.01) } else { (1e-5, 0.1) };
        Some(EfficientNetConfig {
            stages: B0_STAGES.to_vec(),
            width,
            depth,
            last_channel: None,
            dropout,
            bn_eps,
            bn_momentum,
            tf_same_padding: false,
            crop,
            resize,
            interpolation: Interpolation::Bicubic,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
        })
    }

    fn v2(name: &str) -> Option<Self> {
        let (stages, dropout, crop, interpolation, mean, std): (&[StageSpec], _, _, _, _, _) =
            match name {
                "efficientnet_v2_s" => (
                    &V2_S_STAGES,
                    0.2,
                    384,
                    Interpolation::Bilinear,
                    IMAGENET_MEAN,
                    IMAGENET_STD,
                ),
                "efficientnet_v2_m" => (
                    &V2_M_STAGES,
                    0.3,
                    480,
                    Interpolation::Bilinear,
                    IMAGENET_MEAN,
                    IMAGENET_STD,
                ),
                // V2-L's weights are ported from the TF release, which normalised to [-1, 1].
                "efficientnet_v2_l" => (
                    &V2_L_STAGES,
                    0.4,
                    480,
                    Interpolation::Bicubic,
                    [0.5; 3],
                    [0.5; 3],
                ),
                _ => return None,
            };
        Some(EfficientNetConfig {
            stages: stages.to_vec(),
            width: 1.0,
            depth: 1.0,
            last_channel: Some(1280),
            dropout,
            bn_eps: 1e-3,
            bn_momentum: 0.1,
            tf_same_padding: false,
            crop,
            resize: crop,
            interpolation,
            mean,
            std,
        })
    }

    fn channels(&self, c: i64) -> i64 {
        make_divisible(c as f64 * self.width, 8)
    }

    fn repeats(&self, n: usize) -> usize {
        (n as f64 * self.depth).ceil() as usize
    }

    fn validate(&self) -> Result<()> {
        if self.stages.is_empty() {
            return Err(Error::Invalid(
                "EfficientNet: the block table is empty".into(),
            ));
        }
        if !(self.width > 0.0 && self.depth > 0.0) {
            return Err(Error::Invalid(format!(
                "EfficientNet: width and depth multipliers must be positive, got {} and {}",
                self.width, self.depth
            )));
        }
        for (i, s) in self.stages.iter().enumerate() {
            if !(1..=2).contains(&s.stride)
                || s.kernel < 1
                || s.kernel % 2 == 0
                || s.expand < 1
                || s.c_in < 1
                || s.c_out < 1
                || s.repeats < 1
            {
                return Err(Error::Invalid(format!(
                    "EfficientNet: stage {} needs stride 1 or 2, an odd kernel and positive \
                     expansion, channels and repeats, got {s:?}",
                    i + 1
                )));
            }
        }
        if self.last_channel.is_some_and(|c| c < 1) {
            return Err(Error::Invalid(format!(
                "EfficientNet: last_channel must be positive, got {:?}",
                self.last_channel
            )));
        }
        Ok(())
    }
}

/// Mobile inverted bottleneck with squeeze-excite: `block.0..` = [expand], depthwise, SE, project.
#[derive(Debug)]
struct MBConv {
    expand: Option<ConvNormAct>,
    depthwise: ConvNormAct,
    se: SqueezeExcitation,
    project: ConvNormAct,
    residual: bool,
    drop_prob: f64,
}

impl MBConv {
    fn new(
        p: &Path,
        c_in: i64,
        c_out: i64,
        spec: &StageSpec,
        stride: i64,
        drop_prob: f64,
        cfg: &EfficientNetConfig,
    ) -> Self {
        let b = p / "block";
        let hidden = make_divisible((c_in * spec.expand) as f64, 8);
        let (eps, mom) = (cfg.bn_eps, cfg.bn_momentum);
        let mut k = 0;
        let mut next = || {
            k += 1;
            (&b / (k - 1).to_string()).clone()
        };
        let expand = (hidden != c_in).then(|| {
            ConvNormAct::new(
                &next(),
                c_in,
                hidden,
                Conv2dSpec::new(1),
                Activation::SiLU,
                eps,
                mom,
            )
        });
        let depthwise = ConvNormAct::new(
            &next(),
            hidden,
            hidden,
            Conv2dSpec::new(spec.kernel)
                .stride(stride)
                .groups(hidden)
                .tf_same(cfg.tf_same_padding),
            Activation::SiLU,
            eps,
            mom,
        );
        let se = SqueezeExcitation::new(&next(), hidden, (c_in / 4).max(1), Activation::SiLU);
        let project = ConvNormAct::new(
            &next(),
            hidden,
            c_out,
            Conv2dSpec::new(1),
            Activation::None,
            eps,
            mom,
        );
        MBConv {
            expand,
            depthwise,
            se,
            project,
            residual: stride == 1 && c_in == c_out,
            drop_prob,
        }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut y = match &self.expand {
            Some(e) => e.forward_t(x, train),
            None => x.shallow_clone(),
        };
        y = self.se.forward(&self.depthwise.forward_t(&y, train));
        y = self.project.forward_t(&y, train);
        residual_add(y, x, self.residual, self.drop_prob, train)
    }
}

/// EfficientNetV2's fused inverted residual: `block.0` a k×k convolution (expanding, with SiLU),
/// `block.1` the 1×1 projection; with expansion 1, `block.0` alone maps input to output channels.
#[derive(Debug)]
struct FusedMBConv {
    fused: ConvNormAct,
    project: Option<ConvNormAct>,
    residual: bool,
    drop_prob: f64,
}

impl FusedMBConv {
    fn new(
        p: &Path,
        c_in: i64,
        c_out: i64,
        spec: &StageSpec,
        stride: i64,
        drop_prob: f64,
        cfg: &EfficientNetConfig,
    ) -> Self {
        let b = p / "block";
        let hidden = make_divisible((c_in * spec.expand) as f64, 8);
        let (eps, mom) = (cfg.bn_eps, cfg.bn_momentum);
        let expands = hidden != c_in;
        let fused = ConvNormAct::new(
            &(&b / "0"),
            c_in,
            if expands { hidden } else { c_out },
            Conv2dSpec::new(spec.kernel)
                .stride(stride)
                .tf_same(cfg.tf_same_padding),
            Activation::SiLU,
            eps,
            mom,
        );
        let project = expands.then(|| {
            ConvNormAct::new(
                &(&b / "1"),
                hidden,
                c_out,
                Conv2dSpec::new(1),
                Activation::None,
                eps,
                mom,
            )
        });
        FusedMBConv {
            fused,
            project,
            residual: stride == 1 && c_in == c_out,
            drop_prob,
        }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut y = self.fused.forward_t(x, train);
        if let Some(project) = &self.project {
            y = project.forward_t(&y, train);
        }
        residual_add(y, x, self.residual, self.drop_prob, train)
    }
}

/// `stochastic_depth(y) + x` where the block has a residual, adding in place as torchvision does
/// (`y` is the block's own fresh output).
fn residual_add(y: Tensor, x: &Tensor, residual: bool, drop_prob: f64, train: bool) -> Tensor {
    if !residual {
        return y;
    }
    let mut y = stochastic_depth(&y, drop_prob, train);
    y += x;
    y
}

/// A block of either kind.
// Blocks are built once and stay in one Vec; boxing would only add an indirection per forward.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Block {
    MB(MBConv),
    Fused(FusedMBConv),
}

impl Block {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        match self {
            Block::MB(b) => b.forward_t(x, train),
            Block::Fused(b) => b.forward_t(x, train),
        }
    }
}

/// EfficientNet (V1 or V2) with torchvision's names.
#[derive(Debug)]
pub struct EfficientNet {
    stem: ConvNormAct,
    stages: Vec<Vec<Block>>,
    /// Index in `stages` of each pyramid level's stage.
    level_stages: Vec<usize>,
    head_conv: ConvNormAct,
    head_channels: i64,
    /// `None` for an encoder (`num_classes` 0).
    classifier: Option<nn::Linear>,
    dropout: f64,
    info: Vec<FeatureInfo>,
    cfg: EfficientNetConfig,
}

impl EfficientNet {
    /// Builds the network under `p`; an invalid block table is refused.
    pub fn new(p: &Path, cfg: &EfficientNetConfig, opts: &BackboneOptions) -> Result<Self> {
        cfg.validate()?;
        // timm's ports differ from torchvision's networks in padding and BatchNorm settings.
        let mut cfg = cfg.clone();
        cfg.tf_same_padding |= opts.tf_same_padding;
        match opts.norm {
            NormLayer::BatchNorm => {}
            NormLayer::BatchNormWith { eps, momentum } => {
                (cfg.bn_eps, cfg.bn_momentum) = (eps, momentum);
            }
            NormLayer::Frozen { .. } => {
                return Err(Error::Invalid(
                    "EfficientNet: frozen BatchNorm is not built for this family".into(),
                ))
            }
        }
        let cfg = &cfg;
        let f = p / "features";
        let (eps, mom) = (cfg.bn_eps, cfg.bn_momentum);
        let stem_c = cfg.channels(cfg.stages[0].c_in);
        let stem = ConvNormAct::new(
            &(&f / "0"),
            3,
            stem_c,
            Conv2dSpec::new(3).stride(2).tf_same(cfg.tf_same_padding),
            Activation::SiLU,
            eps,
            mom,
        );
        let total: usize = cfg.stages.iter().map(|s| cfg.repeats(s.repeats)).sum();
        let sd_prob = opts.stochastic_depth.unwrap_or(0.2);
        let mut block_id = 0usize;
        let mut stages = Vec::new();
        let mut strides = Vec::new();
        let mut stride_total = 2;
        for (s, spec) in cfg.stages.iter().enumerate() {
            let sp = &f / (s + 1).to_string();
            let (c_in, c_out) = (cfg.channels(spec.c_in), cfg.channels(spec.c_out));
            let mut blocks = Vec::new();
            for i in 0..cfg.repeats(spec.repeats) {
                let (bi, bs) = if i == 0 {
                    (c_in, spec.stride)
                } else {
                    (c_out, 1)
                };
                let drop = sd_prob * block_id as f64 / total as f64;
                let bp = &sp / i.to_string();
                blocks.push(match spec.block {
                    BlockKind::MBConv => {
                        Block::MB(MBConv::new(&bp, bi, c_out, spec, bs, drop, cfg))
                    }
                    BlockKind::FusedMBConv => {
                        Block::Fused(FusedMBConv::new(&bp, bi, c_out, spec, bs, drop, cfg))
                    }
                });
                block_id += 1;
            }
            stride_total *= spec.stride;
            strides.push((stride_total, c_out));
            stages.push(blocks);
        }
        // A level is the last stage at its stride (the stride-1 stages refine the one before).
        let level_stages: Vec<usize> = (0..strides.len())
            .filter(|&s| strides.get(s + 1).is_none_or(|next| next.0 != strides[s].0))
            .collect();
        let info = level_stages
            .iter()
            .map(|&s| FeatureInfo {
                module: format!("features.{}", s + 1),
                channels: strides[s].1,
                stride: strides[s].0,
            })
            .collect();
        let last_c = strides[strides.len() - 1].1;
        let head_c = cfg.last_channel.unwrap_or(4 * last_c);
        let head_conv = ConvNormAct::new(
            &(&f / (cfg.stages.len() + 1).to_string()),
            last_c,
            head_c,
            Conv2dSpec::new(1),
            Activation::SiLU,
            eps,
            mom,
        );
        // torchvision: weights uniform in ±1/√out_features, zero bias.
        let range = 1.0 / (opts.num_classes.max(1) as f64).sqrt();
        let linear_cfg = nn::LinearConfig {
            ws_init: nn::Init::Uniform {
                lo: -range,
                up: range,
            },
            bs_init: Some(nn::Init::Const(0.0)),
            bias: true,
        };
        let classifier = (opts.num_classes > 0)
            .then(|| nn::linear(p / "classifier" / "1", head_c, opts.num_classes, linear_cfg));
        let dropout = opts.dropout.unwrap_or(cfg.dropout);
        Ok(EfficientNet {
            stem,
            stages,
            level_stages,
            head_conv,
            head_channels: head_c,
            classifier,
            dropout,
            info,
            cfg: cfg.clone(),
        })
    }

    /// The stem and every stage, the last one's output returned; `levels` collects each
    /// pyramid level on the way.
    fn run_stages(&self, x: &Tensor, train: bool, mut levels: Option<&mut Vec<Tensor>>) -> Tensor {
        let mut y = self.stem.forward_t(x, train);
        for (s, blocks) in self.stages.iter().enumerate() {
            for b in blocks {
                y = b.forward_t(&y, train);
            }
            if let Some(out) = levels.as_deref_mut() {
                if self.level_stages.contains(&s) {
                    out.push(y.shallow_clone());
                }
            }
        }
        y
    }
}

impl Backbone for EfficientNet {
    fn forward_head(&self, pooled: &Tensor, train: bool) -> Tensor {
        match &self.classifier {
            Some(fc) => fc.forward(&pooled.dropout(self.dropout, train)),
            None => pooled.shallow_clone(),
        }
    }

    fn features(&self, x: &Tensor, train: bool) -> Vec<Tensor> {
        // The last stage is always a level, so nothing past the last level is computed.
        let mut out = Vec::with_capacity(self.level_stages.len());
        let _last = self.run_stages(x, train, Some(&mut out));
        out
    }

    fn final_features(&self, x: &Tensor, train: bool) -> Tensor {
        self.head_conv
            .forward_t(&self.run_stages(x, train, None), train)
    }

    fn final_channels(&self) -> i64 {
        self.head_channels
    }

    fn pooled_features(&self, x: &Tensor, train: bool) -> Tensor {
        global_pool(&self.final_features(x, train))
    }

    fn feature_info(&self) -> Vec<FeatureInfo> {
        self.info.clone()
    }

    fn pretrained_cfg(&self) -> PretrainedCfg {
        PretrainedCfg {
            input_size: self.cfg.crop,
            resize_size: self.cfg.resize,
            interpolation: self.cfg.interpolation,
            mean: self.cfg.mean,
            std: self.cfg.std,
        }
    }

    fn stages(&self) -> Vec<Stage> {
        let n = self.stages.len();
        let mut stages = vec![Stage::new("stem", &["features.0"])];
        for s in 1..=n {
            stages.push(Stage {
                name: format!("stage{s}"),
                prefixes: vec![format!("features.{s}")],
            });
        }
        stages.push(Stage {
            name: "head_conv".into(),
            prefixes: vec![format!("features.{}", n + 1)],
        });
        stages.push(Stage::new("head", &["classifier"]));
        stages
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    /// A tiny V2-style table: both block kinds, with and without expansion and residuals.
    fn tiny() -> EfficientNetConfig {
        EfficientNetConfig {
            stages: vec![
                fused(1, 3, 1, 8, 8, 2),
                fused(4, 3, 2, 8, 16, 2),
                mb(4, 3, 2, 16, 16, 2),
                mb(4, 3, 2, 16, 24, 1),
                mb(4, 3, 1, 24, 24, 2),
                mb(4, 3, 2, 24, 32, 1),
            ],
            last_channel: Some(64),
            ..EfficientNetConfig::by_name("efficientnet_v2_s").expect("v2_s")
        }
    }

    #[test]
    fn levels_are_the_last_stage_at_each_stride() {
        let vs = nn::VarStore::new(Device::Cpu);
        let m = EfficientNet::new(&vs.root(), &tiny(), &BackboneOptions::classes(0)).unwrap();
        let info = m.feature_info();
        let modules: Vec<&str> = info.iter().map(|f| f.module.as_str()).collect();
        assert_eq!(
            modules,
            [
                "features.1",
                "features.2",
                "features.3",
                "features.5",
                "features.6"
            ]
        );
        let strides: Vec<i64> = info.iter().map(|f| f.stride).collect();
        assert_eq!(strides, [2, 4, 8, 16, 32]);
        assert_eq!(m.stages()[7].prefixes, ["features.7"]);
        assert_eq!(m.final_channels(), 64);
    }

    #[test]
    fn trains_with_stochastic_depth_and_in_place_residuals() {
        let vs = nn::VarStore::new(Device::Cpu);
        let opts = BackboneOptions {
            stochastic_depth: Some(0.5),
            ..BackboneOptions::classes(3)
        };
        let m = EfficientNet::new(&vs.root(), &tiny(), &opts).unwrap();
        let x = Tensor::randn([4, 3, 32, 32], (Kind::Float, Device::Cpu));
        m.forward_t(&x, true).square().sum(Kind::Float).backward();
        let stem = &vs.variables()["features.0.0.weight"];
        assert!(bool::try_from(stem.grad().isfinite().all()).unwrap());
    }

    #[test]
    fn invalid_tables_are_refused() {
        let vs = nn::VarStore::new(Device::Cpu);
        let mut cfg = tiny();
        cfg.stages[1].stride = 3;
        let err = EfficientNet::new(&vs.root(), &cfg, &BackboneOptions::default());
        assert!(matches!(err, Err(Error::Invalid(_))));
    }

    #[test]
    fn v2_preprocessing_follows_the_weights() {
        let l = EfficientNetConfig::by_name("efficientnet_v2_l").unwrap();
        assert_eq!(
            (l.crop, l.resize, l.interpolation),
            (480, 480, Interpolation::Bicubic)
        );
        assert_eq!(l.mean, [0.5; 3]);
        let s = EfficientNetConfig::by_name("efficientnet_v2_s").unwrap();
        assert_eq!(
            (s.crop, s.resize, s.interpolation),
            (384, 384, Interpolation::Bilinear)
        );
    }
}
