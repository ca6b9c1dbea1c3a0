//! DenseNet-121/161/169/201 (Huang et al., "Densely Connected Convolutional Networks", 2017), the
//! DenseNet-BC form torchvision builds: every dense layer is BatchNorm → ReLU → 1×1 convolution
//! to `bn_size · growth_rate` channels (the bottleneck, "B") → BatchNorm → ReLU → 3×3 convolution
//! to `growth_rate` channels, fed the concatenation of everything before it in its block; each
//! transition halves the channels ("C", compression 0.5) and average-pools by 2. The paper's
//! classification head is a final BatchNorm (`features.norm5`) and ReLU before global pooling.
//!
//! Names are torchvision's: `features.conv0`/`norm0`, `features.denseblockB.denselayerL.{norm1,
//! conv1, norm2, conv2}`, `features.transitionB.{norm, conv}`, `features.norm5`, `classifier`.
//! torchvision's checkpoints predate that naming (`denselayerL.norm.1.weight`); torchvision
//! renames them when it loads, and so does [`Backbone::adapt_checkpoint`] here
//! ([`DENSENET_LEGACY_RENAME`], also usable with [`crate::checkpoint::LoadOptions::rename_regex`]).

use tch::nn::init::{FanInOut, NonLinearity, NormalOrUniform};
use tch::nn::{self, Init, Module, Path};
use tch::Tensor;

use super::{global_pool, Backbone, BackboneOptions, FeatureInfo, PretrainedCfg, Stage};
use crate::nn::BatchNorm2d;

/// The rename torchvision applies to its DenseNet checkpoints before loading them (pattern,
/// replacement for [`crate::checkpoint::LoadOptions::rename_regex`]): their dense layers were
/// saved as `norm.1`, `conv.1`, `norm.2`, `conv.2`, today's `norm1`, `conv1`, `norm2`, `conv2`.
pub const DENSENET_LEGACY_RENAME: (&str, &str) = (
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$",
    "${1}${2}",
);

/// A DenseNet-BC variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenseNetConfig {
    /// Channels each dense layer adds (`k` in the paper).
    pub growth_rate: i64,
    /// Dense layers in each of the four blocks.
    pub block_config: [usize; 4],
    /// Channels of the stem convolution.
    pub num_init_features: i64,
    /// Bottleneck width as a multiple of the growth rate.
    pub bn_size: i64,
}

impl DenseNetConfig {
    /// `densenet121`, `densenet161`, `densenet169` and `densenet201` as torchvision defines them.
    pub fn by_name(name: &str) -> Option<Self> {
        let (growth_rate, block_config, num_init_features) = match name {
            "densenet121" => (32, [6, 12, 24, 16], 64),
            "densenet161" => (48, [6, 12, 36, 24], 96),
            "densenet169" => (32, [6, 12, 32, 32], 64),
            "densenet201" => (32, [6, 12, 48, 32], 64),
            _ => return None,
        };
        Some(DenseNetConfig {
            growth_rate,
            block_config,
            num_init_features,
            bn_size: 4,
        })
    }
}

/// A bias-free convolution drawn as torchvision's DenseNet draws it: `kaiming_normal_` with its
/// defaults (fan-in, gain √2), unlike the fan-out draw of ResNet's [`crate::nn::conv2d`].
fn conv(p: &Path, c_in: i64, c_out: i64, kernel: i64, stride: i64, padding: i64) -> nn::Conv2D {
    let cfg = nn::ConvConfig {
        stride,
        padding,
        bias: false,
        ws_init: Init::Kaiming {
            dist: NormalOrUniform::Normal,
            fan: FanInOut::FanIn,
            non_linearity: NonLinearity::ReLU,
        },
        ..Default::default()
    };
    nn::conv2d(p, c_in, c_out, kernel, cfg)
}

/// BatchNorm, then ReLU in place (the normalised tensor is a fresh one, and BatchNorm's backward
/// does not need its output, so overwriting it is safe, as torchvision's `inplace=True` is).
fn norm_relu(bn: &BatchNorm2d, x: &Tensor, train: bool) -> Tensor {
    let mut y = bn.forward_t(x, train);
    let _ = y.relu_();
    y
}

/// One bottleneck layer (`denselayerL`): its input is every earlier feature map of the block.
#[derive(Debug)]
struct DenseLayer {
    norm1: BatchNorm2d,
    conv1: nn::Conv2D,
    norm2: BatchNorm2d,
    conv2: nn::Conv2D,
}

impl DenseLayer {
    fn new(p: &Path, c_in: i64, cfg: &DenseNetConfig) -> Self {
        let width = cfg.bn_size * cfg.growth_rate;
        DenseLayer {
            norm1: BatchNorm2d::new(&(p / "norm1"), c_in),
            conv1: conv(&(p / "conv1"), c_in, width, 1, 1, 0),
            norm2: BatchNorm2d::new(&(p / "norm2"), width),
            conv2: conv(&(p / "conv2"), width, cfg.growth_rate, 3, 1, 1),
        }
    }

    /// The `growth_rate` new channels computed from the block's feature maps so far.
    fn forward_t(&self, inputs: &[Tensor], train: bool) -> Tensor {
        // The first layer of a block sees one map: no concatenation (a copy) needed.
        let x = match inputs {
            [only] => only.shallow_clone(),
            _ => Tensor::cat(inputs, 1),
        };
        let y = self.conv1.forward(&norm_relu(&self.norm1, &x, train));
        self.conv2.forward(&norm_relu(&self.norm2, &y, train))
    }
}

/// `denseblockB`: its input concatenated with every layer's output.
#[derive(Debug)]
struct DenseBlock {
    layers: Vec<DenseLayer>,
}

impl DenseBlock {
    fn new(p: &Path, n: usize, c_in: i64, cfg: &DenseNetConfig) -> Self {
        let layers = (0..n)
            .map(|i| {
                DenseLayer::new(
                    &(p / format!("denselayer{}", i + 1)),
                    c_in + i as i64 * cfg.growth_rate,
                    cfg,
                )
            })
            .collect();
        DenseBlock { layers }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut maps = Vec::with_capacity(self.layers.len() + 1);
        maps.push(x.shallow_clone());
        for layer in &self.layers {
            let y = layer.forward_t(&maps, train);
            maps.push(y);
        }
        Tensor::cat(&maps, 1)
    }
}

/// `transitionB`: BatchNorm → ReLU → 1×1 convolution halving the channels → 2×2 average pool.
#[derive(Debug)]
struct Transition {
    norm: BatchNorm2d,
    conv: nn::Conv2D,
}

impl Transition {
    fn new(p: &Path, c_in: i64, c_out: i64) -> Self {
        Transition {
            norm: BatchNorm2d::new(&(p / "norm"), c_in),
            conv: conv(&(p / "conv"), c_in, c_out, 1, 1, 0),
        }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.conv
            .forward(&norm_relu(&self.norm, x, train))
            .avg_pool2d([2, 2], [2, 2], [0, 0], false, true, None::<i64>)
    }
}

/// DenseNet with torchvision's names.
#[derive(Debug)]
pub struct DenseNet {
    conv0: nn::Conv2D,
    norm0: BatchNorm2d,
    blocks: Vec<DenseBlock>,
    transitions: Vec<Transition>,
    norm5: BatchNorm2d,
    /// `None` for an encoder (`num_classes` 0).
    classifier: Option<nn::Linear>,
    dropout: f64,
    info: Vec<FeatureInfo>,
}

impl DenseNet {
    /// Builds the network under `p`. torchvision's DenseNet has no classifier dropout; a
    /// `dropout` option adds one before `classifier` (no variables, so checkpoints still fit).
    pub fn new(p: &Path, cfg: &DenseNetConfig, opts: &BackboneOptions) -> Self {
        let f = p / "features";
        let mut c = cfg.num_init_features;
        let conv0 = conv(&(&f / "conv0"), 3, c, 7, 2, 3);
        let norm0 = BatchNorm2d::new(&(&f / "norm0"), c);
        let mut info = vec![FeatureInfo {
            module: "features.relu0".into(),
            channels: c,
            stride: 2,
        }];
        let (mut blocks, mut transitions) = (Vec::new(), Vec::new());
        let mut stride = 4;
        for (i, &n) in cfg.block_config.iter().enumerate() {
            blocks.push(DenseBlock::new(
                &(&f / format!("denseblock{}", i + 1)),
                n,
                c,
                cfg,
            ));
            c += n as i64 * cfg.growth_rate;
            if i + 1 < cfg.block_config.len() {
                info.push(FeatureInfo {
                    module: format!("features.denseblock{}", i + 1),
                    channels: c,
                    stride,
                });
                transitions.push(Transition::new(
                    &(&f / format!("transition{}", i + 1)),
                    c,
                    c / 2,
                ));
                c /= 2;
                stride *= 2;
            }
        }
        let norm5 = BatchNorm2d::new(&(&f / "norm5"), c);
        // The last level is norm5 followed by the forward's functional ReLU, which torchvision
        // applies in place, so `features.norm5`'s output is the rectified map.
        info.push(FeatureInfo {
            module: "features.norm5".into(),
            channels: c,
            stride,
        });
        let linear_cfg = nn::LinearConfig {
            // PyTorch's default weight (uniform ±1/√fan_in), and the zero bias torchvision sets.
            ws_init: Init::Kaiming {
                dist: NormalOrUniform::Uniform,
                fan: FanInOut::FanIn,
                non_linearity: NonLinearity::ExplicitGain(1.0 / 3f64.sqrt()),
            },
            bs_init: Some(Init::Const(0.0)),
            bias: true,
        };
        let classifier = (opts.num_classes > 0)
            .then(|| nn::linear(p / "classifier", c, opts.num_classes, linear_cfg));
        DenseNet {
            conv0,
            norm0,
            blocks,
            transitions,
            norm5,
            classifier,
            dropout: opts.dropout.unwrap_or(0.0),
            info,
        }
    }
}

impl Backbone for DenseNet {
    /// torchvision's own DenseNet files carry the old dense-layer names: renamed as torchvision
    /// renames them when it loads ([`DENSENET_LEGACY_RENAME`]); current names pass unchanged.
    fn adapt_checkpoint(&self, sd: &mut crate::checkpoint::StateDict) -> crate::error::Result<()> {
        let (pattern, replacement) = DENSENET_LEGACY_RENAME;
        let re = regex::Regex::new(pattern)
            .map_err(|e| crate::error::Error::Invalid(format!("{pattern}: {e}")))?;
        let old = std::mem::take(sd);
        *sd = old.rename(|k| Some(re.replace(k, replacement).into_owned()));
        Ok(())
    }

    fn forward_head(&self, pooled: &Tensor, train: bool) -> Tensor {
        match &self.classifier {
            Some(fc) => fc.forward(&pooled.dropout(self.dropout, train)),
            None => pooled.shallow_clone(),
        }
    }

    fn features(&self, x: &Tensor, train: bool) -> Vec<Tensor> {
        let stem = norm_relu(&self.norm0, &self.conv0.forward(x), train);
        let mut y = stem.max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
        let mut out = vec![stem];
        for (i, block) in self.blocks.iter().enumerate() {
            y = block.forward_t(&y, train);
            match self.transitions.get(i) {
                Some(t) => {
                    out.push(y.shallow_clone());
                    y = t.forward_t(&y, train);
                }
                None => out.push(norm_relu(&self.norm5, &y, train)),
            }
        }
        out
    }

    fn pooled_features(&self, x: &Tensor, train: bool) -> Tensor {
        let last = self
            .features(x, train)
            .pop()
            .expect("DenseNet has five levels");
        global_pool(&last)
    }

    fn feature_info(&self) -> Vec<FeatureInfo> {
        self.info.clone()
    }

    fn pretrained_cfg(&self) -> PretrainedCfg {
        PretrainedCfg::imagenet()
    }

    fn stages(&self) -> Vec<Stage> {
        vec![
            Stage::new("stem", &["features.conv0", "features.norm0"]),
            Stage::new(
                "denseblock1",
                &["features.denseblock1", "features.transition1"],
            ),
            Stage::new(
                "denseblock2",
                &["features.denseblock2", "features.transition2"],
            ),
            Stage::new(
                "denseblock3",
                &["features.denseblock3", "features.transition3"],
            ),
            Stage::new("denseblock4", &["features.denseblock4", "features.norm5"]),
            Stage::new("head", &["classifier"]),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::LoadOptions;

    #[test]
    fn legacy_checkpoint_names_map_to_torchvision_s() {
        let (pattern, replacement) = DENSENET_LEGACY_RENAME;
        let opts = LoadOptions::default()
            .rename_regex(pattern, replacement)
            .expect("valid pattern");
        let old = "features.denseblock4.denselayer16.norm.2.running_var";
        let new = "features.denseblock4.denselayer16.norm2.running_var";
        assert_eq!(opts.map_name(old), new);
        assert_eq!(opts.map_name(new), new);
        assert_eq!(
            opts.map_name("features.transition1.norm.weight"),
            "features.transition1.norm.weight"
        );
    }
}
