//! EfficientNet B0–B7 (Tan & Le, "EfficientNet: Rethinking Model Scaling", 2019) with torchvision's
//! names: `features.0` stem, `features.1..7` stages of MBConv blocks (`features.S.B.block.K.*`),
//! `features.8` the 1×1 head convolution, `classifier.1` the linear layer. SiLU, squeeze-excite,
//! stochastic depth rising linearly to 0.2 over the blocks.

use tch::nn::{self, Module, Path};
use tch::Tensor;

use super::{
    global_pool, make_divisible, Backbone, BackboneOptions, FeatureInfo, Interpolation,
    PretrainedCfg, Stage, IMAGENET_MEAN, IMAGENET_STD,
};
use crate::nn::{stochastic_depth, Activation, Conv2dSpec, ConvNormAct, SqueezeExcitation};

/// B0's stages: expansion, kernel, stride, input channels, output channels, repeats.
const B0_STAGES: [(i64, i64, i64, i64, i64, usize); 7] = [
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
];

/// Stages whose output is a pyramid level (strides 2, 4, 8, 16, 32).
const LEVEL_STAGES: [usize; 5] = [1, 2, 3, 5, 7];

/// A scaled EfficientNet variant.
#[derive(Debug, Clone, PartialEq)]
pub struct EfficientNetConfig {
    /// Channel multiplier.
    pub width: f64,
    /// Depth (repeats) multiplier.
    pub depth: f64,
    /// Classifier dropout.
    pub dropout: f64,
    /// BatchNorm eps (1e-3 for the TF-ported B5–B7 weights).
    pub bn_eps: f64,
    /// BatchNorm momentum (PyTorch convention).
    pub bn_momentum: f64,
    /// Evaluation crop size and resize size (torchvision's weights' transforms).
    pub crop: i64,
    /// Shorter side before the crop.
    pub resize: i64,
}

impl EfficientNetConfig {
    /// `efficientnet_b0` … `efficientnet_b7` as torchvision defines them.
    pub fn by_name(name: &str) -> Option<Self> {
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
            width,
            depth,
            dropout,
            bn_eps,
            bn_momentum,
            crop,
            resize,
        })
    }

    fn channels(&self, c: i64) -> i64 {
        make_divisible(c as f64 * self.width, 8)
    }

    fn repeats(&self, n: usize) -> usize {
        (n as f64 * self.depth).ceil() as usize
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
    #[allow(clippy::too_many_arguments)]
    fn new(
        p: &Path,
        c_in: i64,
        c_out: i64,
        expand_ratio: i64,
        kernel: i64,
        stride: i64,
        drop_prob: f64,
        cfg: &EfficientNetConfig,
    ) -> Self {
        let b = p / "block";
        let hidden = make_divisible((c_in * expand_ratio) as f64, 8);
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
            Conv2dSpec::new(kernel).stride(stride).groups(hidden),
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
        if self.residual {
            stochastic_depth(&y, self.drop_prob, train) + x
        } else {
            y
        }
    }
}

/// EfficientNet with torchvision's names.
#[derive(Debug)]
pub struct EfficientNet {
    stem: ConvNormAct,
    stages: Vec<Vec<MBConv>>,
    head_conv: ConvNormAct,
    head_channels: i64,
    /// `None` for an encoder (`num_classes` 0).
    classifier: Option<nn::Linear>,
    dropout: f64,
    info: Vec<FeatureInfo>,
    cfg: EfficientNetConfig,
}

impl EfficientNet {
    /// Builds the network under `p`.
    pub fn new(p: &Path, cfg: &EfficientNetConfig, opts: &BackboneOptions) -> Self {
        let f = p / "features";
        let (eps, mom) = (cfg.bn_eps, cfg.bn_momentum);
        let stem_c = cfg.channels(32);
        let stem = ConvNormAct::new(
            &(&f / "0"),
            3,
            stem_c,
            Conv2dSpec::new(3).stride(2),
            Activation::SiLU,
            eps,
            mom,
        );
        let total: usize = B0_STAGES.iter().map(|s| cfg.repeats(s.5)).sum();
        let sd_prob = opts.stochastic_depth.unwrap_or(0.2);
        let (mut block_id, mut stride_total) = (0usize, 2);
        let mut stages = Vec::new();
        let mut info = Vec::new();
        let mut last_c = stem_c;
        for (s, &(t, k, stride, c_in, c_out, n)) in B0_STAGES.iter().enumerate() {
            let sp = &f / (s + 1).to_string();
            let (c_in, c_out) = (cfg.channels(c_in), cfg.channels(c_out));
            let mut blocks = Vec::new();
            for i in 0..cfg.repeats(n) {
                let (bi, bs) = if i == 0 { (c_in, stride) } else { (c_out, 1) };
                let drop = sd_prob * block_id as f64 / total as f64;
                blocks.push(MBConv::new(
                    &(&sp / i.to_string()),
                    bi,
                    c_out,
                    t,
                    k,
                    bs,
                    drop,
                    cfg,
                ));
                block_id += 1;
            }
            stride_total *= stride;
            if LEVEL_STAGES.contains(&(s + 1)) {
                info.push(FeatureInfo {
                    module: format!("features.{}", s + 1),
                    channels: c_out,
                    stride: stride_total,
                });
            }
            stages.push(blocks);
            last_c = c_out;
        }
        let head_c = 4 * last_c;
        let head_conv = ConvNormAct::new(
            &(&f / "8"),
            last_c,
            head_c,
            Conv2dSpec::new(1),
            Activation::SiLU,
            eps,
            mom,
        );
        let range = 1.0 / (opts.num_classes.max(1) as f64).sqrt();
        let linear_cfg = nn::LinearConfig {
            ws_init: nn::Init::Uniform {
                lo: -range,
                up: range,
            },
            ..Default::default()
        };
        let classifier = (opts.num_classes > 0)
            .then(|| nn::linear(p / "classifier" / "1", head_c, opts.num_classes, linear_cfg));
        let dropout = opts.dropout.unwrap_or(cfg.dropout);
        EfficientNet {
            stem,
            stages,
            head_conv,
            head_channels: head_c,
            classifier,
            dropout,
            info,
            cfg: cfg.clone(),
        }
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
        let mut y = self.stem.forward_t(x, train);
        let mut out = Vec::new();
        for (s, blocks) in self.stages.iter().enumerate() {
            for b in blocks {
                y = b.forward_t(&y, train);
            }
            if LEVEL_STAGES.contains(&(s + 1)) {
                out.push(y.shallow_clone());
            }
        }
        out
    }

    fn final_features(&self, x: &Tensor, train: bool) -> Tensor {
        let last = self.features(x, train).pop().expect("five levels");
        self.head_conv.forward_t(&last, train)
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
            interpolation: Interpolation::Bicubic,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
        }
    }

    fn stages(&self) -> Vec<Stage> {
        let mut stages = vec![Stage::new("stem", &["features.0"])];
        for s in 1..=7 {
            stages.push(Stage {
                name: format!("stage{s}"),
                prefixes: vec![format!("features.{s}")],
            });
        }
        stages.push(Stage::new("head_conv", &["features.8"]));
        stages.push(Stage::new("head", &["classifier"]));
        stages
    }
}
