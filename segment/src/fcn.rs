//! FCN (Long, Shelhamer and Darrell, "Fully Convolutional Networks for Semantic Segmentation",
//! 2015) as torchvision builds `fcn_resnet50/101`: not the paper's VGG with skip connections
//! from pool3 and pool4 (FCN-8s), but DeepLabV3's recipe with a plain head. The ResNet's
//! `layer3` and `layer4` dilate instead of striding (output stride 8); `FCNHead` (a 3×3
//! conv-BN-ReLU to a quarter of the channels, dropout 0.1, a 1×1 classifier) reads `layer4`;
//! logits are bilinearly upsampled to the input (`align_corners = false`). An auxiliary
//! `FCNHead` reads `layer3`, as DeepLabV3's does.
//!
//! Variables are named as torchvision's state dict (`backbone.layer4.2.conv3.weight`,
//! `classifier.0.weight`, `classifier.1.running_var`, `classifier.4.bias`,
//! `aux_classifier.4.weight`), so its COCO-with-VOC-labels checkpoints load with no renaming.
//! Other encoders that dilate (ResNet-18/34, ResNeXt, MobileNets) take the same heads, sized
//! from their channels as torchvision's `FCNHead` sizes itself.

use ferrovis_core::backbone::{self, Backbone, BackboneOptions};
use ferrovis_core::nn::{conv2d, Conv2dSpec, ConvNormAct};
use tch::nn::{self, Module, Path};
use tch::Tensor;

use crate::aspp::conv_bn_relu;
use crate::logits::SegmentationLogits;

/// torchvision's `FCNHead`, a `Sequential`: `0` 3×3 convolution without bias, `1` BatchNorm,
/// `2` ReLU, `3` dropout 0.1, `4` 1×1 convolution to the classes (with bias), all initialised as
/// PyTorch initialises fresh layers.
#[derive(Debug)]
pub struct FcnHead {
    conv: ConvNormAct,
    classifier: nn::Conv2D,
}

impl FcnHead {
    /// `c_in` → `channels` (torchvision's FCNHead: `c_in / 4`) → `num_classes`, under `p`.
    pub fn new(p: &Path, c_in: i64, channels: i64, num_classes: i64) -> Self {
        FcnHead {
            conv: conv_bn_relu(&(p / 0), &(p / 1), c_in, channels, 3, 1),
            classifier: conv2d(
                &(p / 4),
                channels,
                num_classes,
                Conv2dSpec::new(1).bias(true).pytorch_default_init(),
            ),
        }
    }

    /// Logits at the resolution of `x`; dropout only when training.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.classifier
            .forward(&self.conv.forward_t(x, train).dropout(0.1, train))
    }
}

/// What to build.
#[derive(Debug, Clone, PartialEq)]
pub struct FcnConfig {
    /// `resnet50` or `resnet101` (torchvision's), or another encoder that dilates.
    pub backbone: String,
    /// Output classes (21 for torchvision's VOC-style checkpoints).
    pub num_classes: i64,
    /// Build the auxiliary head on `layer3` (torchvision's `aux_loss`; its checkpoints have it).
    pub aux: bool,
}

/// FCN with torchvision's names.
#[derive(Debug)]
pub struct Fcn {
    /// The dilated encoder (`backbone.*`, no classifier).
    pub backbone: Box<dyn Backbone>,
    classifier: FcnHead,
    aux: Option<FcnHead>,
    /// What was built.
    pub config: FcnConfig,
}

impl Fcn {
    /// Builds the model under `p` (the VarStore root).
    pub fn new(p: &Path, config: FcnConfig) -> ferrovis_core::Result<Self> {
        let opts = BackboneOptions {
            num_classes: 0,
            output_stride: 8,
            ..Default::default()
        };
        let backbone = backbone::create(&config.backbone, &(p / "backbone"), &opts)?;
        let info = backbone.feature_info();
        let (c3, c4) = (info[3].channels, info[4].channels);
        let nc = config.num_classes;
        let aux = config
            .aux
            .then(|| FcnHead::new(&(p / "aux_classifier"), c3, c3 / 4, nc));
        Ok(Fcn {
            backbone,
            classifier: FcnHead::new(&(p / "classifier"), c4, c4 / 4, nc),
            aux,
            config,
        })
    }

    /// Logits at the input size (bilinear, `align_corners = false`); the auxiliary head's too
    /// when it was built.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> SegmentationLogits {
        let (h, w) = (x.size()[2], x.size()[3]);
        let feats = self.backbone.features(x, train);
        // Upsampled from NCHW, as DeepLabV3's: on a channels-last model the small logits are
        // re-laid out before they grow 64-fold.
        let up = |t: Tensor| {
            t.contiguous()
                .upsample_bilinear2d([h, w], false, None, None)
        };
        let out = up(self.classifier.forward_t(&feats[4], train));
        let aux = self
            .aux
            .as_ref()
            .map(|head| up(head.forward_t(&feats[3], train)));
        SegmentationLogits { out, aux }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn resnet50_with_aux_has_torchvision_parameter_count() {
        let vs = nn::VarStore::new(Device::Cpu);
        let m = Fcn::new(
            &vs.root(),
            FcnConfig {
                backbone: "resnet50".into(),
                num_classes: 21,
                aux: true,
            },
        )
        .expect("build");
        let n: i64 = vs
            .trainable_variables()
            .iter()
            .map(|t| t.numel() as i64)
            .sum();
        // FCN_ResNet50_Weights' num_params.
        assert_eq!(n, 35_322_218);
        let x = Tensor::zeros([1, 3, 35, 41], (tch::Kind::Float, Device::Cpu));
        let y = tch::no_grad(|| m.forward_t(&x, false));
        assert_eq!(y.out.size(), [1, 21, 35, 41]);
        assert_eq!(y.aux.map(|a| a.size()), Some(vec![1, 21, 35, 41]));
    }
}
