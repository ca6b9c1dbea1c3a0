//! torchvision's `RoIHeads` for boxes: each proposal's features pooled by
//! [`MultiScaleRoiAlign`] (7×7), a box head (`TwoMLPHead`, or v2's `FastRCNNConvFCHead`), then
//! `FastRCNNPredictor`'s class logits and class-specific offsets. Training samples proposals
//! (ground truth appended) against the ground truth; evaluation decodes, thresholds and runs
//! NMS per class.

use anyhow::Result;
use tch::nn::{self, Module, Path};
use tch::{Kind, Reduction, Tensor};

use ferrovis_core::nn::{linear, Activation, Conv2dSpec, ConvNormAct};
use ferrovis_core::ops::box_coder::BoxCoder;
use ferrovis_core::ops::detection::{
    batched_nms, box_iou, clip_boxes_to_image, remove_small_boxes,
};
use ferrovis_core::ops::matcher::{Matcher, BELOW_LOW_THRESHOLD, BETWEEN_THRESHOLDS};
use ferrovis_core::ops::roi_align::MultiScaleRoiAlign;
use ferrovis_core::ops::sampler::BalancedPositiveNegativeSampler;

use super::targets::{Detections, Target};

/// The box head between pooling and predictor.
#[derive(Debug)]
pub enum BoxHead {
    /// torchvision's `TwoMLPHead`: flatten, `fc6` → ReLU, `fc7` → ReLU.
    TwoMlp {
        /// `box_head.fc6`.
        fc6: nn::Linear,
        /// `box_head.fc7`.
        fc7: nn::Linear,
    },
    /// torchvision's `FastRCNNConvFCHead` (Faster R-CNN v2): 3×3 conv–BatchNorm–ReLU blocks at
    /// `box_head.0 …`, flatten, then Linear–ReLU blocks after them (`box_head.5` for four convs).
    ConvFc {
        /// The convolution blocks.
        convs: Vec<ConvNormAct>,
        /// The fully connected layers.
        fcs: Vec<nn::Linear>,
    },
}

impl BoxHead {
    /// `TwoMLPHead` under `p` from `in_features` to `representation` (1024).
    pub fn two_mlp(p: &Path, in_features: i64, representation: i64) -> Self {
        BoxHead::TwoMlp {
            fc6: linear(&(p / "fc6"), in_features, representation),
            fc7: linear(&(p / "fc7"), representation, representation),
        }
    }

    /// `FastRCNNConvFCHead((channels, size, size), convs, fcs)` under `p` with BatchNorm.
    pub fn conv_fc(p: &Path, channels: i64, size: i64, convs: &[i64], fcs: &[i64]) -> Self {
        let mut c_in = channels;
        let mut conv_blocks = Vec::with_capacity(convs.len());
        for (i, &c) in convs.iter().enumerate() {
            conv_blocks.push(ConvNormAct::new(
                &(p / i.to_string()),
                c_in,
                c,
                Conv2dSpec::new(3),
                Activation::ReLU,
                1e-5,
                0.1,
            ));
            c_in = c;
        }
        // The Flatten module takes the next index of the Sequential.
        let mut index = convs.len() + 1;
        let mut f_in = c_in * size * size;
        let mut fc_layers = Vec::with_capacity(fcs.len());
        for &f in fcs {
            fc_layers.push(linear(&(p / index.to_string()), f_in, f));
            f_in = f;
            index += 2;
        }
        BoxHead::ConvFc {
            convs: conv_blocks,
            fcs: fc_layers,
        }
    }

    /// Pooled `(K, C, 7, 7)` to `(K, representation)`.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        match self {
            BoxHead::TwoMlp { fc6, fc7 } => {
                fc7.forward(&fc6.forward(&x.flatten(1, -1)).relu()).relu()
            }
            BoxHead::ConvFc { convs, fcs } => {
                let y = convs
                    .iter()
                    .fold(x.shallow_clone(), |y, c| c.forward_t(&y, train));
                fcs.iter()
                    .fold(y.flatten(1, -1), |y, f| f.forward(&y).relu())
            }
        }
    }
}

/// torchvision's `FastRCNNPredictor`: `cls_score` (C logits) and `bbox_pred` (4C offsets).
#[derive(Debug)]
pub struct FastRcnnPredictor {
    /// `box_predictor.cls_score`.
    pub cls_score: nn::Linear,
    /// `box_predictor.bbox_pred`.
    pub bbox_pred: nn::Linear,
}

impl FastRcnnPredictor {
    /// Under `p` for `num_classes` classes (the background included).
    pub fn new(p: &Path, in_features: i64, num_classes: i64) -> Self {
        FastRcnnPredictor {
            cls_score: linear(&(p / "cls_score"), in_features, num_classes),
            bbox_pred: linear(&(p / "bbox_pred"), in_features, 4 * num_classes),
        }
    }

    /// Class logits `(K, C)` and offsets `(K, 4C)`.
    pub fn forward(&self, x: &Tensor) -> (Tensor, Tensor) {
        let x = x.flatten(1, -1);
        (self.cls_score.forward(&x), self.bbox_pred.forward(&x))
    }
}

/// The RoI heads' settings, torchvision's defaults in [`RoiHeadsConfig::default`].
#[derive(Debug, Clone, PartialEq)]
pub struct RoiHeadsConfig {
    /// Proposals with IoU ≥ this are foreground.
    pub fg_iou_thresh: f64,
    /// Proposals with IoU < this are background.
    pub bg_iou_thresh: f64,
    /// Proposals sampled per image for the loss.
    pub batch_size_per_image: i64,
    /// Share of positives among them at most.
    pub positive_fraction: f64,
    /// Offsets' weights.
    pub bbox_reg_weights: [f64; 4],
    /// Detections scoring at most this are dropped.
    pub score_thresh: f64,
    /// NMS IoU threshold, per class.
    pub nms_thresh: f64,
    /// Detections kept per image.
    pub detections_per_img: i64,
}

impl Default for RoiHeadsConfig {
    fn default() -> Self {
        RoiHeadsConfig {
            fg_iou_thresh: 0.5,
            bg_iou_thresh: 0.5,
            batch_size_per_image: 512,
            positive_fraction: 0.25,
            bbox_reg_weights: [10.0, 10.0, 5.0, 5.0],
            score_thresh: 0.05,
            nms_thresh: 0.5,
            detections_per_img: 100,
        }
    }
}

/// The box branch of torchvision's `RoIHeads` (`roi_heads.box_head.*`,
/// `roi_heads.box_predictor.*`).
#[derive(Debug)]
pub struct RoiHeads {
    /// Pooling of each proposal from the pyramid.
    pub box_roi_pool: MultiScaleRoiAlign,
    /// Pooled features to a vector.
    pub box_head: BoxHead,
    /// Vector to class logits and offsets.
    pub box_predictor: FastRcnnPredictor,
    /// Settings.
    pub config: RoiHeadsConfig,
}

/// The RoI heads' two losses.
#[derive(Debug)]
pub struct RoiLosses {
    /// Cross-entropy over the sampled proposals.
    pub classifier: Tensor,
    /// Smooth L1 of the positives' offsets for their class over the number sampled.
    pub box_reg: Tensor,
}

impl RoiHeads {
    /// Detections per image (evaluation, no `targets`) or the two losses (training) for
    /// `proposals` on `features` (the levels to pool from, finest first).
    pub fn forward(
        &self,
        features: &[Tensor],
        proposals: &[Tensor],
        image_sizes: &[(i64, i64)],
        targets: Option<&[Target]>,
        train: bool,
    ) -> Result<(Vec<Detections>, Option<RoiLosses>)> {
        let coder = BoxCoder::new(self.config.bbox_reg_weights);
        match targets {
            Some(targets) => {
                let (proposals, labels, regression) =
                    self.select_training_samples(proposals, targets, &coder)?;
                let pooled = self
                    .box_roi_pool
                    .forward(features, &proposals, image_sizes)?;
                let (logits, offsets) = self
                    .box_predictor
                    .forward(&self.box_head.forward_t(&pooled, train));
                Ok((
                    Vec::new(),
                    Some(fastrcnn_loss(&logits, &offsets, &labels, &regression)),
                ))
            }
            None => {
                let pooled = self
                    .box_roi_pool
                    .forward(features, proposals, image_sizes)?;
                let (logits, offsets) = self
                    .box_predictor
                    .forward(&self.box_head.forward_t(&pooled, train));
                Ok((
                    self.postprocess(&logits, &offsets, proposals, image_sizes, &coder)?,
                    None,
                ))
            }
        }
    }

    /// The sampled proposals of each image (ground truth appended first), their labels (0 for
    /// the background) and regression targets, concatenated over images.
    fn select_training_samples(
        &self,
        proposals: &[Tensor],
        targets: &[Target],
        coder: &BoxCoder,
    ) -> Result<(Vec<Tensor>, Tensor, Tensor)> {
        let matcher = Matcher::new(self.config.fg_iou_thresh, self.config.bg_iou_thresh, false)?;
        let mut all = Vec::with_capacity(proposals.len());
        let mut labels = Vec::with_capacity(proposals.len());
        let mut matched = Vec::with_capacity(proposals.len());
        for (p, t) in proposals.iter().zip(targets) {
            let gt = t.boxes.to_kind(p.kind());
            let p = Tensor::cat(&[p, &gt], 0);
            let n = p.size()[0];
            let (idx, lab) = if gt.size()[0] == 0 {
                let z = Tensor::zeros([n], (Kind::Int64, p.device()));
                (z.shallow_clone(), z)
            } else {
                let m = matcher.apply(&box_iou(&gt, &p)?)?;
                let clamped = m.clamp_min(0);
                let lab = t
                    .labels
                    .to_kind(Kind::Int64)
                    .index_select(0, &clamped)
                    .masked_fill(&m.eq(BELOW_LOW_THRESHOLD), 0)
                    .masked_fill(&m.eq(BETWEEN_THRESHOLDS), -1);
                (clamped, lab)
            };
            all.push(p);
            labels.push(lab);
            matched.push(idx);
        }
        let sampler = BalancedPositiveNegativeSampler {
            batch_size_per_image: self.config.batch_size_per_image,
            positive_fraction: self.config.positive_fraction,
        };
        let samples = sampler.sample(&labels)?;
        let mut out_props = Vec::with_capacity(all.len());
        let mut out_labels = Vec::with_capacity(all.len());
        let mut out_targets = Vec::with_capacity(all.len());
        for (i, (pos, neg)) in samples.iter().enumerate() {
            let keep = pos.logical_or(neg).nonzero().squeeze_dim(1);
            let props = all[i].index_select(0, &keep);
            let gt = targets[i].boxes.to_kind(props.kind());
            let gt = if gt.size()[0] == 0 {
                Tensor::zeros([1, 4], (props.kind(), props.device()))
            } else {
                gt
            };
            let matched_boxes = gt.index_select(0, &matched[i].index_select(0, &keep));
            out_targets.push(coder.encode(&matched_boxes, &props)?);
            out_labels.push(labels[i].index_select(0, &keep));
            out_props.push(props);
        }
        Ok((
            out_props,
            Tensor::cat(&out_labels, 0),
            Tensor::cat(&out_targets, 0),
        ))
    }

    fn postprocess(
        &self,
        logits: &Tensor,
        offsets: &Tensor,
        proposals: &[Tensor],
        image_sizes: &[(i64, i64)],
        coder: &BoxCoder,
    ) -> Result<Vec<Detections>> {
        let num_classes = logits.size()[1];
        let boxes = coder
            .decode(offsets, &Tensor::cat(proposals, 0))?
            .view([-1, num_classes, 4]);
        let scores = logits.softmax(-1, logits.kind());
        let mut out = Vec::with_capacity(proposals.len());
        let mut start = 0;
        for (p, &size) in proposals.iter().zip(image_sizes) {
            let n = p.size()[0];
            let b = clip_boxes_to_image(&boxes.narrow(0, start, n).reshape([-1, 4]), size)?.view([
                n,
                num_classes,
                4,
            ]);
            let s = scores.narrow(0, start, n);
            start += n;
            let device = s.device();
            let classes = Tensor::arange(num_classes, (Kind::Int64, device))
                .view([1, -1])
                .expand([n, num_classes], false);
            // Column 0 is the background.
            let b = b.narrow(1, 1, num_classes - 1).reshape([-1, 4]);
            let s = s.narrow(1, 1, num_classes - 1).reshape([-1]);
            let c = classes.narrow(1, 1, num_classes - 1).reshape([-1]);
            let keep = s.gt(self.config.score_thresh).nonzero().squeeze_dim(1);
            let (b, s, c) = (
                b.index_select(0, &keep),
                s.index_select(0, &keep),
                c.index_select(0, &keep),
            );
            let keep = remove_small_boxes(&b, 1e-2)?;
            let (b, s, c) = (
                b.index_select(0, &keep),
                s.index_select(0, &keep),
                c.index_select(0, &keep),
            );
            let keep = batched_nms(&b, &s, &c, self.config.nms_thresh)?;
            let keep = keep.narrow(0, 0, keep.size()[0].min(self.config.detections_per_img));
            out.push(Detections {
                boxes: b.index_select(0, &keep),
                scores: s.index_select(0, &keep),
                labels: c.index_select(0, &keep),
            });
        }
        Ok(out)
    }
}

/// torchvision's `fastrcnn_loss`: cross-entropy over every sampled proposal, and smooth L1
/// (β = 1/9, summed) of the positives' offsets for their own class, over the number sampled.
fn fastrcnn_loss(
    logits: &Tensor,
    offsets: &Tensor,
    labels: &Tensor,
    regression: &Tensor,
) -> RoiLosses {
    let classifier = logits.cross_entropy_loss::<Tensor>(labels, None, Reduction::Mean, -100, 0.0);
    let pos = labels.gt(0).nonzero().squeeze_dim(1);
    let labels_pos = labels.index_select(0, &pos);
    let n = logits.size()[0];
    let offsets = offsets.reshape([n, -1, 4]);
    let chosen = offsets.index(&[Some(&pos), Some(&labels_pos)]);
    let box_reg =
        chosen.smooth_l1_loss(&regression.index_select(0, &pos), Reduction::Sum, 1.0 / 9.0)
            / labels.size()[0] as f64;
    RoiLosses {
        classifier,
        box_reg,
    }
}
