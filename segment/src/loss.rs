//! Segmentation losses over logits `(N, C, H, W)` and targets `(N, H, W)` (int64 class indices,
//! [`IGNORE_INDEX`] = ignore), and their sums.
//!
//! - **Cross-entropy**: PyTorch's `cross_entropy(ignore_index=255)`, the mean over counted pixels.
//! - **Dice** (smp's `DiceLoss(mode="multiclass")`): softmax probabilities and one-hot targets,
//!   ignored pixels left out of both; per class `1 − 2·Σ p·t / max(Σ (p + t), eps)` over the batch;
//!   classes absent from the batch's targets count as 0; the mean over all classes.
//! - **Focal** (Lin et al., 2017, on the softmax): `−(1 − p_t)^γ · log p_t` averaged over counted
//!   pixels, γ = 2 by default; γ = 0 is the cross-entropy.
//!
//! A batch in which every pixel is ignored gives 0 (with a graph), not NaN.

use std::fmt;
use std::str::FromStr;

use tch::{Kind, Reduction, Tensor};

/// The target value that counts nowhere.
pub const IGNORE_INDEX: i64 = 255;

/// One loss term.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LossTerm {
    /// Cross-entropy with the ignore index.
    CrossEntropy,
    /// Soft Dice.
    Dice,
    /// Softmax focal loss with this γ.
    Focal {
        /// Focusing parameter.
        gamma: f64,
    },
}

/// A weighted sum of terms, written `ce`, `dice`, `focal`, `ce+dice`, `focal+0.5*dice`, …
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentationLoss {
    /// `(weight, term)`.
    pub terms: Vec<(f64, LossTerm)>,
}

impl FromStr for SegmentationLoss {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut terms = Vec::new();
        for part in s.split('+').map(str::trim) {
            let (weight, name) = match part.split_once('*') {
                Some((w, n)) => (
                    w.trim()
                        .parse::<f64>()
                        .map_err(|_| format!("loss {s:?}: weight {w:?} is not a number"))?,
                    n.trim(),
                ),
                None => (1.0, part),
            };
            let term = match name {
                "ce" | "cross_entropy" => LossTerm::CrossEntropy,
                "dice" => LossTerm::Dice,
                "focal" => LossTerm::Focal { gamma: 2.0 },
                other => {
                    return Err(format!(
                        "loss {s:?}: unknown term {other:?} (ce, dice, focal, joined with +, \
                         optionally weighted as 0.5*dice)"
                    ))
                }
            };
            terms.push((weight, term));
        }
        Ok(SegmentationLoss { terms })
    }
}

impl fmt::Display for SegmentationLoss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .terms
            .iter()
            .map(|(w, t)| {
                let name = match t {
                    LossTerm::CrossEntropy => "ce",
                    LossTerm::Dice => "dice",
                    LossTerm::Focal { .. } => "focal",
                };
                if *w == 1.0 {
                    name.to_string()
                } else {
                    format!("{w}*{name}")
                }
            })
            .collect();
        write!(f, "{}", parts.join("+"))
    }
}

impl SegmentationLoss {
    /// The weighted sum over the terms.
    pub fn compute(&self, logits: &Tensor, target: &Tensor) -> Tensor {
        let mut total: Option<Tensor> = None;
        for (w, term) in &self.terms {
            let value = match term {
                LossTerm::CrossEntropy => cross_entropy(logits, target),
                LossTerm::Dice => dice_loss(logits, target),
                LossTerm::Focal { gamma } => focal_loss(logits, target, *gamma),
            } * *w;
            total = Some(match total {
                Some(t) => t + value,
                None => value,
            });
        }
        total.unwrap_or_else(|| logits.sum(Kind::Float) * 0.0)
    }
}

fn valid_mask(target: &Tensor) -> Tensor {
    target.ne(IGNORE_INDEX)
}

/// Cross-entropy with [`IGNORE_INDEX`], the mean over counted pixels.
pub fn cross_entropy(logits: &Tensor, target: &Tensor) -> Tensor {
    if valid_mask(target).sum(Kind::Int64).int64_value(&[]) == 0 {
        return logits.sum(Kind::Float) * 0.0;
    }
    logits.cross_entropy_loss::<Tensor>(target, None, Reduction::Mean, IGNORE_INDEX, 0.0)
}

/// smp's multiclass soft Dice loss (see the module documentation).
pub fn dice_loss(logits: &Tensor, target: &Tensor) -> Tensor {
    let c = logits.size()[1];
    let valid = valid_mask(target).unsqueeze(1).to_kind(logits.kind()); // N,1,H,W
    let probs = logits.softmax(1, logits.kind()) * &valid;
    // Ignored pixels point at class 0 for the one-hot, then are zeroed by `valid`.
    let t = target.where_scalarother(&valid_mask(target), 0);
    let onehot = t.one_hot(c).permute([0, 3, 1, 2]).to_kind(logits.kind()) * &valid;
    let dims: &[i64] = &[0, 2, 3];
    let intersection = (&probs * &onehot).sum_dim_intlist(dims, false, logits.kind());
    let cardinality = (&probs + &onehot).sum_dim_intlist(dims, false, logits.kind());
    let dice = (intersection * 2.0) / cardinality.clamp_min(1e-7);
    let present = onehot
        .sum_dim_intlist(dims, false, logits.kind())
        .gt(0.0)
        .to_kind(logits.kind());
    (dice.neg() + 1.0).g_mul(&present).mean(logits.kind())
}

/// Softmax focal loss, the mean over counted pixels.
pub fn focal_loss(logits: &Tensor, target: &Tensor, gamma: f64) -> Tensor {
    let valid = valid_mask(target);
    let count = valid.sum(Kind::Int64).int64_value(&[]);
    if count == 0 {
        return logits.sum(Kind::Float) * 0.0;
    }
    let t = target.where_scalarother(&valid, 0).unsqueeze(1);
    let log_pt = logits
        .log_softmax(1, logits.kind())
        .gather(1, &t, false)
        .squeeze_dim(1);
    let pt = log_pt.exp();
    let per_pixel = (pt.neg() + 1.0).pow_tensor_scalar(gamma).neg() * log_pt;
    (per_pixel * valid.to_kind(logits.kind())).sum(logits.kind()) / count as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn names_parse_and_print() {
        let l: SegmentationLoss = "ce+0.5*dice".parse().expect("parse");
        assert_eq!(
            l.terms,
            vec![(1.0, LossTerm::CrossEntropy), (0.5, LossTerm::Dice)]
        );
        assert_eq!(l.to_string(), "ce+0.5*dice");
        assert!("ce+lovasz".parse::<SegmentationLoss>().is_err());
    }

    #[test]
    fn focal_with_gamma_zero_is_cross_entropy_and_all_ignored_is_zero() {
        tch::manual_seed(0);
        let logits = Tensor::randn([2, 4, 5, 6], (Kind::Float, Device::Cpu));
        let target = Tensor::randint(4, [2, 5, 6], (Kind::Int64, Device::Cpu));
        let _ = target.get(0).get(0).fill_(IGNORE_INDEX);
        let ce = cross_entropy(&logits, &target).double_value(&[]);
        let focal0 = focal_loss(&logits, &target, 0.0).double_value(&[]);
        assert!((ce - focal0).abs() < 1e-6, "{ce} vs {focal0}");
        let ignored = Tensor::full([2, 5, 6], IGNORE_INDEX, (Kind::Int64, Device::Cpu));
        for l in ["ce", "dice", "focal"] {
            let loss: SegmentationLoss = l.parse().expect("parse");
            assert_eq!(
                loss.compute(&logits, &ignored).double_value(&[]),
                0.0,
                "{l}"
            );
        }
    }

    #[test]
    fn a_perfect_prediction_has_near_zero_dice_loss() {
        let target = Tensor::from_slice(&[0i64, 1, 2, 1]).view([1, 2, 2]);
        let logits = target.one_hot(3).permute([0, 3, 1, 2]).to_kind(Kind::Float) * 50.0;
        assert!(dice_loss(&logits, &target).double_value(&[]) < 1e-6);
    }
}
