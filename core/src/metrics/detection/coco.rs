//! COCO mode: pycocotools' `COCOeval` for boxes (see the [parent module](super)).

use serde::Serialize;

use super::ultralytics::linspace01;
use super::{Detection, IOU_THRESHOLDS};
use crate::ops::boxes::{area, intersection, BoxXyxy};

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
