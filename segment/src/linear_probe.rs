//! DINOv2's linear segmentation probe (Oquab et al., "DINOv2: Learning Robust Visual Features
//! without Supervision", 2023, §7.4 "linear"): a frozen DINOv2 encoder's patch tokens after its
//! final norm, on their grid (1/14 of the input), through BatchNorm and a 1×1 convolution to
//! class logits, bilinearly upsampled to the input size. As the paper's evaluation code runs
//! it: the image is first padded on both sides to a multiple of 14 (`CenterPadding`: the odd
//! pixel right and bottom), and the logits of the padded grid are resized to the unpadded size.
//!
//! Variables are named as the released heads (MMSegmentation's `BNHead`): the encoder under
//! `backbone.` in the reference's names (`backbone.blocks.0.attn.qkv.weight`), then
//! `decode_head.bn.*` and `decode_head.conv_seg.*`.

use ferrovis_core::backbone::{self, Backbone, BackboneOptions, SourceOptions};
use ferrovis_core::nn::{conv2d, BatchNorm2d, Conv2dSpec};
use ferrovis_core::Error;
use tch::nn::{self, Module, Path};
use tch::Tensor;

use crate::logits::SegmentationLogits;

/// DINOv2's patch size: the multiple the input is padded to.
const PATCH: i64 = 14;

/// What the probe is built from.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearProbeConfig {
    /// A DINOv2 encoder (`dinov2_vits14`, `dinov2_vitb14_reg`, …).
    pub backbone: String,
    /// Output classes.
    pub num_classes: i64,
    /// What the encoder's source builds differently (a Hub checkpoint's way of resizing the
    /// positional embedding to other grids).
    pub build: SourceOptions,
}

/// The probe: encoder, BatchNorm, 1×1 convolution.
#[derive(Debug)]
pub struct LinearProbe {
    /// The DINOv2 encoder (`backbone.*`), headless.
    pub backbone: Box<dyn Backbone>,
    bn: BatchNorm2d,
    conv_seg: nn::Conv2D,
}

impl LinearProbe {
    /// Builds the probe under `p`; an encoder other than DINOv2 is refused with the reason.
    pub fn new(p: &Path, config: LinearProbeConfig) -> ferrovis_core::Result<Self> {
        if !config.backbone.starts_with("dinov2_") {
            return Err(Error::Invalid(format!(
                "the linear probe reads DINOv2's patch tokens: its encoder is one of the \
                 dinov2_* backbones (dinov2_vits14, dinov2_vitb14_reg, …), not {:?}",
                config.backbone
            )));
        }
        let opts = config.build.apply(BackboneOptions {
            num_classes: 0,
            ..Default::default()
        });
        let backbone = backbone::create(&config.backbone, &(p / "backbone"), &opts)?;
        let channels = backbone
            .feature_info()
            .last()
            .map(|f| f.channels)
            .ok_or_else(|| Error::Invalid(format!("{} has no feature map", config.backbone)))?;
        let head = p / "decode_head";
        Ok(LinearProbe {
            backbone,
            bn: BatchNorm2d::new(&(&head / "bn"), channels),
            conv_seg: conv2d(
                &(&head / "conv_seg"),
                channels,
                config.num_classes,
                Conv2dSpec::new(1).bias(true).pytorch_default_init(),
            ),
        })
    }

    /// Logits at the input size.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> SegmentationLogits {
        let size = x.size();
        let (h, w) = (size[2], size[3]);
        let padded = x.constant_pad_nd(center_padding(h, w));
        let tokens = self
            .backbone
            .features(&padded, train)
            .pop()
            .expect("DINOv2 gives one feature map");
        let logits = self.conv_seg.forward(&self.bn.forward_t(&tokens, train));
        SegmentationLogits {
            out: logits.upsample_bilinear2d([h, w], false, None, None),
            aux: None,
        }
    }
}

/// DINOv2's `CenterPadding(14)` for an `h`×`w` image, as `constant_pad_nd` takes it (left,
/// right, top, bottom): each side padded to the next multiple, the odd pixel right or bottom.
fn center_padding(h: i64, w: i64) -> [i64; 4] {
    let split = |s: i64| {
        let pad = (s + PATCH - 1) / PATCH * PATCH - s;
        [pad / 2, pad - pad / 2]
    };
    let ([l, r], [t, b]) = (split(w), split(h));
    [l, r, t, b]
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn padding_reaches_the_next_multiple_of_14_odd_pixel_last() {
        assert_eq!(center_padding(60, 50), [3, 3, 5, 5]);
        assert_eq!(center_padding(56, 57), [6, 7, 0, 0]);
    }

    #[test]
    fn any_input_size_gives_logits_of_that_size_and_other_encoders_are_refused() {
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = LinearProbeConfig {
            backbone: "dinov2_vits14".into(),
            num_classes: 3,
            build: SourceOptions::default(),
        };
        let probe = LinearProbe::new(&vs.root(), cfg.clone()).unwrap();
        let x = Tensor::randn([1, 3, 30, 45], (Kind::Float, Device::Cpu));
        let out = tch::no_grad(|| probe.forward_t(&x, false)).out;
        assert_eq!(out.size(), [1, 3, 30, 45]);
        let names: Vec<String> = vs.variables().into_keys().collect();
        assert!(names.iter().any(|n| n == "decode_head.conv_seg.weight"));
        assert!(names.iter().any(|n| n == "backbone.blocks.11.ls2.gamma"));
        let err = LinearProbe::new(
            &nn::VarStore::new(Device::Cpu).root(),
            LinearProbeConfig {
                backbone: "resnet50".into(),
                ..cfg
            },
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("resnet50") && err.contains("dinov2_"), "{err}");
    }
}
