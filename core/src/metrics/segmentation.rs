//! Segmentation metrics from one confusion matrix accumulated over the whole data set (not
//! per-image averages), with an ignore index.
//!
//! Definitions (per class k, from true-positive, false-positive and false-negative pixel counts):
//! IoU = tp / (tp + fp + fn); Dice = 2·tp / (2·tp + fp + fn); class accuracy = tp / (tp + fn).
//! **mIoU and mean Dice average over the classes present in the ground truth or the prediction**
//! (tp + fp + fn > 0); a class absent from both is excluded, never counted as 1 or NaN. Mean class
//! accuracy averages over classes present in the ground truth. Pixel accuracy = Σ tp / Σ pixels.
//! Pixels whose target is the ignore index count nowhere.

use serde::Serialize;
use tch::{Kind, Tensor};

use crate::error::{Error, Result};

/// Pixel counts of (true class, predicted class).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SegmentationConfusion {
    /// Number of classes.
    pub num_classes: usize,
    /// Target value that marks pixels to ignore (255 by convention).
    pub ignore_index: i64,
    /// Row-major counts `counts[t * C + p]`.
    pub counts: Vec<u64>,
}

impl SegmentationConfusion {
    /// The counts summed over the ranks of `g` (each rank counted its share of the images).
    pub fn all_reduce(&mut self, g: &crate::distributed::ProcessGroup) -> crate::error::Result<()> {
        g.sum_counts(&mut self.counts)
    }

    /// An empty matrix.
    pub fn new(num_classes: usize, ignore_index: i64) -> Self {
        SegmentationConfusion {
            num_classes,
            ignore_index,
            counts: vec![0; num_classes * num_classes],
        }
    }

    /// Adds a batch: `prediction` and `target` are integer tensors of the same shape (any device).
    /// A target outside `0..C` other than the ignore index, or a prediction outside `0..C`, is an
    /// error.
    pub fn update(&mut self, prediction: &Tensor, target: &Tensor) -> Result<()> {
        if prediction.size() != target.size() {
            return Err(Error::Invalid(format!(
                "prediction shape {:?} differs from target shape {:?}",
                prediction.size(),
                target.size()
            )));
        }
        let c = self.num_classes as i64;
        let t = target.to_kind(Kind::Int64).flatten(0, -1);
        let p = prediction.to_kind(Kind::Int64).flatten(0, -1);
        let valid = t.ne(self.ignore_index);
        let (t, p) = (t.masked_select(&valid), p.masked_select(&valid));
        if t.numel() == 0 {
            return Ok(());
        }
        for (what, v) in [("target", &t), ("prediction", &p)] {
            let (lo, hi) = (v.min().int64_value(&[]), v.max().int64_value(&[]));
            if lo < 0 || hi >= c {
                let bad = if lo < 0 { lo } else { hi };
                return Err(Error::Invalid(format!(
                    "{what} class {bad} is outside 0..{c} (ignore index {})",
                    self.ignore_index
                )));
            }
        }
        let bins = (t * c + p)
            .bincount::<Tensor>(None, c * c)
            .to_device(tch::Device::Cpu);
        let bins = Vec::<i64>::try_from(&bins).map_err(Error::Torch)?;
        for (acc, b) in self.counts.iter_mut().zip(bins) {
            *acc += b as u64;
        }
        Ok(())
    }

    fn get(&self, t: usize, p: usize) -> u64 {
        self.counts[t * self.num_classes + p]
    }

    /// Computes the metrics.
    pub fn report(&self) -> SegmentationReport {
        let c = self.num_classes;
        let mut per_class = Vec::with_capacity(c);
        let (mut tp_all, mut total) = (0u64, 0u64);
        for k in 0..c {
            let tp = self.get(k, k);
            let gt: u64 = (0..c).map(|p| self.get(k, p)).sum();
            let pred: u64 = (0..c).map(|t| self.get(t, k)).sum();
            let (fp, fn_) = (pred - tp, gt - tp);
            tp_all += tp;
            total += gt;
            let union = tp + fp + fn_;
            per_class.push(ClassSegmentation {
                iou: (union > 0).then(|| tp as f64 / union as f64),
                dice: (union > 0).then(|| 2.0 * tp as f64 / (2 * tp + fp + fn_) as f64),
                accuracy: (gt > 0).then(|| tp as f64 / gt as f64),
                pixels: gt,
            });
        }
        let mean = |vals: Vec<f64>| {
            if vals.is_empty() {
                0.0
            } else {
                vals.iter().sum::<f64>() / vals.len() as f64
            }
        };
        SegmentationReport {
            mean_iou: mean(per_class.iter().filter_map(|k| k.iou).collect()),
            mean_dice: mean(per_class.iter().filter_map(|k| k.dice).collect()),
            mean_class_accuracy: mean(per_class.iter().filter_map(|k| k.accuracy).collect()),
            pixel_accuracy: if total == 0 {
                0.0
            } else {
                tp_all as f64 / total as f64
            },
            per_class,
        }
    }
}

/// One class's numbers; `None` where the class is absent and the metric undefined.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ClassSegmentation {
    /// Intersection over union (absent from ground truth and prediction: `None`).
    pub iou: Option<f64>,
    /// Dice / F1 (same rule).
    pub dice: Option<f64>,
    /// Recall of the class's pixels (absent from ground truth: `None`).
    pub accuracy: Option<f64>,
    /// Ground-truth pixels.
    pub pixels: u64,
}

/// What `segment val` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentationReport {
    /// Mean IoU over classes present in ground truth or prediction.
    pub mean_iou: f64,
    /// Mean Dice over the same classes.
    pub mean_dice: f64,
    /// Mean recall over classes present in the ground truth.
    pub mean_class_accuracy: f64,
    /// Correct pixels over all counted pixels.
    pub pixel_accuracy: f64,
    /// Per class.
    pub per_class: Vec<ClassSegmentation>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_worked_with_ignore_and_absent_class() {
        // 3 classes; class 2 absent everywhere; 255 ignored.
        let target = Tensor::from_slice(&[0i64, 0, 1, 1, 255, 0]);
        let pred = Tensor::from_slice(&[0i64, 1, 1, 1, 2, 0]);
        let mut cm = SegmentationConfusion::new(3, 255);
        cm.update(&pred, &target).unwrap();
        let r = cm.report();
        // class 0: tp 2, fn 1, fp 0 -> IoU 2/3; class 1: tp 2, fp 1 -> IoU 2/3; class 2 excluded.
        assert_eq!(r.per_class[2].iou, None);
        assert!((r.mean_iou - 2.0 / 3.0).abs() < 1e-12);
        assert!((r.pixel_accuracy - 4.0 / 5.0).abs() < 1e-12);
        assert!((r.mean_dice - 0.8).abs() < 1e-12);
        assert!((r.mean_class_accuracy - (2.0 / 3.0 + 1.0) / 2.0).abs() < 1e-12);
        let err = cm
            .update(&Tensor::from_slice(&[5i64]), &Tensor::from_slice(&[0i64]))
            .unwrap_err();
        assert!(err.to_string().contains("prediction class 5"), "{err}");
    }
}
