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

/// YOLOv8's detection loss for `num_classes` classes (YOLO11's too; with `reg_max` 1, each branch
/// of YOLO26's, whose third term is then an L1 distance instead of DFL).
#[derive(Debug, Clone, Copy)]
pub struct DetectionLoss {
    /// Classes.
    pub num_classes: i64,
    /// Bins per box side: 16 (DFL), or 1 (the distance itself, an L1 loss on it).
    pub reg_max: i64,
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
            reg_max: REG_MAX,
            gains: LossGains::default(),
            assigner: TaskAlignedAssigner::yolov8(num_classes),
        }
    }

    /// Loss of the raw head outputs `raw` (per level `(b, 64 + c, h, w)`) against `targets`
    /// `(n, 6)` rows `(image index, class, cx, cy, w, h)` normalised to the input size.
    pub fn compute(&self, raw: &[Tensor], targets: &Tensor) -> LossOutput {
        let b = raw[0].size()[0];
        let dev = raw[0].device();
        let reg_max = self.reg_max;
        let no = 4 * reg_max + self.num_classes;
        let flat: Vec<Tensor> = raw.iter().map(|t| t.view([b, no, -1])).collect();
        let parts = Tensor::cat(&flat, 2).split_with_sizes([4 * reg_max, self.num_classes], 1);
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
        let distances = if reg_max > 1 {
            expected_distance(&pred_dist)
        } else {
            pred_dist.shallow_clone()
        };
        let pred_boxes = dist_to_box(&distances, &anchors, false, -1);
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
            let third = if reg_max > 1 {
                let target_ltrb = box_to_dist(&anchors, &target_boxes, (reg_max - 1) as f64 - 0.01);
                let dist = pred_dist
                    .masked_select(&fg.unsqueeze(-1))
                    .view([-1, reg_max]);
                df_loss(&dist, &sel4(&target_ltrb))
            } else {
                // Sides in pixels as fractions of the input: left and right of its width, top
                // and bottom of its height.
                let scale = Tensor::from_slice(&[
                    1.0 / input_w,
                    1.0 / input_h,
                    1.0 / input_w,
                    1.0 / input_h,
                ])
                .to_kind(pred_dist.kind())
                .to_device(dev);
                let to_fraction = |t: &Tensor| t * &strides * &scale;
                let target_ltrb = to_fraction(&distance_from(&anchors, &target_boxes));
                let pred_ltrb = to_fraction(&pred_dist);
                (sel4(&pred_ltrb) - sel4(&target_ltrb))
                    .abs()
                    .mean_dim(-1, true, Kind::Float)
            };
            let third = (third * &weight).sum(Kind::Float) / &score_sum;
            (box_loss, third)
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
    distance_from(anchors, boxes).clamp(0.0, max)
}

/// Distances (left, top, right, bottom) from anchor points to corner boxes, unclamped.
pub fn distance_from(anchors: &Tensor, boxes: &Tensor) -> Tensor {
    let lt = anchors - boxes.narrow(-1, 0, 2);
    let rb = boxes.narrow(-1, 2, 2) - anchors;
    Tensor::cat(&[lt, rb], -1)
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

/// YOLO26's end-to-end loss: the [`DetectionLoss`] of the one-to-many branch (task-aligned top 10)
/// and of the one-to-one branch (top 7 candidates, then the single best per object), weighted
/// `o2m` and `1 − o2m`, `o2m` falling linearly from 0.8 at the first epoch to 0.1 at the last
/// ([`E2eLoss::one2many_weight`]). The parts reported are the one-to-one branch's (box, cls, l1).
#[derive(Debug, Clone, Copy)]
pub struct E2eLoss {
    /// The one-to-many branch's loss.
    pub one2many: DetectionLoss,
    /// The one-to-one branch's loss.
    pub one2one: DetectionLoss,
    /// The one-to-many branch's weight this epoch.
    pub o2m: f64,
}

impl E2eLoss {
    /// Ultralytics' settings for `num_classes` classes, at the first epoch.
    pub fn new(num_classes: i64) -> Self {
        let branch = DetectionLoss {
            reg_max: 1,
            ..DetectionLoss::new(num_classes)
        };
        let mut one2one = branch;
        one2one.assigner.topk = 7;
        one2one.assigner.topk2 = 1;
        E2eLoss {
            one2many: branch,
            one2one,
            o2m: Self::one2many_weight(0, 2),
        }
    }

    /// The one-to-many weight in epoch `epoch` (from 0) of `epochs`:
    /// `0.1 + 0.7 · max(1 − epoch / max(epochs − 1, 1), 0)`.
    pub fn one2many_weight(epoch: usize, epochs: usize) -> f64 {
        let span = epochs.saturating_sub(1).max(1) as f64;
        0.1 + 0.7 * (1.0 - epoch as f64 / span).max(0.0)
    }

    /// Gains of both branches.
    pub fn set_gains(&mut self, gains: LossGains) {
        self.one2many.gains = gains;
        self.one2one.gains = gains;
    }

    /// The weighted sum of both branches' losses (raw outputs of each), reporting the one-to-one
    /// parts.
    pub fn compute(&self, one2many: &[Tensor], one2one: &[Tensor], targets: &Tensor) -> LossOutput {
        let many = self.one2many.compute(one2many, targets);
        let one = self.one2one.compute(one2one, targets);
        LossOutput {
            total: many.total * self.o2m + one.total * (1.0 - self.o2m),
            parts: one.parts,
        }
    }
}

/// The loss a YOLO model trains with: [`DetectionLoss`] (YOLOv8, YOLO11) or [`E2eLoss`]
/// (YOLO26's two heads).
#[derive(Debug, Clone, Copy)]
pub enum YoloLoss {
    /// One head.
    Single(DetectionLoss),
    /// One-to-many and one-to-one heads.
    EndToEnd(E2eLoss),
}

impl YoloLoss {
    /// The loss of `model`, Ultralytics' defaults, `gains`.
    pub fn for_model(model: &crate::yolo::model::Yolo, gains: LossGains) -> Self {
        let nc = model.config().num_classes;
        if model.detect().is_end2end() {
            let mut e2e = E2eLoss::new(nc);
            e2e.set_gains(gains);
            YoloLoss::EndToEnd(e2e)
        } else {
            let mut single = DetectionLoss::new(nc);
            single.gains = gains;
            YoloLoss::Single(single)
        }
    }

    /// Names of the three parts in `results.csv` after `train/` or `val/`: box, cls, and dfl
    /// (or l1 without DFL), as Ultralytics names them.
    pub fn part_names(&self) -> [&'static str; 3] {
        match self {
            YoloLoss::Single(_) => ["box_loss", "cls_loss", "dfl_loss"],
            YoloLoss::EndToEnd(_) => ["box_loss", "cls_loss", "l1_loss"],
        }
    }

    /// Sets the branch weights of epoch `epoch` (from 0) of `epochs` (end-to-end only).
    pub fn set_epoch(&mut self, epoch: usize, epochs: usize) {
        if let YoloLoss::EndToEnd(e2e) = self {
            e2e.o2m = E2eLoss::one2many_weight(epoch, epochs);
        }
    }

    /// The loss of a model's raw outputs (see
    /// [`Yolo::forward_both`](crate::yolo::model::Yolo::forward_both)).
    pub fn compute(
        &self,
        one2many: &[Tensor],
        one2one: Option<&[Tensor]>,
        targets: &Tensor,
    ) -> LossOutput {
        match (self, one2one) {
            (YoloLoss::EndToEnd(e2e), Some(o2o)) => e2e.compute(one2many, o2o, targets),
            (YoloLoss::EndToEnd(e2e), None) => e2e.one2many.compute(one2many, targets),
            (YoloLoss::Single(single), _) => single.compute(one2many, targets),
        }
    }
}
