//! LR-ASPP, the Lite Reduced ASPP segmentation head of MobileNetV3 (Howard et al., "Searching
//! for MobileNetV3", 2019), as torchvision builds `lraspp_mobilenet_v3_large`. The encoder is a
//! MobileNetV3's `features` alone, dilated in its last stage (output stride 16). The head reads
//! two taps: the last module (stride 16; 960 channels for Large) goes through a 1×1
//! conv-BN-ReLU to 128 channels (`cbr`) gated by a squeeze-excite-like branch (global average
//! pool, 1×1 convolution, sigmoid: `scale`), is upsampled to the stride-8 tap (the first module of
//! the C2 stage, `features.4` for Large: 40 channels) and classified there by a 1×1 convolution
//! (`high_classifier`), to which the stride-8 tap's own 1×1 classification (`low_classifier`) is
//! added; logits are bilinearly upsampled to the input (`align_corners = false`).
//!
//! What torchvision does differently from the paper: the pooling branch is a global average, not
//! the paper's 49×49 average pool with stride (16, 20) tuned for 1024×2048 Cityscapes crops, so
//! any input size works; the stride-8 tap feeds the classifier directly. There is no auxiliary
//! head (torchvision refuses `aux_loss`).
//!
//! Variables are named as torchvision's state dict: the encoder is its `features` Sequential held
//! by an `IntermediateLayerGetter`, so `backbone.0.0.weight` … `backbone.16.1.running_var` (no
//! `features.`), then `classifier.cbr.{0,1}`, `classifier.scale.1.weight`,
//! `classifier.low_classifier.*`, `classifier.high_classifier.*`.

use ferrovis_core::backbone::{BackboneOptions, MobileNetV3, MobileNetV3Config};
use ferrovis_core::nn::{conv2d, Conv2dSpec, ConvNormAct};
use ferrovis_core::Error;
use tch::nn::{self, Module, Path};
use tch::Tensor;

use crate::aspp::conv_bn_relu;
use crate::logits::SegmentationLogits;

/// torchvision's `LRASPPHead` (`classifier.*`), initialised as PyTorch initialises fresh layers.
#[derive(Debug)]
pub struct LrasppHead {
    cbr: ConvNormAct,
    scale: nn::Conv2D,
    low_classifier: nn::Conv2D,
    high_classifier: nn::Conv2D,
}

impl LrasppHead {
    /// `low_channels` (the stride-8 tap) and `high_channels` (the last module) in, `inter`
    /// channels inside (torchvision's default 128), `num_classes` out.
    pub fn new(
        p: &Path,
        low_channels: i64,
        high_channels: i64,
        inter: i64,
        num_classes: i64,
    ) -> Self {
        let cbr = p / "cbr";
        let classifier = |name: &str, c_in: i64| {
            conv2d(
                &(p / name),
                c_in,
                num_classes,
                Conv2dSpec::new(1).bias(true).pytorch_default_init(),
            )
        };
        LrasppHead {
            cbr: conv_bn_relu(&(&cbr / 0), &(&cbr / 1), high_channels, inter, 1, 1),
            // `scale.0` is the pooling layer, `scale.2` the sigmoid: neither holds a tensor.
            scale: conv2d(
                &(p / "scale" / 1),
                high_channels,
                inter,
                Conv2dSpec::new(1).pytorch_default_init(),
            ),
            low_classifier: classifier("low_classifier", low_channels),
            high_classifier: classifier("high_classifier", inter),
        }
    }

    /// Logits at the resolution of `low` (stride 8).
    pub fn forward_t(&self, low: &Tensor, high: &Tensor, train: bool) -> Tensor {
        let gate = self
            .scale
            .forward(&high.adaptive_avg_pool2d([1, 1]))
            .sigmoid();
        // Out of place: the ReLU's backward reads its output.
        let x = self.cbr.forward_t(high, train) * gate;
        let (h, w) = (low.size()[2], low.size()[3]);
        let x = x.upsample_bilinear2d([h, w], false, None, None);
        let mut y = self.low_classifier.forward(low);
        // In place on a fresh convolution output, whose backward does not read it.
        y += self.high_classifier.forward(&x);
        y
    }
}

/// What to build.
#[derive(Debug, Clone, PartialEq)]
pub struct LrasppConfig {
    /// `mobilenet_v3_large` (torchvision's) or `mobilenet_v3_small`.
    pub backbone: String,
    /// Output classes (21 for torchvision's VOC-style checkpoint).
    pub num_classes: i64,
}

/// The encoders LR-ASPP is built on.
pub const ENCODERS: [&str; 2] = ["mobilenet_v3_large", "mobilenet_v3_small"];

/// LR-ASPP with torchvision's names.
#[derive(Debug)]
pub struct Lraspp {
    /// The dilated MobileNetV3 `features` (`backbone.N.*`, no classifier).
    pub backbone: MobileNetV3,
    head: LrasppHead,
    /// `backbone.N` of the stride-8 and the stride-16 taps.
    taps: [usize; 2],
    /// What was built.
    pub config: LrasppConfig,
}

impl Lraspp {
    /// Builds the model under `p` (the VarStore root); an encoder other than a MobileNetV3 is an
    /// error naming it.
    pub fn new(p: &Path, config: LrasppConfig) -> ferrovis_core::Result<Self> {
        let cfg = MobileNetV3Config::by_name(&config.backbone).ok_or_else(|| {
            Error::Invalid(format!(
                "LR-ASPP is built on a MobileNetV3 encoder ({}), got {:?}",
                ENCODERS.join(" or "),
                config.backbone
            ))
        })?;
        // torchvision's `dilated=True`: the last stage keeps stride 16 and dilates.
        let opts = BackboneOptions {
            num_classes: 0,
            output_stride: 16,
            ..Default::default()
        };
        let backbone = MobileNetV3::features_at(&(p / "backbone"), &cfg, &opts);
        // torchvision's `stage_indices[-4]` (C2, stride 8) and the last module (C5).
        let stages = backbone.stage_indices();
        let taps = [stages[stages.len() - 4], stages[stages.len() - 1]];
        let head = LrasppHead::new(
            &(p / "classifier"),
            backbone.module_channels(taps[0]),
            backbone.module_channels(taps[1]),
            128,
            config.num_classes,
        );
        Ok(Lraspp {
            backbone,
            head,
            taps,
            config,
        })
    }

    /// Logits at the input size (bilinear, `align_corners = false`); no auxiliary output.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> SegmentationLogits {
        let (h, w) = (x.size()[2], x.size()[3]);
        let feats = self.backbone.forward_modules(x, &self.taps, train);
        let y = self.head.forward_t(&feats[0], &feats[1], train);
        // Upsampled from NCHW, as the DeepLabs': the 16-fold growth runs faster there.
        let out = y
            .contiguous()
            .upsample_bilinear2d([h, w], false, None, None);
        SegmentationLogits { out, aux: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn large_has_torchvision_parameter_count_and_taps() {
        let vs = nn::VarStore::new(Device::Cpu);
        let m = Lraspp::new(
            &vs.root(),
            LrasppConfig {
                backbone: "mobilenet_v3_large".into(),
                num_classes: 21,
            },
        )
        .expect("build");
        assert_eq!(m.taps, [4, 16]);
        let n: i64 = vs
            .trainable_variables()
            .iter()
            .map(|t| t.numel() as i64)
            .sum();
        // LRASPP_MobileNet_V3_Large_Weights' num_params.
        assert_eq!(n, 3_221_538);
        let x = Tensor::zeros([2, 3, 35, 41], (tch::Kind::Float, Device::Cpu));
        let y = tch::no_grad(|| m.forward_t(&x, false));
        assert_eq!(y.out.size(), [2, 21, 35, 41]);
        assert!(y.aux.is_none());
    }

    #[test]
    fn other_encoders_are_refused_by_name() {
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = LrasppConfig {
            backbone: "resnet50".into(),
            num_classes: 21,
        };
        let err = Lraspp::new(&vs.root(), cfg).unwrap_err().to_string();
        assert!(
            err.contains("\"resnet50\"") && err.contains("mobilenet_v3_large"),
            "{err}"
        );
    }
}
