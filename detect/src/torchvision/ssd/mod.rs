//! SSD (Liu et al., "SSD: Single Shot MultiBox Detector", 2016) as torchvision builds it:
//! `ssd300_vgg16` and `ssdlite320_mobilenet_v3_large`, with torchvision's state_dict names and
//! defaults, and SSDlite on MobileNetV2 (`ssdlite320_mobilenet_v2`, the pairing of the
//! MobileNetV2 paper, which the ImageNet weights at hand allow).
//!
//! One pass: the backbone gives six maps, the head predicts class logits and box offsets for
//! each default box of each cell ([`head`]), and [`Ssd::compute_loss`] /
//! [`Ssd::postprocess_detections`] are torchvision's `compute_loss` and
//! `postprocess_detections`. Images are stretched to a fixed size by the two-stage detectors'
//! transform ([`crate::torchvision::transform`]) with `fixed_size`.
//!
//! - [`vgg`]: SSD300's VGG16 with the L2-normalised conv4_3 and the extra layers;
//! - [`mobilenet`]: SSDlite's MobileNetV3/V2 with its four depthwise extra blocks;
//! - [`head`]: the two scoring heads.

pub mod head;
pub mod mobilenet;
pub mod vgg;

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Context, Result};
use ferrovis_core::checkpoint::{self, LoadOptions, LoadReport};
use ferrovis_core::freeze::{set_trainable, FreezeOptions};
use ferrovis_core::nn::NormLayer;
use ferrovis_core::ops::box_coder::BoxCoder;
use ferrovis_core::ops::default_boxes::DefaultBoxGenerator;
use ferrovis_core::ops::detection::{batched_nms, clip_boxes_to_image};
use ferrovis_core::ops::matcher::{match_by_iou, SsdMatcher};
use tch::nn::{Path, VarStore};
use tch::{Kind, Reduction, Tensor};

use crate::torchvision::detector::{is_detection_checkpoint, load_checkpoint, Detector};
use crate::torchvision::targets::{Detections, Target};
use crate::torchvision::transform::{ImageList, RcnnTransform};
use head::{ScoringHead, SsdHead};
use mobilenet::SsdLiteBackbone;
use vgg::SsdVgg;

/// The architectures torchvision names, then SSDlite on MobileNetV2.
pub const ARCHS: [&str; 3] = [
    "ssd300_vgg16",
    "ssdlite320_mobilenet_v3_large",
    "ssdlite320_mobilenet_v2",
];

/// Which backbone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SsdBackboneKind {
    /// SSD300's VGG16.
    Vgg16,
    /// SSDlite's MobileNetV3-Large; `reduced_tail` unless an ImageNet backbone is loaded (what
    /// torchvision builds, and what its COCO weights hold).
    MobileNetV3Large {
        /// Halve the last stage (160 → 80 channels, last convolution 960 → 480).
        reduced_tail: bool,
    },
    /// MobileNetV2 (first map the expansion of `features.14`, 576 channels).
    MobileNetV2,
}

/// An SSD's shape and settings (torchvision's defaults for each architecture).
#[derive(Debug, Clone, PartialEq)]
pub struct SsdConfig {
    /// `ssd300_vgg16`, `ssdlite320_mobilenet_v3_large` or `ssdlite320_mobilenet_v2`.
    pub arch: String,
    /// The backbone.
    pub backbone: SsdBackboneKind,
    /// Classes with the background (91 for COCO).
    pub num_classes: i64,
    /// Fixed-size resize and normalisation.
    pub transform: RcnnTransform,
    /// Class scores at most this are dropped before NMS (0.01; SSDlite 0.001).
    pub score_thresh: f64,
    /// Per-class NMS IoU (0.45; SSDlite 0.55).
    pub nms_thresh: f64,
    /// Detections kept per image (200; SSDlite 300).
    pub detections_per_img: i64,
    /// Default boxes overlapping a ground truth this much match it (0.5).
    pub iou_thresh: f64,
    /// Best-scoring boxes per class kept before NMS (400; SSDlite 300).
    pub topk_candidates: i64,
    /// Positives' share of the classification loss's terms (0.25: three negatives per
    /// positive).
    pub positive_fraction: f64,
}

impl SsdConfig {
    /// torchvision's configuration of `arch` for `num_classes` (with the background).
    pub fn by_name(arch: &str, num_classes: i64, backbone: SsdBackboneKind) -> Result<Self> {
        let vgg = SsdConfig {
            arch: arch.to_string(),
            backbone,
            num_classes,
            // The Caffe means on a 0–255 scale: mean 123/117/104 of 255, std 1/255.
            transform: RcnnTransform::fixed(
                (300, 300),
                [0.48235, 0.45882, 0.40784],
                [1.0 / 255.0; 3],
            ),
            score_thresh: 0.01,
            nms_thresh: 0.45,
            detections_per_img: 200,
            iou_thresh: 0.5,
            topk_candidates: 400,
            positive_fraction: 0.25,
        };
        match (arch, backbone) {
            ("ssd300_vgg16", SsdBackboneKind::Vgg16) => Ok(vgg),
            ("ssdlite320_mobilenet_v3_large", SsdBackboneKind::MobileNetV3Large { .. })
            | ("ssdlite320_mobilenet_v2", SsdBackboneKind::MobileNetV2) => Ok(SsdConfig {
                transform: RcnnTransform::fixed((320, 320), [0.5; 3], [0.5; 3]),
                score_thresh: 0.001,
                nms_thresh: 0.55,
                detections_per_img: 300,
                topk_candidates: 300,
                ..vgg
            }),
            _ => bail!(
                "arch={arch}: expected one of {} (with its own backbone)",
                ARCHS.join(", ")
            ),
        }
    }

    /// The backbone an architecture name implies: SSDlite's MobileNetV3 with `reduced_tail`
    /// unless `imagenet_backbone` (torchvision's rule).
    pub fn backbone_of(arch: &str, imagenet_backbone: bool) -> Result<SsdBackboneKind> {
        Ok(match arch {
            "ssd300_vgg16" => SsdBackboneKind::Vgg16,
            "ssdlite320_mobilenet_v3_large" => SsdBackboneKind::MobileNetV3Large {
                reduced_tail: !imagenet_backbone,
            },
            "ssdlite320_mobilenet_v2" => SsdBackboneKind::MobileNetV2,
            _ => bail!("arch={arch}: expected one of {}", ARCHS.join(", ")),
        })
    }
}

/// SSD's backbone.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
enum SsdBackbone {
    Vgg(SsdVgg),
    Lite(SsdLiteBackbone),
}

/// The head's two outputs for a batch.
#[derive(Debug)]
pub struct HeadOutputs {
    /// `(N, B, 4)` offsets of each default box.
    pub bbox_regression: Tensor,
    /// `(N, B, classes)` logits.
    pub cls_logits: Tensor,
}

/// SSD's two losses, under torchvision's names.
#[derive(Debug)]
pub struct SsdLosses {
    /// Smooth L1 (β = 1, summed) of the matched default boxes' offsets, over the positives.
    pub bbox_regression: Tensor,
    /// Cross-entropy of the positives and the hardest three negatives per positive, over the
    /// positives.
    pub classification: Tensor,
}

/// torchvision's `SSD`.
#[derive(Debug)]
pub struct Ssd {
    /// Shape and settings.
    pub config: SsdConfig,
    backbone: SsdBackbone,
    /// The two scoring heads.
    pub head: SsdHead,
    /// The default boxes.
    pub anchor_generator: DefaultBoxGenerator,
    box_coder: BoxCoder,
    matcher: SsdMatcher,
    /// False once every backbone layer is frozen: the MobileNet then keeps its BatchNorm
    /// statistics too.
    backbone_trains: AtomicBool,
    /// Inputs go channels-last (see [`Ssd::use_channels_last`]).
    channels_last: AtomicBool,
}

impl Ssd {
    /// Builds `config` under `p` (`p.backbone.*`, `p.head.*`).
    pub fn new(p: &Path, config: &SsdConfig) -> Result<Self> {
        let bp = p / "backbone";
        let lite_norm = NormLayer::BatchNormWith {
            eps: 0.001,
            momentum: 0.03,
        };
        let (backbone, anchor_generator) = match config.backbone {
            SsdBackboneKind::Vgg16 => (
                SsdBackbone::Vgg(SsdVgg::new(&bp)),
                DefaultBoxGenerator::ssd300(),
            ),
            SsdBackboneKind::MobileNetV3Large { reduced_tail } => (
                SsdBackbone::Lite(SsdLiteBackbone::mobilenet_v3_large(
                    &bp,
                    reduced_tail,
                    lite_norm,
                )),
                DefaultBoxGenerator::ssdlite(),
            ),
            SsdBackboneKind::MobileNetV2 => (
                SsdBackbone::Lite(SsdLiteBackbone::mobilenet_v2(&bp, lite_norm)),
                DefaultBoxGenerator::ssdlite(),
            ),
        };
        let anchors = anchor_generator.num_anchors_per_location();
        let hp = p / "head";
        let head = match &backbone {
            SsdBackbone::Vgg(net) => {
                let c = net.out_channels();
                SsdHead {
                    classification_head: ScoringHead::ssd(
                        &(&hp / "classification_head"),
                        &c,
                        &anchors,
                        config.num_classes,
                    ),
                    regression_head: ScoringHead::ssd(&(&hp / "regression_head"), &c, &anchors, 4),
                }
            }
            SsdBackbone::Lite(net) => {
                let c = net.out_channels();
                SsdHead {
                    classification_head: ScoringHead::ssdlite(
                        &(&hp / "classification_head"),
                        &c,
                        &anchors,
                        config.num_classes,
                        lite_norm,
                    ),
                    regression_head: ScoringHead::ssdlite(
                        &(&hp / "regression_head"),
                        &c,
                        &anchors,
                        4,
                        lite_norm,
                    ),
                }
            }
        };
        Ok(Ssd {
            config: config.clone(),
            backbone,
            head,
            anchor_generator,
            box_coder: BoxCoder::new([10.0, 10.0, 5.0, 5.0]),
            matcher: SsdMatcher {
                threshold: config.iou_thresh,
            },
            backbone_trains: AtomicBool::new(true),
            channels_last: AtomicBool::new(false),
        })
    }

    /// Lays the convolution weights in `vs` (this model's) and every input batch out
    /// channels-last (NHWC), where oneDNN's CPU convolutions run faster: an SSD300 training step
    /// at batch 8 takes about 15 % less time on the 2-core CI machine. Results equal the NCHW
    /// ones up to float summation order. Call it after loading weights (a load keeps the
    /// variables' layout only when it copies into them, which ferrovis' loader does).
    pub fn use_channels_last(&self, vs: &VarStore) -> Result<()> {
        ferrovis_core::memory_format::vars_to_channels_last(vs)?;
        self.channels_last.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// SSDlite's initialisation of its MobileNet when no ImageNet backbone is loaded: every
    /// convolution from N(0, 0.03) (torchvision's `_normal_init`). Nothing for SSD300, whose
    /// VGG keeps torchvision's VGG initialisation. `vs` holds this model at its root.
    pub fn init_backbone_normal(&self, vs: &VarStore) {
        if let SsdBackbone::Lite(_) = &self.backbone {
            tch::no_grad(|| {
                for (name, mut t) in vs.variables() {
                    if name.starts_with("backbone.features.") && t.dim() == 4 {
                        let _ = t.normal_(0.0, 0.03);
                    }
                }
            });
        }
    }

    /// The six maps of a batch (`(N, 3, H, W)`, normalised).
    pub fn features(&self, x: &Tensor, train: bool) -> Vec<Tensor> {
        let nhwc;
        let x = if self.channels_last.load(Ordering::Relaxed) {
            nhwc = ferrovis_core::memory_format::channels_last(x)
                .unwrap_or_else(|_| x.shallow_clone());
            &nhwc
        } else {
            x
        };
        match &self.backbone {
            SsdBackbone::Vgg(net) => net.forward(x),
            SsdBackbone::Lite(net) => {
                let body_train = train && self.backbone_trains.load(Ordering::Relaxed);
                net.forward_t(x, body_train, train)
            }
        }
    }

    /// The head's outputs over `features`.
    pub fn head_outputs(&self, features: &[Tensor], train: bool) -> HeadOutputs {
        let (bbox_regression, cls_logits) = self.head.forward_t(features, train);
        HeadOutputs {
            bbox_regression,
            cls_logits,
        }
    }

    /// Each image's default boxes `(B, 4)` in the resized image's pixels (the batch's size).
    pub fn anchors(&self, batch: &ImageList, features: &[Tensor]) -> Result<Vec<Tensor>> {
        let size = batch.tensors.size();
        let grids: Vec<(i64, i64)> = features
            .iter()
            .map(|f| (f.size()[2], f.size()[3]))
            .collect();
        let boxes =
            self.anchor_generator
                .boxes((size[2], size[3]), &grids, batch.tensors.device())?;
        Ok((0..size[0]).map(|_| boxes.shallow_clone()).collect())
    }

    /// Each default box's ground-truth index (or negative) per image: IoU ≥ `iou_thresh`, and
    /// each ground truth's best default box forced to it.
    pub fn match_targets(&self, anchors: &[Tensor], targets: &[Target]) -> Result<Vec<Tensor>> {
        Ok(match_by_iou(
            &self.matcher,
            anchors,
            targets.iter().map(|t| &t.boxes),
        )?)
    }

    /// Detections for each image (`(3, H, W)`, float, 0–1) in its own coordinates
    /// (evaluation mode).
    pub fn detect(&self, images: &[Tensor]) -> Result<Vec<Detections>> {
        let (batch, _) = self.config.transform.apply(images, None, false)?;
        let features = self.features(&batch.tensors, false);
        let head = self.head_outputs(&features, false);
        let anchors = self.anchors(&batch, &features)?;
        let detections = self.postprocess_detections(&head, &anchors, &batch.image_sizes)?;
        Ok(self.config.transform.postprocess(detections, &batch))
    }

    /// The two training losses for `images` and their `targets` (training mode).
    pub fn losses(&self, images: &[Tensor], targets: &[Target]) -> Result<SsdLosses> {
        let (batch, targets) = self.config.transform.apply(images, Some(targets), true)?;
        let targets = targets.context("the transform returns the targets it is given")?;
        for (i, t) in targets.iter().enumerate() {
            check_boxes(i, &t.boxes)?;
        }
        let features = self.features(&batch.tensors, true);
        let head = self.head_outputs(&features, true);
        let anchors = self.anchors(&batch, &features)?;
        let matched = self.match_targets(&anchors, &targets)?;
        self.compute_loss(&targets, &head, &anchors, &matched)
    }

    /// torchvision's `SSD.compute_loss`: smooth L1 on the matched boxes' offsets, cross-entropy
    /// on the positives and, per image, the `(1 − f)/f` × positives negatives of highest loss
    /// (hard negative mining), both divided by the number of positives (at least 1).
    pub fn compute_loss(
        &self,
        targets: &[Target],
        head: &HeadOutputs,
        anchors: &[Tensor],
        matched: &[Tensor],
    ) -> Result<SsdLosses> {
        let mut num_foreground = 0i64;
        let mut bbox_loss = Vec::with_capacity(targets.len());
        let mut cls_targets = Vec::with_capacity(targets.len());
        for (i, ((t, a), m)) in targets.iter().zip(anchors).zip(matched).enumerate() {
            let fg = m.ge(0).nonzero().squeeze_dim(1);
            let fg_matched = m.index_select(0, &fg);
            num_foreground += fg.size()[0];
            let gt_boxes = t.boxes.index_select(0, &fg_matched);
            let pred = head.bbox_regression.get(i as i64).index_select(0, &fg);
            let target_regression = self.box_coder.encode(&gt_boxes, &a.index_select(0, &fg))?;
            bbox_loss.push(pred.smooth_l1_loss(&target_regression, Reduction::Sum, 1.0));
            let classes = Tensor::zeros([a.size()[0]], (Kind::Int64, a.device()));
            let classes =
                classes.index_put(&[Some(&fg)], &t.labels.index_select(0, &fg_matched), false);
            cls_targets.push(classes);
        }
        let bbox_loss = Tensor::stack(&bbox_loss, 0);
        let cls_targets = Tensor::stack(&cls_targets, 0);
        let num_classes = head.cls_logits.size()[2];
        let cls_loss = head
            .cls_logits
            .view([-1, num_classes])
            .cross_entropy_loss::<Tensor>(&cls_targets.view([-1]), None, Reduction::None, -100, 0.0)
            .view_as(&cls_targets);
        // Hard negatives: the positives pushed to the end of a descending sort, then the
        // first `ratio × positives` ranks of each image kept.
        let foreground = cls_targets.gt(0);
        let ratio = (1.0 - self.config.positive_fraction) / self.config.positive_fraction;
        let num_negative = foreground.sum_dim_intlist(1, true, Kind::Int64) * ratio;
        let negative_loss = cls_loss
            .detach()
            .masked_fill(&foreground, f64::NEG_INFINITY);
        let (_, order) = negative_loss.sort(1, true);
        let (_, rank) = order.sort(1, false);
        let background = rank.lt_tensor(&num_negative);
        let n = num_foreground.max(1) as f64;
        Ok(SsdLosses {
            bbox_regression: bbox_loss.sum(Kind::Float) / n,
            classification: (cls_loss.masked_select(&foreground).sum(Kind::Float)
                + cls_loss.masked_select(&background).sum(Kind::Float))
                / n,
        })
    }

    /// torchvision's `SSD.postprocess_detections`: softmax scores; per class, the boxes
    /// scoring above `score_thresh`, at most `topk_candidates` of them; per-class NMS; the best
    /// `detections_per_img`. Boxes are in the resized image's pixels, clipped to it.
    pub fn postprocess_detections(
        &self,
        head: &HeadOutputs,
        anchors: &[Tensor],
        image_sizes: &[(i64, i64)],
    ) -> Result<Vec<Detections>> {
        let scores = head.cls_logits.softmax(-1, Kind::Float);
        let num_classes = scores.size()[2];
        let mut out = Vec::with_capacity(anchors.len());
        for (i, (a, &size)) in anchors.iter().zip(image_sizes).enumerate() {
            let boxes = self
                .box_coder
                .decode(&head.bbox_regression.get(i as i64), a)?
                .view([-1, 4]);
            let boxes = clip_boxes_to_image(&boxes, size)?;
            let image_scores = scores.get(i as i64);
            let (mut all_boxes, mut all_scores, mut all_labels) = (vec![], vec![], vec![]);
            for label in 1..num_classes {
                let score = image_scores.select(1, label);
                let keep = score.gt(self.config.score_thresh).nonzero().squeeze_dim(1);
                let score = score.index_select(0, &keep);
                let k = self.config.topk_candidates.min(score.size()[0]);
                let (score, idx) = score.topk(k, 0, true, true);
                let b = boxes.index_select(0, &keep.index_select(0, &idx));
                all_labels.push(Tensor::full([k], label, (Kind::Int64, score.device())));
                all_boxes.push(b);
                all_scores.push(score);
            }
            let boxes = Tensor::cat(&all_boxes, 0);
            let scores = Tensor::cat(&all_scores, 0);
            let labels = Tensor::cat(&all_labels, 0);
            let keep = batched_nms(&boxes, &scores, &labels, self.config.nms_thresh)?;
            let keep = keep.narrow(0, 0, self.config.detections_per_img.min(keep.size()[0]));
            out.push(Detections {
                boxes: boxes.index_select(0, &keep),
                scores: scores.index_select(0, &keep),
                labels: labels.index_select(0, &keep),
            });
        }
        Ok(out)
    }

    /// How many layers [`Self::set_trainable_backbone_layers`] counts: 5 for VGG16 (torchvision's
    /// default 4), 6 for the MobileNets (default 6, every layer).
    pub fn backbone_layers(&self) -> usize {
        match &self.backbone {
            SsdBackbone::Vgg(_) => vgg::STAGE_INDICES.len(),
            SsdBackbone::Lite(net) => net.stage_indices().len(),
        }
    }

    /// torchvision's default `trainable_backbone_layers` with pretrained weights.
    pub fn default_trainable_layers(&self) -> usize {
        match &self.backbone {
            SsdBackbone::Vgg(_) => 4,
            SsdBackbone::Lite(_) => 6,
        }
    }

    /// torchvision's `trainable_backbone_layers`: freezes the modules of the backbone's own
    /// network before the `n`-th stage from the end (counted on torchvision's
    /// `stage_indices`; 0 freezes all of it). The layers SSD adds (fc6/fc7, `scale_weight`,
    /// the extra blocks) always train. Returns how many variables were frozen.
    pub fn set_trainable_backbone_layers(&self, vs: &VarStore, n: usize) -> Result<usize> {
        let stages: Vec<usize> = match &self.backbone {
            SsdBackbone::Vgg(_) => vgg::STAGE_INDICES.to_vec(),
            SsdBackbone::Lite(net) => net.stage_indices(),
        };
        if n > stages.len() {
            bail!(
                "trainable_backbone_layers: expected 0 to {} for {}, got {n}",
                stages.len(),
                self.config.arch
            );
        }
        let freeze_before = if n == 0 {
            usize::MAX
        } else {
            stages[stages.len() - n]
        };
        let select = |name: &str| -> bool {
            let index = match &self.backbone {
                SsdBackbone::Vgg(_) => SsdVgg::vgg_index(name),
                SsdBackbone::Lite(net) => net.module_index(name),
            };
            index.is_some_and(|i| i < freeze_before)
        };
        self.backbone_trains.store(n > 0, Ordering::Relaxed);
        Ok(set_trainable(vs, false, FreezeOptions::default(), select))
    }

    /// How a whole torchvision SSD checkpoint loads: strictly, the classification head starting
    /// fresh when its class count differs (the regression head and default boxes are
    /// class-agnostic and keep their weights), which the load report then lists.
    pub fn detection_load_options() -> Result<LoadOptions> {
        Ok(LoadOptions::default()
            .strict(true)
            .reinit(r"^head\.classification_head\.")?)
    }

    /// How an ImageNet classification checkpoint of the backbone loads, as `weights_backbone`
    /// does: VGG16's `features` (`vgg16-397923af.pth`; conv5 into `extra.0`, the classifier
    /// dropped), MobileNetV3's (split as SSDlite splits it) or MobileNetV2's under `backbone.`;
    /// every backbone tensor required, the layers SSD adds and the head starting fresh.
    pub fn backbone_load_options(&self) -> Result<LoadOptions> {
        let opts = LoadOptions::default().strict(true).skip(r"^classifier\.")?;
        let opts = match (&self.backbone, self.config.backbone) {
            (SsdBackbone::Vgg(_), _) => opts
                .rename_regex(r"^features\.24\.", "backbone.extra.0.1.")?
                .rename_regex(r"^features\.26\.", "backbone.extra.0.3.")?
                .rename_regex(r"^features\.28\.", "backbone.extra.0.5.")?
                .rename_regex(r"^features\.", "backbone.features.")?
                .reinit(r"^backbone\.(extra\.0\.7|extra\.[1-9]|scale_weight)")?,
            (SsdBackbone::Lite(net), SsdBackboneKind::MobileNetV3Large { .. }) => {
                let c4 = net.stage_indices()[4];
                let mut opts = opts;
                // torchvision's `features.N` to SSDlite's two Sequentials.
                for n in 0..c4 {
                    opts = opts.rename_regex(
                        &format!(r"^features\.{n}\."),
                        &format!("backbone.features.0.{n}."),
                    )?;
                }
                // C4's expansion ends the first; its other parts start the second.
                opts = opts.rename_regex(
                    &format!(r"^features\.{c4}\.block\.0\."),
                    &format!("backbone.features.0.{c4}."),
                )?;
                for k in 1..4 {
                    opts = opts.rename_regex(
                        &format!(r"^features\.{c4}\.block\.{k}\."),
                        &format!("backbone.features.1.0.{k}."),
                    )?;
                }
                for n in c4 + 1..c4 + 4 {
                    opts = opts.rename_regex(
                        &format!(r"^features\.{n}\."),
                        &format!("backbone.features.1.{}.", n - c4),
                    )?;
                }
                opts.reinit(r"^backbone\.extra\.")?
            }
            (SsdBackbone::Lite(_), _) => opts
                .rename_regex(r"^features\.", "backbone.features.")?
                .reinit(r"^backbone\.extra\.")?,
        };
        Ok(opts.reinit(r"^head\.")?)
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
        let opts = if is_detection_checkpoint(sd) {
            Self::detection_load_options()?
        } else {
            self.backbone_load_options()?
        };
        load_checkpoint(vs, sd, &opts, path, &self.config.arch)
    }
}

impl Detector for Ssd {
    fn arch(&self) -> &str {
        &self.config.arch
    }

    fn input_size(&self) -> usize {
        self.config.transform.fixed_size.map_or(300, |s| s.0) as usize
    }

    fn backbone_layers(&self) -> usize {
        Ssd::backbone_layers(self)
    }

    fn default_trainable_layers(&self) -> usize {
        Ssd::default_trainable_layers(self)
    }

    fn set_trainable_backbone_layers(&self, vs: &VarStore, n: usize) -> Result<usize> {
        Ssd::set_trainable_backbone_layers(self, vs, n)
    }

    /// Channels-last on the CPU ([`Ssd::use_channels_last`], measured faster).
    fn prefer_layout(&self, vs: &VarStore) -> Result<()> {
        if vs.device() == tch::Device::Cpu {
            self.use_channels_last(vs)?;
        }
        Ok(())
    }

    fn init_fresh(&self, vs: &VarStore) {
        self.init_backbone_normal(vs)
    }

    fn load_state_dict(
        &self,
        vs: &VarStore,
        sd: &checkpoint::StateDict,
        file: &std::path::Path,
    ) -> Result<LoadReport> {
        Ssd::load_state_dict(self, vs, sd, file)
    }

    fn loss_names(&self) -> &'static [&'static str] {
        &["bbox_regression", "classification"]
    }

    fn losses(&self, images: &[Tensor], targets: &[Target]) -> Result<Vec<Tensor>> {
        let l = Ssd::losses(self, images, targets)?;
        Ok(vec![l.bbox_regression, l.classification])
    }

    fn detect(&self, images: &[Tensor]) -> Result<Vec<Detections>> {
        Ssd::detect(self, images)
    }
}

/// torchvision asserts every training box has positive width and height; this says which.
pub(crate) fn check_boxes(image: usize, boxes: &Tensor) -> Result<()> {
    if boxes.numel() == 0 {
        return Ok(());
    }
    let degenerate = boxes
        .narrow(1, 2, 2)
        .le_tensor(&boxes.narrow(1, 0, 2))
        .any_dim(1, false)
        .nonzero();
    if degenerate.size()[0] > 0 {
        let k = degenerate.int64_value(&[0, 0]);
        let b: Vec<f32> = Vec::try_from(boxes.get(k).to_kind(Kind::Float))?;
        bail!("targets[{image}]: box {k} {b:?} has no positive width and height after resizing");
    }
    Ok(())
}
