//! Task-aligned assignment (TOOD, Feng et al. 2021) as YOLOv8 trains with it: which anchors learn
//! which ground-truth box, and with what soft class target.
//!
//! For every ground truth g and anchor a whose centre lies inside g, the alignment metric is
//! `t = s^α · u^β`, where s is the predicted probability of g's class at a and u the CIoU (clamped
//! at 0) of a's predicted box with g. Each g takes its top-k anchors by t as positives; an anchor
//! claimed by several g keeps the one it overlaps most. The class target of a positive anchor is
//! one-hot on its g's class, scaled by `t / max_a(t) · max_a(u)` over g's positives, so the best
//! aligned anchor of each g aims at that g's best IoU and the others at proportionally less.
//!
//! Which anchors lie inside g is decided on g with each side raised to at least `min_side` pixels
//! about its centre (the middle stride, 16), so a tiny box still gets candidates at the coarser
//! levels: Ultralytics' assigner does this since 8.4, which the test suite runs as its reference.

use tch::{Kind, Tensor};

use crate::yolo::boxes::ciou;

/// The assigner's settings (YOLOv8: top-k 10, α 0.5, β 6.0; YOLO26's one-to-one branch: top-k 7,
/// then the single best).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TaskAlignedAssigner {
    /// Candidates per ground truth.
    pub topk: i64,
    /// Positives kept per ground truth after conflicts are resolved, by alignment (YOLO26's
    /// one-to-one branch keeps 1; equal to `topk`, nothing more is dropped).
    pub topk2: i64,
    /// Classes.
    pub num_classes: i64,
    /// Exponent of the class score.
    pub alpha: f64,
    /// Exponent of the IoU.
    pub beta: f64,
    /// Ground-truth sides shorter than this count as this long when choosing candidate anchors.
    pub min_side: f64,
}

/// What the assigner decides, per image and anchor.
#[derive(Debug)]
pub struct Assignment {
    /// Target boxes `(b, anchors, 4)`, corners in the ground truth's units.
    pub boxes: Tensor,
    /// Soft class targets `(b, anchors, classes)`; zero for negatives.
    pub scores: Tensor,
    /// Positive anchors `(b, anchors)`, boolean.
    pub foreground: Tensor,
    /// Index of each anchor's ground truth within its image `(b, anchors)`.
    pub gt_index: Tensor,
}

impl TaskAlignedAssigner {
    /// YOLOv8's settings for `num_classes` classes.
    pub fn yolov8(num_classes: i64) -> Self {
        TaskAlignedAssigner {
            topk: 10,
            topk2: 10,
            num_classes,
            alpha: 0.5,
            beta: 6.0,
            min_side: crate::yolo::head::STRIDES[1] as f64,
        }
    }

    /// Assigns targets. `scores` `(b, a, c)` are probabilities, `pred_boxes` `(b, a, 4)` corners,
    /// `anchors` `(a, 2)` points, all in the same units as `gt_boxes` `(b, n, 4)`; `gt_labels`
    /// `(b, n, 1)` class indices; `gt_mask` `(b, n, 1)` marks real (not padding) ground truths.
    /// Runs without gradient.
    pub fn assign(
        &self,
        scores: &Tensor,
        pred_boxes: &Tensor,
        anchors: &Tensor,
        gt_labels: &Tensor,
        gt_boxes: &Tensor,
        gt_mask: &Tensor,
    ) -> Assignment {
        let _no_grad = tch::no_grad_guard();
        let (b, a) = (scores.size()[0], scores.size()[1]);
        let n = gt_boxes.size()[1];
        let dev = scores.device();
        if n == 0 {
            return Assignment {
                boxes: Tensor::zeros([b, a, 4], (pred_boxes.kind(), dev)),
                scores: Tensor::zeros([b, a, self.num_classes], (scores.kind(), dev)),
                foreground: Tensor::zeros([b, a], (Kind::Bool, dev)),
                gt_index: Tensor::zeros([b, a], (Kind::Int64, dev)),
            };
        }
        let gt_valid = gt_mask.to_kind(Kind::Bool); // (b, n, 1)
        let in_gts = anchors_in_boxes(anchors, &with_min_side(gt_boxes, self.min_side)); // (b, n, a)
        let candidates = in_gts.logical_and(&gt_valid);

        // Alignment metric over candidates.
        let labels = gt_labels.to_kind(Kind::Int64).squeeze_dim(-1).clamp_min(0); // (b, n)
                                                                                  // scores (b, a, c) → score of each gt's class at each anchor: (b, n, a).
        let class_scores =
            scores
                .transpose(1, 2)
                .gather(1, &labels.unsqueeze(-1).expand([b, n, a], false), false);
        let ious = ciou(&gt_boxes.unsqueeze(2), &pred_boxes.unsqueeze(1))
            .squeeze_dim(-1)
            .clamp_min(0.0);
        let zero = Tensor::zeros([], (scores.kind(), dev));
        let overlaps = ious.where_self(&candidates, &zero);
        let class_scores = class_scores.where_self(&candidates, &zero);
        let metric =
            class_scores.pow_tensor_scalar(self.alpha) * overlaps.pow_tensor_scalar(self.beta);

        // Top-k anchors of each ground truth (padding rows pick none).
        let k = self.topk.min(a);
        let (_, top_idx) = metric.topk(k, -1, true, true);
        let in_topk = Tensor::zeros([b, n, a], (Kind::Float, dev))
            .scatter_add(-1, &top_idx, &Tensor::ones([b, n, k], (Kind::Float, dev)))
            .eq(1.0)
            .logical_and(&gt_valid);
        let mut positive = in_topk.logical_and(&candidates).to_kind(Kind::Float); // (b, n, a)

        // An anchor claimed by several ground truths keeps the one it overlaps most.
        let claims = positive.sum_dim_intlist(1, false, Kind::Float); // (b, a)
        if claims.max().double_value(&[]) > 1.0 {
            let multi = claims.unsqueeze(1).gt(1.0).expand([b, n, a], false);
            let best = overlaps.argmax(1, true); // (b, 1, a)
            let is_best = Tensor::zeros([b, n, a], (Kind::Float, dev)).scatter_value(1, &best, 1.0);
            positive = is_best.where_self(&multi, &positive);
        }
        if self.topk2 < self.topk {
            let (_, best) = (&metric * &positive).topk(self.topk2.min(a), -1, true, true);
            let keep = Tensor::zeros([b, n, a], (Kind::Float, dev)).scatter_value(-1, &best, 1.0);
            positive *= keep;
        }
        let foreground = positive.sum_dim_intlist(1, false, Kind::Float).gt(0.0); // (b, a)
        let gt_index = positive.argmax(1, false); // (b, a)

        // Targets of each anchor from its ground truth.
        let flat_index = &gt_index + Tensor::arange(b, (Kind::Int64, dev)).unsqueeze(-1) * n;
        let target_labels = labels
            .flatten(0, -1)
            .index_select(0, &flat_index.flatten(0, -1))
            .view([b, a]);
        let boxes = gt_boxes
            .reshape([-1, 4])
            .index_select(0, &flat_index.flatten(0, -1))
            .view([b, a, 4]);
        let one_hot = target_labels
            .one_hot(self.num_classes)
            .to_kind(scores.kind())
            * foreground.unsqueeze(-1).to_kind(scores.kind());

        // Normalise: each gt's best metric maps to its best IoU.
        let metric = metric * &positive;
        let max_metric = metric.amax([-1], true); // (b, n, 1)
        let max_iou = (&overlaps * &positive).amax([-1], true);
        let norm = (metric * max_iou / (max_metric + 1e-9))
            .amax([-2], false)
            .unsqueeze(-1); // (b, a, 1)
        Assignment {
            boxes,
            scores: one_hot * norm,
            foreground,
            gt_index,
        }
    }
}

/// Corner boxes `(…, 4)` with each side at least `min` long about the same centre (through centre
/// and size, as Ultralytics computes it, so unchanged boxes round alike).
pub fn with_min_side(boxes: &Tensor, min: f64) -> Tensor {
    let centre = (boxes.narrow(-1, 0, 2) + boxes.narrow(-1, 2, 2)) / 2.0;
    let size = boxes.narrow(-1, 2, 2) - boxes.narrow(-1, 0, 2);
    let half = size.clamp_min(min) / 2.0;
    Tensor::cat(&[&centre - &half, &centre + &half], -1)
}

/// Whether each anchor point lies strictly inside each box: `(b, n, a)` from points `(a, 2)` and
/// corner boxes `(b, n, 4)`.
pub fn anchors_in_boxes(anchors: &Tensor, boxes: &Tensor) -> Tensor {
    let (b, n) = (boxes.size()[0], boxes.size()[1]);
    let a = anchors.size()[0];
    let lt = boxes.narrow(-1, 0, 2).view([b * n, 1, 2]);
    let rb = boxes.narrow(-1, 2, 2).view([b * n, 1, 2]);
    let p = anchors.unsqueeze(0);
    let deltas = Tensor::cat(&[&p - lt, rb - &p], -1); // (b·n, a, 4)
    deltas.amin([-1], false).gt(1e-9).view([b, n, a])
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn f(v: &[f32], shape: &[i64]) -> Tensor {
        Tensor::from_slice(v).view(shape)
    }

    /// Four anchors in a row at x = 0.5 … 3.5, y = 0.5; one ground truth covering the first three.
    #[test]
    fn hand_made_single_box() {
        let anchors = f(&[0.5, 0.5, 1.5, 0.5, 2.5, 0.5, 3.5, 0.5], &[4, 2]);
        let gt = f(&[0.0, 0.0, 3.0, 1.0], &[1, 1, 4]);
        let labels = f(&[1.0], &[1, 1, 1]);
        let mask = f(&[1.0], &[1, 1, 1]);
        // Every anchor predicts the gt box exactly; class-1 probabilities 0.9, 0.4, 0.1, 0.9.
        let pred = gt.view([1, 1, 4]).expand([1, 4, 4], false).contiguous();
        let scores = f(&[0.1, 0.9, 0.6, 0.4, 0.9, 0.1, 0.1, 0.9], &[1, 4, 2]);
        let asg = TaskAlignedAssigner {
            topk: 2,
            min_side: 0.0,
            ..TaskAlignedAssigner::yolov8(2)
        }
        .assign(&scores, &pred, &anchors, &labels, &gt, &mask);
        // Anchor 3 is outside the box; the top 2 of {0.9^.5, 0.4^.5, 0.1^.5} are anchors 0 and 1.
        let fg: Vec<bool> = Vec::<bool>::try_from(asg.foreground.view([-1])).expect("bools");
        assert_eq!(fg, vec![true, true, false, false]);
        // IoU 1 everywhere: anchor 0 targets 1.0, anchor 1 targets sqrt(0.4)/sqrt(0.9).
        let s = Vec::<f32>::try_from(asg.scores.view([-1])).expect("floats");
        let want = (0.4f32 / 0.9).sqrt();
        assert!(
            (s[1] - 1.0).abs() < 1e-5 && (s[3] - want).abs() < 1e-5,
            "{s:?}"
        );
        assert_eq!(s[0] + s[2] + s[4] + s[5] + s[6] + s[7], 0.0);
        let bx = Vec::<f32>::try_from(asg.boxes.get(0).get(1)).expect("floats");
        assert_eq!(bx, vec![0.0, 0.0, 3.0, 1.0]);
    }

    /// Two overlapping ground truths both claim the middle anchor; it goes to the one its
    /// predicted box overlaps more. A padding row (mask 0) claims nothing.
    #[test]
    fn contested_anchor_goes_to_higher_iou() {
        let anchors = f(&[0.5, 0.5, 1.5, 0.5, 2.5, 0.5], &[3, 2]);
        let gt = f(
            &[0.0, 0.0, 2.0, 1.0, 1.0, 0.0, 3.0, 1.0, 0.0, 0.0, 3.0, 1.0],
            &[1, 3, 4],
        );
        let labels = f(&[0.0, 1.0, 0.0], &[1, 3, 1]);
        let mask = f(&[1.0, 1.0, 0.0], &[1, 3, 1]);
        // The middle anchor predicts (1, 0)-(3, 1): exactly the second gt.
        let pred = f(
            &[0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 3.0, 1.0, 2.0, 0.0, 3.0, 1.0],
            &[1, 3, 4],
        );
        let scores = Tensor::full([1, 3, 2], 0.5, (Kind::Float, Device::Cpu));
        let asg = TaskAlignedAssigner {
            min_side: 0.0,
            ..TaskAlignedAssigner::yolov8(2)
        }
        .assign(&scores, &pred, &anchors, &labels, &gt, &mask);
        let idx = Vec::<i64>::try_from(asg.gt_index.view([-1])).expect("ints");
        let fg = Vec::<bool>::try_from(asg.foreground.view([-1])).expect("bools");
        assert_eq!(fg, vec![true, true, true]);
        assert_eq!(idx, vec![0, 1, 1]);
    }

    #[test]
    fn no_ground_truth_means_all_background() {
        let anchors = f(&[0.5, 0.5], &[1, 2]);
        let empty = Tensor::zeros([2, 0, 4], (Kind::Float, Device::Cpu));
        let asg = TaskAlignedAssigner {
            min_side: 0.0,
            ..TaskAlignedAssigner::yolov8(3)
        }
        .assign(
            &Tensor::full([2, 1, 3], 0.5, (Kind::Float, Device::Cpu)),
            &Tensor::zeros([2, 1, 4], (Kind::Float, Device::Cpu)),
            &anchors,
            &Tensor::zeros([2, 0, 1], (Kind::Float, Device::Cpu)),
            &empty,
            &Tensor::zeros([2, 0, 1], (Kind::Float, Device::Cpu)),
        );
        assert_eq!(asg.scores.sum(Kind::Float).double_value(&[]), 0.0);
        assert_eq!(asg.foreground.sum(Kind::Int64).int64_value(&[]), 0);
    }
}
