//! Ultralytics mode: matching predictions to ground truth at the ten IoU thresholds, per-class
//! AP from the monotone precision envelope, P and R at the confidence of the best mean F1 (see
//! the [parent module](super)).

use serde::Serialize;

use super::{Detection, GroundTruth, IOU_THRESHOLDS};
use crate::error::{Error, Result};
use crate::ops::boxes::iou;

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
    /// The image each detection row came from (its index in the data set, or the order added),
    /// so that rows gathered from several ranks go back into one process's order.
    det_image: Vec<usize>,
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
        self.add_image_at(self.images, detections, truths)
    }

    /// [`add_image`](Self::add_image) for the image of index `image` in the data set: what a
    /// rank scoring a share of the images calls, so that [`all_gather`](Self::all_gather) can
    /// restore the data set's order.
    pub fn add_image_at(
        &mut self,
        image: usize,
        detections: &[Detection],
        truths: &[GroundTruth],
    ) -> Result<()> {
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
        self.det_image
            .extend(std::iter::repeat_n(image, dets.len()));
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

    /// Every rank's statistics, merged on every rank into those one process scoring all the
    /// images in the data set's order would have (the detection rows sorted back by image, the
    /// per-class image counts summed): the report is then the single-process one, exactly.
    pub fn all_gather(&mut self, g: &crate::distributed::ProcessGroup) -> Result<()> {
        use tch::Tensor;
        let rows: Vec<f64> = (0..self.conf.len())
            .flat_map(|i| {
                let mut r = vec![self.det_image[i] as f64];
                r.extend(self.tp[i].iter().map(|&t| t as u8 as f64));
                r.extend([self.conf[i], self.pred_class[i] as f64]);
                r
            })
            .collect();
        // A row: image, the ten IoU-threshold matches, confidence, class.
        const WIDTH: usize = 13;
        let rows = Tensor::from_slice(&rows).reshape([-1, WIDTH as i64]);
        let all = Vec::<f64>::try_from(g.gather_rows(&rows)?.reshape([-1]))
            .map_err(|e| Error::Invalid(format!("gathering detection statistics: {e}")))?;
        let mut all: Vec<&[f64]> = all.chunks(WIDTH).collect();
        // Stable: within an image the rows keep their (score) order.
        all.sort_by(|a, b| a[0].total_cmp(&b[0]));
        self.det_image = all.iter().map(|r| r[0] as usize).collect();
        self.tp = all
            .iter()
            .map(|r| std::array::from_fn(|t| r[1 + t] != 0.0))
            .collect();
        self.conf = all.iter().map(|r| r[11]).collect();
        self.pred_class = all.iter().map(|r| r[12] as usize).collect();
        let targets = Tensor::from_slice(
            &self
                .target_class
                .iter()
                .map(|&k| k as i64)
                .collect::<Vec<_>>(),
        );
        self.target_class = Vec::<i64>::try_from(g.gather_rows(&targets)?)
            .map_err(|e| Error::Invalid(format!("gathering detection statistics: {e}")))?
            .into_iter()
            .map(|k| k as usize)
            .collect();
        let mut counts: Vec<u64> = self
            .images_with_class
            .iter()
            .chain([&self.images])
            .map(|&n| n as u64)
            .collect();
        g.sum_counts(&mut counts)?;
        self.images = counts.pop().unwrap_or(0) as usize;
        self.images_with_class = counts.into_iter().map(|n| n as usize).collect();
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
pub(super) fn linspace01(n: usize) -> Vec<f64> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::detection::{coco_evaluate, CocoTruth};

    #[test]
    fn one_perfect_detection() {
        // Ultralytics' definition tops out at 0.995: the envelope's appended end point (recall 1,
        // precision 0) makes the last of the 100 trapezoids half as tall. COCO's gives 1.
        let mut acc = DetectionAccumulator::new(2);
        let gt = [GroundTruth {
            bbox: [0.0, 0.0, 10.0, 10.0],
            class: 1,
        }];
        acc.add_image(&[Detection::new([0.0, 0.0, 10.0, 10.0], 0.9, 1)], &gt)
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
                vec![Detection::new([0.0, 0.0, 10.0, 10.0], 0.9, 1)],
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
            Detection::new([0.0, 0.0, 10.0, 9.0], 0.9, 0),
            Detection::new([0.0, 0.0, 10.0, 10.0], 0.8, 0),
        ];
        let c = match_detections(&dets, &gts);
        assert!(c[1][9] && !c[0][9], "IoU 1.0 wins at 0.95");
        assert!(c[0][0] ^ c[1][0]);
    }
}
