//! Faster R-CNN (Ren et al., 2015) as torchvision builds it, with its state_dict names so its
//! checkpoints load as they are: `backbone.body` (ResNet-50 or MobileNetV3-Large) and
//! `backbone.fpn` (a [`Fpn`]), `rpn` ([`Rpn`]) and `roi_heads` ([`RoiHeads`]), behind the
//! [`RcnnTransform`].
//!
//! | arch | backbone | FPN inputs | RPN convs | box head | input |
//! |---|---|---|---|---|---|
//! | `fasterrcnn_resnet50_fpn` | ResNet-50 | layer1–4 | 1 | TwoMLPHead | 800 / 1333 |
//! | `fasterrcnn_resnet50_fpn_v2` | ResNet-50, BatchNorm FPN | layer1–4 | 2 | 4 conv + 1 fc | 800 / 1333 |
//! | `fasterrcnn_mobilenet_v3_large_fpn` | MobileNetV3-Large | features.13, .16 | 1 | TwoMLPHead | 800 / 1333 |
//! | `fasterrcnn_mobilenet_v3_large_320_fpn` | the same | the same | 1 | TwoMLPHead | 320 / 640 |
//! | `fasterrcnn_<backbone>` (any core backbone) | e.g. MobileNetV2 | none: its last map | 1 | TwoMLPHead | 800 / 1333 |
//!
//! torchvision builds the backbone with FrozenBatchNorm2d when it starts from pretrained
//! weights (eps 0.0 for the COCO v1 ResNet-50 checkpoint) and with BatchNorm otherwise;
//! [`FasterRcnnConfig::norm`] says which.

use anyhow::{bail, Context, Result};
use tch::nn::{Path, VarStore};
use tch::Tensor;

use ferrovis_core::backbone::{
    Backbone, BackboneOptions, MobileNetV2, MobileNetV3, MobileNetV3Config, ResNet, ResNetConfig,
};
use ferrovis_core::checkpoint::{self, LoadOptions, LoadReport};
use ferrovis_core::freeze::{set_trainable, FreezeOptions};
use ferrovis_core::neck::{ExtraBlock, Fpn, FpnConfig};
use ferrovis_core::nn::NormLayer;
use ferrovis_core::ops::anchors::AnchorGenerator;
use ferrovis_core::ops::roi_align::MultiScaleRoiAlign;

use crate::torchvision::detector::{is_detection_checkpoint, load_checkpoint, Detector};
use crate::torchvision::roi_heads::{BoxHead, FastRcnnPredictor, RoiHeads, RoiHeadsConfig};
use crate::torchvision::rpn::{Rpn, RpnConfig};
use crate::torchvision::targets::{Detections, RcnnLosses, Target};
use crate::torchvision::transform::RcnnTransform;

/// Every architecture name [`FasterRcnnConfig::by_name`] knows.
pub const ARCHS: &[&str] = &[
    "fasterrcnn_resnet50_fpn",
    "fasterrcnn_resnet50_fpn_v2",
    "fasterrcnn_mobilenet_v3_large_fpn",
    "fasterrcnn_mobilenet_v3_large_320_fpn",
    "fasterrcnn_mobilenet_v2_fpn",
];

/// Which backbone (with or without FPN) an architecture uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackboneKind {
    /// ResNet-50 layer1–4 into a 4-level FPN (+ max-pool level); `v2` adds BatchNorm to the FPN.
    ResNet50 {
        /// The v2 recipe (arXiv 2111.11429).
        v2: bool,
    },
    /// MobileNetV3-Large `features.13` and `features.16` into a 2-level FPN (+ max-pool level).
    MobileNetV3Large,
    /// MobileNetV2 with an FPN over its last two stages, as torchvision's
    /// `mobilenet_backbone("mobilenet_v2", fpn=True)` builds it (`backbone.body.N`,
    /// `backbone.fpn`), with MobileNetV3's anchors.
    MobileNetV2,
    /// Any core backbone (`fasterrcnn_<name>`) under `backbone`, its last feature map alone, no
    /// FPN: the second recipe of torchvision's fine-tuning tutorial (MobileNetV2's features,
    /// anchors 32–512 × 0.5/1/2 on the one map, RoIAlign on it).
    Single {
        /// The core backbone name (`mobilenet_v2`, `resnet18`, …).
        name: String,
    },
}

/// A Faster R-CNN's shape and settings.
#[derive(Debug, Clone, PartialEq)]
pub struct FasterRcnnConfig {
    /// The torchvision name.
    pub arch: String,
    /// The backbone.
    pub backbone: BackboneKind,
    /// Classes, the background included (91 for COCO).
    pub num_classes: i64,
    /// The backbone's normalisation (FrozenBatchNorm2d when fine-tuning from pretrained weights).
    pub norm: NormLayer,
    /// Input transform.
    pub transform: RcnnTransform,
    /// Region proposal network.
    pub rpn: RpnConfig,
    /// RoI heads.
    pub roi_heads: RoiHeadsConfig,
}

impl FasterRcnnConfig {
    /// torchvision's settings for `arch` with `num_classes`; `pretrained` (weights or backbone
    /// weights given) selects FrozenBatchNorm2d (eps 1e-5) as torchvision does, except in v2,
    /// which keeps BatchNorm.
    pub fn by_name(arch: &str, num_classes: i64, pretrained: bool) -> Result<Self> {
        let frozen = NormLayer::Frozen { eps: 1e-5 };
        let (backbone, norm, transform, rpn) = match arch {
            "fasterrcnn_resnet50_fpn" => (
                BackboneKind::ResNet50 { v2: false },
                if pretrained {
                    frozen
                } else {
                    NormLayer::BatchNorm
                },
                RcnnTransform::new(800, 1333),
                RpnConfig::default(),
            ),
            "fasterrcnn_resnet50_fpn_v2" => (
                BackboneKind::ResNet50 { v2: true },
                NormLayer::BatchNorm,
                RcnnTransform::new(800, 1333),
                RpnConfig::default(),
            ),
            "fasterrcnn_mobilenet_v3_large_fpn" | "fasterrcnn_mobilenet_v3_large_320_fpn" => {
                let mut rpn = RpnConfig {
                    score_thresh: 0.05,
                    ..Default::default()
                };
                let transform = if arch.contains("320") {
                    rpn.pre_nms_top_n_test = 150;
                    rpn.post_nms_top_n_test = 150;
                    RcnnTransform::new(320, 640)
                } else {
                    RcnnTransform::new(800, 1333)
                };
                // torchvision passes nn.BatchNorm2d itself (eps 1e-5, momentum 0.1), not
                // MobileNetV3's own 0.001 / 0.01, when it builds this backbone untrained.
                let plain = NormLayer::BatchNormWith {
                    eps: 1e-5,
                    momentum: 0.1,
                };
                (
                    BackboneKind::MobileNetV3Large,
                    if pretrained { frozen } else { plain },
                    transform,
                    rpn,
                )
            }
            "fasterrcnn_mobilenet_v2_fpn" => (
                BackboneKind::MobileNetV2,
                NormLayer::BatchNorm,
                RcnnTransform::new(800, 1333),
                RpnConfig {
                    score_thresh: 0.05,
                    ..Default::default()
                },
            ),
            other => match other.strip_prefix("fasterrcnn_") {
                // Its 14-pixel patches do not tile the detector's 32-pixel padded batches.
                Some(name) if name.starts_with("dinov2_") => bail!(
                    "{other}: DINOv2 is not a Faster R-CNN backbone here (14-pixel patches; the \
                     detector pads images to multiples of 32)"
                ),
                Some(name) if ferrovis_core::backbone::NAMES.contains(&name) => (
                    BackboneKind::Single {
                        name: name.to_string(),
                    },
                    NormLayer::BatchNorm,
                    RcnnTransform::new(800, 1333),
                    RpnConfig::default(),
                ),
                _ => bail!(
                    "unknown Faster R-CNN architecture {other:?}; available: {}, or \
                     fasterrcnn_<backbone> for any of {}",
                    ARCHS.join(", "),
                    ferrovis_core::backbone::NAMES.join(", ")
                ),
            },
        };
        if num_classes < 2 {
            bail!("num_classes: expected at least 2 (the background and one class), got {num_classes}");
        }
        Ok(FasterRcnnConfig {
            arch: arch.to_string(),
            backbone,
            num_classes,
            norm,
            transform,
            rpn,
            roi_heads: RoiHeadsConfig::default(),
        })
    }
}

/// The feature extractor under `backbone.body`. One exists per model, so the variants' sizes
/// do not matter.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
enum Body {
    ResNet(ResNet),
    MobileNetV3 {
        net: MobileNetV3,
        /// The `features.N` modules feeding the FPN.
        taps: Vec<usize>,
    },
    MobileNetV2 {
        net: MobileNetV2,
        /// The `features.N` modules feeding the FPN.
        taps: Vec<usize>,
    },
    Single(Box<dyn Backbone>),
}

/// torchvision's `FasterRCNN`.
#[derive(Debug)]
pub struct FasterRcnn {
    /// Shape and settings.
    pub config: FasterRcnnConfig,
    body: Body,
    /// `None` for a single-map backbone.
    fpn: Option<Fpn>,
    /// False once every backbone layer is frozen: the backbone then also keeps its BatchNorm
    /// statistics (evaluation mode), so a frozen backbone stays bit-identical.
    backbone_trains: std::sync::atomic::AtomicBool,
    /// The region proposal network.
    pub rpn: Rpn,
    /// The box branch.
    pub roi_heads: RoiHeads,
}

impl FasterRcnn {
    /// Builds `config` under `p` (the model's root: `p.backbone.body.*`, `p.rpn.*`, …).
    pub fn new(p: &Path, config: &FasterRcnnConfig) -> Result<Self> {
        let body_path = p / "backbone" / "body";
        let opts = BackboneOptions {
            num_classes: 0,
            norm: config.norm,
            ..Default::default()
        };
        let (body, in_channels, anchors, v2) = match &config.backbone {
            &BackboneKind::ResNet50 { v2 } => {
                let cfg = ResNetConfig::by_name("resnet50").context("resnet50 config")?;
                let net = ResNet::new(&body_path, &cfg, &opts)?;
                (
                    Body::ResNet(net),
                    vec![256, 512, 1024, 2048],
                    AnchorGenerator::fpn(),
                    v2,
                )
            }
            BackboneKind::MobileNetV3Large => {
                let cfg = MobileNetV3Config::by_name("mobilenet_v3_large")
                    .context("mobilenet_v3_large config")?;
                let net = MobileNetV3::features_at(&body_path, &cfg, &opts);
                let stages = net.stage_indices();
                let taps = vec![stages[stages.len() - 2], stages[stages.len() - 1]];
                let channels = taps.iter().map(|&i| net.module_channels(i)).collect();
                let sizes = vec![vec![32.0, 64.0, 128.0, 256.0, 512.0]; 3];
                let anchors = AnchorGenerator::new(sizes, vec![vec![0.5, 1.0, 2.0]; 3])?;
                (Body::MobileNetV3 { net, taps }, channels, anchors, false)
            }
            BackboneKind::MobileNetV2 => {
                let net = MobileNetV2::features_at(&body_path, &opts);
                let stages = MobileNetV2::STAGE_INDICES;
                let taps = vec![stages[stages.len() - 2], stages[stages.len() - 1]];
                let channels = taps.iter().map(|&i| net.module_channels(i)).collect();
                let sizes = vec![vec![32.0, 64.0, 128.0, 256.0, 512.0]; 3];
                let anchors = AnchorGenerator::new(sizes, vec![vec![0.5, 1.0, 2.0]; 3])?;
                (Body::MobileNetV2 { net, taps }, channels, anchors, false)
            }
            BackboneKind::Single { name } => {
                let net = ferrovis_core::backbone::create(name, &(p / "backbone"), &opts)?;
                let channels = net.final_channels();
                let sizes = vec![vec![32.0, 64.0, 128.0, 256.0, 512.0]];
                let anchors = AnchorGenerator::new(sizes, vec![vec![0.5, 1.0, 2.0]])?;
                (Body::Single(net), vec![channels], anchors, false)
            }
        };
        let (fpn, channels) = if matches!(body, Body::Single(_)) {
            (None, in_channels[0])
        } else {
            let fpn = Fpn::new(
                &(p / "backbone" / "fpn"),
                FpnConfig {
                    in_channels,
                    out_channels: 256,
                    extra: ExtraBlock::LastLevelMaxPool,
                    batch_norm: v2,
                },
            )?;
            (Some(fpn), 256)
        };
        let rpn = Rpn::new(
            &(p / "rpn"),
            channels,
            anchors,
            if v2 { 2 } else { 1 },
            config.rpn.clone(),
        )?;
        let rh = p / "roi_heads";
        let box_head = if v2 {
            BoxHead::conv_fc(&(&rh / "box_head"), 256, 7, &[256; 4], &[1024])
        } else {
            BoxHead::two_mlp(&(&rh / "box_head"), channels * 7 * 7, 1024)
        };
        let roi_heads = RoiHeads {
            box_roi_pool: MultiScaleRoiAlign::new((7, 7), 2),
            box_head,
            box_predictor: FastRcnnPredictor::new(
                &(&rh / "box_predictor"),
                1024,
                config.num_classes,
            ),
            config: config.roi_heads.clone(),
        };
        Ok(FasterRcnn {
            config: config.clone(),
            body,
            fpn,
            backbone_trains: std::sync::atomic::AtomicBool::new(true),
            rpn,
            roi_heads,
        })
    }

    /// The pyramid levels of a padded batch, finest first, the max-pool level last (one map
    /// for a single-map backbone).
    pub fn features(&self, x: &Tensor, train: bool) -> Result<Vec<Tensor>> {
        let body_train = train
            && self
                .backbone_trains
                .load(std::sync::atomic::Ordering::Relaxed);
        let levels = match &self.body {
            Body::ResNet(net) => net.features(x, body_train).split_off(1),
            Body::MobileNetV3 { net, taps } => net.forward_modules(x, taps, body_train),
            Body::MobileNetV2 { net, taps } => net.forward_modules(x, taps, body_train),
            Body::Single(net) => vec![net.final_features(x, body_train)],
        };
        match &self.fpn {
            Some(fpn) => Ok(fpn.forward_t(&levels, train)?),
            None => Ok(levels),
        }
    }

    /// The levels the RoI heads pool from: all but FPN's max-pool level.
    fn pooled_levels<'a>(&self, features: &'a [Tensor]) -> &'a [Tensor] {
        match &self.fpn {
            Some(_) => &features[..features.len() - 1],
            None => features,
        }
    }

    /// Detections for each image (`(3, H, W)`, float, 0–1), in its own coordinates (evaluation
    /// mode: BatchNorm uses its running statistics).
    pub fn detect(&self, images: &[Tensor]) -> Result<Vec<Detections>> {
        let (batch, _) = self.config.transform.apply(images, None, false)?;
        let features = self.features(&batch.tensors, false)?;
        let (proposals, _) = self.rpn.forward(&batch, &features, None)?;
        let pooled_levels = self.pooled_levels(&features);
        let (detections, _) =
            self.roi_heads
                .forward(pooled_levels, &proposals, &batch.image_sizes, None, false)?;
        Ok(self.config.transform.postprocess(detections, &batch))
    }

    /// The four training losses for `images` and their `targets` (training mode: BatchNorm
    /// uses batch statistics; the sampling draws on libtorch's generator as torchvision's do).
    pub fn losses(&self, images: &[Tensor], targets: &[Target]) -> Result<RcnnLosses> {
        let (batch, targets) = self.config.transform.apply(images, Some(targets), true)?;
        let targets = targets.context("the transform returns the targets it is given")?;
        let features = self.features(&batch.tensors, true)?;
        let (proposals, rpn_losses) = self.rpn.forward(&batch, &features, Some(&targets))?;
        let rpn_losses = rpn_losses.context("the RPN returns losses when given targets")?;
        let proposals: Vec<Tensor> = proposals.iter().map(|p| p.detach()).collect();
        let pooled_levels = self.pooled_levels(&features);
        let (_, roi_losses) = self.roi_heads.forward(
            pooled_levels,
            &proposals,
            &batch.image_sizes,
            Some(&targets),
            true,
        )?;
        let roi_losses = roi_losses.context("the RoI heads return losses when given targets")?;
        Ok(RcnnLosses {
            loss_classifier: roi_losses.classifier,
            loss_box_reg: roi_losses.box_reg,
            loss_objectness: rpn_losses.objectness,
            loss_rpn_box_reg: rpn_losses.box_reg,
        })
    }

    /// How many layers [`Self::set_trainable_backbone_layers`] counts: 5 for ResNet, 6 for
    /// MobileNetV3.
    pub fn backbone_layers(&self) -> usize {
        match &self.body {
            Body::ResNet(_) => 5,
            Body::MobileNetV3 { net, .. } => net.stage_indices().len(),
            Body::MobileNetV2 { .. } => MobileNetV2::STAGE_INDICES.len(),
            // Every stage but the classifier, which a detector's backbone lacks.
            Body::Single(net) => net.stages().len().saturating_sub(1),
        }
    }

    /// torchvision's `trainable_backbone_layers`: freezes `backbone.body` but for its last
    /// `n` layers (ResNet: `layer4`, `layer3`, `layer2`, `layer1`, `conv1` (+ `bn1` at 5), 0–5;
    /// MobileNetV3: stages counted on [`MobileNetV3::stage_indices`], 0–6). Returns how many
    /// variables were frozen.
    pub fn set_trainable_backbone_layers(&self, vs: &VarStore, n: usize) -> Result<usize> {
        let prefix = "backbone.body.";
        let select: Box<dyn Fn(&str) -> bool> = match &self.body {
            Body::ResNet(_) => Box::new(resnet_frozen(n)?),
            Body::MobileNetV3 { .. } | Body::MobileNetV2 { .. } => {
                let stages = match &self.body {
                    Body::MobileNetV3 { net, .. } => net.stage_indices(),
                    _ => MobileNetV2::STAGE_INDICES.to_vec(),
                };
                if n > stages.len() {
                    bail!(
                        "trainable_backbone_layers: expected 0 to {} for MobileNet, got {n}",
                        stages.len()
                    );
                }
                let freeze_before = if n == 0 {
                    usize::MAX
                } else {
                    stages[stages.len() - n]
                };
                Box::new(move |name: &str| {
                    name.strip_prefix(prefix)
                        .and_then(|rest| rest.split('.').next())
                        .and_then(|i| i.parse::<usize>().ok())
                        .is_some_and(|i| i < freeze_before)
                })
            }
            Body::Single(net) => {
                let mut stages = net.stages();
                stages.pop();
                if n > stages.len() {
                    bail!(
                        "trainable_backbone_layers: expected 0 to {} for this backbone, got {n}",
                        stages.len()
                    );
                }
                let frozen: Vec<String> = stages[..stages.len() - n]
                    .iter()
                    .flat_map(|s| s.prefixes.iter().map(|p| format!("backbone.{p}.")))
                    .collect();
                Box::new(move |name: &str| frozen.iter().any(|p| name.starts_with(p)))
            }
        };
        self.backbone_trains
            .store(n > 0, std::sync::atomic::Ordering::Relaxed);
        Ok(set_trainable(vs, false, FreezeOptions::default(), select))
    }

    /// `opts` with the renames torchvision applies to detection checkpoints saved before its
    /// FPN and RPN head reached version 2 (`backbone.fpn.inner_blocks.0.weight`,
    /// `rpn.head.conv.weight`), so old and new spellings both load by name.
    pub fn legacy_renames(opts: LoadOptions) -> Result<LoadOptions> {
        let opts = Fpn::legacy_renames(opts, "backbone.fpn.")?;
        Ok(opts.rename_regex(r"^rpn\.head\.conv\.(weight|bias)$", "rpn.head.conv.0.0.$1")?)
    }

    /// How a whole torchvision Faster R-CNN checkpoint loads: strictly, old spellings accepted,
    /// and the box predictor starting fresh when its class count differs (the tutorial's
    /// `FastRCNNPredictor(1024, N)`), which the load report then lists.
    pub fn detection_load_options() -> Result<LoadOptions> {
        let strict = LoadOptions::default().strict(true);
        Ok(Self::legacy_renames(strict)?.reinit(r"^roi_heads\.box_predictor\.")?)
    }

    /// How an ImageNet classification checkpoint of the backbone (torchvision's `resnet50-*.pth`
    /// or `mobilenet_v3_large-*.pth`) loads, as `weights_backbone` does: its names moved under
    /// `backbone.body.`, its classifier dropped, every backbone tensor required, and the FPN, RPN
    /// and RoI heads starting fresh.
    pub fn backbone_load_options(&self) -> Result<LoadOptions> {
        let opts = LoadOptions::default().strict(true);
        let opts = match &self.body {
            // Skips match the renamed names.
            Body::ResNet(_) => opts
                .rename_regex(r"^(.*)$", "backbone.body.$1")?
                .skip(r"^backbone\.body\.fc\.")?,
            Body::MobileNetV3 { .. } | Body::MobileNetV2 { .. } => opts
                .skip(r"^classifier\.")?
                .rename_regex(r"^features\.(.*)$", "backbone.body.$1")?,
            Body::Single(net) => {
                let head = net.classifier_pattern();
                opts.rename_regex(r"^(.*)$", "backbone.$1")?
                    .skip(&format!(r"^backbone\.{}", head.trim_start_matches('^')))?
            }
        };
        Ok(opts.reinit(r"^(backbone\.fpn|rpn|roi_heads)\.")?)
    }

    /// Loads `path` into `vs`: a detection checkpoint (names under `backbone.`) with
    /// [`Self::detection_load_options`], anything else as the backbone's classification
    /// checkpoint with [`Self::backbone_load_options`].
    pub fn load_weights(&self, vs: &VarStore, path: &std::path::Path) -> Result<LoadReport> {
        self.load_state_dict(vs, &checkpoint::read(path)?, path)
    }

    /// [`Self::load_weights`] for a state dict already read from `path` (named in errors).
    pub fn load_state_dict(
        &self,
        vs: &VarStore,
        sd: &checkpoint::StateDict,
        path: &std::path::Path,
    ) -> Result<LoadReport> {
        let detection = is_detection_checkpoint(sd);
        let opts = if detection {
            let opts = Self::detection_load_options()?;
            match &self.config.backbone {
                // The tutorial's model holds MobileNetV2's `features` as its backbone itself
                // (`backbone.0.0.weight`); ours keeps the name `features`.
                BackboneKind::Single { name } if name == "mobilenet_v2" => {
                    opts.rename_regex(r"^backbone\.(\d+)\.", "backbone.features.$1.")?
                }
                _ => opts,
            }
        } else {
            self.backbone_load_options()?
        };
        if let (false, Body::Single(net)) = (detection, &self.body) {
            // The backbone's own checkpoint, adapted as its architecture needs (DenseNet's legacy
            // names, ViT's positional embedding) before it loads.
            let mut sd: checkpoint::StateDict = sd
                .iter()
                .map(|(k, t)| (k.to_string(), t.shallow_clone()))
                .collect();
            net.adapt_checkpoint(&mut sd)?;
            return load_checkpoint(vs, &sd, &opts, path, &self.config.arch);
        }
        load_checkpoint(vs, sd, &opts, path, &self.config.arch)
    }
}

/// How an ImageNet ResNet-50 checkpoint (torchvision's `resnet50-*.pth`) loads into a detector
/// whose ResNet-50 sits at `backbone.body` (the single-stage detectors' `weights_backbone`): its
/// names under `backbone.body.`, `fc` dropped, every backbone tensor required, the parts `fresh`
/// matches starting fresh.
pub(crate) fn resnet50_body_load_options(fresh: &str) -> Result<LoadOptions> {
    Ok(LoadOptions::default()
        .strict(true)
        .rename_regex(r"^(.*)$", "backbone.body.$1")?
        .skip(r"^backbone\.body\.fc\.")?
        .reinit(fresh)?)
}

/// torchvision's `trainable_backbone_layers` on a ResNet at `backbone.body` (its
/// `_resnet_fpn_extractor`): whether a variable stays frozen when the last `n` of `layer4`,
/// `layer3`, `layer2`, `layer1`, `conv1` train (`bn1` too at 5); `n` above 5 is an error.
pub(crate) fn resnet_frozen(n: usize) -> Result<impl Fn(&str) -> bool> {
    if n > 5 {
        bail!("trainable_backbone_layers: expected 0 to 5 for ResNet, got {n}");
    }
    let mut train: Vec<&str> = ["layer4", "layer3", "layer2", "layer1", "conv1"][..n].to_vec();
    if n == 5 {
        train.push("bn1");
    }
    Ok(move |name: &str| {
        name.strip_prefix("backbone.body.")
            .is_some_and(|rest| !train.iter().any(|t| rest.starts_with(t)))
    })
}

impl Detector for FasterRcnn {
    fn arch(&self) -> &str {
        &self.config.arch
    }

    fn input_size(&self) -> usize {
        self.config.transform.input_size()
    }

    fn backbone_layers(&self) -> usize {
        FasterRcnn::backbone_layers(self)
    }

    fn default_trainable_layers(&self) -> usize {
        3
    }

    fn set_trainable_backbone_layers(&self, vs: &VarStore, n: usize) -> Result<usize> {
        FasterRcnn::set_trainable_backbone_layers(self, vs, n)
    }

    fn load_state_dict(
        &self,
        vs: &VarStore,
        sd: &checkpoint::StateDict,
        file: &std::path::Path,
    ) -> Result<LoadReport> {
        FasterRcnn::load_state_dict(self, vs, sd, file)
    }

    fn loss_names(&self) -> &'static [&'static str] {
        &[
            "loss_classifier",
            "loss_box_reg",
            "loss_objectness",
            "loss_rpn_box_reg",
        ]
    }

    fn losses(&self, images: &[Tensor], targets: &[Target]) -> Result<Vec<Tensor>> {
        let l = FasterRcnn::losses(self, images, targets)?;
        Ok(vec![
            l.loss_classifier,
            l.loss_box_reg,
            l.loss_objectness,
            l.loss_rpn_box_reg,
        ])
    }

    fn detect(&self, images: &[Tensor]) -> Result<Vec<Detections>> {
        FasterRcnn::detect(self, images)
    }
}
