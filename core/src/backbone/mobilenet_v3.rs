//! MobileNetV3 (Howard et al., "Searching for MobileNetV3", 2019), Large and Small, width 1.0,
//! with torchvision's names: `features.0` the stem, `features.1..` inverted residuals
//! (`features.N.block.K.*`: [1×1 expand] → k×k depthwise → [squeeze-excite `fc1`/`fc2`] → 1×1
//! projection), the last `features.N` a 1×1 convolution to six times the channels, then
//! `classifier.0` (Linear) → hardswish → dropout → `classifier.3` (Linear). BatchNorm eps 0.001,
//! momentum 0.01, as torchvision builds it.
//!
//! `reduced_tail` halves the channels of the last stage (torchvision's option, which SSDlite's COCO
//! weights use). An output stride of 16 or 8 keeps the resolution past it and dilates the
//! depthwise convolutions instead, every block of the stage included (torchvision's `dilated=True`
//! is output stride 16).

use tch::nn::{self, Module, Path};
use tch::Tensor;

use super::{
    feature_stages, global_pool, make_divisible, Backbone, BackboneOptions, FeatureInfo,
    PretrainedCfg, Stage,
};
use crate::nn::{Activation, Conv2dSpec, ConvNormAct, NormLayer, SqueezeExcitation};

/// BatchNorm eps and momentum of every MobileNetV3 normalisation.
const BN: (f64, f64) = (0.001, 0.01);

/// One row of the paper's tables 1 and 2: input, kernel, expanded and output channels,
/// squeeze-excite, hardswish (else ReLU), stride.
#[derive(Debug, Clone, Copy, PartialEq)]
struct BlockSetting {
    c_in: i64,
    kernel: i64,
    expanded: i64,
    c_out: i64,
    se: bool,
    hardswish: bool,
    stride: i64,
}

const fn row(
    c_in: i64,
    kernel: i64,
    expanded: i64,
    c_out: i64,
    se: bool,
    hs: bool,
    stride: i64,
) -> BlockSetting {
    BlockSetting {
        c_in,
        kernel,
        expanded,
        c_out,
        se,
        hardswish: hs,
        stride,
    }
}

/// Which MobileNetV3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MobileNetV3Config {
    /// Large (else Small).
    pub large: bool,
    /// Halve the last stage's channels (torchvision's `reduced_tail`).
    pub reduced_tail: bool,
}

impl MobileNetV3Config {
    /// `mobilenet_v3_large` or `mobilenet_v3_small`.
    pub fn by_name(name: &str) -> Option<Self> {
        let large = match name {
            "mobilenet_v3_large" => true,
            "mobilenet_v3_small" => false,
            _ => return None,
        };
        Some(MobileNetV3Config {
            large,
            reduced_tail: false,
        })
    }

    /// The blocks (torchvision's `_mobilenet_v3_conf`) and the classifier's hidden width.
    fn settings(&self) -> (Vec<BlockSetting>, i64) {
        let r = if self.reduced_tail { 2 } else { 1 };
        if self.large {
            (
                vec![
                    row(16, 3, 16, 16, false, false, 1),
                    row(16, 3, 64, 24, false, false, 2),
                    row(24, 3, 72, 24, false, false, 1),
                    row(24, 5, 72, 40, true, false, 2),
                    row(40, 5, 120, 40, true, false, 1),
                    row(40, 5, 120, 40, true, false, 1),
                    row(40, 3, 240, 80, false, true, 2),
                    row(80, 3, 200, 80, false, true, 1),
                    row(80, 3, 184, 80, false, true, 1),
                    row(80, 3, 184, 80, false, true, 1),
                    row(80, 3, 480, 112, true, true, 1),
                    row(112, 3, 672, 112, true, true, 1),
                    row(112, 5, 672, 160 / r, true, true, 2),
                    row(160 / r, 5, 960 / r, 160 / r, true, true, 1),
                    row(160 / r, 5, 960 / r, 160 / r, true, true, 1),
                ],
                make_divisible(1280.0 / r as f64, 8),
            )
        } else {
            (
                vec![
                    row(16, 3, 16, 16, true, false, 2),
                    row(16, 3, 72, 24, false, false, 2),
                    row(24, 3, 88, 24, false, false, 1),
                    row(24, 5, 96, 40, true, true, 2),
                    row(40, 5, 240, 40, true, true, 1),
                    row(40, 5, 240, 40, true, true, 1),
                    row(40, 5, 120, 48, true, true, 1),
                    row(48, 5, 144, 48, true, true, 1),
                    row(48, 5, 288, 96 / r, true, true, 2),
                    row(96 / r, 5, 576 / r, 96 / r, true, true, 1),
                    row(96 / r, 5, 576 / r, 96 / r, true, true, 1),
                ],
                make_divisible(1024.0 / r as f64, 8),
            )
        }
    }
}

/// An inverted residual with optional squeeze-excite (`features.N.block.*`).
#[derive(Debug)]
struct InvertedResidual {
    expand: Option<ConvNormAct>,
    depthwise: ConvNormAct,
    se: Option<SqueezeExcitation>,
    project: ConvNormAct,
    residual: bool,
}

impl InvertedResidual {
    /// Builds the block with its `k`-th present part (expansion, depthwise, squeeze-excite,
    /// projection, counting only those present) under `part(k)`: `features.N.block.k` in
    /// torchvision's MobileNetV3, elsewhere in SSDlite's split layout.
    fn new<'a>(
        part: impl Fn(usize) -> Path<'a>,
        s: &BlockSetting,
        stride: i64,
        dilation: i64,
        norm: NormLayer,
        tf_same: bool,
    ) -> Self {
        let act = if s.hardswish {
            Activation::Hardswish
        } else {
            Activation::ReLU
        };
        let mut i = 0;
        let mut next = || {
            i += 1;
            part(i - 1)
        };
        let expand = (s.expanded != s.c_in).then(|| {
            ConvNormAct::with_norm(
                &next(),
                s.c_in,
                s.expanded,
                Conv2dSpec::new(1),
                act,
                norm,
                BN,
            )
        });
        let depthwise = ConvNormAct::with_norm(
            &next(),
            s.expanded,
            s.expanded,
            Conv2dSpec::new(s.kernel)
                .stride(stride)
                .dilation(dilation)
                .groups(s.expanded)
                .tf_same(tf_same),
            act,
            norm,
            BN,
        );
        let se = s.se.then(|| {
            SqueezeExcitation::with_gate(
                &next(),
                s.expanded,
                make_divisible((s.expanded / 4) as f64, 8),
                Activation::ReLU,
                Activation::Hardsigmoid,
            )
        });
        let project = ConvNormAct::with_norm(
            &next(),
            s.expanded,
            s.c_out,
            Conv2dSpec::new(1),
            Activation::None,
            norm,
            BN,
        );
        InvertedResidual {
            expand,
            depthwise,
            se,
            project,
            // From the configured stride: a stride-2 block keeps no shortcut when dilated.
            residual: s.stride == 1 && s.c_in == s.c_out,
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
        if let Some(se) = &self.se {
            y = se.forward(&y);
        }
        y = self.project.forward_t(&y, train);
        if self.residual {
            y + x
        } else {
            y
        }
    }
}

/// MobileNetV3 with torchvision's names.
#[derive(Debug)]
pub struct MobileNetV3 {
    stem: ConvNormAct,
    blocks: Vec<InvertedResidual>,
    /// Indices into `blocks` of the blocks configured with stride 2.
    strided: Vec<usize>,
    stem_channels: i64,
    block_channels: Vec<i64>,
    last_channels: i64,
    last_conv: ConvNormAct,
    /// `classifier.0` (Linear to the hidden width) and `classifier.3` (to the classes); `None`
    /// for an encoder (`num_classes` 0).
    classifier: Option<(nn::Linear, nn::Linear)>,
    dropout: f64,
    /// `features.N` indices whose outputs are the pyramid levels (strides 2, 4, 8, 16, 32
    /// undilated), the last one the final 1×1 convolution.
    levels: Vec<usize>,
    info: Vec<FeatureInfo>,
    /// `Some(c4)` in SSDlite's layout, split after the expansion of module `features.c4`.
    split: Option<usize>,
    /// Each block's expanded width.
    block_expanded: Vec<i64>,
}

impl MobileNetV3 {
    /// Builds `config` under `p` (`p.features.*`, `p.classifier.*`).
    pub fn new(p: &Path, config: &MobileNetV3Config, opts: &BackboneOptions) -> Self {
        Self::build(
            &(p / "features"),
            Some(&(p / "classifier")),
            config,
            opts,
            None,
        )
    }

    /// The `features` Sequential alone, its modules directly under `features` (`features.0.0.*`
    /// …), with no classifier: what Faster R-CNN's `_mobilenet_extractor` holds
    /// (`backbone.body.N.*`).
    pub fn features_at(
        features: &Path,
        config: &MobileNetV3Config,
        opts: &BackboneOptions,
    ) -> Self {
        let opts = BackboneOptions {
            num_classes: 0,
            ..opts.clone()
        };
        Self::build(features, None, config, &opts, None)
    }

    /// The `features` Sequential in SSDlite's layout (torchvision's
    /// `SSDLiteFeatureExtractorMobileNet`): split in two Sequentials inside the last stride-2
    /// block ("C4"), after its 1×1 expansion. Under `features`: `0.{0..c4-1}` the modules
    /// before it, `0.{c4}` its expansion; `1.0.{1,2,3}` its depthwise, squeeze-excite and
    /// projection (numbered as in the block), `1.{1..}` the modules after it, the last 1×1 convolution last.
    /// [`Self::ssdlite_maps`] returns the two outputs.
    pub fn ssdlite_features(
        features: &Path,
        config: &MobileNetV3Config,
        opts: &BackboneOptions,
    ) -> Self {
        let opts = BackboneOptions {
            num_classes: 0,
            ..opts.clone()
        };
        let (settings, _) = config.settings();
        // 1-based like `features.N`; every configuration's last stride-2 block expands.
        let c4 = settings.iter().rposition(|s| s.stride > 1).unwrap_or(0) + 1;
        Self::build(features, None, config, &opts, Some(c4))
    }

    /// In SSDlite's layout, the C4 expansion (stride 16; 672 channels for Large) and the last
    /// convolution's output (stride 32); in the plain layout, the same two tensors.
    pub fn ssdlite_maps(&self, x: &Tensor, train: bool) -> [Tensor; 2] {
        let c4 = self.c4();
        let mut y = self.stem.forward_t(x, train);
        for block in &self.blocks[..c4 - 1] {
            y = block.forward_t(&y, train);
        }
        let expanded = self.blocks[c4 - 1].expansion(&y, train);
        y = self.blocks[c4 - 1].after_expansion(&expanded, &y, train);
        for block in &self.blocks[c4..] {
            y = block.forward_t(&y, train);
        }
        [expanded, self.last_conv.forward_t(&y, train)]
    }

    /// Channels of [`Self::ssdlite_maps`]'s two outputs.
    pub fn ssdlite_channels(&self) -> [i64; 2] {
        [self.block_expanded[self.c4() - 1], self.last_channels]
    }

    /// `features.N` of the last stride-2 block ("C4"), where SSDlite splits.
    fn c4(&self) -> usize {
        self.split.unwrap_or_else(|| self.stage_indices()[4])
    }

    /// The outputs of the `features.N` modules listed in `indices` (ascending), computing no
    /// module past the last one.
    pub fn forward_modules(&self, x: &Tensor, indices: &[usize], train: bool) -> Vec<Tensor> {
        super::features_at(
            x,
            indices,
            &self.stem,
            &self.blocks,
            |b, y| b.forward_t(y, train),
            &self.last_conv,
            train,
        )
    }

    /// torchvision's `stage_indices` for detection: the stem (0), every block configured with
    /// stride 2, and the last module (`[0, 2, 4, 7, 13, 16]` for Large). Trainable layers and
    /// the FPN's inputs are counted on them.
    pub fn stage_indices(&self) -> Vec<usize> {
        let mut v = vec![0];
        v.extend(self.strided.iter().map(|&i| i + 1));
        v.push(self.blocks.len() + 1);
        v
    }

    /// Output channels of module `features.N`.
    pub fn module_channels(&self, index: usize) -> i64 {
        match index {
            0 => self.stem_channels,
            i if i <= self.blocks.len() => self.block_channels[i - 1],
            _ => self.last_channels,
        }
    }

    fn build(
        f: &Path,
        classifier_path: Option<&Path>,
        config: &MobileNetV3Config,
        opts: &BackboneOptions,
        split: Option<usize>,
    ) -> Self {
        let norm = opts.norm;
        let (settings, hidden) = config.settings();
        // `features.N`'s path in either layout.
        let module = |n: usize| match split {
            Some(c4) if n >= c4 => f / "1" / (n - c4).to_string(),
            Some(_) => f / "0" / n.to_string(),
            None => f / n.to_string(),
        };
        let stem = ConvNormAct::with_norm(
            &module(0),
            3,
            settings[0].c_in,
            Conv2dSpec::new(3).stride(2).tf_same(opts.tf_same_padding),
            Activation::Hardswish,
            norm,
            BN,
        );
        // The output stride of features.0, features.1, … without dilation, to place the levels.
        let mut nominal = vec![2];
        let (mut total, mut dilation) = (2, 1);
        let mut blocks = Vec::new();
        for (i, s) in settings.iter().enumerate() {
            nominal.push(nominal[i] * s.stride);
            // Past the output stride the resolution stays and this block, and every later one,
            // dilates instead (torchvision's dilated MobileNetV3 dilates the first block of the
            // stage too).
            let stride = if total * s.stride > opts.output_stride {
                dilation *= s.stride;
                1
            } else {
                s.stride
            };
            total *= stride;
            let n = i + 1;
            let part = |k: usize| match split {
                // The split block: its expansion ends the first Sequential, the rest starts
                // the second.
                Some(c4) if n == c4 && k == 0 => f / "0" / n.to_string(),
                // Sliced from the block's Sequential, they keep their numbers (1, 2, 3).
                Some(c4) if n == c4 => f / "1" / "0" / k.to_string(),
                _ => module(n) / "block" / k.to_string(),
            };
            blocks.push(InvertedResidual::new(
                part,
                s,
                stride,
                dilation,
                norm,
                opts.tf_same_padding,
            ));
        }
        let c_last = settings[settings.len() - 1].c_out;
        let last_index = settings.len() + 1;
        nominal.push(*nominal.last().unwrap_or(&32));
        let last_conv = ConvNormAct::with_norm(
            &module(last_index),
            c_last,
            6 * c_last,
            Conv2dSpec::new(1),
            Activation::Hardswish,
            norm,
            BN,
        );
        // Each level is the last module at its nominal stride.
        let levels: Vec<usize> = [2, 4, 8, 16, 32]
            .iter()
            .filter_map(|s| nominal.iter().rposition(|n| n == s))
            .collect();
        let channels = |idx: usize| match idx {
            0 => settings[0].c_in,
            i if i == last_index => 6 * c_last,
            i => settings[i - 1].c_out,
        };
        let info = levels
            .iter()
            .map(|&idx| FeatureInfo {
                module: format!("features.{idx}"),
                channels: channels(idx),
                stride: nominal[idx].min(opts.output_stride),
            })
            .collect();
        // torchvision initialises the linear layers with N(0, 0.01) and zero bias.
        let linear_cfg = nn::LinearConfig {
            ws_init: nn::Init::Randn {
                mean: 0.0,
                stdev: 0.01,
            },
            bs_init: Some(nn::Init::Const(0.0)),
            bias: true,
        };
        let classifier = classifier_path.filter(|_| opts.num_classes > 0).map(|c| {
            (
                nn::linear(c / "0", 6 * c_last, hidden, linear_cfg),
                nn::linear(c / "3", hidden, opts.num_classes, linear_cfg),
            )
        });
        MobileNetV3 {
            stem,
            strided: (0..settings.len())
                .filter(|&i| settings[i].stride > 1)
                .collect(),
            stem_channels: settings[0].c_in,
            block_channels: settings.iter().map(|s| s.c_out).collect(),
            last_channels: 6 * c_last,
            blocks,
            last_conv,
            classifier,
            dropout: opts.dropout.unwrap_or(0.2),
            levels,
            info,
            split,
            block_expanded: settings.iter().map(|s| s.expanded).collect(),
        }
    }
}

impl Backbone for MobileNetV3 {
    /// The whole `classifier` Sequential: an encoder keeps none of its layers.
    fn classifier_pattern(&self) -> String {
        r"^classifier\.".into()
    }

    fn forward_head(&self, pooled: &Tensor, train: bool) -> Tensor {
        match &self.classifier {
            Some((_, fc)) => fc.forward(&pooled.dropout(self.dropout, train)),
            None => pooled.shallow_clone(),
        }
    }

    fn features(&self, x: &Tensor, train: bool) -> Vec<Tensor> {
        let mut y = self.stem.forward_t(x, train);
        let mut out = Vec::with_capacity(self.levels.len());
        if self.levels.contains(&0) {
            out.push(y.shallow_clone());
        }
        for (i, block) in self.blocks.iter().enumerate() {
            y = block.forward_t(&y, train);
            if self.levels.contains(&(i + 1)) {
                out.push(y.shallow_clone());
            }
        }
        out.push(self.last_conv.forward_t(&y, train));
        out
    }

    /// The hidden layer's output (`classifier.0` → hardswish), the input of `classifier.3`; for
    /// an encoder, the pooled last features.
    fn pooled_features(&self, x: &Tensor, train: bool) -> Tensor {
        let last = self
            .features(x, train)
            .pop()
            .unwrap_or_else(|| x.shallow_clone());
        let pooled = global_pool(&last);
        match &self.classifier {
            Some((hidden, _)) => hidden.forward(&pooled).hardswish(),
            None => pooled,
        }
    }

    fn feature_info(&self) -> Vec<FeatureInfo> {
        self.info.clone()
    }

    fn pretrained_cfg(&self) -> PretrainedCfg {
        PretrainedCfg::imagenet()
    }

    /// One stage per pyramid level (the modules since the previous level), then `fc`
    /// (`classifier.0`, which the pooled features include), then the `head` (`classifier.3`).
    fn stages(&self) -> Vec<Stage> {
        let mut stages = feature_stages(&self.levels, |k| match k {
            0 => "stem".into(),
            k => format!("stage{}", k + 1),
        });
        if self.classifier.is_some() {
            stages.push(Stage::new("fc", &["classifier.0"]));
        }
        stages.push(Stage::new("head", &["classifier.3"]));
        stages
    }
}
