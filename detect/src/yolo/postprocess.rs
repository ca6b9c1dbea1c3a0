//! From decoded predictions to detections: confidence threshold, class-aware non-maximum
//! suppression, a cap on detections per image (Ultralytics' `non_max_suppression` behaviour).

use ferrovis_core::metrics::detection::Detection;
use ferrovis_core::ops::boxes::nms_max;
use tch::{Device, Kind, Tensor};

/// NMS settings. Validation uses conf 0.001, IoU 0.7, 300 detections, several labels per box;
/// prediction conf 0.25 and one label per box.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NmsConfig {
    /// Minimum class probability.
    pub conf: f32,
    /// IoU above which a lower-scored box of the same class is suppressed.
    pub iou: f32,
    /// Detections kept per image.
    pub max_det: usize,
    /// Candidates (by score) that enter NMS.
    pub max_candidates: usize,
    /// A box may be reported once per class above `conf` (validation), or only for its best class.
    pub multi_label: bool,
    /// Boxes of different classes suppress each other too.
    pub agnostic: bool,
    /// An end-to-end model (YOLO26) reports its one-to-one head's detections, no NMS
    /// (Ultralytics' `nms=False`); other models ignore it.
    pub end2end: bool,
}

impl NmsConfig {
    /// Ultralytics' validation settings.
    pub fn val() -> Self {
        NmsConfig {
            conf: 0.001,
            iou: 0.7,
            max_det: 300,
            max_candidates: 30_000,
            multi_label: true,
            agnostic: false,
            end2end: false,
        }
    }

    /// Ultralytics' prediction settings.
    pub fn predict() -> Self {
        NmsConfig {
            conf: 0.25,
            multi_label: false,
            ..Self::val()
        }
    }
}

/// Detections per image, in decreasing score, boxes in input pixels, from decoded predictions
/// `(batch, 4 + classes, anchors)` (centre/size boxes, class probabilities).
pub fn non_max_suppression(decoded: &Tensor, cfg: &NmsConfig) -> Vec<Vec<Detection>> {
    let decoded = decoded.to_device(Device::Cpu).to_kind(Kind::Float);
    let (b, c) = (decoded.size()[0], decoded.size()[1] - 4);
    (0..b)
        .map(|i| image_detections(&decoded.get(i).transpose(0, 1), c, cfg))
        .collect()
}

/// Detections per image from an end-to-end head's rows `(batch, k, 6)` (`x1, y1, x2, y2, score,
/// class`, by decreasing score; see
/// [`Detect::decode_end2end`](crate::yolo::head::Detect::decode_end2end)): the rows scoring above
/// `conf`, at most `max_det`, in order. There is nothing to suppress.
pub fn end2end_detections(rows: &Tensor, cfg: &NmsConfig) -> Vec<Vec<Detection>> {
    let rows = rows.to_device(Device::Cpu).to_kind(Kind::Float);
    let b = rows.size()[0];
    (0..b)
        .map(|i| {
            let flat =
                Vec::<f32>::try_from(rows.get(i).contiguous().view([-1])).unwrap_or_default();
            flat.chunks_exact(6)
                .filter(|r| r[4] > cfg.conf)
                .take(cfg.max_det)
                .map(|r| Detection {
                    bbox: [r[0], r[1], r[2], r[3]],
                    score: r[4],
                    class: r[5] as usize,
                })
                .collect()
        })
        .collect()
}

fn image_detections(pred: &Tensor, classes: i64, cfg: &NmsConfig) -> Vec<Detection> {
    let scores = pred.narrow(1, 4, classes);
    // (anchor, class, score) candidates above the threshold.
    let (anchor_idx, class_idx, score) = if cfg.multi_label {
        let pairs = scores.gt(cfg.conf as f64).nonzero();
        if pairs.size()[0] == 0 {
            return Vec::new();
        }
        let (a, k) = (pairs.select(1, 0), pairs.select(1, 1));
        let s = scores.index(&[Some(&a), Some(&k)]);
        (a, k, s)
    } else {
        let (best, k) = scores.max_dim(1, false);
        let a = best.gt(cfg.conf as f64).nonzero().view([-1]);
        (
            a.shallow_clone(),
            k.index_select(0, &a),
            best.index_select(0, &a),
        )
    };
    let n = score.size()[0];
    if n == 0 {
        return Vec::new();
    }
    let (score, order) = score.sort(0, true);
    let keep_n = n.min(cfg.max_candidates as i64);
    let order = order.narrow(0, 0, keep_n);
    let score = score.narrow(0, 0, keep_n);
    let anchors = anchor_idx.index_select(0, &order);
    let class_idx = class_idx.index_select(0, &order);
    let xywh = pred.narrow(1, 0, 4).index_select(0, &anchors);
    let xyxy = crate::yolo::boxes::xywh_to_xyxy(&xywh);

    let flat = Vec::<f32>::try_from(xyxy.contiguous().view([-1])).unwrap_or_default();
    let boxes: Vec<[f32; 4]> = flat
        .chunks_exact(4)
        .map(|c| [c[0], c[1], c[2], c[3]])
        .collect();
    let scores = Vec::<f32>::try_from(score).unwrap_or_default();
    let classes = Vec::<i64>::try_from(class_idx).unwrap_or_default();
    let classes: Vec<usize> = classes.into_iter().map(|c| c as usize).collect();
    let keep = nms_max(
        &boxes,
        &scores,
        (!cfg.agnostic).then_some(classes.as_slice()),
        f64::from(cfg.iou),
        cfg.max_det,
    );
    keep.into_iter()
        .map(|i| Detection {
            bbox: boxes[i],
            score: scores[i],
            class: classes[i],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decoded predictions for one image from (cx, cy, w, h, p0, p1) rows.
    fn decoded(rows: &[[f32; 6]]) -> Tensor {
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        Tensor::from_slice(&flat)
            .view([rows.len() as i64, 6])
            .transpose(0, 1)
            .unsqueeze(0)
    }

    #[test]
    fn hand_made_nms() {
        let pred = decoded(&[
            [50.0, 50.0, 20.0, 20.0, 0.9, 0.0],    // kept
            [51.0, 50.0, 20.0, 20.0, 0.8, 0.0],    // IoU 0.90 with the first: suppressed
            [51.0, 50.0, 20.0, 20.0, 0.0, 0.7],    // same box, other class: kept
            [90.0, 90.0, 10.0, 10.0, 0.3, 0.0],    // far away: kept
            [10.0, 10.0, 10.0, 10.0, 0.0005, 0.0], // below conf 0.001
        ]);
        let dets = &non_max_suppression(&pred, &NmsConfig::val())[0];
        let got: Vec<(usize, f32)> = dets.iter().map(|d| (d.class, d.score)).collect();
        assert_eq!(got, vec![(0, 0.9), (1, 0.7), (0, 0.3)]);
        assert_eq!(dets[0].bbox, [40.0, 40.0, 60.0, 60.0]);
        // Agnostic: the other-class duplicate goes too; predict's conf 0.25 keeps the 0.3 box.
        let cfg = NmsConfig {
            agnostic: true,
            ..NmsConfig::predict()
        };
        let dets = &non_max_suppression(&pred, &cfg)[0];
        assert_eq!(dets.len(), 2);
        // max_det caps the count.
        let cfg = NmsConfig {
            max_det: 1,
            ..NmsConfig::val()
        };
        assert_eq!(non_max_suppression(&pred, &cfg)[0].len(), 1);
    }

    #[test]
    fn multi_label_reports_each_class_above_threshold() {
        let pred = decoded(&[[50.0, 50.0, 20.0, 20.0, 0.6, 0.5]]);
        assert_eq!(non_max_suppression(&pred, &NmsConfig::val())[0].len(), 2);
        assert_eq!(
            non_max_suppression(&pred, &NmsConfig::predict())[0].len(),
            1
        );
    }
}
