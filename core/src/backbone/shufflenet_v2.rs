//! ShuffleNetV2 (Ma et al., "ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture
//! Design", 2018) with torchvision's names: `conv1` (conv, BatchNorm, ReLU), `maxpool`,
//! `stage2`…`stage4` of inverted-residual units (`stageN.i.branch1.*`, `stageN.i.branch2.*`),
//! `conv5` and `fc`.
//!
//! As in torchvision, and unlike the paper's table 5, there is no dropout before `fc`, and
//! every layer keeps PyTorch's default initialisation (Kaiming-uniform with a = √5, BatchNorm
//! at (1, 0)). The concatenation followed by the two-group channel shuffle is computed here as
//! one interleaving stack, which gives the same tensor with one copy instead of two.

use tch::nn::init::{FanInOut, NonLinearity, NormalOrUniform};
use tch::nn::{self, Init, Module, Path};
use tch::Tensor;

use super::{Backbone, BackboneOptions, FeatureInfo, PretrainedCfg, Stage};
use crate::error::{Error, Result};
use crate::nn::BatchNorm2d;

/// A ShuffleNetV2 width: the units per stage and the channels of `conv1`, the three stages and
/// `conv5`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShuffleNetV2Config {
    /// Inverted-residual units in `stage2`, `stage3`, `stage4` (the first one downsamples).
    pub repeats: [usize; 3],
    /// Output channels of `conv1`, `stage2`, `stage3`, `stage4` and `conv5`; the stages' must
    /// be even (each unit splits its channels in two branches).
    pub channels: [i64; 5],
    /// Shorter side the pretrained weights' evaluation resizes to before the 224 crop.
    pub resize_size: i64,
}

impl ShuffleNetV2Config {
    /// `shufflenet_v2_x0_5`, `shufflenet_v2_x1_0`, `shufflenet_v2_x1_5` and
    /// `shufflenet_v2_x2_0` (the paper's table 5).
    pub fn by_name(name: &str) -> Option<Self> {
        // The x1.5 and x2.0 weights come from torchvision's newer recipe, evaluated at resize
        // 232; the two ported ones at 256.
        let (channels, resize_size) = match name {
            "shufflenet_v2_x0_5" => ([24, 48, 96, 192, 1024], 256),
            "shufflenet_v2_x1_0" => ([24, 116, 232, 464, 1024], 256),
            "shufflenet_v2_x1_5" => ([24, 176, 352, 704, 1024], 232),
            "shufflenet_v2_x2_0" => ([24, 244, 488, 976, 2048], 232),
            _ => return None,
        };
        Some(ShuffleNetV2Config {
            repeats: [4, 8, 4],
            channels,
            resize_size,
        })
    }
}

/// A bias-free convolution with PyTorch's default initialisation (torchvision's ShuffleNetV2
/// initialises nothing itself).
fn conv(p: &Path, c_in: i64, c_out: i64, kernel: i64, stride: i64, groups: i64) -> nn::Conv2D {
    let cfg = nn::ConvConfig {
        stride,
        padding: (kernel - 1) / 2,
        groups,
        bias: false,
        // Kaiming-uniform with a = √5: gain √(1/3), so the bound is 1/√fan_in.
        ws_init: Init::Kaiming {
            dist: NormalOrUniform::Uniform,
            fan: FanInOut::FanIn,
            non_linearity: NonLinearity::ExplicitGain(1.0 / 3f64.sqrt()),
        },
        ..Default::default()
    };
    nn::conv2d(p, c_in, c_out, kernel, cfg)
}

/// A convolution at `<seq>.<i>` and its BatchNorm at `<seq>.<i+1>`.
#[derive(Debug)]
struct ConvBn {
    conv: nn::Conv2D,
    bn: BatchNorm2d,
}

impl ConvBn {
    /// A dense convolution (`conv1`, `conv5` and the units' 1×1s).
    fn dense(seq: &Path, i: usize, c_in: i64, c_out: i64, kernel: i64, stride: i64) -> Self {
        Self::with_groups(seq, i, c_in, c_out, kernel, stride, 1)
    }

    /// The units' depthwise 3×3.
    fn depthwise(seq: &Path, i: usize, channels: i64, stride: i64) -> Self {
        Self::with_groups(seq, i, channels, channels, 3, stride, channels)
    }

    fn with_groups(
        seq: &Path,
        i: usize,
        c_in: i64,
        c_out: i64,
        kernel: i64,
        stride: i64,
        groups: i64,
    ) -> Self {
        ConvBn {
            conv: conv(&(seq / i.to_string()), c_in, c_out, kernel, stride, groups),
            bn: BatchNorm2d::new(&(seq / (i + 1).to_string()), c_out),
        }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.bn.forward_t(&self.conv.forward(x), train)
    }
}

/// ShuffleNetV2's unit: with stride 1, half the channels pass through and `branch2` transforms
/// the other half; with stride 2, `branch1` (depthwise 3×3, 1×1) and `branch2` (1×1, depthwise
/// 3×3, 1×1) both see the whole input. The halves are then interleaved (the channel shuffle).
#[derive(Debug)]
struct InvertedResidual {
    /// `branch1.{0,1}` depthwise and `branch1.{2,3}` pointwise; only in stride-2 units.
    branch1: Option<[ConvBn; 2]>,
    /// `branch2.{0,1}` pointwise, `{3,4}` depthwise, `{5,6}` pointwise.
    branch2: [ConvBn; 3],
}

impl InvertedResidual {
    fn new(p: &Path, c_in: i64, c_out: i64, stride: i64) -> Self {
        let half = c_out / 2;
        let b1 = p / "branch1";
        let branch1 = (stride > 1).then(|| {
            [
                ConvBn::depthwise(&b1, 0, c_in, stride),
                ConvBn::dense(&b1, 2, c_in, half, 1, 1),
            ]
        });
        let b2 = p / "branch2";
        let b2_in = if stride > 1 { c_in } else { half };
        let branch2 = [
            ConvBn::dense(&b2, 0, b2_in, half, 1, 1),
            ConvBn::depthwise(&b2, 3, half, stride),
            ConvBn::dense(&b2, 5, half, half, 1, 1),
        ];
        InvertedResidual { branch1, branch2 }
    }

    fn branch2(&self, x: &Tensor, train: bool) -> Tensor {
        let [pw1, dw, pw2] = &self.branch2;
        let y = pw1.forward_t(x, train).relu_();
        let y = dw.forward_t(&y, train);
        pw2.forward_t(&y, train).relu_()
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let (left, right) = match &self.branch1 {
            Some([dw, pw]) => {
                let l = pw.forward_t(&dw.forward_t(x, train), train).relu_();
                (l, self.branch2(x, train))
            }
            None => {
                let halves = x.chunk(2, 1);
                (halves[0].shallow_clone(), self.branch2(&halves[1], train))
            }
        };
        // cat([left, right], 1) then a 2-group shuffle puts left[i] at channel 2i and right[i]
        // at 2i + 1: exactly stacking them on a new axis after the channels.
        let s = left.size();
        Tensor::stack(&[left, right], 2).view([s[0], 2 * s[1], s[2], s[3]])
    }
}

/// ShuffleNetV2 with torchvision's names. Pyramid levels: `conv1` (stride 2), `maxpool` (4),
/// `stage2` (8), `stage3` (16) and `conv5` (32, after `stage4`).
#[derive(Debug)]
pub struct ShuffleNetV2 {
    conv1: ConvBn,
    stages: [Vec<InvertedResidual>; 3],
    conv5: ConvBn,
    /// `None` for an encoder (`num_classes` 0).
    fc: Option<nn::Linear>,
    cfg: ShuffleNetV2Config,
}

impl ShuffleNetV2 {
    /// Builds the network under `p`. ShuffleNetV2 has neither classifier dropout nor stochastic
    /// depth: those options are ignored. A configuration with an odd or non-positive stage
    /// width, or an empty stage, is refused.
    pub fn new(p: &Path, cfg: &ShuffleNetV2Config, opts: &BackboneOptions) -> Result<Self> {
        if cfg.channels.iter().any(|&c| c <= 0)
            || cfg.channels[1..4].iter().any(|c| c % 2 != 0)
            || cfg.repeats.contains(&0)
        {
            return Err(Error::Invalid(format!(
                "ShuffleNetV2: channels must be positive with even stage widths and every stage \
                 needs a unit, got channels {:?}, repeats {:?}",
                cfg.channels, cfg.repeats
            )));
        }
        let ch = cfg.channels;
        let conv1 = ConvBn::dense(&(p / "conv1"), 0, 3, ch[0], 3, 2);
        let mut c_in = ch[0];
        let stages = [0, 1, 2].map(|s| {
            let sp = p / format!("stage{}", s + 2);
            let c_out = ch[s + 1];
            let mut units = vec![InvertedResidual::new(&(&sp / "0"), c_in, c_out, 2)];
            for i in 1..cfg.repeats[s] {
                units.push(InvertedResidual::new(
                    &(&sp / i.to_string()),
                    c_out,
                    c_out,
                    1,
                ));
            }
            c_in = c_out;
            units
        });
        let conv5 = ConvBn::dense(&(p / "conv5"), 0, ch[3], ch[4], 1, 1);
        let fc =
            (opts.num_classes > 0).then(|| crate::nn::linear(&(p / "fc"), ch[4], opts.num_classes));
        Ok(ShuffleNetV2 {
            conv1,
            stages,
            conv5,
            fc,
            cfg: cfg.clone(),
        })
    }

    fn stage(&self, s: usize, x: &Tensor, train: bool) -> Tensor {
        let mut y = x.shallow_clone();
        for unit in &self.stages[s] {
            y = unit.forward_t(&y, train);
        }
        y
    }
}

impl Backbone for ShuffleNetV2 {
    fn forward_head(&self, pooled: &Tensor, _train: bool) -> Tensor {
        match &self.fc {
            Some(fc) => fc.forward(pooled),
            None => pooled.shallow_clone(),
        }
    }

    fn features(&self, x: &Tensor, train: bool) -> Vec<Tensor> {
        let c1 = self.conv1.forward_t(x, train).relu_();
        let pooled = c1.max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
        let s2 = self.stage(0, &pooled, train);
        let s3 = self.stage(1, &s2, train);
        let s4 = self.stage(2, &s3, train);
        let c5 = self.conv5.forward_t(&s4, train).relu_();
        vec![c1, pooled, s2, s3, c5]
    }

    /// `conv5`'s output averaged over space (torchvision's `x.mean([2, 3])`).
    fn pooled_features(&self, x: &Tensor, train: bool) -> Tensor {
        let last = self.final_features(x, train);
        last.mean_dim(&[2i64, 3][..], false, None)
    }

    fn feature_info(&self) -> Vec<FeatureInfo> {
        let ch = self.cfg.channels;
        [
            ("conv1", ch[0], 2),
            ("maxpool", ch[0], 4),
            ("stage2", ch[1], 8),
            ("stage3", ch[2], 16),
            ("conv5", ch[4], 32),
        ]
        .into_iter()
        .map(|(module, channels, stride)| FeatureInfo {
            module: module.into(),
            channels,
            stride,
        })
        .collect()
    }

    fn pretrained_cfg(&self) -> PretrainedCfg {
        PretrainedCfg {
            resize_size: self.cfg.resize_size,
            ..PretrainedCfg::imagenet()
        }
    }

    fn stages(&self) -> Vec<Stage> {
        vec![
            Stage::new("stem", &["conv1"]),
            Stage::new("stage2", &["stage2"]),
            Stage::new("stage3", &["stage3"]),
            Stage::new("stage4", &["stage4", "conv5"]),
            Stage::new("head", &["fc"]),
        ]
    }
}
