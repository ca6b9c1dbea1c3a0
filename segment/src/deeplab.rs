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
use ferrovis_core::nn::BatchNorm2d;
use tch::nn::{self, Module, Path};
use tch::Tensor;

use crate::model::SegmentationLogits;

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

/// Convolution without bias → BatchNorm → ReLU, numbered `<p>.<i>` / `<p>.<i+1>` as in a
/// torchvision `Sequential`.
#[derive(Debug)]
pub(crate) struct ConvBnRelu {
    conv: nn::Conv2D,
    bn: BatchNorm2d,
}

impl ConvBnRelu {
    pub(crate) fn new(
        conv: &Path,
        bn: &Path,
        c_in: i64,
        c_out: i64,
        k: i64,
        dilation: i64,
    ) -> Self {
        let cfg = nn::ConvConfig {
            padding: dilation * (k / 2),
            dilation,
            bias: false,
            ..Default::default()
        };
        ConvBnRelu {
            conv: nn::conv2d(conv, c_in, c_out, k, cfg),
            bn: BatchNorm2d::new(bn, c_out),
        }
    }

    pub(crate) fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.bn.forward_t(&self.conv.forward(x), train).relu()
    }
}

/// Atrous spatial pyramid pooling (`classifier.0`).
#[derive(Debug)]
pub struct Aspp {
    branches: Vec<ConvBnRelu>,
    pooling: ConvBnRelu,
    project: ConvBnRelu,
    dropout: f64,
}

impl Aspp {
    /// `c_in` → 256 channels with 3×3 branches at `rates`; `dropout` after the projection.
    pub fn new(p: &Path, c_in: i64, rates: [i64; 3], dropout: f64) -> Self {
        let convs = p / "convs";
        let mut branches = vec![ConvBnRelu::new(
            &(&convs / 0 / 0),
            &(&convs / 0 / 1),
            c_in,
            256,
            1,
            1,
        )];
        for (i, r) in rates.iter().enumerate() {
            let b = &convs / (i + 1);
            branches.push(ConvBnRelu::new(&(&b / 0), &(&b / 1), c_in, 256, 3, *r));
        }
        // Image pooling: `convs.4` is Sequential(AdaptiveAvgPool2d, Conv, BN, ReLU).
        let pool = &convs / 4;
        Aspp {
            branches,
            pooling: ConvBnRelu::new(&(&pool / 1), &(&pool / 2), c_in, 256, 1, 1),
            project: ConvBnRelu::new(
                &(p / "project" / 0),
                &(p / "project" / 1),
                5 * 256,
                256,
                1,
                1,
            ),
            dropout,
        }
    }

    /// The five branches concatenated, projected, dropout when training.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let (h, w) = (x.size()[2], x.size()[3]);
        let mut outs: Vec<Tensor> = self
            .branches
            .iter()
            .map(|b| b.forward_t(x, train))
            .collect();
        let pooled = self
            .pooling
            .forward_t(&x.adaptive_avg_pool2d([1, 1]), train)
            .upsample_bilinear2d([h, w], false, None, None);
        outs.push(pooled);
        self.project
            .forward_t(&Tensor::cat(&outs, 1), train)
            .dropout(self.dropout, train)
    }
}

/// DeepLabV3 with torchvision's names.
#[derive(Debug)]
pub struct DeepLabV3 {
    /// The dilated ResNet (`backbone.*`, no classifier).
    pub backbone: Box<dyn Backbone>,
    aspp: Aspp,
    head_conv: ConvBnRelu,
    classifier: nn::Conv2D,
    aux: Option<(ConvBnRelu, nn::Conv2D)>,
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
        let aux = config.aux.then(|| {
            let a = p / "aux_classifier";
            (
                ConvBnRelu::new(&(&a / 0), &(&a / 1), c3, 256, 3, 1),
                nn::conv2d(&a / 4, 256, nc, 1, Default::default()),
            )
        });
        Ok(DeepLabV3 {
            backbone,
            aspp: Aspp::new(&(&cls / 0), c4, [12, 24, 36], 0.5),
            head_conv: ConvBnRelu::new(&(&cls / 1), &(&cls / 2), 256, 256, 3, 1),
            classifier: nn::conv2d(&cls / 4, 256, nc, 1, Default::default()),
            aux,
            config,
        })
    }

    /// Logits at the input size (bilinear, `align_corners = false`).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> SegmentationLogits {
        let (h, w) = (x.size()[2], x.size()[3]);
        let feats = self.backbone.features(x, train);
        let up = |t: Tensor| t.upsample_bilinear2d([h, w], false, None, None);
        let y = self
            .head_conv
            .forward_t(&self.aspp.forward_t(&feats[4], train), train);
        let out = up(self.classifier.forward(&y));
        let aux = self.aux.as_ref().map(|(conv, cls)| {
            // FCNHead: conv-BN-ReLU, dropout 0.1, 1×1 classifier.
            up(cls.forward(&conv.forward_t(&feats[3], train).dropout(0.1, train)))
        });
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
