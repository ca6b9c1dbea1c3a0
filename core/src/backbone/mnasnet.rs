//! MNASNet (Tan et al., "MnasNet: Platform-Aware Neural Architecture Search for Mobile", 2019),
//! the B1 variant without squeeze-excite, at depth multipliers 0.5, 0.75, 1.0 and 1.3, with
//! torchvision's names: one flat `layers` Sequential holding the stem (`layers.0..=7`: 3×3 conv,
//! 3×3 depthwise, 1×1 projection, as sibling conv/BatchNorm modules), six stacks of inverted
//! residuals (`layers.8..=13`, each block's own `layers.0..=7`), and the 1×1 head convolution
//! (`layers.14`, `layers.15`); `classifier.1` the linear layer.
//!
//! Where torchvision differs from the paper: the multiplier scales every channel count including
//! the stem's (torchvision's version 2 of the module; its version-1 checkpoints kept a 32/16 stem
//! below α = 1, which this port does not rebuild), rounded to multiples of 8; BatchNorm keeps the
//! TF decay 0.9997 (momentum 3e-4 in PyTorch's convention).

use tch::nn::{self, Module, Path};
use tch::Tensor;

use super::{
    global_pool, make_divisible, Backbone, BackboneOptions, FeatureInfo, PretrainedCfg, Stage,
};
use crate::error::{Error, Result};
use crate::nn::{Activation, Conv2dSpec, ConvNormAct};

/// BatchNorm momentum in PyTorch's convention: TensorFlow's decay 0.9997.
const BN_MOMENTUM: f64 = 1.0 - 0.9997;

/// Channel counts of the unscaled network: stem, stem projection, then each stack's output.
const DEPTHS: [i64; 8] = [32, 16, 24, 40, 80, 96, 192, 320];

/// The stacks `layers.8..=13`: index into [`DEPTHS`] of the output channels, kernel, first
/// stride, expansion, repeats.
const STACKS: [(usize, i64, i64, i64, usize); 6] = [
    (2, 3, 2, 3, 3),
    (3, 5, 2, 3, 3),
    (4, 5, 2, 6, 3),
    (5, 3, 1, 6, 2),
    (6, 5, 2, 6, 4),
    (7, 3, 1, 6, 1),
];

/// Index in `layers` of the first stack.
const FIRST_STACK: usize = 8;

/// Stacks (indices into [`STACKS`]) whose outputs are pyramid levels: the last stack at each
/// stride (8, 16, 32 after the stride-4 one); the stem's `layers.7` is the stride-2 level.
const LEVEL_STACKS: [usize; 4] = [0, 1, 3, 5];

/// Channels of the head convolution.
const HEAD_CHANNELS: i64 = 1280;

/// A depth multiplier and the preprocessing of its weights.
#[derive(Debug, Clone, PartialEq)]
pub struct MnasNetConfig {
    /// Depth (channel) multiplier α.
    pub alpha: f64,
    /// Classifier dropout.
    pub dropout: f64,
    /// Shorter side before the 224 centre crop (torchvision's weights' transforms).
    pub resize: i64,
}

impl MnasNetConfig {
    /// `mnasnet0_5`, `mnasnet0_75`, `mnasnet1_0`, `mnasnet1_3` as torchvision defines them.
    pub fn by_name(name: &str) -> Option<Self> {
        // The 0.75 and 1.3 weights were trained with torchvision's newer recipe (resize 232).
        let (alpha, resize) = match name {
            "mnasnet0_5" => (0.5, 256),
            "mnasnet0_75" => (0.75, 232),
            "mnasnet1_0" => (1.0, 256),
            "mnasnet1_3" => (1.3, 232),
            _ => return None,
        };
        Some(MnasNetConfig {
            alpha,
            dropout: 0.2,
            resize,
        })
    }

    /// torchvision's `_get_depths`: each of [`DEPTHS`] scaled by α and rounded to a multiple of
    /// 8 by `_round_to_multiple_of` with its round-up bias 0.9, which is `_make_divisible`.
    fn depths(&self) -> [i64; 8] {
        DEPTHS.map(|d| make_divisible(d as f64 * self.alpha, 8))
    }
}

/// A `conv` then `bn` pair at indices `i`, `i + 1` of a torchvision Sequential `p`.
fn conv_bn(
    p: &Path,
    i: usize,
    c_in: i64,
    c_out: i64,
    spec: Conv2dSpec,
    act: Activation,
) -> ConvNormAct {
    ConvNormAct::at(
        &(p / i.to_string()),
        &(p / (i + 1).to_string()),
        c_in,
        c_out,
        spec,
        act,
        1e-5,
        BN_MOMENTUM,
    )
}

/// torchvision's `_InvertedResidual` (`layers.0..=7`): 1×1 expansion, k×k depthwise (both with
/// ReLU), linear 1×1 projection, and an identity shortcut (no stochastic depth) where shapes allow.
#[derive(Debug)]
struct InvertedResidual {
    expand: ConvNormAct,
    depthwise: ConvNormAct,
    project: ConvNormAct,
    residual: bool,
}

impl InvertedResidual {
    fn new(p: &Path, c_in: i64, c_out: i64, kernel: i64, stride: i64, expansion: i64) -> Self {
        let l = p / "layers";
        let mid = c_in * expansion;
        InvertedResidual {
            expand: conv_bn(&l, 0, c_in, mid, Conv2dSpec::new(1), Activation::ReLU),
            depthwise: conv_bn(
                &l,
                3,
                mid,
                mid,
                Conv2dSpec::new(kernel).stride(stride).groups(mid),
                Activation::ReLU,
            ),
            project: conv_bn(&l, 6, mid, c_out, Conv2dSpec::new(1), Activation::None),
            residual: stride == 1 && c_in == c_out,
        }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let y = self.expand.forward_t(x, train);
        let y = self.depthwise.forward_t(&y, train);
        let mut y = self.project.forward_t(&y, train);
        if self.residual {
            // The projection's output is this block's own, so the shortcut adds in place.
            y += x;
        }
        y
    }
}

/// MNASNet with torchvision's names.
#[derive(Debug)]
pub struct MnasNet {
    stem: [ConvNormAct; 3],
    stacks: Vec<Vec<InvertedResidual>>,
    head_conv: ConvNormAct,
    /// `None` for an encoder (`num_classes` 0).
    classifier: Option<nn::Linear>,
    dropout: f64,
    info: Vec<FeatureInfo>,
    cfg: MnasNetConfig,
}

impl MnasNet {
    /// Builds the network under `p`; a multiplier that is not positive is refused.
    pub fn new(p: &Path, cfg: &MnasNetConfig, opts: &BackboneOptions) -> Result<Self> {
        if !(cfg.alpha > 0.0 && cfg.alpha.is_finite()) {
            return Err(Error::Invalid(format!(
                "MNASNet: the depth multiplier must be positive, got {}",
                cfg.alpha
            )));
        }
        let d = cfg.depths();
        let l = p / "layers";
        let stem = [
            conv_bn(
                &l,
                0,
                3,
                d[0],
                Conv2dSpec::new(3).stride(2),
                Activation::ReLU,
            ),
            conv_bn(
                &l,
                3,
                d[0],
                d[0],
                Conv2dSpec::new(3).groups(d[0]),
                Activation::ReLU,
            ),
            conv_bn(&l, 6, d[0], d[1], Conv2dSpec::new(1), Activation::None),
        ];
        let mut info = vec![FeatureInfo {
            module: "layers.7".into(),
            channels: d[1],
            stride: 2,
        }];
        let mut stacks = Vec::with_capacity(STACKS.len());
        let (mut c_in, mut stride_total) = (d[1], 2);
        for (s, &(out, kernel, stride, expansion, repeats)) in STACKS.iter().enumerate() {
            let sp = &l / (FIRST_STACK + s).to_string();
            let c_out = d[out];
            let blocks = (0..repeats)
                .map(|i| {
                    let (bi, bs) = if i == 0 { (c_in, stride) } else { (c_out, 1) };
                    InvertedResidual::new(&(&sp / i.to_string()), bi, c_out, kernel, bs, expansion)
                })
                .collect();
            stacks.push(blocks);
            stride_total *= stride;
            if LEVEL_STACKS.contains(&s) {
                info.push(FeatureInfo {
                    module: format!("layers.{}", FIRST_STACK + s),
                    channels: c_out,
                    stride: stride_total,
                });
            }
            c_in = c_out;
        }
        let head_index = FIRST_STACK + STACKS.len();
        let head_conv = conv_bn(
            &l,
            head_index,
            c_in,
            HEAD_CHANNELS,
            Conv2dSpec::new(1),
            Activation::ReLU,
        );
        // torchvision: Kaiming-uniform over fan-out with the sigmoid gain (1), i.e. uniform in
        // ±√(3 / num_classes), and zero bias.
        let bound = (3.0 / opts.num_classes.max(1) as f64).sqrt();
        let linear_cfg = nn::LinearConfig {
            ws_init: nn::Init::Uniform {
                lo: -bound,
                up: bound,
            },
            bs_init: Some(nn::Init::Const(0.0)),
            bias: true,
        };
        let classifier = (opts.num_classes > 0).then(|| {
            nn::linear(
                p / "classifier" / "1",
                HEAD_CHANNELS,
                opts.num_classes,
                linear_cfg,
            )
        });
        Ok(MnasNet {
            stem,
            stacks,
            head_conv,
            classifier,
            dropout: opts.dropout.unwrap_or(cfg.dropout),
            info,
            cfg: cfg.clone(),
        })
    }

    /// The stem and every stack, the last one's output returned; `levels` collects each pyramid
    /// level on the way.
    fn run_layers(&self, x: &Tensor, train: bool, mut levels: Option<&mut Vec<Tensor>>) -> Tensor {
        let mut y = x.shallow_clone();
        for c in &self.stem {
            y = c.forward_t(&y, train);
        }
        if let Some(out) = levels.as_deref_mut() {
            out.push(y.shallow_clone());
        }
        for (s, blocks) in self.stacks.iter().enumerate() {
            for b in blocks {
                y = b.forward_t(&y, train);
            }
            if let Some(out) = levels.as_deref_mut() {
                if LEVEL_STACKS.contains(&s) {
                    out.push(y.shallow_clone());
                }
            }
        }
        y
    }
}

impl Backbone for MnasNet {
    fn forward_head(&self, pooled: &Tensor, train: bool) -> Tensor {
        match &self.classifier {
            Some(fc) => fc.forward(&pooled.dropout(self.dropout, train)),
            None => pooled.shallow_clone(),
        }
    }

    fn features(&self, x: &Tensor, train: bool) -> Vec<Tensor> {
        // The last stack is a level, so nothing past the last level is computed.
        let mut out = Vec::with_capacity(self.info.len());
        let _last = self.run_layers(x, train, Some(&mut out));
        out
    }

    fn final_features(&self, x: &Tensor, train: bool) -> Tensor {
        self.head_conv
            .forward_t(&self.run_layers(x, train, None), train)
    }

    fn final_channels(&self) -> i64 {
        HEAD_CHANNELS
    }

    fn pooled_features(&self, x: &Tensor, train: bool) -> Tensor {
        global_pool(&self.final_features(x, train))
    }

    fn feature_info(&self) -> Vec<FeatureInfo> {
        self.info.clone()
    }

    fn pretrained_cfg(&self) -> PretrainedCfg {
        PretrainedCfg {
            resize_size: self.cfg.resize,
            ..PretrainedCfg::imagenet()
        }
    }

    fn stages(&self) -> Vec<Stage> {
        let mut stages = vec![Stage::new(
            "stem",
            &[
                "layers.0", "layers.1", "layers.3", "layers.4", "layers.6", "layers.7",
            ],
        )];
        for s in 0..STACKS.len() {
            stages.push(Stage {
                name: format!("stage{}", s + 1),
                prefixes: vec![format!("layers.{}", FIRST_STACK + s)],
            });
        }
        let head = FIRST_STACK + STACKS.len();
        stages.push(Stage {
            name: "head_conv".into(),
            prefixes: vec![format!("layers.{head}"), format!("layers.{}", head + 1)],
        });
        stages.push(Stage::new("head", &["classifier"]));
        stages
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depths_match_torchvision() {
        // torchvision's _get_depths(0.5), (0.75), (1.3).
        let d = |alpha| {
            MnasNetConfig {
                alpha,
                dropout: 0.2,
                resize: 256,
            }
            .depths()
        };
        assert_eq!(d(0.5), [16, 8, 16, 24, 40, 48, 96, 160]);
        assert_eq!(d(0.75), [24, 16, 24, 32, 64, 72, 144, 240]);
        assert_eq!(d(1.3), [40, 24, 32, 56, 104, 128, 248, 416]);
    }
}
