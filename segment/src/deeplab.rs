//! DeepLabV3 (Chen et al., 2017) as torchvision builds `deeplabv3_resnet50/101`: a ResNet with
//! the strides of `layer3` and `layer4` replaced by dilation (output stride 8), atrous spatial
//! pyramid pooling (a 1×1 branch, three 3×3 branches at rates 12/24/36, image pooling; 256
//! channels each, projected to 256 with dropout 0.5), a 3×3 conv-BN-ReLU and a 1×1 classifier;
//! logits are bilinearly upsampled to the input. An auxiliary FCN head reads `layer3`.
//!
//! Variables are named as torchvision's state dict (`backbone.layer4.0.conv2.weight`,
//! `classifier.0.convs.1.0.weight`, `classifier.0.project.0.weight`, `classifier.4.bias`,
//! `aux_classifier.4.weight`), so its checkpoints load with no renaming.

use ferrovis_core::backbone::{self, Backbone, BackboneOptions};
use ferrovis_core::nn::ConvNormAct;
use tch::nn::{self, Module, Path};
use tch::Tensor;

use crate::aspp::{conv_bn_relu, Aspp};
use crate::fcn::FcnHead;
use crate::logits::SegmentationLogits;

/// What to build.
#[derive(Debug, Clone, PartialEq)]
pub struct DeepLabConfig {
    /// `resnet50` or `resnet101`.
    pub backbone: String,
    /// Output classes (21 for torchvision's VOC-style checkpoints).
    pub num_classes: i64,
    /// Build the auxiliary FCN head on `layer3`.
    pub aux: bool,
}

/// DeepLabV3 with torchvision's names.
#[derive(Debug)]
pub struct DeepLabV3 {
    /// The dilated ResNet (`backbone.*`, no classifier).
    pub backbone: Box<dyn Backbone>,
    aspp: Aspp,
    head_conv: ConvNormAct,
    classifier: nn::Conv2D,
    aux: Option<FcnHead>,
    /// What was built.
    pub config: DeepLabConfig,
}

impl DeepLabV3 {
    /// Builds the model under `p` (the VarStore root).
    pub fn new(p: &Path, config: DeepLabConfig) -> ferrovis_core::Result<Self> {
        let opts = BackboneOptions {
            num_classes: 0,
            output_stride: 8,
            ..Default::default()
        };
        let backbone = backbone::create(&config.backbone, &(p / "backbone"), &opts)?;
        let info = backbone.feature_info();
        let (c3, c4) = (info[3].channels, info[4].channels);
        let cls = p / "classifier";
        let nc = config.num_classes;
        // torchvision's `FCNHead(1024, num_classes)`: 256 channels, kept for every encoder.
        let aux = config
            .aux
            .then(|| FcnHead::new(&(p / "aux_classifier"), c3, 256, nc));
        Ok(DeepLabV3 {
            backbone,
            aspp: Aspp::new(&(&cls / 0), c4, [12, 24, 36], 0.5),
            head_conv: conv_bn_relu(&(&cls / 1), &(&cls / 2), 256, 256, 3, 1),
            classifier: nn::conv2d(&cls / 4, 256, nc, 1, Default::default()),
            aux,
            config,
        })
    }

    /// Logits at the input size (bilinear, `align_corners = false`).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> SegmentationLogits {
        let (h, w) = (x.size()[2], x.size()[3]);
        let feats = self.backbone.features(x, train);
        // Upsampled from NCHW: on a channels-last model the small logits are re-laid out before
        // growing 64-fold, the upsampling runs about 2.5× faster, and the loss's log-softmax
        // over channels needs no copy of the full-size logits.
        let up = |t: Tensor| {
            t.contiguous()
                .upsample_bilinear2d([h, w], false, None, None)
        };
        let y = self
            .head_conv
            .forward_t(&self.aspp.forward_t(&feats[4], train), train);
        let out = up(self.classifier.forward(&y));
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
        let _m = DeepLabV3::new(
            &vs.root(),
            DeepLabConfig {
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
        assert_eq!(n, 42_004_074);
    }
}
