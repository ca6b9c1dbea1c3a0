//! RetinaNet (Lin et al., "Focal Loss for Dense Object Detection", 2017) as torchvision builds
//! it, with its state_dict names so its checkpoints load as they are: `backbone.body` (ResNet-50)
//! and `backbone.fpn` (a [`Fpn`] over `layer2`–`layer4` with `p6`, `p7`: levels P3–P7), `head`
//! ([`RetinaNetHead`]: a classification and a regression tower shared by every level), behind the
//! [`RcnnTransform`] (800 / 1333).
//!
//! | arch | backbone norm | P6 from | head towers | box loss |
//! |---|---|---|---|---|
//! | `retinanet_resnet50_fpn` | FrozenBatchNorm2d with weights, else BatchNorm | P5 | 4 × (conv 3×3 + bias, ReLU) | L1 on the offsets |
//! | `retinanet_resnet50_fpn_v2` | BatchNorm | C5 | 4 × (conv 3×3, GroupNorm(32), ReLU) | GIoU on the boxes |
//!
//! What torchvision does that the paper does not: P6 of v1 comes from P5 (`LastLevelP6P7(256,
//! 256)`), not from C5 as in the paper (v2, the ATSS paper's recipe, takes C5); anchor sizes are
//! `int(s · 2^(k/3))`, truncated (40, 50, 80, 101, …); a class score is a sigmoid for every one of
//! `num_classes` outputs, the background's included (label 0 can be detected, and is dropped
//! where ferrovis reports classes); the classification loss is the focal loss of every anchor not
//! between the IoU thresholds, over the image's foreground anchors, averaged over the images.

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
use ferrovis_core::ops::box_coder::BoxCoder;
use ferrovis_core::ops::detection::{batched_nms, clip_boxes_to_image};
use ferrovis_core::ops::losses::{generalized_box_iou_loss, sigmoid_focal_loss};
use ferrovis_core::ops::matcher::{match_by_iou, Matcher, BETWEEN_THRESHOLDS};

use crate::torchvision::detector::{is_detection_checkpoint, load_checkpoint, Detector};
use crate::torchvision::faster_rcnn::{resnet50_body_load_options, resnet_frozen};
use crate::torchvision::ssd::check_boxes;
use crate::torchvision::targets::{Detections, Target};
use crate::torchvision::transform::{ImageList, RcnnTransform};

/// The architectures torchvision names.
pub const ARCHS: [&str; 2] = ["retinanet_resnet50_fpn", "retinanet_resnet50_fpn_v2"];

/// The classification bias starts at the logit of this probability (the paper's π = 0.01), so
/// the many background anchors do not swamp the first steps' loss.
const PRIOR_PROBABILITY: f64 = 0.01;

/// A RetinaNet's shape and settings (torchvision's defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct RetinaNetConfig {
    /// `retinanet_resnet50_fpn` or `retinanet_resnet50_fpn_v2`.
    pub arch: String,
    /// The v2 recipe (arXiv 1912.02424): GroupNorm towers, P6 from C5, GIoU box loss.
    pub v2: bool,
    /// Outputs per anchor, the background's included (91 for COCO).
    pub num_classes: i64,
    /// The backbone's normalisation (FrozenBatchNorm2d when v1 starts from pretrained weights).
    pub norm: NormLayer,
    /// Input transform (800 / 1333, ImageNet statistics).
    pub transform: RcnnTransform,
    /// Class scores at most this are dropped before NMS (0.05).
    pub score_thresh: f64,
    /// Per-class NMS IoU (0.5).
    pub nms_thresh: f64,
    /// Detections kept per image (300).
    pub detections_per_img: i64,
    /// Anchors overlapping a ground truth this much are foreground (0.5).
    pub fg_iou_thresh: f64,
    /// Below this they are background (0.4); between the two they are ignored.
    pub bg_iou_thresh: f64,
    /// Best-scoring (anchor, class) pairs kept per level before NMS (1000).
    pub topk_candidates: i64,
}

impl RetinaNetConfig {
    /// torchvision's settings for `arch` with `num_classes` outputs; `pretrained` (weights or
    /// backbone weights given) selects FrozenBatchNorm2d in v1, as torchvision does (v2 keeps
    /// BatchNorm).
    pub fn by_name(arch: &str, num_classes: i64, pretrained: bool) -> Result<Self> {
        let v2 = match arch {
            "retinanet_resnet50_fpn" => false,
            "retinanet_resnet50_fpn_v2" => true,
            _ => bail!(
                "unknown RetinaNet architecture {arch:?}; available: {}",
                ARCHS.join(", ")
            ),
        };
        if num_classes < 2 {
            bail!("num_classes: expected at least 2 (the background and one class), got {num_classes}");
        }
        Ok(RetinaNetConfig {
            arch: arch.to_string(),
            v2,
            num_classes,
            norm: if pretrained && !v2 {
                NormLayer::Frozen { eps: 1e-5 }
            } else {
                NormLayer::BatchNorm
            },
            transform: RcnnTransform::new(800, 1333),
            score_thresh: 0.05,
            nms_thresh: 0.5,
            detections_per_img: 300,
            fg_iou_thresh: 0.5,
            bg_iou_thresh: 0.4,
            topk_candidates: 1000,
        })
    }
}

/// torchvision's `_default_anchorgen`: per level P3–P7 the sizes `s`, `int(s·2^⅓)`, `int(s·2^⅔)`
/// for `s` = 32 … 512 (truncated, as Python's `int`), ratios 0.5, 1, 2: nine anchors a cell.
pub fn anchor_generator() -> AnchorGenerator {
    let sizes: Vec<Vec<f64>> = [32.0f64, 64.0, 128.0, 256.0, 512.0]
        .iter()
        .map(|&s| {
            let octave = |k: f64| (s * 2f64.powf(k / 3.0)).trunc();
            vec![s, octave(1.0), octave(2.0)]
        })
        .collect();
    AnchorGenerator::new(sizes, vec![vec![0.5, 1.0, 2.0]; 5])
        .expect("five size sets, five ratio sets")
}

/// A 3×3 convolution (padding 1) with weights from N(0, 0.01) and the bias `bias` (none when
/// `None`), as torchvision initialises every convolution of the head.
fn head_conv(p: &Path, c_in: i64, c_out: i64, bias: Option<f64>) -> nn::Conv2D {
    nn::conv2d(
        p,
        c_in,
        c_out,
        3,
        nn::ConvConfig {
            padding: 1,
            bias: bias.is_some(),
            ws_init: Init::Randn {
                mean: 0.0,
                stdev: 0.01,
            },
            bs_init: Init::Const(bias.unwrap_or(0.0)),
            ..Default::default()
        },
    )
}

/// One block of a tower, torchvision's `Conv2dNormActivation`: the convolution (`i.0`, with a
/// bias in v1), GroupNorm(32) (`i.1`, v2), then ReLU.
#[derive(Debug)]
struct TowerBlock {
    conv: nn::Conv2D,
    norm: Option<nn::GroupNorm>,
}

/// The four blocks before a predictor (`conv.0` … `conv.3`).
#[derive(Debug)]
struct Tower(Vec<TowerBlock>);

impl Tower {
    fn new(p: &Path, channels: i64, group_norm: bool) -> Self {
        let blocks = (0..4)
            .map(|i| {
                let b = p / i;
                TowerBlock {
                    conv: head_conv(
                        &(&b / "0"),
                        channels,
                        channels,
                        (!group_norm).then_some(0.0),
                    ),
                    norm: group_norm
                        .then(|| nn::group_norm(&b / "1", 32, channels, Default::default())),
                }
            })
            .collect();
        Tower(blocks)
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let mut y = x.shallow_clone();
        for block in &self.0 {
            let z = block.conv.forward(&y);
            // ReLU in place on a fresh output, as torchvision's `inplace=True`: neither the
            // convolution's nor GroupNorm's backward needs its output.
            y = match &block.norm {
                Some(gn) => gn.forward(&z),
                None => z,
            };
            let _ = y.relu_();
        }
        y
    }
}

/// `(N, A·K, H, W)` → `(N, H·W·A, K)`: cell by cell, anchor by anchor.
fn per_anchor(y: &Tensor, k: i64) -> Tensor {
    let (n, h, w) = (y.size()[0], y.size()[2], y.size()[3]);
    y.view([n, -1, k, h, w])
        .permute([0, 3, 4, 1, 2])
        .reshape([n, -1, k])
}

/// torchvision's `RetinaNetClassificationHead`: a tower, then `cls_logits` (3×3 to
/// `A · num_classes`, bias `−log((1 − π)/π)`).
#[derive(Debug)]
pub struct ClassificationHead {
    conv: Tower,
    cls_logits: nn::Conv2D,
    num_classes: i64,
}

impl ClassificationHead {
    /// Builds `p.conv.*` and `p.cls_logits.*`.
    pub fn new(
        p: &Path,
        channels: i64,
        num_anchors: i64,
        num_classes: i64,
        group_norm: bool,
    ) -> Self {
        let prior_bias = -((1.0 - PRIOR_PROBABILITY) / PRIOR_PROBABILITY).ln();
        ClassificationHead {
            conv: Tower::new(&(p / "conv"), channels, group_norm),
            cls_logits: head_conv(
                &(p / "cls_logits"),
                channels,
                num_anchors * num_classes,
                Some(prior_bias),
            ),
            num_classes,
        }
    }

    /// `(N, Σ H·W·A, num_classes)` logits over every level.
    pub fn forward(&self, features: &[Tensor]) -> Tensor {
        let parts: Vec<Tensor> = features
            .iter()
            .map(|x| {
                per_anchor(
                    &self.cls_logits.forward(&self.conv.forward(x)),
                    self.num_classes,
                )
            })
            .collect();
        Tensor::cat(&parts, 1)
    }
}

/// torchvision's `RetinaNetRegressionHead`: a tower, then `bbox_reg` (3×3 to `A · 4`).
#[derive(Debug)]
pub struct RegressionHead {
    conv: Tower,
    bbox_reg: nn::Conv2D,
}

impl RegressionHead {
    /// Builds `p.conv.*` and `p.bbox_reg.*`.
    pub fn new(p: &Path, channels: i64, num_anchors: i64, group_norm: bool) -> Self {
        RegressionHead {
            conv: Tower::new(&(p / "conv"), channels, group_norm),
            bbox_reg: head_conv(&(p / "bbox_reg"), channels, num_anchors * 4, Some(0.0)),
        }
    }

    /// `(N, Σ H·W·A, 4)` box offsets over every level.
    pub fn forward(&self, features: &[Tensor]) -> Tensor {
        let parts: Vec<Tensor> = features
            .iter()
            .map(|x| per_anchor(&self.bbox_reg.forward(&self.conv.forward(x)), 4))
            .collect();
        Tensor::cat(&parts, 1)
    }
}

/// torchvision's `RetinaNetHead` (`head.classification_head`, `head.regression_head`).
#[derive(Debug)]
pub struct RetinaNetHead {
    /// Class logits per anchor.
    pub classification_head: ClassificationHead,
    /// Box offsets per anchor.
    pub regression_head: RegressionHead,
}

/// The head's two outputs for a batch.
#[derive(Debug)]
pub struct HeadOutputs {
    /// `(N, B, num_classes)` logits.
    pub cls_logits: Tensor,
    /// `(N, B, 4)` offsets of each anchor.
    pub bbox_regression: Tensor,
}

/// RetinaNet's two losses, under torchvision's names.
#[derive(Debug)]
pub struct RetinaNetLosses {
    /// Sigmoid focal loss (α 0.25, γ 2) of every anchor not ignored, summed, over each image's
    /// foreground anchors (at least 1), averaged over the images.
    pub classification: Tensor,
    /// L1 of the foreground anchors' offsets (v1) or GIoU of their decoded boxes (v2), summed,
    /// over each image's foreground anchors (at least 1), averaged over the images.
    pub bbox_regression: Tensor,
}

/// torchvision's `RetinaNet`.
#[derive(Debug)]
pub struct RetinaNet {
    /// Shape and settings.
    pub config: RetinaNetConfig,
    body: ResNet,
    fpn: Fpn,
    /// False once every backbone layer is frozen: the ResNet then keeps its BatchNorm
    /// statistics too.
    backbone_trains: AtomicBool,
    /// Inputs go channels-last (see [`RetinaNet::use_channels_last`]).
    channels_last: AtomicBool,
    /// The two towers and predictors.
    pub head: RetinaNetHead,
    /// Nine anchors a cell on each of P3–P7.
    pub anchor_generator: AnchorGenerator,
    box_coder: BoxCoder,
    matcher: Matcher,
}

impl RetinaNet {
    /// Builds `config` under `p` (`p.backbone.body.*`, `p.backbone.fpn.*`, `p.head.*`).
    pub fn new(p: &Path, config: &RetinaNetConfig) -> Result<Self> {
        let opts = BackboneOptions {
            num_classes: 0,
            norm: config.norm,
            ..Default::default()
        };
        let cfg = ResNetConfig::by_name("resnet50").context("resnet50 config")?;
        let body = ResNet::new(&(p / "backbone" / "body"), &cfg, &opts)?;
        // P6 from P5 (256 channels) in v1, from C5 (2048) in v2: LastLevelP6P7 takes P5 when
        // its input has the pyramid's width.
        let p6_in = if config.v2 { 2048 } else { 256 };
        let fpn = Fpn::new(
            &(p / "backbone" / "fpn"),
            FpnConfig {
                in_channels: vec![512, 1024, 2048],
                out_channels: 256,
                extra: ExtraBlock::LastLevelP6P7 { in_channels: p6_in },
                batch_norm: false,
            },
        )?;
        let anchor_generator = anchor_generator();
        let a = anchor_generator.num_anchors_per_location()[0];
        let hp = p / "head";
        let head = RetinaNetHead {
            classification_head: ClassificationHead::new(
                &(&hp / "classification_head"),
                256,
                a,
                config.num_classes,
                config.v2,
            ),
            regression_head: RegressionHead::new(&(&hp / "regression_head"), 256, a, config.v2),
        };
        Ok(RetinaNet {
            config: config.clone(),
            body,
            fpn,
            backbone_trains: AtomicBool::new(true),
            channels_last: AtomicBool::new(false),
            head,
            anchor_generator,
            box_coder: BoxCoder::new([1.0, 1.0, 1.0, 1.0]),
            matcher: Matcher::new(config.fg_iou_thresh, config.bg_iou_thresh, true)?,
        })
    }

    /// Lays the convolution weights in `vs` (this model's) and every input batch out
    /// channels-last (NHWC), where oneDNN's CPU convolutions run faster, and where the head's
    /// `(N, A·K, H, W)` → `(N, H·W·A, K)` layout change is a view instead of a copy. Results
    /// equal the NCHW ones up to float summation order. Call it after loading weights.
    pub fn use_channels_last(&self, vs: &VarStore) -> Result<()> {
        ferrovis_core::memory_format::vars_to_channels_last(vs)?;
        self.channels_last.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// The pyramid P3–P7 of a padded batch, finest first.
    pub fn features(&self, x: &Tensor, train: bool) -> Result<Vec<Tensor>> {
        let nhwc;
        let x = if self.channels_last.load(Ordering::Relaxed) {
            nhwc = ferrovis_core::memory_format::channels_last(x)?;
            &nhwc
        } else {
            x
        };
        let body_train = train && self.backbone_trains.load(Ordering::Relaxed);
        // Stem, layer1 … layer4: the FPN takes layer2 … layer4.
        let levels = self.body.features(x, body_train).split_off(2);
        Ok(self.fpn.forward_t(&levels, train)?)
    }

    /// The head's outputs over `features`.
    pub fn head_outputs(&self, features: &[Tensor]) -> HeadOutputs {
        HeadOutputs {
            cls_logits: self.head.classification_head.forward(features),
            bbox_regression: self.head.regression_head.forward(features),
        }
    }

    /// Each image's anchors `(B, 4)` in the padded batch's pixels (one set, shared).
    pub fn anchors(&self, batch: &ImageList, features: &[Tensor]) -> Result<Vec<Tensor>> {
        let size = batch.tensors.size();
        let grids: Vec<(i64, i64)> = features
            .iter()
            .map(|f| (f.size()[2], f.size()[3]))
            .collect();
        let anchors = self.anchor_generator.anchors(
            (size[2], size[3]),
            &grids,
            batch.tensors.kind(),
            batch.tensors.device(),
        )?;
        Ok((0..size[0]).map(|_| anchors.shallow_clone()).collect())
    }

    /// Each anchor's ground-truth index per image (−1 background, −2 ignored): IoU ≥ 0.5
    /// foreground, < 0.4 background, and each ground truth's best anchors kept (low-quality
    /// matches).
    pub fn match_targets(&self, anchors: &[Tensor], targets: &[Target]) -> Result<Vec<Tensor>> {
        Ok(match_by_iou(
            &self.matcher,
            anchors,
            targets.iter().map(|t| &t.boxes),
        )?)
    }

    /// Detections for each image (`(3, H, W)`, float, 0–1) in its own coordinates (evaluation
    /// mode).
    pub fn detect(&self, images: &[Tensor]) -> Result<Vec<Detections>> {
        let (batch, _) = self.config.transform.apply(images, None, false)?;
        let features = self.features(&batch.tensors, false)?;
        let head = self.head_outputs(&features);
        let anchors = self.anchors(&batch, &features)?;
        let per_level: Vec<i64> = features
            .iter()
            .map(|f| {
                f.size()[2] * f.size()[3] * self.anchor_generator.num_anchors_per_location()[0]
            })
            .collect();
        let detections =
            self.postprocess_detections(&head, &anchors, &per_level, &batch.image_sizes)?;
        Ok(self.config.transform.postprocess(detections, &batch))
    }

    /// The two training losses for `images` and their `targets` (training mode).
    pub fn losses(&self, images: &[Tensor], targets: &[Target]) -> Result<RetinaNetLosses> {
        let (batch, targets) = self.config.transform.apply(images, Some(targets), true)?;
        let targets = targets.context("the transform returns the targets it is given")?;
        for (i, t) in targets.iter().enumerate() {
            check_boxes(i, &t.boxes)?;
            check_labels(i, t, self.config.num_classes)?;
        }
        let features = self.features(&batch.tensors, true)?;
        let head = self.head_outputs(&features);
        let anchors = self.anchors(&batch, &features)?;
        let matched = self.match_targets(&anchors, &targets)?;
        self.compute_loss(&targets, &head, &anchors, &matched)
    }

    /// torchvision's `RetinaNetHead.compute_loss` for matches `matched` (see
    /// [`RetinaNetLosses`]).
    pub fn compute_loss(
        &self,
        targets: &[Target],
        head: &HeadOutputs,
        anchors: &[Tensor],
        matched: &[Tensor],
    ) -> Result<RetinaNetLosses> {
        let cls = &head.cls_logits;
        let device = cls.device();
        // One-hot class targets of the foreground anchors, all images at once.
        let mut gt_classes = cls.zeros_like();
        let mut box_losses = Vec::with_capacity(targets.len());
        let mut num_foreground = Vec::with_capacity(targets.len());
        let (mut images, mut fg_anchors, mut fg_labels) = (vec![], vec![], vec![]);
        for (i, ((t, a), m)) in targets.iter().zip(anchors).zip(matched).enumerate() {
            let fg = m.ge(0).nonzero().squeeze_dim(1);
            let fg_matched = m.index_select(0, &fg);
            let n = fg.size()[0];
            num_foreground.push(n.max(1) as f64);
            images.push(Tensor::full([n], i as i64, (Kind::Int64, device)));
            fg_labels.push(t.labels.index_select(0, &fg_matched));
            let gt_boxes = t.boxes.index_select(0, &fg_matched);
            let pred = head.bbox_regression.get(i as i64).index_select(0, &fg);
            let a = a.index_select(0, &fg);
            let loss = if self.config.v2 {
                let boxes = self.box_coder.decode(&pred, &a)?;
                generalized_box_iou_loss(&boxes, &gt_boxes, Reduction::Sum, 1e-7)?
            } else {
                let target = self.box_coder.encode(&gt_boxes, &a)?;
                pred.l1_loss(&target, Reduction::Sum)
            };
            box_losses.push(loss / n.max(1) as f64);
            fg_anchors.push(fg);
        }
        let (images, fg_anchors, fg_labels) = (
            Tensor::cat(&images, 0),
            Tensor::cat(&fg_anchors, 0),
            Tensor::cat(&fg_labels, 0),
        );
        let ones = Tensor::ones([images.size()[0]], (cls.kind(), device));
        let _ = gt_classes.index_put_(
            &[Some(&images), Some(&fg_anchors), Some(&fg_labels)],
            &ones,
            false,
        );
        // Anchors between the thresholds take no part; the rest are summed per image.
        let valid = Tensor::stack(matched, 0)
            .ne(BETWEEN_THRESHOLDS)
            .to_kind(cls.kind())
            .unsqueeze(-1);
        let focal = sigmoid_focal_loss(cls, &gt_classes, 0.25, 2.0, Reduction::None)? * valid;
        let per_image = focal.sum_dim_intlist(&[1i64, 2][..], false, cls.kind());
        let divisors = Tensor::from_slice(&num_foreground)
            .to_kind(cls.kind())
            .to_device(device);
        let n = targets.len().max(1) as f64;
        let bbox_regression = box_losses
            .into_iter()
            .reduce(|a, b| a + b)
            .context("compute_loss: no images")?
            / n;
        Ok(RetinaNetLosses {
            classification: (per_image / divisors).sum(cls.kind()) / n,
            bbox_regression,
        })
    }

    /// torchvision's `RetinaNet.postprocess_detections`: per image and level (`per_level`
    /// anchors each), sigmoid scores above `score_thresh`, the `topk_candidates` best (anchor,
    /// class) pairs, decoded and clipped to the image; then per-class NMS over the levels and
    /// the best `detections_per_img`. Boxes are in the resized image's pixels.
    pub fn postprocess_detections(
        &self,
        head: &HeadOutputs,
        anchors: &[Tensor],
        per_level: &[i64],
        image_sizes: &[(i64, i64)],
    ) -> Result<Vec<Detections>> {
        let num_classes = head.cls_logits.size()[2];
        let mut out = Vec::with_capacity(image_sizes.len());
        for (i, (a, &size)) in anchors.iter().zip(image_sizes).enumerate() {
            let logits = head.cls_logits.get(i as i64).split_with_sizes(per_level, 0);
            let offsets = head
                .bbox_regression
                .get(i as i64)
                .split_with_sizes(per_level, 0);
            let anchors = a.split_with_sizes(per_level, 0);
            let (mut all_boxes, mut all_scores, mut all_labels) = (vec![], vec![], vec![]);
            for ((logits, offsets), anchors) in logits.iter().zip(&offsets).zip(&anchors) {
                let scores = logits.sigmoid().flatten(0, -1);
                let keep = scores.gt(self.config.score_thresh);
                let scores = scores.masked_select(&keep);
                let candidates = keep.nonzero().squeeze_dim(1);
                let k = self.config.topk_candidates.min(candidates.size()[0]);
                let (scores, idx) = scores.topk(k, 0, true, true);
                let candidates = candidates.index_select(0, &idx);
                let anchor_idx = candidates.divide_scalar_mode(num_classes, "floor");
                let labels = candidates.remainder(num_classes);
                let boxes = self.box_coder.decode(
                    &offsets.index_select(0, &anchor_idx),
                    &anchors.index_select(0, &anchor_idx),
                )?;
                all_boxes.push(clip_boxes_to_image(&boxes, size)?);
                all_scores.push(scores);
                all_labels.push(labels);
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

    /// torchvision's `trainable_backbone_layers` (0–5: `layer4`, `layer3`, `layer2`, `layer1`,
    /// `conv1` (+ `bn1` at 5)); the FPN and the head always train. Returns how many variables
    /// were frozen.
    pub fn set_trainable_backbone_layers(&self, vs: &VarStore, n: usize) -> Result<usize> {
        let select = resnet_frozen(n)?;
        self.backbone_trains.store(n > 0, Ordering::Relaxed);
        Ok(set_trainable(vs, false, FreezeOptions::default(), select))
    }

    /// `opts` with the renames torchvision applies to RetinaNet checkpoints saved before its
    /// FPN and heads reached version 2: `backbone.fpn.inner_blocks.i.weight` and each tower's
    /// `conv.{0,2,4,6}.weight` (convolutions between ReLUs of one Sequential) to
    /// `conv.{0,1,2,3}.0.weight`, so old and new spellings both load by name.
    pub fn legacy_renames(opts: LoadOptions) -> Result<LoadOptions> {
        let mut opts = Fpn::legacy_renames(opts, "backbone.fpn.")?;
        for i in 0..4 {
            opts = opts.rename_regex(
                &format!(
                    r"^(head\.(?:classification|regression)_head\.conv)\.{}\.(weight|bias)$",
                    2 * i
                ),
                &format!("$1.{i}.0.$2"),
            )?;
        }
        Ok(opts)
    }

    /// How a whole torchvision RetinaNet checkpoint loads: strictly, old spellings accepted,
    /// `head.classification_head.cls_logits` starting fresh when its class count differs (the
    /// towers, the regression head and the anchors are class-agnostic), which the load report
    /// then lists.
    pub fn detection_load_options() -> Result<LoadOptions> {
        let strict = LoadOptions::default().strict(true);
        Ok(Self::legacy_renames(strict)?.reinit(r"^head\.classification_head\.cls_logits\.")?)
    }

    /// How an ImageNet ResNet-50 checkpoint (torchvision's `resnet50-*.pth`) loads, as
    /// `weights_backbone` does: its names under `backbone.body.`, `fc` dropped, every backbone
    /// tensor required, the FPN and the head starting fresh.
    pub fn backbone_load_options() -> Result<LoadOptions> {
        resnet50_body_load_options(r"^(backbone\.fpn|head)\.")
    }

    /// Loads `path` into `vs`: a detection checkpoint (names under `backbone.`) with
    /// [`Self::detection_load_options`], anything else as ResNet-50's classification checkpoint
    /// with [`Self::backbone_load_options`].
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

/// A label per box, each one of the `num_classes` outputs (the one-hot targets index them).
fn check_labels(image: usize, t: &Target, num_classes: i64) -> Result<()> {
    let (boxes, labels) = (t.boxes.size()[0], t.labels.numel() as i64);
    if labels != boxes {
        bail!("targets[{image}]: {labels} labels for {boxes} boxes");
    }
    if labels > 0 {
        let (min, max) = (
            t.labels.min().int64_value(&[]),
            t.labels.max().int64_value(&[]),
        );
        if min < 0 || max >= num_classes {
            let bad = if min < 0 { min } else { max };
            bail!(
                "targets[{image}]: label {bad} outside 0 to {} (the model's classes)",
                num_classes - 1
            );
        }
    }
    Ok(())
}

impl Detector for RetinaNet {
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
        RetinaNet::set_trainable_backbone_layers(self, vs, n)
    }

    /// Channels-last on the CPU ([`RetinaNet::use_channels_last`]): torchvision's own
    /// RetinaNet evaluates a 480×640 image (800 px) in 0.76× the NCHW time on 2 threads laid
    /// out so, on the same oneDNN kernels.
    fn prefer_layout(&self, vs: &VarStore) -> Result<()> {
        if vs.device() == tch::Device::Cpu {
            self.use_channels_last(vs)?;
        }
        Ok(())
    }

    fn load_state_dict(
        &self,
        vs: &VarStore,
        sd: &checkpoint::StateDict,
        file: &std::path::Path,
    ) -> Result<LoadReport> {
        RetinaNet::load_state_dict(self, vs, sd, file)
    }

    fn loss_names(&self) -> &'static [&'static str] {
        &["classification", "bbox_regression"]
    }

    fn losses(&self, images: &[Tensor], targets: &[Target]) -> Result<Vec<Tensor>> {
        let l = RetinaNet::losses(self, images, targets)?;
        Ok(vec![l.classification, l.bbox_regression])
    }

    fn detect(&self, images: &[Tensor]) -> Result<Vec<Detections>> {
        RetinaNet::detect(self, images)
    }
}
