//! torchvision's region proposal network: `RPNHead` (a shared 3×3 convolution, then per anchor an
//! objectness logit and four box offsets) and `RegionProposalNetwork` (decode every anchor, keep
//! the best `pre_nms_top_n` per level, clip, drop tiny boxes, NMS per level, keep
//! `post_nms_top_n`; in training, match anchors to the ground truth and sample them for the two
//! losses).

use anyhow::{bail, Result};
use tch::nn::{self, Module, Path};
use tch::{Kind, Reduction, Tensor};

use ferrovis_core::nn::{conv2d, Conv2dSpec};
use ferrovis_core::ops::anchors::AnchorGenerator;
use ferrovis_core::ops::box_coder::BoxCoder;
use ferrovis_core::ops::detection::{
    batched_nms, box_iou, clip_boxes_to_image, remove_small_boxes,
};
use ferrovis_core::ops::matcher::{Matcher, BELOW_LOW_THRESHOLD, BETWEEN_THRESHOLDS};
use ferrovis_core::ops::sampler::BalancedPositiveNegativeSampler;

use super::targets::Target;
use super::transform::ImageList;

/// torchvision's `RPNHead`: `conv.i.0` (3×3 with bias, ReLU) `conv_depth` times, then
/// `cls_logits` (A channels) and `bbox_pred` (4A), all N(0, 0.01) with zero bias.
#[derive(Debug)]
pub struct RpnHead {
    conv: Vec<nn::Conv2D>,
    cls_logits: nn::Conv2D,
    bbox_pred: nn::Conv2D,
}

impl RpnHead {
    /// The head under `p` for `num_anchors` anchors per location.
    pub fn new(p: &Path, in_channels: i64, num_anchors: i64, conv_depth: usize) -> Self {
        let init = |c: nn::Conv2D| {
            let mut c = c;
            tch::no_grad(|| {
                let _ = c.ws.normal_(0.0, 0.01);
                if let Some(b) = c.bs.as_mut() {
                    let _ = b.zero_();
                }
            });
            c
        };
        let conv = (0..conv_depth)
            .map(|i| {
                init(conv2d(
                    &(p / "conv" / i.to_string() / "0"),
                    in_channels,
                    in_channels,
                    Conv2dSpec::new(3).bias(true),
                ))
            })
            .collect();
        let one = Conv2dSpec::new(1).bias(true);
        RpnHead {
            conv,
            cls_logits: init(conv2d(&(p / "cls_logits"), in_channels, num_anchors, one)),
            bbox_pred: init(conv2d(
                &(p / "bbox_pred"),
                in_channels,
                4 * num_anchors,
                one,
            )),
        }
    }

    /// Per level, the objectness logits `(N, A, H, W)` and offsets `(N, 4A, H, W)`.
    pub fn forward(&self, features: &[Tensor]) -> (Vec<Tensor>, Vec<Tensor>) {
        features
            .iter()
            .map(|f| {
                let t = self
                    .conv
                    .iter()
                    .fold(f.shallow_clone(), |t, c| c.forward(&t).relu());
                (self.cls_logits.forward(&t), self.bbox_pred.forward(&t))
            })
            .unzip()
    }
}

/// The RPN's settings, torchvision's defaults in [`RpnConfig::default`].
#[derive(Debug, Clone, PartialEq)]
pub struct RpnConfig {
    /// Proposals kept per level before NMS, in training.
    pub pre_nms_top_n_train: i64,
    /// … in evaluation.
    pub pre_nms_top_n_test: i64,
    /// Proposals kept per image after NMS, in training.
    pub post_nms_top_n_train: i64,
    /// … in evaluation.
    pub post_nms_top_n_test: i64,
    /// NMS IoU threshold (per level).
    pub nms_thresh: f64,
    /// Anchors with IoU ≥ this are positive.
    pub fg_iou_thresh: f64,
    /// Anchors with IoU < this are negative.
    pub bg_iou_thresh: f64,
    /// Anchors sampled per image for the loss.
    pub batch_size_per_image: i64,
    /// Share of positives among them at most.
    pub positive_fraction: f64,
    /// Proposals with a lower objectness probability are dropped.
    pub score_thresh: f64,
}

impl Default for RpnConfig {
    fn default() -> Self {
        RpnConfig {
            pre_nms_top_n_train: 2000,
            pre_nms_top_n_test: 1000,
            post_nms_top_n_train: 2000,
            post_nms_top_n_test: 1000,
            nms_thresh: 0.7,
            fg_iou_thresh: 0.7,
            bg_iou_thresh: 0.3,
            batch_size_per_image: 256,
            positive_fraction: 0.5,
            score_thresh: 0.0,
        }
    }
}

/// Boxes smaller than this (either side) are no proposal.
const MIN_SIZE: f64 = 1e-3;

/// The RPN's two losses.
#[derive(Debug)]
pub struct RpnLosses {
    /// Binary cross-entropy of the sampled anchors' objectness.
    pub objectness: Tensor,
    /// Smooth L1 of the positive anchors' offsets over the number sampled.
    pub box_reg: Tensor,
}

/// torchvision's `RegionProposalNetwork` (`rpn.head.*` in a checkpoint).
#[derive(Debug)]
pub struct Rpn {
    /// The convolutional head.
    pub head: RpnHead,
    /// Anchors per level.
    pub anchor_generator: AnchorGenerator,
    /// Settings.
    pub config: RpnConfig,
    box_coder: BoxCoder,
}

impl Rpn {
    /// The RPN under `p` (its head at `p.head`) over `in_channels`-channel levels.
    pub fn new(
        p: &Path,
        in_channels: i64,
        anchor_generator: AnchorGenerator,
        conv_depth: usize,
        config: RpnConfig,
    ) -> Result<Self> {
        let per_location = anchor_generator.num_anchors_per_location();
        let a = per_location[0];
        if per_location.iter().any(|&n| n != a) {
            bail!("rpn: every level needs the same number of anchors per location, got {per_location:?}");
        }
        Ok(Rpn {
            head: RpnHead::new(&(p / "head"), in_channels, a, conv_depth),
            anchor_generator,
            config,
            box_coder: BoxCoder::new([1.0, 1.0, 1.0, 1.0]),
        })
    }

    /// Proposals per image (`(P_i, 4)`, in the resized images' coordinates, best first) and, in
    /// training (`targets` given), the two losses.
    pub fn forward(
        &self,
        images: &ImageList,
        features: &[Tensor],
        targets: Option<&[Target]>,
    ) -> Result<(Vec<Tensor>, Option<RpnLosses>)> {
        let train = targets.is_some();
        let (objectness, deltas) = self.head.forward(features);
        let n = images.tensors.size()[0];
        let grid: Vec<(i64, i64)> = features
            .iter()
            .map(|f| (f.size()[2], f.size()[3]))
            .collect();
        let padded = (images.tensors.size()[2], images.tensors.size()[3]);
        let first = &features[0];
        let anchors = self
            .anchor_generator
            .anchors(padded, &grid, first.kind(), first.device())?;
        let per_level: Vec<i64> = objectness
            .iter()
            .map(|o| o.size()[1] * o.size()[2] * o.size()[3])
            .collect();
        let (objectness, deltas) = flatten_levels(&objectness, &deltas);
        let all_anchors = anchors.repeat([n, 1]);
        let proposals = self
            .box_coder
            .decode(&deltas.detach(), &all_anchors)?
            .view([n, -1, 4]);
        let (boxes, _scores) = self.filter_proposals(
            &proposals,
            &objectness,
            &images.image_sizes,
            &per_level,
            train,
        )?;
        let losses = match targets {
            None => None,
            Some(targets) => {
                let mut labels = Vec::with_capacity(targets.len());
                let mut regression = Vec::with_capacity(targets.len());
                for t in targets {
                    let (l, matched) = self.assign_targets(&anchors, t)?;
                    regression.push(self.box_coder.encode(&matched, &anchors)?);
                    labels.push(l);
                }
                Some(self.loss(&objectness, &deltas, &labels, &regression)?)
            }
        };
        Ok((boxes, losses))
    }

    fn filter_proposals(
        &self,
        proposals: &Tensor,
        objectness: &Tensor,
        image_sizes: &[(i64, i64)],
        per_level: &[i64],
        train: bool,
    ) -> Result<(Vec<Tensor>, Vec<Tensor>)> {
        let n = proposals.size()[0];
        let objectness = objectness.detach().reshape([n, -1]);
        let device = objectness.device();
        let (pre_nms, post_nms) = if train {
            (
                self.config.pre_nms_top_n_train,
                self.config.post_nms_top_n_train,
            )
        } else {
            (
                self.config.pre_nms_top_n_test,
                self.config.post_nms_top_n_test,
            )
        };
        // The best `pre_nms` of each level, as indices into the concatenated levels.
        let mut top = Vec::with_capacity(per_level.len());
        let mut level_ids = Vec::with_capacity(per_level.len());
        let mut offset = 0;
        for (l, &count) in per_level.iter().enumerate() {
            let ob = objectness.narrow(1, offset, count);
            let k = pre_nms.min(count);
            let (_, idx) = ob.topk(k, 1, true, true);
            top.push(idx + offset);
            level_ids.push(Tensor::full([k], l as i64, (Kind::Int64, device)));
            offset += count;
        }
        let top = Tensor::cat(&top, 1);
        let levels = Tensor::cat(&level_ids, 0);
        let mut boxes_out = Vec::with_capacity(n as usize);
        let mut scores_out = Vec::with_capacity(n as usize);
        for i in 0..n {
            let idx = top.get(i);
            let boxes = proposals.get(i).index_select(0, &idx);
            let scores = objectness.get(i).index_select(0, &idx).sigmoid();
            let boxes = clip_boxes_to_image(&boxes, image_sizes[i as usize])?;
            let keep = remove_small_boxes(&boxes, MIN_SIZE)?;
            let (boxes, scores, lvl) = (
                boxes.index_select(0, &keep),
                scores.index_select(0, &keep),
                levels.index_select(0, &keep),
            );
            let keep = scores.ge(self.config.score_thresh).nonzero().squeeze_dim(1);
            let (boxes, scores, lvl) = (
                boxes.index_select(0, &keep),
                scores.index_select(0, &keep),
                lvl.index_select(0, &keep),
            );
            let keep = batched_nms(&boxes, &scores, &lvl, self.config.nms_thresh)?;
            let keep = keep.narrow(0, 0, keep.size()[0].min(post_nms));
            boxes_out.push(boxes.index_select(0, &keep));
            scores_out.push(scores.index_select(0, &keep));
        }
        Ok((boxes_out, scores_out))
    }

    /// Per anchor: label 1 (object), 0 (background) or −1 (ignored), and the matched box.
    fn assign_targets(&self, anchors: &Tensor, target: &Target) -> Result<(Tensor, Tensor)> {
        let n = anchors.size()[0];
        let gt = target.boxes.to_kind(anchors.kind());
        if gt.size()[0] == 0 {
            let opts = (Kind::Float, anchors.device());
            return Ok((Tensor::zeros([n], opts), Tensor::zeros([n, 4], opts)));
        }
        let matcher = Matcher::new(self.config.fg_iou_thresh, self.config.bg_iou_thresh, true)?;
        let matched = matcher.apply(&box_iou(&gt, anchors)?)?;
        let matched_boxes = gt.index_select(0, &matched.clamp_min(0));
        let labels = matched
            .ge(0)
            .to_kind(Kind::Float)
            .masked_fill(&matched.eq(BELOW_LOW_THRESHOLD), 0.0)
            .masked_fill(&matched.eq(BETWEEN_THRESHOLDS), -1.0);
        Ok((labels, matched_boxes))
    }

    fn loss(
        &self,
        objectness: &Tensor,
        deltas: &Tensor,
        labels: &[Tensor],
        regression: &[Tensor],
    ) -> Result<RpnLosses> {
        let sampler = BalancedPositiveNegativeSampler {
            batch_size_per_image: self.config.batch_size_per_image,
            positive_fraction: self.config.positive_fraction,
        };
        let samples = sampler.sample(labels)?;
        let pos: Vec<Tensor> = samples.iter().map(|(p, _)| p.shallow_clone()).collect();
        let neg: Vec<Tensor> = samples.iter().map(|(_, n)| n.shallow_clone()).collect();
        let pos = Tensor::cat(&pos, 0).nonzero().squeeze_dim(1);
        let neg = Tensor::cat(&neg, 0).nonzero().squeeze_dim(1);
        let sampled = Tensor::cat(&[&pos, &neg], 0);
        let labels = Tensor::cat(labels, 0);
        let regression = Tensor::cat(regression, 0);
        let box_reg = deltas.index_select(0, &pos).smooth_l1_loss(
            &regression.index_select(0, &pos),
            Reduction::Sum,
            1.0 / 9.0,
        ) / sampled.size()[0] as f64;
        let objectness = objectness
            .flatten(0, -1)
            .index_select(0, &sampled)
            .binary_cross_entropy_with_logits::<Tensor>(
                &labels.index_select(0, &sampled),
                None,
                None,
                Reduction::Mean,
            );
        Ok(RpnLosses {
            objectness,
            box_reg,
        })
    }
}

/// torchvision's `concat_box_prediction_layers`: levels of `(N, A·C, H, W)` to `(N·ΣHWA, C)`,
/// anchors fastest within a location, locations row-major, levels in order, images outermost.
fn flatten_levels(objectness: &[Tensor], deltas: &[Tensor]) -> (Tensor, Tensor) {
    let flat = |t: &Tensor, c: i64| {
        let s = t.size();
        let (n, h, w) = (s[0], s[2], s[3]);
        t.view([n, -1, c, h, w])
            .permute([0, 3, 4, 1, 2])
            .reshape([n, -1, c])
    };
    let cls: Vec<Tensor> = objectness.iter().map(|t| flat(t, 1)).collect();
    let reg: Vec<Tensor> = deltas.iter().map(|t| flat(t, 4)).collect();
    (
        Tensor::cat(&cls, 1).flatten(0, -2),
        Tensor::cat(&reg, 1).reshape([-1, 4]),
    )
}
