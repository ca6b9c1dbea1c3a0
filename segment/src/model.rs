//! One type over the five architectures, so training, validation and prediction do not care
//! which one runs: building from a [`ModelSpec`], loading pretrained encoder weights or a whole
//! checkpoint, the stages that freezing and learning-rate groups work on.

use std::path::Path;

use anyhow::{Context, Result};
use ferrovis_core::backbone::{Backbone, PretrainedCfg, SourceOptions, Stage};
use ferrovis_core::checkpoint::{self, LoadOptions};
use ferrovis_core::{freeze, memory_format};
use serde::{Deserialize, Serialize};
use tch::nn::VarStore;
use tch::{Device, Tensor};

use crate::deeplab::{DeepLabConfig, DeepLabV3};
use crate::deeplabv3plus::{DeepLabV3Plus, DeepLabV3PlusConfig};
use crate::fcn::{Fcn, FcnConfig};
use crate::linear_probe::{LinearProbe, LinearProbeConfig};
pub use crate::logits::SegmentationLogits;
use crate::lraspp::{Lraspp, LrasppConfig};
use crate::unet::{Unet, UnetConfig};

/// Which architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    /// U-Net with smp's decoder.
    Unet,
    /// torchvision's DeepLabV3 (output stride 8, ASPP 12/24/36, auxiliary head).
    Deeplabv3,
    /// DeepLabV3+ (output stride 16, ASPP 6/12/18, low-level decoder).
    Deeplabv3plus,
    /// torchvision's FCN (output stride 8, FCNHead, auxiliary head).
    Fcn,
    /// torchvision's LR-ASPP on a dilated MobileNetV3 (output stride 16, no auxiliary head).
    Lraspp,
    /// DINOv2's linear probe: BatchNorm and a 1×1 convolution on a DINOv2 encoder's patch
    /// tokens, upsampled to the input.
    Linear,
}

/// Everything that fixes the network's shape: what a run folder records so `val` and `predict`
/// rebuild it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelSpec {
    /// The architecture.
    pub arch: Architecture,
    /// The encoder, a core backbone name (`resnet34`, `mobilenet_v2`, `efficientnet_lite0`, …).
    pub encoder: String,
    /// Output classes (background included).
    pub num_classes: i64,
    /// DeepLabV3 and FCN: build the auxiliary FCN head on `layer3` (LR-ASPP has none and
    /// ignores it).
    pub aux: bool,
    /// DeepLabV3+: encoder output stride (16; 8; 32 for encoders that cannot dilate).
    pub output_stride: i64,
    /// What the encoder's source builds differently (a Hub checkpoint's DINOv2
    /// positional-embedding resizing), so that validation rebuilds what trained; the linear
    /// probe's encoder takes it.
    #[serde(skip_serializing_if = "SourceOptions::is_default")]
    pub build: SourceOptions,
}

impl Default for ModelSpec {
    fn default() -> Self {
        ModelSpec {
            arch: Architecture::Unet,
            encoder: "resnet34".into(),
            num_classes: 2,
            aux: true,
            output_stride: 16,
            build: SourceOptions::default(),
        }
    }
}

#[derive(Debug)]
enum Net {
    Unet(Unet),
    DeepLabV3(DeepLabV3),
    DeepLabV3Plus(DeepLabV3Plus),
    Fcn(Fcn),
    Lraspp(Lraspp),
    Linear(LinearProbe),
}

/// A segmentation network and its variables (named as the PyTorch state dict).
#[derive(Debug)]
pub struct SegmentationModel {
    /// The variables.
    pub vs: VarStore,
    net: Net,
    /// What was built.
    pub spec: ModelSpec,
}

impl SegmentationModel {
    /// Builds `spec` on `device` with random weights.
    pub fn new(spec: &ModelSpec, device: Device) -> Result<Self> {
        if spec.num_classes < 1 {
            anyhow::bail!(
                "model.num_classes must be at least 1, got {}",
                spec.num_classes
            );
        }
        let vs = VarStore::new(device);
        let root = vs.root();
        let built = match spec.arch {
            Architecture::Unet => Unet::new(
                &root,
                UnetConfig {
                    encoder: spec.encoder.clone(),
                    num_classes: spec.num_classes,
                },
            )
            .map(Net::Unet),
            Architecture::Deeplabv3 => DeepLabV3::new(
                &root,
                DeepLabConfig {
                    backbone: spec.encoder.clone(),
                    num_classes: spec.num_classes,
                    aux: spec.aux,
                },
            )
            .map(Net::DeepLabV3),
            Architecture::Deeplabv3plus => DeepLabV3Plus::new(
                &root,
                DeepLabV3PlusConfig {
                    encoder: spec.encoder.clone(),
                    num_classes: spec.num_classes,
                    output_stride: spec.output_stride,
                },
            )
            .map(Net::DeepLabV3Plus),
            Architecture::Fcn => Fcn::new(
                &root,
                FcnConfig {
                    backbone: spec.encoder.clone(),
                    num_classes: spec.num_classes,
                    aux: spec.aux,
                },
            )
            .map(Net::Fcn),
            Architecture::Lraspp => Lraspp::new(
                &root,
                LrasppConfig {
                    backbone: spec.encoder.clone(),
                    num_classes: spec.num_classes,
                },
            )
            .map(Net::Lraspp),
            Architecture::Linear => LinearProbe::new(
                &root,
                LinearProbeConfig {
                    backbone: spec.encoder.clone(),
                    num_classes: spec.num_classes,
                    build: spec.build,
                },
            )
            .map(Net::Linear),
        };
        let net = built.with_context(|| format!("building {:?} on {}", spec.arch, spec.encoder))?;
        Ok(SegmentationModel {
            vs,
            net,
            spec: spec.clone(),
        })
    }

    /// Logits at the input size.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> SegmentationLogits {
        match &self.net {
            Net::Unet(m) => SegmentationLogits {
                out: m.forward_t(x, train),
                aux: None,
            },
            Net::DeepLabV3(m) => m.forward_t(x, train),
            Net::DeepLabV3Plus(m) => m.forward_t(x, train),
            Net::Fcn(m) => m.forward_t(x, train),
            Net::Lraspp(m) => m.forward_t(x, train),
            Net::Linear(m) => m.forward_t(x, train),
        }
    }

    /// The encoder.
    pub fn encoder(&self) -> &dyn Backbone {
        match &self.net {
            Net::Unet(m) => m.encoder.as_ref(),
            Net::DeepLabV3(m) => m.backbone.as_ref(),
            Net::DeepLabV3Plus(m) => m.backbone.as_ref(),
            Net::Fcn(m) => m.backbone.as_ref(),
            Net::Lraspp(m) => &m.backbone,
            Net::Linear(m) => m.backbone.as_ref(),
        }
    }

    /// The state-dict prefix of the encoder's variables (`encoder` as smp, `backbone` as
    /// torchvision).
    pub fn encoder_prefix(&self) -> &'static str {
        match self.net {
            Net::Unet(_) => "encoder",
            Net::DeepLabV3(_)
            | Net::DeepLabV3Plus(_)
            | Net::Fcn(_)
            | Net::Lraspp(_)
            | Net::Linear(_) => "backbone",
        }
    }

    /// The model's name of the encoder's own variable or module `name`: under the encoder prefix,
    /// and for LR-ASPP without `features.`, since torchvision's LR-ASPP holds the `features`
    /// Sequential itself (`backbone.4.block.0.0.weight`, not `backbone.features.4…`).
    fn encoder_name(&self, name: &str) -> String {
        let name = match self.net {
            Net::Lraspp(_) => name.strip_prefix("features.").unwrap_or(name),
            _ => name,
        };
        format!("{}.{name}", self.encoder_prefix())
    }

    /// The prefixes of the layers whose size is the class count (dropped when a checkpoint was
    /// trained for other classes).
    fn class_layers(&self) -> &'static [&'static str] {
        match self.net {
            Net::Unet(_) | Net::DeepLabV3Plus(_) => &["segmentation_head"],
            Net::DeepLabV3(_) | Net::Fcn(_) => &["classifier.4", "aux_classifier.4"],
            Net::Lraspp(_) => &["classifier.low_classifier", "classifier.high_classifier"],
            Net::Linear(_) => &["decode_head.conv_seg"],
        }
    }

    /// Preprocessing of the encoder's pretrained weights (mean and std).
    pub fn pretrained_cfg(&self) -> PretrainedCfg {
        self.encoder().pretrained_cfg()
    }

    /// The encoder's stages (its classifier left out), prefixed with [`Self::encoder_prefix`],
    /// then one `decoder` stage holding everything else: what freezing and learning-rate groups
    /// work on ("decoder at 10× the encoder's rate" is `backbone_lr_scale = 0.1`).
    pub fn stages(&self) -> Vec<Stage> {
        let mut encoder = self.encoder().stages();
        encoder.pop(); // the classifier, absent in an encoder
        let mut stages: Vec<Stage> = encoder
            .into_iter()
            .map(|s| Stage {
                name: s.name,
                prefixes: s.prefixes.iter().map(|p| self.encoder_name(p)).collect(),
            })
            .collect();
        let decoder = match self.net {
            Net::Unet(_) | Net::DeepLabV3Plus(_) => vec!["decoder", "segmentation_head"],
            Net::DeepLabV3(_) | Net::Fcn(_) => vec!["classifier", "aux_classifier"],
            Net::Lraspp(_) => vec!["classifier"],
            Net::Linear(_) => vec!["decode_head"],
        };
        stages.push(Stage {
            name: "decoder".into(),
            prefixes: decoder.into_iter().map(String::from).collect(),
        });
        stages
    }

    /// Freezes the encoder (feature extraction: only the decoder trains); returns how many
    /// variables changed.
    pub fn freeze_encoder(&self) -> Result<usize> {
        Ok(freeze::freeze_before_stage(
            &self.vs,
            &self.stages(),
            "decoder",
            Default::default(),
        )?)
    }

    /// Loads `path`, returning a one-line summary. A checkpoint whose names start with the
    /// encoder prefix is a whole segmentation model (ours, torchvision's DeepLabV3, FCN or
    /// LR-ASPP, smp's U-Net): it loads by name, its class layers starting fresh when their size
    /// differs. Any other checkpoint is the encoder's own (a torchvision ImageNet classifier): it
    /// loads under the prefix, its classifier dropped, the decoder starting fresh. Anything else
    /// missing or of another shape is an error naming it.
    pub fn load_weights(&mut self, path: &Path) -> Result<String> {
        // A weights name (`resnet50`, `deeplabv3_resnet50:COCO_WITH_VOC_LABELS_V1`) is its
        // cached file.
        let file = ferrovis_core::run::resolve_weights(path)?.file;
        let path = file.as_path();
        let sd = checkpoint::read(path).with_context(|| format!("reading {}", path.display()))?;
        self.load_state_dict(sd, &path.display().to_string())
    }

    /// [`Self::load_weights`] for a state dict already read (a Hub checkpoint's, in the
    /// encoder's names); `source` names it in messages.
    pub fn load_state_dict(
        &mut self,
        mut sd: checkpoint::StateDict,
        source: &str,
    ) -> Result<String> {
        let path = Path::new(source);
        let prefix = format!("{}.", self.encoder_prefix());
        let whole = sd.iter().any(|(name, _)| name.starts_with(&prefix));
        if !whole {
            // The encoder's own names: renamed or resized as the architecture needs (DenseNet's
            // legacy names, ViT's positional embedding), before they move under the prefix.
            self.encoder().adapt_checkpoint(&mut sd).with_context(|| {
                format!("{} does not fit {}", path.display(), self.spec.encoder)
            })?;
        }
        let alternatives = |layers: &[&str]| -> String {
            let alts: Vec<String> = layers
                .iter()
                .map(|p| regex::escape(&format!("{p}.")))
                .collect();
            format!("^({})", alts.join("|"))
        };
        let mut opts = LoadOptions::default().strict(true);
        if whole {
            opts = opts.reinit(&alternatives(self.class_layers()))?;
        } else {
            let head = self.encoder().head_pattern();
            // The encoder's classifier pattern is anchored at its root: match it after the prefix.
            let head = head.replacen('^', &format!("^{}", regex::escape(&prefix)), 1);
            // An encoder has no classifier at all: every classifier layer of the ImageNet
            // checkpoint goes, VGG's and MobileNetV3's hidden fully connected layers included.
            let classifier = self.encoder().classifier_pattern().replacen(
                '^',
                &format!("^{}", regex::escape(&prefix)),
                1,
            );
            let decoder = self.stages().pop().map(|s| s.prefixes).unwrap_or_default();
            let decoder: Vec<&str> = decoder.iter().map(String::as_str).collect();
            opts = opts.rename_prefix("", &prefix);
            if let Net::Lraspp(_) = self.net {
                // The classifier's `features.N` is LR-ASPP's `backbone.N`.
                opts = opts.rename_prefix(&format!("{prefix}features."), &prefix);
            }
            opts = opts
                .skip(&head)?
                .skip(&classifier)?
                .reinit(&alternatives(&decoder))?;
        }
        let report = checkpoint::load_into(&self.vs, &sd, &opts).with_context(|| {
            format!(
                "{} does not fit {:?} on {}",
                path.display(),
                self.spec.arch,
                self.spec.encoder
            )
        })?;
        let what = if whole {
            "whole model"
        } else {
            "encoder (its ImageNet classifier dropped)"
        };
        Ok(format!("{} ({what}): {}", path.display(), report.summary()))
    }

    /// Lays the convolution weights out channels-last (NHWC), faster on CPUs for most layers.
    /// DeepLabV3+'s decoder stays NCHW: its 3×3 convolutions over 304 channels at stride 4 run
    /// about 1.5× slower channels-last in libtorch's CPU kernels (PyTorch measures the same), and
    /// they are most of the model's arithmetic.
    pub fn to_channels_last(&self) -> Result<usize> {
        let keep_nchw: &[&str] = match self.net {
            Net::DeepLabV3Plus(_) => &["decoder.fuse.", "segmentation_head."],
            _ => &[],
        };
        Ok(memory_format::vars_to_channels_last_where(&self.vs, |n| {
            !keep_nchw.iter().any(|p| n.starts_with(p))
        })?)
    }

    /// Trainable and total parameter counts (buffers excluded).
    pub fn parameter_counts(&self) -> (i64, i64) {
        freeze::parameter_counts(&self.vs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_put_the_encoder_first_and_the_decoder_last() {
        let spec = ModelSpec {
            encoder: "resnet18".into(),
            ..Default::default()
        };
        let m = SegmentationModel::new(&spec, Device::Cpu).expect("build");
        let stages = m.stages();
        assert_eq!(stages[0].prefixes, vec!["encoder.conv1", "encoder.bn1"]);
        assert_eq!(stages.last().map(|s| s.name.as_str()), Some("decoder"));
        let (_, total) = m.parameter_counts();
        let changed = m.freeze_encoder().expect("freeze");
        let (trainable, _) = m.parameter_counts();
        // resnet18 without fc: 11,176,512 parameters frozen, the decoder's remain.
        assert_eq!(total - trainable, 11_176_512);
        assert!(changed > 0);
    }

    #[test]
    fn every_encoder_family_builds_a_unet() {
        for encoder in [
            "vgg11",
            "mobilenet_v2",
            "mobilenet_v3_large",
            "mobilenet_v3_small",
            "efficientnet_b0",
            "efficientnet_lite0",
        ] {
            let spec = ModelSpec {
                encoder: encoder.into(),
                num_classes: 3,
                ..Default::default()
            };
            let m = SegmentationModel::new(&spec, Device::Cpu).expect(encoder);
            let x = Tensor::zeros([1, 3, 40, 52], (tch::Kind::Float, Device::Cpu));
            let y = tch::no_grad(|| m.forward_t(&x, false));
            assert_eq!(y.out.size(), vec![1, 3, 40, 52], "{encoder}");
            // No classifier variables in an encoder.
            assert!(
                !m.vs
                    .variables()
                    .keys()
                    .any(|k| k.contains("classifier") || k.contains("_fc")),
                "{encoder}"
            );
        }
    }
}
