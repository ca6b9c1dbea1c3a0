//! Ultralytics' detection confusion matrix.

use serde::Serialize;

use super::{Detection, GroundTruth};
use crate::ops::boxes::iou;

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
    /// The counts summed over the ranks of `g` (each rank counted its share of the images).
    pub fn all_reduce(&mut self, g: &crate::distributed::ProcessGroup) -> crate::error::Result<()> {
        g.sum_counts(&mut self.counts)
    }

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

#[cfg(test)]
mod tests {
    use super::*;

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
            Detection::new([0.0, 0.0, 10.0, 10.0], 0.9, 1),
            Detection::new([80.0, 80.0, 90.0, 90.0], 0.9, 0),
        ];
        cm.add_image(&dets, &gts);
        // gt0 predicted as class 1; gt1 missed (background row); det1 a false positive.
        assert_eq!(cm.counts, [0, 0, 1, /**/ 1, 0, 0, /**/ 0, 1, 0]);
    }
}
