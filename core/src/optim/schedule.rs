//! Learning-rate schedules as a factor of the base rate per iteration, with linear warmup.
//!
//! Definitions (t = iteration after warmup, T = iterations after warmup, f = factor):
//! step: γ^⌊t/s⌋; multistep: γ^(number of milestones ≤ t); cosine: m + (1−m)(1+cos(πt/T))/2;
//! linear: 1 − (1−m)·t/T; poly: (1 − t/T)^p; one-cycle: cosine rise from 1/div to 1 over the
//! first `pct` of T, then cosine fall to 1/(div·final_div) (as `torch.optim.lr_scheduler.OneCycleLR`
//! with `anneal_strategy="cos"`). Warmup multiplies by a linear ramp from `warmup_start` to 1
//! over `warmup_iters` iterations.

use std::f64::consts::PI;

/// The shape of the decay.
#[derive(Debug, Clone, PartialEq)]
pub enum Decay {
    /// Constant.
    Constant,
    /// × `gamma` every `step` iterations.
    Step { step: u64, gamma: f64 },
    /// × `gamma` at each milestone.
    MultiStep { milestones: Vec<u64>, gamma: f64 },
    /// Cosine from 1 to `min_factor`.
    Cosine { min_factor: f64 },
    /// Linear from 1 to `final_factor` (YOLO: `lrf` 0.01).
    Linear { final_factor: f64 },
    /// Polynomial to 0 with `power` (DeepLab: 0.9).
    Poly { power: f64 },
    /// One-cycle: starts at 1/`div`, peaks at 1 after `pct` of the run, ends at 1/(`div`·`final_div`).
    OneCycle { pct: f64, div: f64, final_div: f64 },
}

/// A learning-rate schedule. Its length is the training's, which the engine knows (epochs ×
/// steps per epoch) and passes to [`Schedule::factor`].
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// The decay after warmup.
    pub decay: Decay,
    /// Warmup iterations (0 for none).
    pub warmup_iters: u64,
    /// Factor at the first warmup iteration.
    pub warmup_start: f64,
}

impl Default for Schedule {
    /// A constant learning rate with no warmup.
    fn default() -> Self {
        Schedule {
            decay: Decay::Constant,
            warmup_iters: 0,
            warmup_start: 1.0,
        }
    }
}

impl Schedule {
    /// The factor of the base learning rate at iteration `it` (0-based) of `total_iters` (warmup
    /// included).
    pub fn factor(&self, it: u64, total_iters: u64) -> f64 {
        let warm = if it < self.warmup_iters {
            self.warmup_start + (1.0 - self.warmup_start) * it as f64 / self.warmup_iters as f64
        } else {
            1.0
        };
        let t = it.saturating_sub(self.warmup_iters) as f64;
        let total = total_iters.saturating_sub(self.warmup_iters).max(1) as f64;
        let frac = (t / total).min(1.0);
        let f = match &self.decay {
            Decay::Constant => 1.0,
            Decay::Step { step, gamma } => gamma.powi((t as u64 / (*step).max(1)) as i32),
            Decay::MultiStep { milestones, gamma } => {
                gamma.powi(milestones.iter().filter(|&&m| m as f64 <= t).count() as i32)
            }
            Decay::Cosine { min_factor } => {
                min_factor + (1.0 - min_factor) * (1.0 + (PI * frac).cos()) / 2.0
            }
            Decay::Linear { final_factor } => 1.0 - (1.0 - final_factor) * frac,
            Decay::Poly { power } => (1.0 - frac).powf(*power),
            Decay::OneCycle {
                pct,
                div,
                final_div,
            } => {
                let cos_anneal = |start: f64, end: f64, x: f64| {
                    end + (start - end) * (1.0 + (PI * x).cos()) / 2.0
                };
                let (start, peak, end) = (1.0 / div, 1.0, 1.0 / (div * final_div));
                // torch counts phases in steps: the peak is at step pct·T − 1, the end at T − 1.
                let up = pct * total - 1.0;
                let last = total - 1.0;
                if t <= up {
                    cos_anneal(start, peak, t / up.max(1.0))
                } else {
                    cos_anneal(peak, end, (t - up) / (last - up).max(1.0))
                }
            }
        };
        warm * f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `decay` after `warmup` iterations from 0.1, as a function of the iteration over `total`.
    fn sched(decay: Decay, total: u64, warmup: u64) -> impl Fn(u64) -> f64 {
        let s = Schedule {
            decay,
            warmup_iters: warmup,
            warmup_start: 0.1,
        };
        move |it| s.factor(it, total)
    }

    #[test]
    fn hand_computed_curves() {
        let s = sched(
            Decay::Step {
                step: 3,
                gamma: 0.5,
            },
            10,
            0,
        );
        assert_eq!(
            (0..7).map(&s).collect::<Vec<_>>(),
            [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25]
        );
        let s = sched(
            Decay::MultiStep {
                milestones: vec![2, 5],
                gamma: 0.1,
            },
            10,
            0,
        );
        let f: Vec<f64> = (0..6).map(&s).collect();
        assert!(
            (f[1] - 1.0).abs() < 1e-12 && (f[2] - 0.1).abs() < 1e-12 && (f[5] - 0.01).abs() < 1e-12
        );
        // Cosine over 4 iterations to 0: 1, (1+cos(π/4))/2, 0.5, (1+cos(3π/4))/2, 0.
        let s = sched(Decay::Cosine { min_factor: 0.0 }, 4, 0);
        assert!((s(1) - (1.0 + std::f64::consts::FRAC_1_SQRT_2) / 2.0).abs() < 1e-12);
        assert!((s(2) - 0.5).abs() < 1e-12 && s(4).abs() < 1e-12);
        // Linear to 0.01 over 100: at 50, 1 − 0.99·0.5 = 0.505.
        let s = sched(Decay::Linear { final_factor: 0.01 }, 100, 0);
        assert!((s(50) - 0.505).abs() < 1e-12);
        // Poly 0.9 at half way: 0.5^0.9.
        let s = sched(Decay::Poly { power: 0.9 }, 10, 0);
        assert!((s(5) - 0.5f64.powf(0.9)).abs() < 1e-12);
        // Warmup over 4 iterations from 0.1: 0.1, 0.325, 0.55, 0.775, then the decay.
        let s = sched(Decay::Constant, 10, 4);
        assert!((s(1) - 0.325).abs() < 1e-12 && (s(4) - 1.0).abs() < 1e-12);
    }
}
