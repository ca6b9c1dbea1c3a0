//! RegNetX and RegNetY (Radosavovic et al., "Designing Network Design Spaces", 2020) as torchvision
//! builds them: `stem` (3×3 stride-2 convolution, BatchNorm, ReLU, 32 channels), then
//! `trunk_output.block1` … `block4`, stages of residual bottleneck blocks
//! (`trunk_output.blockS.blockS-I`: `f.a` 1×1 → `f.b` grouped 3×3 carrying the stride → [`f.se`
//! squeeze-excite, RegNetY only] → `f.c` 1×1, and a `proj` 1×1 shortcut where the shape changes),
//! global average pooling and `fc`.
//!
//! The widths follow the paper's quantised linear rule, computed as torchvision computes it (in
//! float32 tensor arithmetic), then made compatible with the group width. Where torchvision
//! differs from the paper: the squeeze-excite width is a quarter of the block's *input* width
//! (the paper's RegNetY reduces the bottleneck width), and every convolution, including the
//! squeeze-excite ones, is drawn from a fan-out normal whatever its groups. torchvision's RegNet
//! has no dropout and no stochastic depth, so [`BackboneOptions::dropout`] and
//! [`BackboneOptions::stochastic_depth`] have nothing to set here.

use tch::nn::{self, Init, Module, Path};
use tch::{Device, Kind, Tensor};

use super::{
    global_pool, make_divisible, Backbone, BackboneOptions, FeatureInfo, Interpolation,
    PretrainedCfg, Stage, IMAGENET_MEAN, IMAGENET_STD,
};
use crate::error::{Error, Result};
use crate::nn::{Activation, Conv2dSpec, ConvNormAct, SqueezeExcitation};

/// BatchNorm eps and momentum of every RegNet normalisation.
const BN: (f64, f64) = (1e-5, 0.1);

/// Channels of the stem.
const STEM_WIDTH: i64 = 32;

/// A RegNet design: the parameters of torchvision's `BlockParams.from_init_params`.
#[derive(Debug, Clone, PartialEq)]
pub struct RegNetConfig {
    /// Total number of blocks over all stages.
    pub depth: i64,
    /// Width of the first block (a multiple of 8).
    pub w_0: i64,
    /// Slope of the linear width ramp (≥ 0).
    pub w_a: f64,
    /// Ratio between the widths of consecutive stages (> 1), the log-space quantisation step.
    pub w_m: f64,
    /// Channels per group of the grouped 3×3 convolution.
    pub group_width: i64,
    /// Bottleneck width over block width (1.0 in every torchvision variant).
    pub bottleneck_multiplier: f64,
    /// Squeeze-excite width over the block's input width: `Some(0.25)` for RegNetY, `None`
    /// (no squeeze-excite) for RegNetX.
    pub se_ratio: Option<f64>,
    /// Preprocessing of the variant's pretrained weights.
    pub pretrained: PretrainedCfg,
}

/// One stage of a RegNet, as [`RegNetConfig::stages`] computes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RegNetStage {
    /// Number of blocks.
    pub depth: i64,
    /// Output width of every block.
    pub width: i64,
    /// Channels per group of the 3×3 convolutions.
    pub group_width: i64,
    /// Bottleneck width over block width.
    pub bottleneck_multiplier: f64,
    /// Stride of the first block.
    pub stride: i64,
}

impl RegNetConfig {
    /// The torchvision variants `regnet_y_400mf` … `regnet_y_128gf` and `regnet_x_400mf` …
    /// `regnet_x_32gf`.
    pub fn by_name(name: &str) -> Option<Self> {
        let (depth, w_0, w_a, w_m, group_width, se) = match name {
            "regnet_y_400mf" => (16, 48, 27.89, 2.09, 8, true),
            "regnet_y_800mf" => (14, 56, 38.84, 2.4, 16, true),
            "regnet_y_1_6gf" => (27, 48, 20.71, 2.65, 24, true),
            "regnet_y_3_2gf" => (21, 80, 42.63, 2.66, 24, true),
            "regnet_y_8gf" => (17, 192, 76.82, 2.19, 56, true),
            "regnet_y_16gf" => (18, 200, 106.23, 2.48, 112, true),
            "regnet_y_32gf" => (20, 232, 115.89, 2.53, 232, true),
            "regnet_y_128gf" => (27, 456, 160.83, 2.52, 264, true),
            "regnet_x_400mf" => (22, 24, 24.48, 2.54, 16, false),
            "regnet_x_800mf" => (16, 56, 35.73, 2.28, 16, false),
            "regnet_x_1_6gf" => (18, 80, 34.01, 2.25, 24, false),
            "regnet_x_3_2gf" => (25, 88, 26.31, 2.25, 48, false),
            "regnet_x_8gf" => (23, 80, 49.56, 2.88, 120, false),
            "regnet_x_16gf" => (22, 216, 55.59, 2.1, 128, false),
            "regnet_x_32gf" => (23, 320, 69.86, 2.0, 168, false),
            _ => return None,
        };
        // RegNetY-128GF has no ImageNet-1K-only weights: its default (SWAG, fine-tuned end to
        // end) is evaluated at 384 pixels, bicubic.
        let pretrained = if name == "regnet_y_128gf" {
            PretrainedCfg {
                input_size: 384,
                resize_size: 384,
                interpolation: Interpolation::Bicubic,
                mean: IMAGENET_MEAN,
                std: IMAGENET_STD,
            }
        } else {
            PretrainedCfg::imagenet()
        };
        Some(RegNetConfig {
            depth,
            w_0,
            w_a,
            w_m,
            group_width,
            bottleneck_multiplier: 1.0,
            se_ratio: se.then_some(0.25),
            pretrained,
        })
    }

    /// The per-stage settings (torchvision's `BlockParams.from_init_params`): block widths
    /// `w_0 · w_m^round(log(1 + j·w_a/w_0) / log w_m)` quantised to multiples of 8, runs of equal
    /// width forming the stages, each stride 2, then each width adjusted so that its bottleneck
    /// splits into whole groups.
    pub fn stages(&self) -> Result<Vec<RegNetStage>> {
        let invalid = |why: &str| Error::Invalid(format!("RegNet {self:?}: {why}"));
        if !(self.w_a >= 0.0 && self.w_0 > 0 && self.w_m > 1.0 && self.w_0 % 8 == 0) {
            return Err(invalid(
                "needs w_a >= 0, w_0 > 0 a multiple of 8 and w_m > 1",
            ));
        }
        if !(self.depth >= 1 && self.group_width >= 1 && self.bottleneck_multiplier > 0.0) {
            return Err(invalid(
                "needs depth >= 1, group_width >= 1 and bottleneck_multiplier > 0",
            ));
        }
        const QUANT: i64 = 8;
        // torchvision rounds in float32 tensor arithmetic; the same libtorch operations give the
        // same widths (f64 arithmetic would round some halves the other way).
        let widths_cont = Tensor::arange(self.depth, (Kind::Int64, Device::Cpu))
            .g_mul_scalar(self.w_a)
            .g_add_scalar(self.w_0);
        let capacity = widths_cont
            .g_div_scalar(self.w_0)
            .log()
            .g_div_scalar(self.w_m.ln())
            .round();
        let block_widths = Tensor::pow_scalar(self.w_m, &capacity)
            .g_mul_scalar(self.w_0)
            .g_div_scalar(QUANT)
            .round()
            .g_mul_scalar(QUANT)
            .to_kind(Kind::Int);
        let block_widths = Vec::<i32>::try_from(&block_widths)
            .map_err(|e| Error::Invalid(format!("RegNet block widths: {e}")))?;
        // Runs of equal width are the stages.
        let mut runs: Vec<(i64, i64)> = Vec::new();
        for &w in &block_widths {
            match runs.last_mut() {
                Some((width, n)) if *width == i64::from(w) => *n += 1,
                _ => runs.push((i64::from(w), 1)),
            }
        }
        let b = self.bottleneck_multiplier;
        runs.into_iter()
            .map(|(width, depth)| {
                // _adjust_widths_groups_compatibilty: a group never wider than the bottleneck,
                // the bottleneck a multiple of the group.
                let w_bot = (width as f64 * b) as i64;
                if w_bot < 1 {
                    return Err(invalid("a bottleneck narrower than one channel"));
                }
                let group_width = self.group_width.min(w_bot);
                let w_bot = make_divisible(w_bot as f64, group_width);
                Ok(RegNetStage {
                    depth,
                    width: (w_bot as f64 / b) as i64,
                    group_width,
                    bottleneck_multiplier: b,
                    stride: 2,
                })
            })
            .collect()
    }
}

/// torchvision's `ResBottleneckBlock` (`trunk_output.blockS.blockS-I`): `relu(shortcut(x) + f(x))`,
/// `f` = `f.a` 1×1 → `f.b` grouped 3×3 (the stride) → [`f.se`] → `f.c` 1×1 without activation.
#[derive(Debug)]
struct ResBottleneckBlock {
    /// 1×1 convolution and BatchNorm on the shortcut where width or resolution changes.
    proj: Option<ConvNormAct>,
    a: ConvNormAct,
    b: ConvNormAct,
    se: Option<SqueezeExcitation>,
    c: ConvNormAct,
}

impl ResBottleneckBlock {
    fn new(
        p: &Path,
        width_in: i64,
        width_out: i64,
        stride: i64,
        stage: &RegNetStage,
        se_ratio: Option<f64>,
    ) -> Result<Self> {
        let (eps, mom) = BN;
        // Python's round() on the float product: halves to even.
        let w_b = (width_out as f64 * stage.bottleneck_multiplier).round_ties_even() as i64;
        let groups = w_b / stage.group_width;
        if groups < 1 || w_b % groups != 0 {
            return Err(Error::Invalid(format!(
                "RegNet block {}: bottleneck width {w_b} does not split into groups of {}",
                p.components().collect::<Vec<_>>().join("."),
                stage.group_width
            )));
        }
        let proj = (width_in != width_out || stride != 1).then(|| {
            ConvNormAct::new(
                &(p / "proj"),
                width_in,
                width_out,
                Conv2dSpec::new(1).stride(stride),
                Activation::None,
                eps,
                mom,
            )
        });
        let f = p / "f";
        let unit = |name: &str, c_in, c_out, spec, act| {
            ConvNormAct::new(&(&f / name), c_in, c_out, spec, act, eps, mom)
        };
        let a = unit("a", width_in, w_b, Conv2dSpec::new(1), Activation::ReLU);
        let b = unit(
            "b",
            w_b,
            w_b,
            Conv2dSpec::new(3).stride(stride).groups(groups),
            Activation::ReLU,
        );
        let se = match se_ratio.filter(|&r| r > 0.0) {
            Some(ratio) => {
                // The squeeze width is relative to the block's input, not its bottleneck.
                let squeeze = (ratio * width_in as f64).round_ties_even() as i64;
                if squeeze < 1 {
                    return Err(Error::Invalid(format!(
                        "RegNet block {}: se_ratio {ratio} leaves no squeeze channel",
                        p.components().collect::<Vec<_>>().join(".")
                    )));
                }
                let sp = &f / "se";
                let se = SqueezeExcitation::new(&sp, w_b, squeeze, Activation::ReLU);
                // torchvision's init re-draws convolution weights only: the squeeze-excite
                // biases keep nn.Conv2d's default, uniform in ±1/√fan_in.
                for (name, fan_in) in [("fc1", w_b), ("fc2", squeeze)] {
                    if let Some(bias) = (&sp / name).get("bias") {
                        let bound = 1.0 / (fan_in as f64).sqrt();
                        tch::no_grad(|| {
                            let _ = bias.shallow_clone().uniform_(-bound, bound);
                        });
                    }
                }
                Some(se)
            }
            None => None,
        };
        let c = unit("c", w_b, width_out, Conv2dSpec::new(1), Activation::None);
        Ok(ResBottleneckBlock { proj, a, b, se, c })
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut y = self.b.forward_t(&self.a.forward_t(x, train), train);
        if let Some(se) = &self.se {
            y = se.forward(&y);
        }
        let mut y = self.c.forward_t(&y, train);
        // In place, as torchvision's add and ReLU(inplace=True): the BatchNorm's fresh output is
        // not needed by its backward pass.
        match &self.proj {
            Some(proj) => y += proj.forward_t(x, train),
            None => y += x,
        }
        let _ = y.relu_();
        y
    }
}

/// A RegNet with torchvision's state_dict names (`stem.0`, `trunk_output.block1.block1-0.f.a.0`,
/// …, `fc`).
#[derive(Debug)]
pub struct RegNet {
    stem: ConvNormAct,
    stages: Vec<Vec<ResBottleneckBlock>>,
    /// The classifier; `None` for an encoder (`num_classes` 0), whose head returns the pooled
    /// features.
    fc: Option<nn::Linear>,
    info: Vec<FeatureInfo>,
    pretrained: PretrainedCfg,
}

impl RegNet {
    /// Builds the network under `p`; an inconsistent configuration is
    /// [`Error::Invalid`](crate::error::Error::Invalid).
    pub fn new(p: &Path, cfg: &RegNetConfig, opts: &BackboneOptions) -> Result<Self> {
        let (eps, mom) = BN;
        let params = cfg.stages()?;
        let stem = ConvNormAct::new(
            &(p / "stem"),
            3,
            STEM_WIDTH,
            Conv2dSpec::new(3).stride(2),
            Activation::ReLU,
            eps,
            mom,
        );
        let mut info = vec![FeatureInfo {
            module: "stem".into(),
            channels: STEM_WIDTH,
            stride: 2,
        }];
        let trunk = p / "trunk_output";
        let (mut width_in, mut reduction) = (STEM_WIDTH, 2);
        let mut stages = Vec::with_capacity(params.len());
        for (s, stage) in params.iter().enumerate() {
            let name = format!("block{}", s + 1);
            let sp = &trunk / name.as_str();
            let blocks = (0..stage.depth)
                .map(|i| {
                    let (c_in, stride) = if i == 0 {
                        (width_in, stage.stride)
                    } else {
                        (stage.width, 1)
                    };
                    ResBottleneckBlock::new(
                        &(&sp / format!("{name}-{i}")),
                        c_in,
                        stage.width,
                        stride,
                        stage,
                        cfg.se_ratio,
                    )
                })
                .collect::<Result<Vec<_>>>()?;
            stages.push(blocks);
            width_in = stage.width;
            reduction *= stage.stride;
            info.push(FeatureInfo {
                module: format!("trunk_output.{name}"),
                channels: stage.width,
                stride: reduction,
            });
        }
        let linear_cfg = nn::LinearConfig {
            ws_init: Init::Randn {
                mean: 0.0,
                stdev: 0.01,
            },
            bs_init: Some(Init::Const(0.0)),
            bias: true,
        };
        let fc = (opts.num_classes > 0)
            .then(|| nn::linear(p / "fc", width_in, opts.num_classes, linear_cfg));
        Ok(RegNet {
            stem,
            stages,
            fc,
            info,
            pretrained: cfg.pretrained,
        })
    }
}

impl Backbone for RegNet {
    fn forward_head(&self, pooled: &Tensor, _train: bool) -> Tensor {
        match &self.fc {
            Some(fc) => fc.forward(pooled),
            None => pooled.shallow_clone(),
        }
    }

    fn features(&self, x: &Tensor, train: bool) -> Vec<Tensor> {
        let mut y = self.stem.forward_t(x, train);
        let mut out = Vec::with_capacity(self.stages.len() + 1);
        out.push(y.shallow_clone());
        for blocks in &self.stages {
            for block in blocks {
                y = block.forward_t(&y, train);
            }
            out.push(y.shallow_clone());
        }
        out
    }

    fn pooled_features(&self, x: &Tensor, train: bool) -> Tensor {
        global_pool(&self.final_features(x, train))
    }

    fn feature_info(&self) -> Vec<FeatureInfo> {
        self.info.clone()
    }

    fn pretrained_cfg(&self) -> PretrainedCfg {
        self.pretrained
    }

    fn stages(&self) -> Vec<Stage> {
        let mut stages = vec![Stage::new("stem", &["stem"])];
        for s in 1..=self.stages.len() {
            stages.push(Stage {
                name: format!("block{s}"),
                prefixes: vec![format!("trunk_output.block{s}")],
            });
        }
        stages.push(Stage::new("head", &["fc"]));
        stages
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_widths_match_torchvision() {
        // torchvision's BlockParams for these variants (depths, widths, group widths).
        for (name, depths, widths, groups) in [
            (
                "regnet_y_400mf",
                [1, 3, 6, 6],
                [48, 104, 208, 440],
                [8, 8, 8, 8],
            ),
            (
                "regnet_y_128gf",
                [2, 7, 17, 1],
                [528, 1056, 2904, 7392],
                [264, 264, 264, 264],
            ),
            (
                "regnet_x_8gf",
                [2, 5, 15, 1],
                [80, 240, 720, 1920],
                [80, 120, 120, 120],
            ),
        ] {
            let stages = RegNetConfig::by_name(name).unwrap().stages().unwrap();
            let got: Vec<_> = stages
                .iter()
                .map(|s| (s.depth, s.width, s.group_width))
                .collect();
            let want: Vec<_> = (0..4).map(|i| (depths[i], widths[i], groups[i])).collect();
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn invalid_settings_are_refused() {
        let mut cfg = RegNetConfig::by_name("regnet_x_400mf").unwrap();
        cfg.w_0 = 20;
        assert!(cfg.stages().is_err());
        cfg.w_0 = 24;
        cfg.w_m = 1.0;
        assert!(cfg.stages().is_err());
    }
}
