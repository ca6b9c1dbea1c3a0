//! DeepLabV3+ (Chen et al., "Encoder-Decoder with Atrous Separable Convolution", 2018), the
//! paper's ResNet version: the encoder runs at output stride 16 (dilation in its last stage),
//! ASPP at rates 6/12/18 with image pooling (256 channels, dropout 0.1 after the projection),
//! upsampled ×4 (bilinear) and concatenated with the stride-4 features reduced to 48 channels by
//! a 1×1 conv-BN-ReLU; two 3×3 256-channel conv-BN-ReLU and a 1×1 classifier; logits bilinearly
//! upsampled to the input.
//!
//! The encoder is any core backbone that can dilate (ResNet, MobileNetV2) at output stride 16,
//! or any other at its native stride 32. Names: `backbone.*` (torchvision's), `decoder.aspp.*`
//! (torchvision's ASPP names: `convs.N`, `project`), `decoder.low_level.{0,1}`,
//! `decoder.fuse.{0,1,3,4}`, `segmentation_head.*`.

use ferrovis_core::backbone::{self, Backbone, BackboneOptions};
use ferrovis_core::nn::ConvNormAct;
use tch::nn::{self, Module, Path};
use tch::Tensor;

use crate::aspp::{conv_bn_relu, Aspp};
use crate::logits::SegmentationLogits;

/// What to build.
#[derive(Debug, Clone, PartialEq)]
pub struct DeepLabV3PlusConfig {
    /// Encoder name as in [`ferrovis_core::backbone::NAMES`].
    pub encoder: String,
    /// Output classes.
    pub num_classes: i64,
    /// 16 (the paper's) or 8 for ResNet and MobileNetV2; 32 for encoders that cannot dilate.
    pub output_stride: i64,
}

/// The ASPP rates at output stride 16; they double at 8 and halve at 32, as in the paper.
pub const RATES_OS16: [i64; 3] = [6, 12, 18];

/// DeepLabV3+: encoder, ASPP, the low-level decoder, the classifier.
#[derive(Debug)]
pub struct DeepLabV3Plus {
    /// The encoder (`backbone.*`, no classifier).
    pub backbone: Box<dyn Backbone>,
    aspp: Aspp,
    low_level: ConvNormAct,
    fuse: [ConvNormAct; 2],
    head: nn::Conv2D,
    /// The pyramid level (stride 4) the decoder reads.
    low_level_index: usize,
    /// What was built.
    pub config: DeepLabV3PlusConfig,
}

impl DeepLabV3Plus {
    /// Builds the model under `p` (the VarStore root).
    pub fn new(p: &Path, config: DeepLabV3PlusConfig) -> ferrovis_core::Result<Self> {
        let opts = BackboneOptions {
            num_classes: 0,
            output_stride: config.output_stride,
            ..Default::default()
        };
        let backbone = backbone::create(&config.encoder, &(p / "backbone"), &opts)?;
        let info = backbone.feature_info();
        let low_level_index = info.iter().position(|f| f.stride == 4).ok_or_else(|| {
            ferrovis_core::Error::Invalid(format!(
                "{}: DeepLabV3+ needs a stride-4 feature level (its levels are at strides {:?}; a \
                 plain Vision Transformer has a single scale: choose a hierarchical encoder such \
                 as swin_t or convnext_tiny)",
                config.encoder,
                info.iter().map(|f| f.stride).collect::<Vec<_>>()
            ))
        })?;
        let c_low = info[low_level_index].channels;
        let c_high = info.last().map(|f| f.channels).unwrap_or(0);
        let scale = 16.0 / config.output_stride.clamp(8, 32) as f64;
        let rates = RATES_OS16.map(|r| (r as f64 * scale).round() as i64);
        let d = p / "decoder";
        let fuse = &d / "fuse";
        Ok(DeepLabV3Plus {
            aspp: Aspp::new(&(&d / "aspp"), c_high, rates, 0.1),
            low_level: conv_bn_relu(
                &(&d / "low_level" / 0),
                &(&d / "low_level" / 1),
                c_low,
                48,
                1,
                1,
            ),
            fuse: [
                conv_bn_relu(&(&fuse / 0), &(&fuse / 1), 256 + 48, 256, 3, 1),
                conv_bn_relu(&(&fuse / 3), &(&fuse / 4), 256, 256, 3, 1),
            ],
            head: nn::conv2d(
                p / "segmentation_head",
                256,
                config.num_classes,
                1,
                Default::default(),
            ),
            backbone,
            low_level_index,
            config,
        })
    }

    /// Logits at the input size.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> SegmentationLogits {
        let (h, w) = (x.size()[2], x.size()[3]);
        let feats = self.backbone.features(x, train);
        let low = self
            .low_level
            .forward_t(&feats[self.low_level_index], train);
        let (lh, lw) = (low.size()[2], low.size()[3]);
        let high = self
            .aspp
            .forward_t(&feats[feats.len() - 1], train)
            .upsample_bilinear2d([lh, lw], false, None, None);
        // NCHW from here (see `SegmentationModel::to_channels_last`).
        let fused = Tensor::cat(&[high, low], 1).contiguous();
        let y = self.fuse[0].forward_t(&fused, train);
        let y = self.fuse[1].forward_t(&y, train);
        let out = self
            .head
            .forward(&y)
            .upsample_bilinear2d([h, w], false, None, None);
        SegmentationLogits { out, aux: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn resnet_and_mobilenet_encoders_give_input_sized_logits() {
        for encoder in ["resnet18", "mobilenet_v2", "mobilenet_v3_large"] {
            let vs = nn::VarStore::new(Device::Cpu);
            let m = DeepLabV3Plus::new(
                &vs.root(),
                DeepLabV3PlusConfig {
                    encoder: encoder.into(),
                    num_classes: 5,
                    output_stride: 16,
                },
            )
            .expect("build");
            // The ASPP input sits at stride 16: 64/16 = 4.
            let x = Tensor::zeros([2, 3, 64, 96], (Kind::Float, Device::Cpu));
            let feats = tch::no_grad(|| m.backbone.features(&x, false));
            assert_eq!(feats.last().map(|f| f.size()[2]), Some(4), "{encoder}");
            let y = tch::no_grad(|| m.forward_t(&x, false));
            assert_eq!(y.out.size(), vec![2, 5, 64, 96], "{encoder}");
            assert!(y.aux.is_none());
        }
    }

    #[test]
    fn encoders_that_cannot_dilate_are_refused_at_stride_16() {
        let vs = nn::VarStore::new(Device::Cpu);
        let err = DeepLabV3Plus::new(
            &vs.root(),
            DeepLabV3PlusConfig {
                encoder: "efficientnet_b0".into(),
                num_classes: 2,
                output_stride: 16,
            },
        )
        .expect_err("no dilation");
        assert!(err.to_string().contains("dilation"), "{err}");
    }

    /// The new hierarchical families at output stride 32 (they do not dilate): the decoder reads
    /// their stride-4 level; a plain ViT has none and is refused with the reason.
    #[test]
    fn hierarchical_encoders_of_the_zoo_decode_at_stride_32() {
        for encoder in [
            "convnext_tiny",
            "swin_t",
            "regnet_y_400mf",
            "efficientnet_v2_s",
        ] {
            let vs = nn::VarStore::new(Device::Cpu);
            let m = DeepLabV3Plus::new(
                &vs.root(),
                DeepLabV3PlusConfig {
                    encoder: encoder.into(),
                    num_classes: 3,
                    output_stride: 32,
                },
            )
            .expect(encoder);
            let x = Tensor::zeros([1, 3, 64, 96], (Kind::Float, Device::Cpu));
            let y = tch::no_grad(|| m.forward_t(&x, false));
            assert_eq!(y.out.size(), vec![1, 3, 64, 96], "{encoder}");
        }
        let vs = nn::VarStore::new(Device::Cpu);
        let err = DeepLabV3Plus::new(
            &vs.root(),
            DeepLabV3PlusConfig {
                encoder: "vit_b_16".into(),
                num_classes: 2,
                output_stride: 32,
            },
        )
        .expect_err("single scale");
        assert!(err.to_string().contains("single scale"), "{err}");
    }
}
