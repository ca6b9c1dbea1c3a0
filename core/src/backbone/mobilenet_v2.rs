//! MobileNetV2 (Sandler et al., "Inverted Residuals and Linear Bottlenecks", 2018), width 1.0,
//! with torchvision's names: `features.0` stem, `features.1..17` inverted residuals
//! (`features.N.conv.*`), `features.18` the 1×1 head convolution, `classifier.1` the linear layer.

use tch::nn::{self, Module, Path};
use tch::Tensor;

use super::{global_pool, Backbone, BackboneOptions, FeatureInfo, PretrainedCfg, Stage};
use crate::nn::{conv2d, Activation, BatchNorm2d, Conv2dSpec, ConvNormAct};

/// The paper's table 2: expansion t, output channels c, repeats n, first stride s.
const SETTINGS: [(i64, i64, usize, i64); 7] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
];

/// `features.N` indices whose outputs are the pyramid levels (strides 2, 4, 8, 16, 32).
const LEVELS: [usize; 5] = [1, 3, 6, 13, 17];

/// An inverted residual block: [1×1 expand] → 3×3 depthwise → 1×1 linear projection.
#[derive(Debug)]
struct InvertedResidual {
    expand: Option<ConvNormAct>,
    depthwise: ConvNormAct,
    project: nn::Conv2D,
    project_bn: BatchNorm2d,
    residual: bool,
}

impl InvertedResidual {
    fn new(p: &Path, c_in: i64, c_out: i64, stride: i64, dilation: i64, expand_ratio: i64) -> Self {
        let c = p / "conv";
        let hidden = c_in * expand_ratio;
        let mut i = 0;
        let mut next = || {
            i += 1;
            (&c / (i - 1).to_string()).clone()
        };
        let expand = (expand_ratio != 1).then(|| {
            ConvNormAct::new(
                &next(),
                c_in,
                hidden,
                Conv2dSpec::new(1),
                Activation::ReLU6,
                1e-5,
                0.1,
            )
        });
        let depthwise = ConvNormAct::new(
            &next(),
            hidden,
            hidden,
            Conv2dSpec::new(3)
                .stride(stride)
                .dilation(dilation)
                .groups(hidden),
            Activation::ReLU6,
            1e-5,
            0.1,
        );
        let project = conv2d(&next(), hidden, c_out, Conv2dSpec::new(1));
        let project_bn = BatchNorm2d::new(&next(), c_out);
        InvertedResidual {
            expand,
            depthwise,
            project,
            project_bn,
            residual: stride == 1 && c_in == c_out,
        }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.after_expansion(&self.expansion(x, train), x, train)
    }

    /// The 1×1 expansion's output (the input itself when the block has none).
    fn expansion(&self, x: &Tensor, train: bool) -> Tensor {
        match &self.expand {
            Some(e) => e.forward_t(x, train),
            None => x.shallow_clone(),
        }
    }

    /// The rest of the block from the expansion's output `y`; `x` is the block's input.
    fn after_expansion(&self, y: &Tensor, x: &Tensor, train: bool) -> Tensor {
        let mut y = self.depthwise.forward_t(y, train);
        y = self.project_bn.forward_t(&self.project.forward(&y), train);
        if self.residual {
            y + x
        } else {
            y
        }
    }
}

/// MobileNetV2 with torchvision's names.
#[derive(Debug)]
pub struct MobileNetV2 {
    stem: ConvNormAct,
    blocks: Vec<InvertedResidual>,
    head_conv: ConvNormAct,
    /// `None` for an encoder (`num_classes` 0).
    classifier: Option<nn::Linear>,
    dropout: f64,
    info: Vec<FeatureInfo>,
    /// Output channels of each block.
    block_channels: Vec<i64>,
}

impl MobileNetV2 {
    /// torchvision's `stage_indices` for detection: the stem, every block configured with
    /// stride 2, and the last module (`_mobilenet_extractor`'s trainable layers and FPN taps
    /// count on them).
    pub const STAGE_INDICES: [usize; 6] = [0, 2, 4, 7, 14, 18];

    /// Builds the network under `p` (`p.features.*`, `p.classifier.1`).
    pub fn new(p: &Path, opts: &BackboneOptions) -> Self {
        Self::build(&(p / "features"), Some(&(p / "classifier")), opts)
    }

    /// The `features` Sequential alone, its modules directly under `features` (`features.0.0.*`
    /// …), with no classifier: what torchvision's `_mobilenet_extractor` holds as a detection
    /// backbone's body (`backbone.body.N.*`).
    pub fn features_at(features: &Path, opts: &BackboneOptions) -> Self {
        let opts = BackboneOptions {
            num_classes: 0,
            ..opts.clone()
        };
        Self::build(features, None, &opts)
    }

    /// The outputs of the `features.N` modules listed in `indices` (ascending; 0 the stem, 18
    /// the head convolution), computing no module past the last one.
    pub fn forward_modules(&self, x: &Tensor, indices: &[usize], train: bool) -> Vec<Tensor> {
        super::features_at(
            x,
            indices,
            &self.stem,
            &self.blocks,
            |b, y| b.forward_t(y, train),
            &self.head_conv,
            train,
        )
    }

    /// Output channels of module `features.N`.
    pub fn module_channels(&self, index: usize) -> i64 {
        match index {
            0 => 32,
            i if i <= self.blocks.len() => self.block_channels[i - 1],
            _ => 1280,
        }
    }

    fn build(f: &Path, classifier_path: Option<&Path>, opts: &BackboneOptions) -> Self {
        let stem = ConvNormAct::new(
            &(f / "0"),
            3,
            32,
            Conv2dSpec::new(3).stride(2),
            Activation::ReLU6,
            1e-5,
            0.1,
        );
        let (mut c_in, mut idx, mut stride_total) = (32, 1usize, 2);
        let mut blocks = Vec::new();
        let mut info = Vec::new();
        // Past the output stride, a stage keeps the resolution and dilates its depthwise
        // convolutions instead, every block of it included (torchvision's dilated MobileNetV3
        // and the DeepLab MobileNetV2 do the same).
        let mut dilation = 1;
        for (t, c, n, s) in SETTINGS {
            let stage_stride = if stride_total * s > opts.output_stride {
                dilation *= s;
                1
            } else {
                s
            };
            for i in 0..n {
                let stride = if i == 0 { stage_stride } else { 1 };
                stride_total *= stride;
                blocks.push(InvertedResidual::new(
                    &(f / idx.to_string()),
                    c_in,
                    c,
                    stride,
                    dilation,
                    t,
                ));
                if LEVELS.contains(&idx) {
                    info.push(FeatureInfo {
                        module: format!("features.{idx}"),
                        channels: c,
                        stride: stride_total,
                    });
                }
                c_in = c;
                idx += 1;
            }
        }
        let head_conv = ConvNormAct::new(
            &(f / "18"),
            320,
            1280,
            Conv2dSpec::new(1),
            Activation::ReLU6,
            1e-5,
            0.1,
        );
        // torchvision initialises the classifier with N(0, 0.01).
        let linear_cfg = nn::LinearConfig {
            ws_init: nn::Init::Randn {
                mean: 0.0,
                stdev: 0.01,
            },
            ..Default::default()
        };
        let classifier = classifier_path
            .filter(|_| opts.num_classes > 0)
            .map(|c| nn::linear(c / "1", 1280, opts.num_classes, linear_cfg));
        let block_channels = SETTINGS
            .iter()
            .flat_map(|&(_, c, n, _)| std::iter::repeat_n(c, n))
            .collect();
        MobileNetV2 {
            stem,
            block_channels,
            blocks,
            head_conv,
            classifier,
            dropout: opts.dropout.unwrap_or(0.2),
            info,
        }
    }
}

impl MobileNetV2 {
    /// The two maps SSDLite (Sandler et al., 2018, section 6.2) attaches its first heads to:
    /// the expansion inside `features.14`, the last stride-2 block (576 channels, stride 16),
    /// and the 1×1 head convolution's output (1280 channels, stride 32).
    pub fn ssdlite_maps(&self, x: &Tensor, train: bool) -> [Tensor; 2] {
        let c4 = LEVELS[3] + 1;
        let mut y = self.stem.forward_t(x, train);
        for block in &self.blocks[..c4 - 1] {
            y = block.forward_t(&y, train);
        }
        let expanded = self.blocks[c4 - 1].expansion(&y, train);
        y = self.blocks[c4 - 1].after_expansion(&expanded, &y, train);
        for block in &self.blocks[c4..] {
            y = block.forward_t(&y, train);
        }
        [expanded, self.head_conv.forward_t(&y, train)]
    }

    /// Channels of [`Self::ssdlite_maps`]'s two outputs.
    pub fn ssdlite_channels(&self) -> [i64; 2] {
        [576, 1280]
    }
}

impl Backbone for MobileNetV2 {
    fn forward_head(&self, pooled: &Tensor, train: bool) -> Tensor {
        match &self.classifier {
            Some(fc) => fc.forward(&pooled.dropout(self.dropout, train)),
            None => pooled.shallow_clone(),
        }
    }

    fn features(&self, x: &Tensor, train: bool) -> Vec<Tensor> {
        let mut y = self.stem.forward_t(x, train);
        let mut out = Vec::new();
        for (i, block) in self.blocks.iter().enumerate() {
            y = block.forward_t(&y, train);
            if LEVELS.contains(&(i + 1)) {
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
        1280
    }

    fn pooled_features(&self, x: &Tensor, train: bool) -> Tensor {
        global_pool(&self.final_features(x, train))
    }

    fn feature_info(&self) -> Vec<FeatureInfo> {
        self.info.clone()
    }

    fn pretrained_cfg(&self) -> PretrainedCfg {
        PretrainedCfg::imagenet()
    }

    fn stages(&self) -> Vec<Stage> {
        let group = |name: &str, range: std::ops::RangeInclusive<usize>| Stage {
            name: name.into(),
            prefixes: range.map(|i| format!("features.{i}")).collect(),
        };
        vec![
            group("stem", 0..=1),
            group("stage2", 2..=3),
            group("stage3", 4..=6),
            group("stage4", 7..=13),
            group("stage5", 14..=18),
            Stage::new("head", &["classifier"]),
        ]
    }
}
