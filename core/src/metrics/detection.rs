//! Detection metrics, in two documented modes.
//!
//! **Ultralytics mode** ([`DetectionAccumulator`]) — the numbers Ultralytics' validator prints
//! (`Class Images Instances P R mAP50 mAP50-95`):
//! - a prediction is a true positive at IoU threshold t (t = 0.50, 0.55, …, 0.95) if it is matched
//!   to a ground-truth box of the same class with IoU ≥ t; candidate pairs are taken in order of
//!   decreasing IoU, each prediction keeps its best pair, then each ground truth keeps the pair of
//!   the earliest (highest-confidence) prediction;
//! - per class, predictions sorted by confidence give recall = TP/n_gt and precision = TP/(TP+FP);
//!   AP is the area under the monotone precision envelope (precision made non-increasing from the
//!   right, with end points recall 0 → precision 1 and recall 1 → precision 0), the envelope
//!   linearly interpolated at 101 recall points 0, 0.01, …, 1 and integrated with the trapezoid
//!   rule;
//! - P and R are read off the precision/recall-vs-confidence curves (1000 confidence points) at
//!   the confidence that maximises the mean F1 over classes (after a 0.1-fraction box smoothing);
//! - mAP50 and mAP50-95 average AP over classes that have ground truth.
//!
//! **COCO mode** ([`coco_evaluate`]) — pycocotools' `COCOeval` for boxes: greedy matching in score
//! order with crowd and area-range ignores, precision sampled (not interpolated) at 101 recall
//! thresholds, 100 detections per image, areas small < 32² ≤ medium < 96² ≤ large.

use serde::Serialize;

use crate::error::{Error, Result};

/// A box as `[x1, y1, x2, y2]`.
pub type BoxXyxy = [f32; 4];

/// One predicted box.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Detection {
    /// The box.
    pub bbox: BoxXyxy,
    /// Confidence.
    pub score: f32,
    /// Class index.
    pub class: usize,
}

/// One ground-truth box.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GroundTruth {
    /// The box.
    pub bbox: BoxXyxy,
    /// Class index.
    pub class: usize,
}

/// The ten IoU thresholds 0.50:0.05:0.95.
pub const IOU_THRESHOLDS: [f64; 10] = [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95];

fn area(b: &BoxXyxy) -> f32 {
    (b[2] - b[0]).max(0.0) * (b[3] - b[1]).max(0.0)
}

fn intersection(a: &BoxXyxy, b: &BoxXyxy) -> f32 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    w * h
}

/// IoU of two boxes (0 when the union is empty).
pub fn iou(a: &BoxXyxy, b: &BoxXyxy) -> f32 {
    let inter = intersection(a, b);
    let union = area(a) + area(b) - inter;
    if union > 0.0 {
        inter / union
    } else {
        0.0
    }
}

/// Row-major `|a| × |b|` IoU matrix.
pub fn box_iou(a: &[BoxXyxy], b: &[BoxXyxy]) -> Vec<f32> {
    a.iter()
        .flat_map(|x| b.iter().map(move |y| iou(x, y)))
        .collect()
}

/// Greedy non-maximum suppression: indices of kept boxes in decreasing score order. With
/// `classes`, boxes only suppress boxes of their own class (batched NMS); with `None`,
/// class-agnostic. A box is suppressed when its IoU with a kept box is above `iou_threshold`.
pub fn nms(
    boxes: &[BoxXyxy],
    scores: &[f32],
    classes: Option<&[usize]>,
    iou_threshold: f32,
) -> Vec<usize> {
    nms_max(boxes, scores, classes, iou_threshold, usize::MAX)
}

/// [`nms`] that stops once `max_keep` boxes are kept: the same first `max_keep` indices, without
/// comparing the remaining candidates (YOLO keeps at most 300 of up to 30 000).
pub fn nms_max(
    boxes: &[BoxXyxy],
    scores: &[f32],
    classes: Option<&[usize]>,
    iou_threshold: f32,
    max_keep: usize,
) -> Vec<usize> {
    let mut order: Vec<usize> = (0..boxes.len()).collect();
    order.sort_by(|&i, &j| scores[j].total_cmp(&scores[i]));
    let mut keep: Vec<usize> = Vec::new();
    for i in order {
        if keep.len() >= max_keep {
            break;
        }
        let suppressed = keep.iter().any(|&k| {
            classes.is_none_or(|c| c[k] == c[i]) && iou(&boxes[k], &boxes[i]) > iou_threshold
        });
        if !suppressed {
            keep.push(i);
        }
    }
    keep
}

/// True-positive flags of each detection at each of the ten thresholds, by the Ultralytics rule
/// (see the module documentation). `detections` should be in decreasing confidence.
pub fn match_detections(detections: &[Detection], truths: &[GroundTruth]) -> Vec<[bool; 10]> {
    let mut correct = vec![[false; 10]; detections.len()];
    if truths.is_empty() || detections.is_empty() {
        return correct;
    }
    let ious: Vec<Vec<f64>> = truths
        .iter()
        .map(|g| {
            detections
                .iter()
                .map(|d| {
                    if d.class == g.class {
                        iou(&g.bbox, &d.bbox) as f64
                    } else {
                        0.0
                    }
                })
                .collect()
        })
        .collect();
    for (ti, &t) in IOU_THRESHOLDS.iter().enumerate() {
        let mut pairs: Vec<(usize, usize, f64)> = Vec::new();
        for (g, row) in ious.iter().enumerate() {
            for (d, &v) in row.iter().enumerate() {
                if v >= t && v > 0.0 {
                    pairs.push((g, d, v));
                }
            }
        }
        pairs.sort_by(|a, b| b.2.total_cmp(&a.2));
        // Each detection keeps its highest-IoU pair …
        let mut best_per_det: Vec<Option<(usize, usize, f64)>> = vec![None; detections.len()];
        for p in &pairs {
            best_per_det[p.1].get_or_insert(*p);
        }
        // … then, in detection order, each ground truth keeps the first detection that claims it.
        let mut taken = vec![false; truths.len()];
        for p in best_per_det.into_iter().flatten() {
            if !taken[p.0] {
                taken[p.0] = true;
                correct[p.1][ti] = true;
            }
        }
    }
    correct
}

/// Collects matched detections over a data set and computes per-class AP the Ultralytics way.
#[derive(Debug, Clone, Default)]
pub struct DetectionAccumulator {
    num_classes: usize,
    tp: Vec<[bool; 10]>,
    conf: Vec<f64>,
    pred_class: Vec<usize>,
    target_class: Vec<usize>,
    /// Images in which each class has at least one ground truth (the "Images" column).
    images_with_class: Vec<usize>,
    images: usize,
}

impl DetectionAccumulator {
    /// An empty accumulator for `num_classes` classes.
    pub fn new(num_classes: usize) -> Self {
        DetectionAccumulator {
            num_classes,
            images_with_class: vec![0; num_classes],
            ..Default::default()
        }
    }

    /// Adds one image's detections (any order) and ground truth.
    pub fn add_image(&mut self, detections: &[Detection], truths: &[GroundTruth]) -> Result<()> {
        let c = self.num_classes;
        if let Some(bad) = detections
            .iter()
            .map(|d| d.class)
            .chain(truths.iter().map(|g| g.class))
            .find(|&k| k >= c)
        {
            return Err(Error::Invalid(format!(
                "class {bad} is not below the {c} classes"
            )));
        }
        let mut dets = detections.to_vec();
        dets.sort_by(|a, b| b.score.total_cmp(&a.score));
        self.tp.extend(match_detections(&dets, truths));
        self.conf.extend(dets.iter().map(|d| d.score as f64));
        self.pred_class.extend(dets.iter().map(|d| d.class));
        self.target_class.extend(truths.iter().map(|g| g.class));
        let mut seen = vec![false; c];
        for g in truths {
            seen[g.class] = true;
        }
        for (k, s) in seen.into_iter().enumerate() {
            self.images_with_class[k] += s as usize;
        }
        self.images += 1;
        Ok(())
    }

    /// Computes the report (classes without ground truth are left out, as Ultralytics does).
    pub fn report(&self) -> DetectionReport {
        const EPS: f64 = 1e-16;
        const POINTS: usize = 1000;
        let px = linspace01(POINTS);
        let mut order: Vec<usize> = (0..self.conf.len()).collect();
        order.sort_by(|&i, &j| self.conf[j].total_cmp(&self.conf[i]));
        let mut per_class = Vec::new();
        let (mut p_curves, mut r_curves) = (Vec::new(), Vec::new());
        let mut pr_curves = Vec::new();
        for k in 0..self.num_classes {
            let n_gt = self.target_class.iter().filter(|&&t| t == k).count();
            if n_gt == 0 {
                continue;
            }
            let idx: Vec<usize> = order
                .iter()
                .copied()
                .filter(|&i| self.pred_class[i] == k)
                .collect();
            let mut ap = [0.0; 10];
            let (mut p_curve, mut r_curve) = (vec![0.0; POINTS], vec![0.0; POINTS]);
            let mut envelope = vec![0.0; POINTS];
            if !idx.is_empty() {
                // -conf is increasing along idx, as np.interp needs.
                let neg_conf: Vec<f64> = idx.iter().map(|&i| -self.conf[i]).collect();
                for (t, ap_t) in ap.iter_mut().enumerate() {
                    let (mut tpc, mut fpc) = (0.0, 0.0);
                    let (mut recall, mut precision) = (Vec::new(), Vec::new());
                    for &i in &idx {
                        if self.tp[i][t] {
                            tpc += 1.0;
                        } else {
                            fpc += 1.0;
                        }
                        recall.push(tpc / (n_gt as f64 + EPS));
                        precision.push(tpc / (tpc + fpc));
                    }
                    if t == 0 {
                        let neg_px: Vec<f64> = px.iter().map(|x| -x).collect();
                        r_curve = interp(
                            &neg_px,
                            &neg_conf,
                            &recall,
                            0.0,
                            *recall.last().unwrap_or(&0.0),
                        );
                        p_curve = interp(
                            &neg_px,
                            &neg_conf,
                            &precision,
                            1.0,
                            *precision.last().unwrap_or(&0.0),
                        );
                        envelope = envelope_at(&recall, &precision, &px);
                    }
                    *ap_t = average_precision(&recall, &precision);
                }
            }
            per_class.push(ClassDetection {
                class: k,
                images: self.images_with_class[k],
                instances: n_gt,
                precision: 0.0,
                recall: 0.0,
                ap50: ap[0],
                ap50_95: ap.iter().sum::<f64>() / 10.0,
                ap,
            });
            p_curves.push(p_curve);
            r_curves.push(r_curve);
            pr_curves.push(PrCurve {
                class: k,
                recall: px.clone(),
                precision: envelope,
            });
        }
        // Confidence maximising the smoothed mean F1.
        let f1_mean: Vec<f64> = (0..POINTS)
            .map(|j| {
                let n = p_curves.len().max(1) as f64;
                p_curves
                    .iter()
                    .zip(&r_curves)
                    .map(|(p, r)| 2.0 * p[j] * r[j] / (p[j] + r[j] + EPS))
                    .sum::<f64>()
                    / n
            })
            .collect();
        let best = argmax_first(&smooth(&f1_mean, 0.1));
        for (c, (p, r)) in per_class.iter_mut().zip(p_curves.iter().zip(&r_curves)) {
            c.precision = p[best];
            c.recall = r[best];
        }
        let mean = |f: &dyn Fn(&ClassDetection) -> f64| {
            if per_class.is_empty() {
                0.0
            } else {
                per_class.iter().map(f).sum::<f64>() / per_class.len() as f64
            }
        };
        DetectionReport {
            images: self.images,
            instances: self.target_class.len(),
            precision: mean(&|c| c.precision),
            recall: mean(&|c| c.recall),
            map50: mean(&|c| c.ap50),
            map50_95: mean(&|c| c.ap50_95),
            best_confidence: px[best],
            pr_curves,
            per_class,
        }
    }
}

/// AP from a recall/precision sequence (see the module documentation).
pub fn average_precision(recall: &[f64], precision: &[f64]) -> f64 {
    let x = linspace01(101);
    let y = envelope_at(recall, precision, &x);
    x.windows(2)
        .zip(y.windows(2))
        .map(|(xs, ys)| (xs[1] - xs[0]) * (ys[0] + ys[1]) / 2.0)
        .sum()
}

/// The monotone precision envelope (with end points (0, 1) and (1, 0)) linearly interpolated at
/// recall values `x`.
fn envelope_at(recall: &[f64], precision: &[f64], x: &[f64]) -> Vec<f64> {
    let mut mrec = vec![0.0];
    mrec.extend_from_slice(recall);
    mrec.push(1.0);
    let mut mpre = vec![1.0];
    mpre.extend_from_slice(precision);
    mpre.push(0.0);
    for i in (0..mpre.len() - 1).rev() {
        mpre[i] = mpre[i].max(mpre[i + 1]);
    }
    interp(x, &mrec, &mpre, mpre[0], *mpre.last().unwrap_or(&0.0))
}

/// numpy's `linspace(0, 1, n)`: `i · (1/(n−1))` with the last point exactly 1. Reproduced bit for
/// bit because thresholds such as 0.29 come out as 0.29000000000000004, which decides where a
/// recall of exactly 29/100 is sampled.
fn linspace01(n: usize) -> Vec<f64> {
    let step = 1.0 / (n - 1) as f64;
    let mut v: Vec<f64> = (0..n).map(|i| i as f64 * step).collect();
    v[n - 1] = 1.0;
    v
}

/// numpy's `interp(x, xp, fp, left, right)` for non-decreasing `xp`.
fn interp(x: &[f64], xp: &[f64], fp: &[f64], left: f64, right: f64) -> Vec<f64> {
    x.iter()
        .map(|&v| {
            if xp.is_empty() {
                return left;
            }
            if v < xp[0] {
                return left;
            }
            if v > xp[xp.len() - 1] {
                return right;
            }
            // Last index j with xp[j] <= v (numpy picks the right-most segment on ties).
            let j = xp.partition_point(|&a| a <= v) - 1;
            if j + 1 >= xp.len() || xp[j] == v {
                return fp[j];
            }
            let (x0, x1) = (xp[j], xp[j + 1]);
            fp[j] + (fp[j + 1] - fp[j]) * (v - x0) / (x1 - x0)
        })
        .collect()
}

/// Box filter over a fraction `f` of the points, padded with the end values.
fn smooth(y: &[f64], f: f64) -> Vec<f64> {
    let nf = ((y.len() as f64 * f * 2.0).round() as usize) / 2 + 1;
    let pad = nf / 2;
    let (first, last) = (y[0], y[y.len() - 1]);
    let padded: Vec<f64> = std::iter::repeat_n(first, pad)
        .chain(y.iter().copied())
        .chain(std::iter::repeat_n(last, pad))
        .collect();
    padded
        .windows(nf)
        .map(|w| w.iter().sum::<f64>() / nf as f64)
        .collect()
}

fn argmax_first(v: &[f64]) -> usize {
    v.iter()
        .enumerate()
        .fold(
            (0, f64::NEG_INFINITY),
            |b, (i, &x)| if x > b.1 { (i, x) } else { b },
        )
        .0
}

/// One row of the detection table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassDetection {
    /// Class index.
    pub class: usize,
    /// Images containing the class.
    pub images: usize,
    /// Ground-truth boxes of the class.
    pub instances: usize,
    /// Precision at the best-F1 confidence.
    pub precision: f64,
    /// Recall at the best-F1 confidence.
    pub recall: f64,
    /// AP at IoU 0.5.
    pub ap50: f64,
    /// AP averaged over the ten thresholds.
    pub ap50_95: f64,
    /// AP at each threshold.
    pub ap: [f64; 10],
}

/// One class's precision envelope at IoU 0.5, sampled at 1000 recall points from 0 to 1.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrCurve {
    /// Class index.
    pub class: usize,
    /// Precision at each recall point.
    pub precision: Vec<f64>,
    /// The recall points.
    pub recall: Vec<f64>,
}

/// What `detect val` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DetectionReport {
    /// Images evaluated.
    pub images: usize,
    /// Ground-truth boxes.
    pub instances: usize,
    /// Mean precision over classes.
    pub precision: f64,
    /// Mean recall over classes.
    pub recall: f64,
    /// mAP at IoU 0.5.
    pub map50: f64,
    /// mAP over IoU 0.5:0.95.
    pub map50_95: f64,
    /// The confidence at which P and R are reported.
    pub best_confidence: f64,
    /// Per class with ground truth.
    pub per_class: Vec<ClassDetection>,
    /// Curves for the PR plot.
    pub pr_curves: Vec<PrCurve>,
}

/// Ultralytics' detection confusion matrix: rows are *predicted* class (last row: background, i.e.
/// missed ground truth), columns are *true* class (last column: background, i.e. false positive).
/// Detections below `conf` are dropped; boxes pair when IoU > `iou` regardless of class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DetectionConfusion {
    /// Number of classes (the matrix is `(C+1) × (C+1)`).
    pub num_classes: usize,
    /// Row-major counts.
    pub counts: Vec<u64>,
    /// Minimum detection confidence.
    pub conf: f32,
    /// IoU above which a detection and a ground truth pair.
    pub iou: f32,
}

impl DetectionConfusion {
    /// Empty, with Ultralytics' defaults conf 0.25, IoU 0.45.
    pub fn new(num_classes: usize) -> Self {
        let n = num_classes + 1;
        DetectionConfusion {
            num_classes,
            counts: vec![0; n * n],
            conf: 0.25,
            iou: 0.45,
        }
    }

    fn add(&mut self, row: usize, col: usize) {
        self.counts[row * (self.num_classes + 1) + col] += 1;
    }

    /// Adds one image.
    pub fn add_image(&mut self, detections: &[Detection], truths: &[GroundTruth]) {
        let bg = self.num_classes;
        let dets: Vec<&Detection> = detections.iter().filter(|d| d.score > self.conf).collect();
        let mut pairs: Vec<(usize, usize, f32)> = Vec::new();
        for (g, gt) in truths.iter().enumerate() {
            for (d, det) in dets.iter().enumerate() {
                let v = iou(&gt.bbox, &det.bbox);
                if v > self.iou {
                    pairs.push((g, d, v));
                }
            }
        }
        pairs.sort_by(|a, b| b.2.total_cmp(&a.2));
        let mut det_seen = vec![false; dets.len()];
        pairs.retain(|p| !std::mem::replace(&mut det_seen[p.1], true));
        let mut gt_seen = vec![false; truths.len()];
        pairs.retain(|p| !std::mem::replace(&mut gt_seen[p.0], true));
        for (g, gt) in truths.iter().enumerate() {
            match pairs.iter().find(|p| p.0 == g) {
                Some(p) => self.add(dets[p.1].class, gt.class),
                None => self.add(bg, gt.class),
            }
        }
        for (d, det) in dets.iter().enumerate() {
            if !pairs.iter().any(|p| p.1 == d) {
                self.add(det.class, bg);
            }
        }
    }
}

/// A ground-truth box for COCO evaluation, with the area used for the size ranges and the crowd
/// flag.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CocoTruth {
    /// The box.
    pub bbox: BoxXyxy,
    /// Class (category) index.
    pub class: usize,
    /// Area for the small/medium/large ranges (COCO uses the segmentation area).
    pub area: f64,
    /// Crowd regions can match many detections and never count as misses.
    pub iscrowd: bool,
}

/// pycocotools' twelve summary numbers for boxes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CocoReport {
    /// AP @ IoU 0.50:0.95, all areas, 100 detections.
    pub ap: f64,
    /// AP @ 0.50.
    pub ap50: f64,
    /// AP @ 0.75.
    pub ap75: f64,
    /// AP for small objects.
    pub ap_small: f64,
    /// AP for medium objects.
    pub ap_medium: f64,
    /// AP for large objects.
    pub ap_large: f64,
    /// AR with 1 detection per image.
    pub ar1: f64,
    /// AR with 10.
    pub ar10: f64,
    /// AR with 100.
    pub ar100: f64,
    /// AR small.
    pub ar_small: f64,
    /// AR medium.
    pub ar_medium: f64,
    /// AR large.
    pub ar_large: f64,
}

const AREA_RANGES: [(f64, f64); 4] = [(0.0, 1e10), (0.0, 1024.0), (1024.0, 9216.0), (9216.0, 1e10)];
const MAX_DETS: [usize; 3] = [1, 10, 100];

/// Per (image, class, area range): matched flags of the detections (score order) and ignore flags.
struct ImageEval {
    scores: Vec<f64>,
    matched: Vec<[bool; 10]>,
    det_ignored: Vec<[bool; 10]>,
    truths_counted: usize,
}

fn evaluate_image(dets: &[&Detection], truths: &[&CocoTruth], range: (f64, f64)) -> ImageEval {
    let ignored_gt: Vec<bool> = truths
        .iter()
        .map(|g| g.iscrowd || g.area < range.0 || g.area > range.1)
        .collect();
    // Ground truths not ignored come first (stable).
    let mut gorder: Vec<usize> = (0..truths.len()).collect();
    gorder.sort_by_key(|&g| ignored_gt[g]);
    let mut dorder: Vec<usize> = (0..dets.len()).collect();
    dorder.sort_by(|&a, &b| dets[b].score.total_cmp(&dets[a].score));
    dorder.truncate(MAX_DETS[2]);
    let ious: Vec<Vec<f64>> = dorder
        .iter()
        .map(|&d| {
            gorder
                .iter()
                .map(|&g| {
                    let (db, gb) = (&dets[d].bbox, &truths[g].bbox);
                    let inter = intersection(db, gb) as f64;
                    let union = if truths[g].iscrowd {
                        area(db) as f64
                    } else {
                        (area(db) + area(gb)) as f64 - inter
                    };
                    if union > 0.0 {
                        inter / union
                    } else {
                        0.0
                    }
                })
                .collect()
        })
        .collect();
    let gt_ig: Vec<bool> = gorder.iter().map(|&g| ignored_gt[g]).collect();
    let crowd: Vec<bool> = gorder.iter().map(|&g| truths[g].iscrowd).collect();
    let mut matched = vec![[false; 10]; dorder.len()];
    let mut det_ignored = vec![[false; 10]; dorder.len()];
    for (t, &thr) in IOU_THRESHOLDS.iter().enumerate() {
        let mut gt_taken = vec![false; gorder.len()];
        for d in 0..dorder.len() {
            let mut best = thr.min(1.0 - 1e-10);
            let mut m: Option<usize> = None;
            for g in 0..gorder.len() {
                if gt_taken[g] && !crowd[g] {
                    continue;
                }
                // Once matched to a real ground truth, stop at the ignored ones (sorted last).
                if m.is_some_and(|m| !gt_ig[m]) && gt_ig[g] {
                    break;
                }
                if ious[d][g] < best {
                    continue;
                }
                best = ious[d][g];
                m = Some(g);
            }
            if let Some(g) = m {
                det_ignored[d][t] = gt_ig[g];
                matched[d][t] = true;
                gt_taken[g] = true;
            }
        }
    }
    for (d, &di) in dorder.iter().enumerate() {
        let a = area(&dets[di].bbox) as f64;
        let outside = a < range.0 || a > range.1;
        for t in 0..10 {
            if !matched[d][t] && outside {
                det_ignored[d][t] = true;
            }
        }
    }
    ImageEval {
        scores: dorder.iter().map(|&d| dets[d].score as f64).collect(),
        matched,
        det_ignored,
        truths_counted: gt_ig.iter().filter(|&&i| !i).count(),
    }
}

/// pycocotools `COCOeval` (iouType "bbox") over images of `(detections, ground truth)`, for the
/// categories `0..num_classes` that have ground truth.
pub fn coco_evaluate(
    images: &[(Vec<Detection>, Vec<CocoTruth>)],
    num_classes: usize,
) -> CocoReport {
    // precision[t][k][a][m] for the 101 recall thresholds (averaged later); recall[t][k][a][m].
    let mut precision: Vec<Option<[f64; 101]>> = Vec::new();
    let mut recall: Vec<Option<f64>> = Vec::new();
    let idx = |t: usize, k: usize, a: usize, m: usize| ((t * num_classes + k) * 4 + a) * 3 + m;
    let n = 10 * num_classes * 4 * 3;
    let recall_thresholds = linspace01(101);
    precision.resize(n, None);
    recall.resize(n, None);
    for k in 0..num_classes {
        for (a, &range) in AREA_RANGES.iter().enumerate() {
            let evals: Vec<ImageEval> = images
                .iter()
                .filter_map(|(dets, truths)| {
                    let d: Vec<&Detection> = dets.iter().filter(|d| d.class == k).collect();
                    let g: Vec<&CocoTruth> = truths.iter().filter(|g| g.class == k).collect();
                    (!d.is_empty() || !g.is_empty()).then(|| evaluate_image(&d, &g, range))
                })
                .collect();
            let npig: usize = evals.iter().map(|e| e.truths_counted).sum();
            if npig == 0 {
                continue;
            }
            for (m, &max_det) in MAX_DETS.iter().enumerate() {
                let mut all: Vec<(f64, [bool; 10], [bool; 10])> = Vec::new();
                for e in &evals {
                    for d in 0..e.scores.len().min(max_det) {
                        all.push((e.scores[d], e.matched[d], e.det_ignored[d]));
                    }
                }
                // Stable sort by decreasing score (mergesort in pycocotools).
                all.sort_by(|x, y| y.0.total_cmp(&x.0));
                for t in 0..10 {
                    let (mut tp, mut fp) = (0.0f64, 0.0f64);
                    let (mut rc, mut pr) = (Vec::new(), Vec::new());
                    for (_, mt, ig) in &all {
                        if ig[t] {
                            // Ignored detections still add a point with unchanged counts.
                        } else if mt[t] {
                            tp += 1.0;
                        } else {
                            fp += 1.0;
                        }
                        rc.push(tp / npig as f64);
                        pr.push(tp / (tp + fp + f64::EPSILON));
                    }
                    recall[idx(t, k, a, m)] = Some(rc.last().copied().unwrap_or(0.0));
                    for i in (1..pr.len()).rev() {
                        if pr[i] > pr[i - 1] {
                            pr[i - 1] = pr[i];
                        }
                    }
                    let mut q = [0.0; 101];
                    for (qr, &thr) in q.iter_mut().zip(&recall_thresholds) {
                        let pos = rc.partition_point(|&v| v < thr);
                        if pos < pr.len() {
                            *qr = pr[pos];
                        }
                    }
                    precision[idx(t, k, a, m)] = Some(q);
                }
            }
        }
    }
    let ap = |thr: Option<usize>, a: usize| {
        let mut vals = Vec::new();
        for t in 0..10 {
            if thr.is_some_and(|x| x != t) {
                continue;
            }
            for k in 0..num_classes {
                if let Some(q) = precision[idx(t, k, a, 2)] {
                    vals.extend_from_slice(&q);
                }
            }
        }
        mean_or_minus_one(&vals)
    };
    let ar = |a: usize, m: usize| {
        let vals: Vec<f64> = (0..10)
            .flat_map(|t| (0..num_classes).map(move |k| (t, k)))
            .filter_map(|(t, k)| recall[idx(t, k, a, m)])
            .collect();
        mean_or_minus_one(&vals)
    };
    CocoReport {
        ap: ap(None, 0),
        ap50: ap(Some(0), 0),
        ap75: ap(Some(5), 0),
        ap_small: ap(None, 1),
        ap_medium: ap(None, 2),
        ap_large: ap(None, 3),
        ar1: ar(0, 0),
        ar10: ar(0, 1),
        ar100: ar(0, 2),
        ar_small: ar(1, 2),
        ar_medium: ar(2, 2),
        ar_large: ar(3, 2),
    }
}

/// Mean, or −1 when there is nothing to average (pycocotools' convention).
fn mean_or_minus_one(v: &[f64]) -> f64 {
    if v.is_empty() {
        -1.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(b: BoxXyxy, score: f32, class: usize) -> Detection {
        Detection {
            bbox: b,
            score,
            class,
        }
    }

    #[test]
    fn iou_and_nms_on_hand_made_boxes() {
        let a = [0.0, 0.0, 10.0, 10.0];
        let b = [5.0, 0.0, 15.0, 10.0];
        assert!((iou(&a, &b) - 50.0 / 150.0).abs() < 1e-6);
        let boxes = [a, b, [0.0, 0.0, 10.0, 9.0], [20.0, 20.0, 30.0, 30.0]];
        let scores = [0.9, 0.8, 0.7, 0.6];
        // Box 2 overlaps box 0 with IoU 0.9: suppressed; box 1 (IoU 1/3) survives at 0.5.
        assert_eq!(nms(&boxes, &scores, None, 0.5), [0, 1, 3]);
        assert_eq!(nms(&boxes, &scores, Some(&[0, 0, 1, 0]), 0.5), [0, 1, 2, 3]);
        assert_eq!(nms_max(&boxes, &scores, None, 0.5, 2), [0, 1]);
    }

    #[test]
    fn one_perfect_detection() {
        // Ultralytics' definition tops out at 0.995: the envelope's appended end point (recall 1,
        // precision 0) makes the last of the 100 trapezoids half as tall. COCO's gives 1.
        let mut acc = DetectionAccumulator::new(2);
        let gt = [GroundTruth {
            bbox: [0.0, 0.0, 10.0, 10.0],
            class: 1,
        }];
        acc.add_image(&[det([0.0, 0.0, 10.0, 10.0], 0.9, 1)], &gt)
            .unwrap();
        let r = acc.report();
        assert_eq!(r.per_class.len(), 1);
        assert!(
            (r.map50 - 0.995).abs() < 1e-12 && (r.map50_95 - 0.995).abs() < 1e-12,
            "{r:?}"
        );
        assert!((r.precision - 1.0).abs() < 1e-9 && (r.recall - 1.0).abs() < 1e-9);
        let coco = coco_evaluate(
            &[(
                vec![det([0.0, 0.0, 10.0, 10.0], 0.9, 1)],
                vec![CocoTruth {
                    bbox: gt[0].bbox,
                    class: 1,
                    area: 100.0,
                    iscrowd: false,
                }],
            )],
            2,
        );
        // pycocotools divides by tp + fp + spacing(1), so "1" is 1 − 1e-16.
        for v in [coco.ap, coco.ap50, coco.ar100, coco.ap_small] {
            assert!((v - 1.0).abs() < 1e-12, "{coco:?}");
        }
        assert_eq!(
            coco.ap_large, -1.0,
            "no large objects: -1 as pycocotools reports"
        );
    }

    #[test]
    fn hand_computed_pr_curve() {
        // Recall 0.5 at precision 1, then a false positive, then recall 1 at precision 2/3.
        // Points (recall, envelope): (0,1) (.5,1) (.5,2/3) (1,2/3) (1,0). Sampled at 0, .01, …, 1
        // (at a repeated recall the last point counts): 1 up to .49, 2/3 from .5 to .99, 0 at 1.
        // Trapezoids: .49·1 + .01·(1+2/3)/2 + .49·2/3 + .01·(2/3)/2 = 0.8283333….
        let ap = average_precision(&[0.5, 0.5, 1.0], &[1.0, 0.5, 2.0 / 3.0]);
        let want = 0.49 + 0.01 * (5.0 / 6.0) + 0.49 * (2.0 / 3.0) + 0.01 / 3.0;
        assert!((ap - want).abs() < 1e-12, "{ap}");
    }

    #[test]
    fn matching_prefers_highest_iou_then_earliest_detection() {
        let gts = [GroundTruth {
            bbox: [0.0, 0.0, 10.0, 10.0],
            class: 0,
        }];
        // Both detections overlap the one ground truth; only one can be a true positive.
        let dets = [
            det([0.0, 0.0, 10.0, 9.0], 0.9, 0),
            det([0.0, 0.0, 10.0, 10.0], 0.8, 0),
        ];
        let c = match_detections(&dets, &gts);
        assert!(c[1][9] && !c[0][9], "IoU 1.0 wins at 0.95");
        assert!(c[0][0] ^ c[1][0]);
    }

    #[test]
    fn confusion_matrix_counts_background() {
        let mut cm = DetectionConfusion::new(2);
        let gts = [
            GroundTruth {
                bbox: [0.0, 0.0, 10.0, 10.0],
                class: 0,
            },
            GroundTruth {
                bbox: [50.0, 50.0, 60.0, 60.0],
                class: 1,
            },
        ];
        let dets = [
            det([0.0, 0.0, 10.0, 10.0], 0.9, 1),
            det([80.0, 80.0, 90.0, 90.0], 0.9, 0),
        ];
        cm.add_image(&dets, &gts);
        // gt0 predicted as class 1; gt1 missed (background row); det1 a false positive.
        assert_eq!(cm.counts, [0, 0, 1, /**/ 1, 0, 0, /**/ 0, 1, 0]);
    }
}
