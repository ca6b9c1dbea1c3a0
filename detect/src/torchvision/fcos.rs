//! FCOS (Tian et al., "FCOS: Fully Convolutional One-Stage Object Detection", 2019, and "FCOS: A
//! simple and strong anchor-free object detector", 2020) as torchvision builds it
//! (`fcos_resnet50_fpn`), with its state_dict names so its COCO checkpoint loads as it is:
//! `backbone.body` (ResNet-50), `backbone.fpn` (a [`Fpn`] over layer2–4 with P6/P7 from P5) and
//! `head` ([`FcosHead`]), behind the two-stage detectors' [`RcnnTransform`] (800 / 1333).
//!
//! What torchvision does that the papers do not, and this port keeps:
//! - each location is an "anchor" box of the level's stride (8 … 128, one per cell, no +½
//!   offset: the location is the cell's top-left corner, as torchvision's `AnchorGenerator`
//!   places it), and the box coder ([`BoxLinearCoder`]) divides the distances to the sides by
//!   that size instead of predicting `exp` of a scaled output;
//! - matching: a location is a positive of a box when it lies within 1.5 strides of the box's
//!   centre (centre sampling) and inside the box, and the box's largest side distance is in the
//!   level's range (4–8 strides; no lower bound on P3, none above on P7); among several boxes the
//!   smallest wins;
//! - the GroupNorm (32 groups) towers of four 3×3 convolutions in both branches, centre-ness on
//!   the regression branch;
//! - losses: sigmoid focal loss (α 0.25, γ 2) over every location and class, GIoU and
//!   centre-ness BCE over the positives, each summed and divided by the number of positives;
//! - post-processing per level: score `√(σ(class) · σ(centre-ness))` above 0.2, the best 1000,
//!   then class-wise NMS at 0.6 over all levels and the best 100. The class index 0 (the
//!   background slot of the 91 COCO classes) is scored like any other, as torchvision does.
//!
//! torchvision builds the ResNet with FrozenBatchNorm2d (eps 1e-5) when it starts from
//! pretrained weights and with BatchNorm otherwise; [`FcosConfig::norm`] says which.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Context, Result};
use tch::nn::{self, Init, Module, Path, VarStore};
use tch::{Kind, Reduction, Tensor};

use ferrovis_core::backbone::{Backbone, BackboneOptions, ResNet, ResNetConfig};
use ferrovis_core::checkpoint::{self, LoadOptions, LoadReport};
use ferrovis_core::freeze::{set_trainable, FreezeOptions};
use ferrovis_core::neck::{ExtraBlock, Fpn, FpnConfig};
use ferrovis_core::nn::NormLayer;
use ferrovis_core::ops::anchors::AnchorGenerator;
use ferrovis_core::ops::box_coder::BoxLinearCoder;
use ferrovis_core::ops::detection::{batched_nms, clip_boxes_to_image};
use ferrovis_core::ops::losses;

use crate::torchvision::detector::{is_detection_checkpoint, load_checkpoint, Detector};
use crate::torchvision::faster_rcnn::{resnet50_body_load_options, resnet_frozen};
use crate::torchvision::ssd::check_boxes;
use crate::torchvision::targets::{Detections, Target};
use crate::torchvision::transform::{ImageList, RcnnTransform};

/// The architectures torchvision names.
pub const ARCHS: [&str; 1] = ["fcos_resnet50_fpn"];

/// An FCOS's shape and settings (torchvision's defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct FcosConfig {
    /// The torchvision name.
    pub arch: String,
    /// Classes with the background slot (91 for COCO): the class logits' count.
    pub num_classes: i64,
    /// The ResNet's normalisation (FrozenBatchNorm2d when fine-tuning from pretrained weights).
    pub norm: NormLayer,
    /// Input transform (800 / 1333, ImageNet mean and std).
    pub transform: RcnnTransform,
    /// Convolutions in each head tower (4).
    pub num_convs: usize,
    /// Locations within this many strides of a box's centre may match it (1.5).
    pub center_sampling_radius: f64,
    /// Scores at most this are dropped before NMS (0.2).
    pub score_thresh: f64,
    /// Class-wise NMS IoU (0.6).
    pub nms_thresh: f64,
    /// Detections kept per image (100).
    pub detections_per_img: i64,
    /// Best-scoring (location, class) pairs kept per level before NMS (1000).
    pub topk_candidates: i64,
}

impl FcosConfig {
    /// torchvision's settings for `arch` with `num_classes` (the background slot included);
    /// `pretrained` (weights or backbone weights given) selects FrozenBatchNorm2d as torchvision
    /// does.
    pub fn by_name(arch: &str, num_classes: i64, pretrained: bool) -> Result<Self> {
        if !ARCHS.contains(&arch) {
            bail!("arch={arch}: expected one of {}", ARCHS.join(", "));
        }
        if num_classes < 2 {
            bail!("num_classes: expected at least 2 (the background and one class), got {num_classes}");
        }
        Ok(FcosConfig {
            arch: arch.to_string(),
            num_classes,
            norm: if pretrained {
                NormLayer::Frozen { eps: 1e-5 }
            } else {
                NormLayer::BatchNorm
            },
            transform: RcnnTransform::new(800, 1333),
            num_convs: 4,
            center_sampling_radius: 1.5,
            score_thresh: 0.2,
            nms_thresh: 0.6,
            detections_per_img: 100,
            topk_candidates: 1000,
        })
    }
}

/// A tower of `conv.{3i}` (3×3 with bias) → `conv.{3i+1}` (GroupNorm, 32 groups) → ReLU, as
/// torchvision's `nn.Sequential` numbers them; convolutions N(0, 0.01) with zero bias.
#[derive(Debug)]
struct Tower {
    layers: Vec<(nn::Conv2D, nn::GroupNorm)>,
}

impl Tower {
    fn new(p: &Path, channels: i64, num_convs: usize) -> Self {
        let p = p / "conv";
        let layers = (0..num_convs)
            .map(|i| {
                let conv = head_conv(&(&p / (3 * i)), channels, channels, 0.0);
                let norm = nn::group_norm(&p / (3 * i + 1), 32, channels, Default::default());
                (conv, norm)
            })
            .collect();
        Tower { layers }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let mut y = x.shallow_clone();
        for (conv, norm) in &self.layers {
            y = norm.forward(&conv.forward(&y));
            // In place on GroupNorm's fresh output, which its backward does not read.
            let _ = y.relu_();
        }
        y
    }
}

/// A 3×3 convolution (padding 1, with bias) drawn N(0, 0.01), its bias `bias`: torchvision's
/// initialisation of every FCOS head convolution.
fn head_conv(p: &Path, c_in: i64, c_out: i64, bias: f64) -> nn::Conv2D {
    nn::conv2d(
        p,
        c_in,
        c_out,
        3,
        nn::ConvConfig {
            padding: 1,
            ws_init: Init::Randn {
                mean: 0.0,
                stdev: 0.01,
            },
            bs_init: Init::Const(bias),
            ..Default::default()
        },
    )
}

/// `(N, A·C, H, W)` → `(N, H·W·A, C)`: per location (row-major) and anchor, `C` numbers.
fn per_location(t: &Tensor, columns: i64) -> Tensor {
    let s = t.size();
    t.view([s[0], -1, columns, s[2], s[3]])
        .permute([0, 3, 4, 1, 2])
        .reshape([s[0], -1, columns])
}

/// torchvision's `FCOSClassificationHead`: a [`Tower`] then `cls_logits` (3×3, one logit per
/// class and anchor), its bias −log((1 − 0.01) / 0.01) so every class starts at probability
/// 0.01.
#[derive(Debug)]
pub struct FcosClassificationHead {
    conv: Tower,
    cls_logits: nn::Conv2D,
    num_classes: i64,
}

impl FcosClassificationHead {
    /// The head under `p` for `num_anchors` anchors per location.
    pub fn new(
        p: &Path,
        channels: i64,
        num_anchors: i64,
        num_classes: i64,
        num_convs: usize,
    ) -> Self {
        let prior: f64 = 0.01;
        FcosClassificationHead {
            conv: Tower::new(p, channels, num_convs),
            cls_logits: head_conv(
                &(p / "cls_logits"),
                channels,
                num_anchors * num_classes,
                -((1.0 - prior) / prior).ln(),
            ),
            num_classes,
        }
    }

    /// The class logits `(N, Σ H·W·A, classes)` over `features`, level after level.
    pub fn forward(&self, features: &[Tensor]) -> Tensor {
        let levels: Vec<Tensor> = features
            .iter()
            .map(|f| {
                per_location(
                    &self.cls_logits.forward(&self.conv.forward(f)),
                    self.num_classes,
                )
            })
            .collect();
        Tensor::cat(&levels, 1)
    }
}

/// torchvision's `FCOSRegressionHead`: a [`Tower`], then `bbox_reg` (four side distances per
/// anchor, through ReLU) and `bbox_ctrness` (one centre-ness logit), all N(0, 0.01), zero bias.
#[derive(Debug)]
pub struct FcosRegressionHead {
    conv: Tower,
    bbox_reg: nn::Conv2D,
    bbox_ctrness: nn::Conv2D,
}

impl FcosRegressionHead {
    /// The head under `p` for `num_anchors` anchors per location.
    pub fn new(p: &Path, channels: i64, num_anchors: i64, num_convs: usize) -> Self {
        FcosRegressionHead {
            conv: Tower::new(p, channels, num_convs),
            bbox_reg: head_conv(&(p / "bbox_reg"), channels, num_anchors * 4, 0.0),
            bbox_ctrness: head_conv(&(p / "bbox_ctrness"), channels, num_anchors, 0.0),
        }
    }

    /// The side distances `(N, Σ H·W·A, 4)` and centre-ness logits `(N, Σ H·W·A, 1)` over
    /// `features`, level after level.
    pub fn forward(&self, features: &[Tensor]) -> (Tensor, Tensor) {
        let (reg, ctr): (Vec<Tensor>, Vec<Tensor>) = features
            .iter()
            .map(|f| {
                let t = self.conv.forward(f);
                let mut reg = self.bbox_reg.forward(&t);
                let _ = reg.relu_();
                (
                    per_location(&reg, 4),
                    per_location(&self.bbox_ctrness.forward(&t), 1),
                )
            })
            .unzip();
        (Tensor::cat(&reg, 1), Tensor::cat(&ctr, 1))
    }
}

/// torchvision's `FCOSHead`: the two branches.
#[derive(Debug)]
pub struct FcosHead {
    /// Class logits.
    pub classification_head: FcosClassificationHead,
    /// Side distances and centre-ness.
    pub regression_head: FcosRegressionHead,
}

/// The head's outputs for a batch, every level concatenated.
#[derive(Debug)]
pub struct HeadOutputs {
    /// `(N, L, classes)` logits.
    pub cls_logits: Tensor,
    /// `(N, L, 4)` side distances in units of the location's stride.
    pub bbox_regression: Tensor,
    /// `(N, L, 1)` centre-ness logits.
    pub bbox_ctrness: Tensor,
}

/// FCOS's three losses, under torchvision's names.
#[derive(Debug)]
pub struct FcosLosses {
    /// Sigmoid focal loss over every location and class, over the positives.
    pub classification: Tensor,
    /// GIoU loss of the positives' decoded boxes, over the positives.
    pub bbox_regression: Tensor,
    /// Binary cross-entropy of the positives' centre-ness, over the positives.
    pub bbox_ctrness: Tensor,
}

/// torchvision's `FCOS` on ResNet-50 with FPN.
#[derive(Debug)]
pub struct Fcos {
    /// Shape and settings.
    pub config: FcosConfig,
    body: ResNet,
    fpn: Fpn,
    /// The two branches.
    pub head: FcosHead,
    /// One box per location, the level's stride wide.
    pub anchor_generator: AnchorGenerator,
    box_coder: BoxLinearCoder,
    /// False once every backbone layer is frozen: the ResNet then keeps its BatchNorm
    /// statistics too (evaluation mode).
    backbone_trains: AtomicBool,
}

impl Fcos {
    /// Builds `config` under `p` (the model's root: `p.backbone.body.*`, `p.backbone.fpn.*`,
    /// `p.head.*`).
    pub fn new(p: &Path, config: &FcosConfig) -> Result<Self> {
        let opts = BackboneOptions {
            num_classes: 0,
            norm: config.norm,
            ..Default::default()
        };
        let cfg = ResNetConfig::by_name("resnet50").context("resnet50 config")?;
        let body = ResNet::new(&(p / "backbone" / "body"), &cfg, &opts)?;
        // layer2–layer4 (torchvision's returned_layers [2, 3, 4]); P6 from P5, whose 256
        // channels equal the output's.
        let fpn = Fpn::new(
            &(p / "backbone" / "fpn"),
            FpnConfig {
                in_channels: vec![512, 1024, 2048],
                out_channels: 256,
                extra: ExtraBlock::LastLevelP6P7 { in_channels: 256 },
                batch_norm: false,
            },
        )?;
        let sizes = [8.0, 16.0, 32.0, 64.0, 128.0].map(|s| vec![s]).to_vec();
        let anchor_generator = AnchorGenerator::new(sizes, vec![vec![1.0]; 5])?;
        let hp = p / "head";
        let head = FcosHead {
            classification_head: FcosClassificationHead::new(
                &(&hp / "classification_head"),
                256,
                1,
                config.num_classes,
                config.num_convs,
            ),
            regression_head: FcosRegressionHead::new(
                &(&hp / "regression_head"),
                256,
                1,
                config.num_convs,
            ),
        };
        Ok(Fcos {
            config: config.clone(),
            body,
            fpn,
            head,
            anchor_generator,
            box_coder: BoxLinearCoder::new(true),
            backbone_trains: AtomicBool::new(true),
        })
    }

    /// The five pyramid levels (P3–P7) of a padded batch, finest first.
    pub fn features(&self, x: &Tensor, train: bool) -> Result<Vec<Tensor>> {
        let body_train = train && self.backbone_trains.load(Ordering::Relaxed);
        // The stem and layer1 feed nothing but layer2.
        let levels = self.body.features(x, body_train).split_off(2);
        Ok(self.fpn.forward_t(&levels, train)?)
    }

    /// The head's outputs over `features`.
    pub fn head_outputs(&self, features: &[Tensor]) -> HeadOutputs {
        let cls_logits = self.head.classification_head.forward(features);
        let (bbox_regression, bbox_ctrness) = self.head.regression_head.forward(features);
        HeadOutputs {
            cls_logits,
            bbox_regression,
            bbox_ctrness,
        }
    }

    /// The locations' boxes `(L, 4)` of the padded batch (the same for every image), and how
    /// many each level has.
    pub fn anchors(&self, batch: &ImageList, features: &[Tensor]) -> Result<(Tensor, Vec<i64>)> {
        let size = batch.tensors.size();
        let grids: Vec<(i64, i64)> = features
            .iter()
            .map(|f| (f.size()[2], f.size()[3]))
            .collect();
        let anchors = self.anchor_generator.anchors(
            (size[2], size[3]),
            &grids,
            features[0].kind(),
            batch.tensors.device(),
        )?;
        Ok((anchors, grids.iter().map(|(h, w)| h * w).collect()))
    }

    /// Detections for each image (`(3, H, W)`, float, 0–1) in its own coordinates
    /// (evaluation mode).
    pub fn detect(&self, images: &[Tensor]) -> Result<Vec<Detections>> {
        let (batch, _) = self.config.transform.apply(images, None, false)?;
        let features = self.features(&batch.tensors, false)?;
        let head = self.head_outputs(&features);
        let (anchors, levels) = self.anchors(&batch, &features)?;
        let detections =
            self.postprocess_detections(&head, &anchors, &levels, &batch.image_sizes)?;
        Ok(self.config.transform.postprocess(detections, &batch))
    }

    /// The three training losses for `images` and their `targets` (training mode).
    pub fn losses(&self, images: &[Tensor], targets: &[Target]) -> Result<FcosLosses> {
        let (batch, targets) = self.config.transform.apply(images, Some(targets), true)?;
        let targets = targets.context("the transform returns the targets it is given")?;
        for (i, t) in targets.iter().enumerate() {
            check_boxes(i, &t.boxes)?;
        }
        let features = self.features(&batch.tensors, true)?;
        let head = self.head_outputs(&features);
        let (anchors, levels) = self.anchors(&batch, &features)?;
        let matched = self.match_targets(&anchors, &levels, &targets)?;
        self.compute_loss(&targets, &head, &anchors, &matched)
    }

    /// Each location's ground-truth index per image, or −1: torchvision's `FCOS.compute_loss`
    /// matching (centre sampling, inside the box, the level's size range, the smallest box).
    pub fn match_targets(
        &self,
        anchors: &Tensor,
        levels: &[i64],
        targets: &[Target],
    ) -> Result<Vec<Tensor>> {
        let (first, last) = match (levels.first(), levels.last()) {
            (Some(&f), Some(&l)) => (f, l),
            _ => bail!("no feature levels to match on"),
        };
        let total = anchors.size()[0];
        let centers = (anchors.narrow(1, 0, 2) + anchors.narrow(1, 2, 2)) / 2.0;
        let sizes = anchors.select(1, 2) - anchors.select(1, 0);
        // The range of a location's largest side distance: 4–8 strides, open below on the
        // first level and above on the last.
        let lower = &sizes * 4.0;
        let _ = lower.narrow(0, 0, first).fill_(0.0);
        let upper = &sizes * 8.0;
        let _ = upper.narrow(0, total - last, last).fill_(f64::INFINITY);
        let (x, y) = (
            centers.select(1, 0).unsqueeze(1),
            centers.select(1, 1).unsqueeze(1),
        );
        targets
            .iter()
            .map(|t| {
                let gt = &t.boxes;
                if gt.numel() == 0 {
                    return Ok(Tensor::full([total], -1, (Kind::Int64, anchors.device())));
                }
                let gt_centers = (gt.narrow(1, 0, 2) + gt.narrow(1, 2, 2)) / 2.0;
                let near = (centers.unsqueeze(1) - gt_centers.unsqueeze(0))
                    .abs_()
                    .amax([2], false)
                    .lt_tensor(&(sizes.unsqueeze(1) * self.config.center_sampling_radius));
                let side = |i: i64| gt.select(1, i).unsqueeze(0);
                let dist =
                    Tensor::stack(&[&x - side(0), &y - side(1), side(2) - &x, side(3) - &y], 2);
                let inside = dist.amin([2], false).gt(0.0);
                let reach = dist.amax([2], false);
                let in_range = reach
                    .gt_tensor(&lower.unsqueeze(1))
                    .logical_and(&reach.lt_tensor(&upper.unsqueeze(1)));
                let matches = near.logical_and(&inside).logical_and(&in_range);
                // The smallest box of those a location matches (1e8 − area, in float32 as
                // torchvision computes it, so near-equal areas tie as there).
                let areas = (side(2) - side(0)) * (side(3) - side(1));
                let (best, index) =
                    (matches.to_kind(Kind::Float) * (-areas + 1e8)).max_dim(1, false);
                Ok(index.masked_fill(&best.lt(1e-5), -1))
            })
            .collect()
    }

    /// torchvision's `FCOSHead.compute_loss`, for locations matched by
    /// [`Self::match_targets`].
    pub fn compute_loss(
        &self,
        targets: &[Target],
        head: &HeadOutputs,
        anchors: &Tensor,
        matched: &[Tensor],
    ) -> Result<FcosLosses> {
        if targets.len() != matched.len() {
            bail!(
                "{} targets for {} match lists",
                targets.len(),
                matched.len()
            );
        }
        let (mut classes, mut boxes) = (Vec::new(), Vec::new());
        for (t, m) in targets.iter().zip(matched) {
            let (c, b) = if t.labels.numel() == 0 {
                (
                    Tensor::zeros([m.size()[0]], (Kind::Int64, m.device())),
                    Tensor::zeros([m.size()[0], 4], (t.boxes.kind(), m.device())),
                )
            } else {
                let i = m.clamp_min(0);
                (t.labels.index_select(0, &i), t.boxes.index_select(0, &i))
            };
            classes.push(c.masked_fill(&m.lt(0), -1));
            boxes.push(b);
        }
        let classes = Tensor::stack(&classes, 0);
        let gt_boxes = Tensor::stack(&boxes, 0);
        let foreground = classes.ge(0);
        let num_foreground = foreground.sum(Kind::Int64).int64_value(&[]);
        let n = num_foreground.max(1) as f64;

        // One-hot class targets of the positives; background rows stay zero.
        let cls_targets = head.cls_logits.zeros_like().scatter(
            2,
            &classes.clamp_min(0).unsqueeze(2),
            &foreground.unsqueeze(2).to_kind(head.cls_logits.kind()),
        );
        let classification =
            losses::sigmoid_focal_loss(&head.cls_logits, &cls_targets, 0.25, 2.0, Reduction::Sum)?;

        // Box and centre-ness terms on the positives only: both are per location, so the
        // subset gives torchvision's values (which decode every location, then select).
        let fg = foreground.view([-1]).nonzero().squeeze_dim(1);
        let rows = |t: &Tensor, c: i64| t.reshape([-1, c]).index_select(0, &fg);
        let fg_anchors = anchors.repeat([classes.size()[0], 1]).index_select(0, &fg);
        let fg_boxes = rows(&gt_boxes, 4);
        let pred_boxes = self
            .box_coder
            .decode(&rows(&head.bbox_regression, 4), &fg_anchors)?;
        let bbox_regression =
            losses::generalized_box_iou_loss(&pred_boxes, &fg_boxes, Reduction::Sum, 1e-7)?;
        let distances = self.box_coder.encode(&fg_anchors, &fg_boxes)?;
        let ratio = |a: i64, b: i64| {
            let pair = Tensor::stack(&[distances.select(1, a), distances.select(1, b)], 1);
            pair.amin([1], false) / pair.amax([1], false)
        };
        let ctr_targets = (ratio(0, 2) * ratio(1, 3)).sqrt();
        let bbox_ctrness = rows(&head.bbox_ctrness, 1)
            .squeeze_dim(1)
            .binary_cross_entropy_with_logits::<Tensor>(&ctr_targets, None, None, Reduction::Sum);
        Ok(FcosLosses {
            classification: classification / n,
            bbox_regression: bbox_regression / n,
            bbox_ctrness: bbox_ctrness / n,
        })
    }

    /// torchvision's `FCOS.postprocess_detections`: per level, the (location, class) pairs
    /// scoring `√(σ(class) · σ(centre-ness))` above `score_thresh`, the best `topk_candidates`
    /// of them, their boxes decoded and clipped; class-wise NMS over all levels, the best
    /// `detections_per_img`. Boxes are in the resized image's pixels.
    pub fn postprocess_detections(
        &self,
        head: &HeadOutputs,
        anchors: &Tensor,
        levels: &[i64],
        image_sizes: &[(i64, i64)],
    ) -> Result<Vec<Detections>> {
        let num_classes = head.cls_logits.size()[2];
        let mut out = Vec::with_capacity(image_sizes.len());
        for (i, &size) in image_sizes.iter().enumerate() {
            let i = i as i64;
            let (logits, regression, ctrness) = (
                head.cls_logits.get(i),
                head.bbox_regression.get(i),
                head.bbox_ctrness.get(i),
            );
            let (mut all_boxes, mut all_scores, mut all_labels) = (vec![], vec![], vec![]);
            let mut start = 0;
            for &count in levels {
                let begin = start;
                start += count;
                let level = move |t: &Tensor| t.narrow(0, begin, count);
                let scores = (level(&logits).sigmoid() * level(&ctrness).sigmoid())
                    .sqrt()
                    .flatten(0, -1);
                let keep = scores.gt(self.config.score_thresh);
                let candidates = keep.nonzero().squeeze_dim(1);
                let scores = scores.masked_select(&keep);
                let k = self.config.topk_candidates.min(scores.size()[0]);
                let (scores, order) = scores.topk(k, 0, true, true);
                let candidates = candidates.index_select(0, &order);
                let locations = candidates.floor_divide_scalar(num_classes);
                let boxes = self.box_coder.decode(
                    &level(&regression).index_select(0, &locations),
                    &level(anchors).index_select(0, &locations),
                )?;
                all_boxes.push(clip_boxes_to_image(&boxes, size)?);
                all_scores.push(scores);
                all_labels.push(candidates.remainder(num_classes));
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

    /// torchvision's `trainable_backbone_layers` on the ResNet: all but its last `n` layers
    /// (`layer4`, `layer3`, `layer2`, `layer1`, `conv1` (+ `bn1` at 5), 0–5) frozen. Returns how
    /// many variables were frozen.
    pub fn set_trainable_backbone_layers(&self, vs: &VarStore, n: usize) -> Result<usize> {
        let select = resnet_frozen(n)?;
        self.backbone_trains.store(n > 0, Ordering::Relaxed);
        Ok(set_trainable(vs, false, FreezeOptions::default(), select))
    }

    /// How a whole torchvision FCOS checkpoint loads: strictly (old FPN spellings accepted),
    /// the class logits starting fresh when the class count differs (the towers, box and
    /// centre-ness predictors are class-agnostic and keep their weights), which the load report
    /// then lists.
    pub fn detection_load_options() -> Result<LoadOptions> {
        let opts = Fpn::legacy_renames(LoadOptions::default().strict(true), "backbone.fpn.")?;
        Ok(opts.reinit(r"^head\.classification_head\.cls_logits\.")?)
    }

    /// How an ImageNet ResNet-50 checkpoint (torchvision's `resnet50-*.pth`) loads, as
    /// `weights_backbone` does: under `backbone.body.`, its classifier dropped, every backbone
    /// tensor required, the FPN and the head starting fresh.
    pub fn backbone_load_options() -> Result<LoadOptions> {
        resnet50_body_load_options(r"^(backbone\.fpn|head)\.")
    }

    /// Loads `path` into `vs`: a detection checkpoint (names under `backbone.`) with
    /// [`Self::detection_load_options`], anything else as an ImageNet ResNet-50 with
    /// [`Self::backbone_load_options`].
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
            Self::backbone_load_options()?
        };
        load_checkpoint(vs, sd, &opts, path, &self.config.arch)
    }
}

impl Detector for Fcos {
    fn arch(&self) -> &str {
        &self.config.arch
    }

    fn input_size(&self) -> usize {
        self.config.transform.input_size()
    }

    fn backbone_layers(&self) -> usize {
        5
    }

    fn default_trainable_layers(&self) -> usize {
        3
    }

    fn set_trainable_backbone_layers(&self, vs: &VarStore, n: usize) -> Result<usize> {
        Fcos::set_trainable_backbone_layers(self, vs, n)
    }

    fn load_state_dict(
        &self,
        vs: &VarStore,
        sd: &checkpoint::StateDict,
        file: &std::path::Path,
    ) -> Result<LoadReport> {
        Fcos::load_state_dict(self, vs, sd, file)
    }

    fn loss_names(&self) -> &'static [&'static str] {
        &["classification", "bbox_regression", "bbox_ctrness"]
    }

    fn losses(&self, images: &[Tensor], targets: &[Target]) -> Result<Vec<Tensor>> {
        let l = Fcos::losses(self, images, targets)?;
        Ok(vec![l.classification, l.bbox_regression, l.bbox_ctrness])
    }

    fn detect(&self, images: &[Tensor]) -> Result<Vec<Detections>> {
        Fcos::detect(self, images)
    }
}
