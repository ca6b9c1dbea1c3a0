//! Classification metrics with scikit-learn's definitions: `confusion_matrix` (rows = true class,
//! columns = prediction), `precision_recall_fscore_support(labels=range(C), zero_division=0)` per
//! class and with macro / weighted / micro averages, `accuracy_score`, `top_k_accuracy_score`,
//! and `balanced_accuracy_score` (mean recall over classes that occur in the ground truth).
//!
//! Zero division: a class never predicted has precision 0, a class never present has recall 0,
//! and F1 is 0 when precision + recall is 0 — scikit-learn's `zero_division=0`.

use serde::Serialize;

use crate::error::{Error, Result};

/// Counts of (true class, predicted class) pairs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfusionMatrix {
    /// Number of classes.
    pub num_classes: usize,
    /// Row-major `num_classes × num_classes` counts: `counts[t * C + p]`.
    pub counts: Vec<u64>,
}

impl ConfusionMatrix {
    /// An empty matrix for `num_classes` classes.
    pub fn new(num_classes: usize) -> Self {
        ConfusionMatrix {
            num_classes,
            counts: vec![0; num_classes * num_classes],
        }
    }

    /// Adds pairs of true and predicted labels; a label outside `0..C` is an error naming it.
    pub fn update(&mut self, targets: &[usize], predictions: &[usize]) -> Result<()> {
        if targets.len() != predictions.len() {
            return Err(Error::Invalid(format!(
                "{} targets but {} predictions",
                targets.len(),
                predictions.len()
            )));
        }
        let c = self.num_classes;
        if let Some((i, &l)) = targets
            .iter()
            .chain(predictions)
            .enumerate()
            .find(|(_, &l)| l >= c)
        {
            let which = if i < targets.len() {
                "target"
            } else {
                "prediction"
            };
            return Err(Error::Invalid(format!(
                "{which} label {l} is not below the {c} classes"
            )));
        }
        for (&t, &p) in targets.iter().zip(predictions) {
            self.counts[t * c + p] += 1;
        }
        Ok(())
    }

    /// The count of samples of class `t` predicted as `p`.
    pub fn get(&self, t: usize, p: usize) -> u64 {
        self.counts[t * self.num_classes + p]
    }

    /// Samples per true class (row sums).
    pub fn support(&self) -> Vec<u64> {
        (0..self.num_classes)
            .map(|t| (0..self.num_classes).map(|p| self.get(t, p)).sum())
            .collect()
    }

    /// Predictions per class (column sums).
    pub fn predicted(&self) -> Vec<u64> {
        (0..self.num_classes)
            .map(|p| (0..self.num_classes).map(|t| self.get(t, p)).sum())
            .collect()
    }

    /// Total number of samples.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Each row divided by its sum (`confusion_matrix(normalize="true")`); empty rows stay 0.
    pub fn normalized_rows(&self) -> Vec<f64> {
        let support = self.support();
        let c = self.num_classes;
        (0..c * c)
            .map(|i| ratio(self.counts[i] as f64, support[i / c] as f64))
            .collect()
    }
}

/// `a / b`, or 0 when `b` is 0 (scikit-learn's `zero_division=0`).
fn ratio(a: f64, b: f64) -> f64 {
    if b == 0.0 {
        0.0
    } else {
        a / b
    }
}

/// Precision, recall, F1 and support of one class or one average.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Prf {
    /// Precision.
    pub precision: f64,
    /// Recall.
    pub recall: f64,
    /// F1 (harmonic mean of the two).
    pub f1: f64,
    /// Number of true samples.
    pub support: u64,
}

/// Everything `classify eval` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassificationReport {
    /// Fraction of correct predictions.
    pub accuracy: f64,
    /// Mean recall over classes present in the ground truth.
    pub balanced_accuracy: f64,
    /// Per class, in class order.
    pub per_class: Vec<Prf>,
    /// Unweighted mean over all classes.
    pub macro_avg: Prf,
    /// Mean weighted by support.
    pub weighted_avg: Prf,
    /// From global counts (equals accuracy for single-label data).
    pub micro_avg: Prf,
    /// The matrix it was computed from.
    pub confusion: ConfusionMatrix,
}

impl ClassificationReport {
    /// Computes every metric from a confusion matrix.
    pub fn from_confusion(cm: &ConfusionMatrix) -> Self {
        let c = cm.num_classes;
        let support = cm.support();
        let predicted = cm.predicted();
        let per_class: Vec<Prf> = (0..c)
            .map(|k| {
                let tp = cm.get(k, k) as f64;
                let precision = ratio(tp, predicted[k] as f64);
                let recall = ratio(tp, support[k] as f64);
                Prf {
                    precision,
                    recall,
                    f1: ratio(2.0 * precision * recall, precision + recall),
                    support: support[k],
                }
            })
            .collect();
        let total: u64 = support.iter().sum();
        let mean = |f: &dyn Fn(&Prf) -> f64| ratio(per_class.iter().map(f).sum(), c as f64);
        let weighted = |f: &dyn Fn(&Prf) -> f64| {
            ratio(
                per_class.iter().map(|p| f(p) * p.support as f64).sum(),
                total as f64,
            )
        };
        let macro_avg = Prf {
            precision: mean(&|p| p.precision),
            recall: mean(&|p| p.recall),
            f1: mean(&|p| p.f1),
            support: total,
        };
        let weighted_avg = Prf {
            precision: weighted(&|p| p.precision),
            recall: weighted(&|p| p.recall),
            f1: weighted(&|p| p.f1),
            support: total,
        };
        let tp: u64 = (0..c).map(|k| cm.get(k, k)).sum();
        let accuracy = ratio(tp as f64, total as f64);
        let micro_avg = Prf {
            precision: accuracy,
            recall: accuracy,
            f1: accuracy,
            support: total,
        };
        let present: Vec<&Prf> = per_class.iter().filter(|p| p.support > 0).collect();
        let balanced_accuracy = ratio(present.iter().map(|p| p.recall).sum(), present.len() as f64);
        ClassificationReport {
            accuracy,
            balanced_accuracy,
            per_class,
            macro_avg,
            weighted_avg,
            micro_avg,
            confusion: cm.clone(),
        }
    }
}

/// Fraction of samples whose true class is among the `k` highest scores. `scores` is row-major
/// `N × C`. Exact ties rank the higher class index first, as scikit-learn's
/// `top_k_accuracy_score` does (a reversed stable argsort).
pub fn top_k_accuracy(
    scores: &[f32],
    num_classes: usize,
    targets: &[usize],
    k: usize,
) -> Result<f64> {
    if num_classes == 0 || scores.len() != targets.len() * num_classes {
        return Err(Error::Invalid(format!(
            "{} scores do not form {} rows of {num_classes} classes",
            scores.len(),
            targets.len()
        )));
    }
    let mut hits = 0usize;
    for (row, &t) in scores.chunks(num_classes).zip(targets) {
        if t >= num_classes {
            return Err(Error::Invalid(format!(
                "target label {t} is not below the {num_classes} classes"
            )));
        }
        let s = row[t];
        // Rank of the true class: how many classes beat it (higher score, or equal and later).
        let better = row
            .iter()
            .enumerate()
            .filter(|&(j, &v)| v > s || (v == s && j > t))
            .count();
        if better < k {
            hits += 1;
        }
    }
    Ok(ratio(hits as f64, targets.len() as f64))
}

/// The index of the largest score in each row of an `N × C` matrix (first one on ties).
pub fn argmax_rows(scores: &[f32], num_classes: usize) -> Vec<usize> {
    scores
        .chunks(num_classes)
        .map(|row| {
            row.iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |best, (j, &v)| {
                    if v > best.1 {
                        (j, v)
                    } else {
                        best
                    }
                })
                .0
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    #[test]
    fn hand_worked_three_class_example() {
        // true: 0 0 1 1 2 2 ; pred: 0 1 1 1 0 2
        let mut cm = ConfusionMatrix::new(3);
        cm.update(&[0, 0, 1, 1, 2, 2], &[0, 1, 1, 1, 0, 2]).unwrap();
        assert_eq!(cm.counts, [1, 1, 0, 0, 2, 0, 1, 0, 1]);
        let r = ClassificationReport::from_confusion(&cm);
        assert_relative_eq!(r.accuracy, 4.0 / 6.0);
        // class 0: P = 1/2, R = 1/2; class 1: P = 2/3, R = 1; class 2: P = 1, R = 1/2.
        assert_relative_eq!(r.per_class[1].precision, 2.0 / 3.0);
        assert_relative_eq!(r.per_class[1].f1, 0.8);
        assert_relative_eq!(r.macro_avg.recall, (0.5 + 1.0 + 0.5) / 3.0);
        assert_relative_eq!(r.balanced_accuracy, (0.5 + 1.0 + 0.5) / 3.0);
        assert_relative_eq!(r.confusion.normalized_rows()[4], 1.0);
    }

    #[test]
    fn absent_classes_follow_zero_division_zero() {
        // Class 2 never occurs and is never predicted: P = R = F1 = 0, still in the macro mean,
        // excluded from balanced accuracy.
        let mut cm = ConfusionMatrix::new(3);
        cm.update(&[0, 1], &[0, 1]).unwrap();
        let r = ClassificationReport::from_confusion(&cm);
        assert_eq!(
            r.per_class[2],
            Prf {
                precision: 0.0,
                recall: 0.0,
                f1: 0.0,
                support: 0
            }
        );
        assert_relative_eq!(r.macro_avg.f1, 2.0 / 3.0);
        assert_relative_eq!(r.balanced_accuracy, 1.0);
        let err = cm.update(&[3], &[0]).unwrap_err().to_string();
        assert!(err.contains("target label 3"), "{err}");
    }

    #[test]
    fn top_k_counts_the_true_class_among_the_best_k() {
        let scores = [
            0.1, 0.5, 0.4, /**/ 0.3, 0.3, 0.4, /**/ 0.9, 0.05, 0.05,
        ];
        assert_relative_eq!(
            top_k_accuracy(&scores, 3, &[2, 0, 0], 1).unwrap(),
            1.0 / 3.0
        );
        // Row 2's true class 0 ties with class 1, which ranks first (higher index): a miss at k=2.
        assert_relative_eq!(
            top_k_accuracy(&scores, 3, &[2, 0, 0], 2).unwrap(),
            2.0 / 3.0
        );
        assert_relative_eq!(top_k_accuracy(&scores, 3, &[2, 0, 0], 3).unwrap(), 1.0);
        assert_eq!(argmax_rows(&scores, 3), [1, 2, 0]);
    }
}
