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
//!
//! The files: [`ultralytics`] (matching, AP, P/R at the best F1, the report), [`confusion`]
//! (Ultralytics' confusion matrix with a background row and column), [`coco`] (pycocotools'
//! `COCOeval`). Box operations (IoU, NMS) are in [`crate::ops::boxes`].

pub mod coco;
pub mod confusion;
pub mod ultralytics;

use serde::Serialize;

pub use crate::ops::boxes::BoxXyxy;
pub use coco::{coco_evaluate, CocoReport, CocoTruth};
pub use confusion::DetectionConfusion;
pub use ultralytics::{
    average_precision, match_detections, ClassDetection, DetectionAccumulator, DetectionReport,
    PrCurve,
};

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

impl Detection {
    /// A predicted box of `class` with confidence `score`.
    pub fn new(bbox: BoxXyxy, score: f32, class: usize) -> Self {
        Detection { bbox, score, class }
    }
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
