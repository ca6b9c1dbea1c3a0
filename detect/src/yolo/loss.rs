//! YOLOv8's training loss, from its published definition:
//!
//! - targets come from the [task-aligned assigner](crate::yolo::assigner) run on the detached
//!   predictions (class probabilities, boxes in pixels, anchor centres in pixels);
//! - class loss: binary cross-entropy of every class logit at every anchor against the soft
//!   targets, summed and divided by the sum of the targets (at least 1);
//! - box loss: `1 − CIoU` of each positive anchor's predicted box with its target, weighted by the
//!   anchor's target score, with the same normaliser;
//! - DFL (distribution focal loss, Li et al. 2020): each side's target distance d (in grid cells,
//!   clamped to [0, 14.99]) is the two-bin mixture of ⌊d⌋ and ⌊d⌋+1 with weights by proximity;
//!   cross-entropy of the 16-bin logits to both, mean over the four sides, weighted as the box
//!   loss;
//! - gains box 7.5, cls 0.5, dfl 1.5; the total is the sum times the batch size (Ultralytics'
//!   scaling, which its learning rates assume).

use tch::{Kind, Reduction, Tensor};

use crate::yolo::assigner::TaskAlignedAssigner;
use crate::yolo::boxes::{ciou, xywh_to_xyxy};
use crate::yolo::head::{dist_to_box, expected_distance, make_anchors, REG_MAX, STRIDES};

/// Loss gains.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossGains {
    /// Box (CIoU) gain.
    pub box_gain: f64,
    /// Classification gain.
    pub cls: f64,
    /// Distribution focal loss gain.
    pub dfl: f64,
}

impl Default for LossGains {
    fn default() -> Self {
        LossGains {
            box_gain: 7.5,
            cls: 0.5,
            dfl: 1.5,
        }
    }
}

/// The loss of one batch.
#[derive(Debug)]
pub struct LossOutput {
    /// What to back-propagate: `(box + cls + dfl) · batch size`.
    pub total: Tensor,
    /// The three gained components (box, cls, dfl), without gradient.
    pub parts: [f64; 3],
}

/// YOLOv8's detection loss for `num_classes` classes.
#[derive(Debug, Clone, Copy)]
pub struct DetectionLoss {
    /// Classes.
    pub num_classes: i64,
    /// Gains.
    pub gains: LossGains,
    /// Target assignment.
    pub assigner: TaskAlignedAssigner,
}

impl DetectionLoss {
    /// The loss with Ultralytics' defaults.
    pub fn new(num_classes: i64) -> Self {
        DetectionLoss {
            num_classes,
            gains: LossGains::default(),
            assigner: TaskAlignedAssigner::yolov8(num_classes),
        }
    }

    /// Loss of the raw head outputs `raw` (per level `(b, 64 + c, h, w)`) against `targets`
    /// `(n, 6)` rows `(image index, class, cx, cy, w, h)` normalised to the input size.
    pub fn compute(&self, raw: &[Tensor], targets: &Tensor) -> LossOutput {
        let b = raw[0].size()[0];
        let dev = raw[0].device();
        let no = 4 * REG_MAX + self.num_classes;
        let flat: Vec<Tensor> = raw.iter().map(|t| t.view([b, no, -1])).collect();
        let parts = Tensor::cat(&flat, 2).split_with_sizes([4 * REG_MAX, self.num_classes], 1);
        let pred_dist = parts[0].permute([0, 2, 1]); // (b, a, 64)
        let pred_logits = parts[1].permute([0, 2, 1]); // (b, a, c)
        let kind = pred_logits.kind();

        let sizes: Vec<(i64, i64)> = raw.iter().map(|t| (t.size()[2], t.size()[3])).collect();
        let (anchors, strides) = make_anchors(&sizes, dev);
        let input_h = (sizes[0].0 * STRIDES[0]) as f64;
        let input_w = (sizes[0].1 * STRIDES[0]) as f64;
        let (gt_labels, gt_boxes, gt_mask) = pad_targets(targets, b, input_w, input_h);
        let (gt_labels, gt_boxes, gt_mask) = (
            gt_labels.to_device(dev),
            gt_boxes.to_device(dev),
            gt_mask.to_device(dev),
        );

        // Boxes in grid cells of their level.
        let pred_boxes = dist_to_box(&expected_distance(&pred_dist), &anchors, false, -1);
        let asg = self.assigner.assign(
            &pred_logits.detach().sigmoid(),
            &(pred_boxes.detach() * &strides).to_kind(gt_boxes.kind()),
            &(&anchors * &strides),
            &gt_labels,
            &gt_boxes,
            &gt_mask,
        );
        let score_sum = asg.scores.sum(Kind::Float).clamp_min(1.0);
        let cls = pred_logits.binary_cross_entropy_with_logits::<Tensor>(
            &asg.scores.to_kind(kind),
            None,
            None,
            Reduction::Sum,
        ) / &score_sum;

        let fg = &asg.foreground;
        let (box_loss, dfl) = if fg.sum(Kind::Int64).int64_value(&[]) > 0 {
            let target_boxes = asg.boxes / &strides;
            let weight = asg
                .scores
                .sum_dim_intlist(-1, false, Kind::Float)
                .masked_select(fg)
                .unsqueeze(-1);
            let sel4 = |t: &Tensor| t.masked_select(&fg.unsqueeze(-1)).view([-1, 4]);
            let iou = ciou(&sel4(&pred_boxes), &sel4(&target_boxes));
            let box_loss = (iou.neg() + 1.0).multiply(&weight).sum(Kind::Float) / &score_sum;
            let target_ltrb = box_to_dist(&anchors, &target_boxes, (REG_MAX - 1) as f64 - 0.01);
            let dist = pred_dist
                .masked_select(&fg.unsqueeze(-1))
                .view([-1, REG_MAX]);
            let dfl = (df_loss(&dist, &sel4(&target_ltrb)) * &weight).sum(Kind::Float) / &score_sum;
            (box_loss, dfl)
        } else {
            let zero = Tensor::zeros([], (Kind::Float, dev));
            (zero.shallow_clone(), zero)
        };
        let g = self.gains;
        let terms = [box_loss * g.box_gain, cls * g.cls, dfl * g.dfl];
        let parts = [
            terms[0].double_value(&[]),
            terms[1].double_value(&[]),
            terms[2].double_value(&[]),
        ];
        let total = (&terms[0] + &terms[1] + &terms[2]) * b as f64;
        LossOutput { total, parts }
    }
}

/// Distances (left, top, right, bottom) from anchor points to corner boxes, clamped to
/// `[0, max]`.
pub fn box_to_dist(anchors: &Tensor, boxes: &Tensor, max: f64) -> Tensor {
    let lt = anchors - boxes.narrow(-1, 0, 2);
    let rb = boxes.narrow(-1, 2, 2) - anchors;
    Tensor::cat(&[lt, rb], -1).clamp(0.0, max)
}

/// Distribution focal loss of bin logits `(m·4, 16)` against distances `(m, 4)`: `(m, 1)`.
pub fn df_loss(logits: &Tensor, target: &Tensor) -> Tensor {
    let left = target.to_kind(Kind::Int64);
    let right = &left + 1;
    let w_left = right.to_kind(target.kind()) - target;
    let w_right: Tensor = w_left.neg() + 1.0;
    let ce = |t: &Tensor| -> Tensor {
        logits
            .cross_entropy_loss::<Tensor>(&t.view([-1]), None, Reduction::None, -100, 0.0)
            .view_as(t)
    };
    let mixed: Tensor = ce(&left) * w_left + ce(&right) * w_right;
    mixed.mean_dim(-1, true, Kind::Float)
}

/// Targets `(n, 6)` normalised → per-image padded `(labels (b, m, 1), boxes (b, m, 4) corners in
/// pixels, mask (b, m, 1))`, `m` the most boxes in one image.
pub fn pad_targets(targets: &Tensor, batch: i64, w: f64, h: f64) -> (Tensor, Tensor, Tensor) {
    let rows = targets.to_device(tch::Device::Cpu).to_kind(Kind::Float);
    let n = rows.size()[0];
    let data = Vec::<f32>::try_from(rows.view([-1])).unwrap_or_default();
    let mut per_image: Vec<Vec<[f32; 5]>> = vec![Vec::new(); batch as usize];
    for r in data.chunks_exact(6).take(n as usize) {
        let i = r[0] as usize;
        if i < per_image.len() {
            per_image[i].push([r[1], r[2], r[3], r[4], r[5]]);
        }
    }
    let m = per_image.iter().map(Vec::len).max().unwrap_or(0) as i64;
    let mut labels = vec![0f32; (batch * m) as usize];
    let mut boxes = vec![0f32; (batch * m * 4) as usize];
    let mut mask = vec![0f32; (batch * m) as usize];
    for (i, rows) in per_image.iter().enumerate() {
        for (j, r) in rows.iter().enumerate() {
            let k = i * m as usize + j;
            labels[k] = r[0];
            mask[k] = 1.0;
            boxes[4 * k..4 * k + 4].copy_from_slice(&[
                r[1] * w as f32,
                r[2] * h as f32,
                r[3] * w as f32,
                r[4] * h as f32,
            ]);
        }
    }
    let boxes = xywh_to_xyxy(&Tensor::from_slice(&boxes).view([batch, m, 4]));
    (
        Tensor::from_slice(&labels).view([batch, m, 1]),
        boxes,
        Tensor::from_slice(&mask).view([batch, m, 1]),
    )
}
