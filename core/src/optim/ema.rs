//! Exponential moving average of weights with the ramped decay YOLO training uses:
//! `d = decay · (1 − exp(−updates / tau))`, `ema = d · ema + (1 − d) · model` for every
//! floating-point variable (parameters and BatchNorm statistics alike).

use tch::nn::VarStore;
use tch::Tensor;

/// A shadow copy of a model's floating-point variables.
#[derive(Debug)]
pub struct ModelEma {
    /// `(name, shadow tensor)`, sorted by name.
    pub shadow: Vec<(String, Tensor)>,
    /// Updates so far.
    pub updates: u64,
    /// Asymptotic decay (0.9999).
    pub decay: f64,
    /// Ramp time constant in updates (2000).
    pub tau: f64,
}

impl ModelEma {
    /// Starts from a copy of the model's current weights.
    pub fn new(vs: &VarStore, decay: f64, tau: f64) -> Self {
        let mut shadow: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.is_floating_point())
            .map(|(n, t)| (n, t.detach().copy()))
            .collect();
        shadow.sort_by(|a, b| a.0.cmp(&b.0));
        ModelEma {
            shadow,
            updates: 0,
            decay,
            tau,
        }
    }

    /// The decay used at the current update count.
    pub fn current_decay(&self) -> f64 {
        self.decay * (1.0 - (-(self.updates as f64) / self.tau).exp())
    }

    /// Moves the shadow weights towards the model's.
    pub fn update(&mut self, vs: &VarStore) {
        self.updates += 1;
        let d = self.current_decay();
        let vars = vs.variables();
        tch::no_grad(|| {
            for (name, s) in &mut self.shadow {
                if let Some(v) = vars.get(name) {
                    // `ema + (1 − d)(v − ema)`: equal to `d·ema + (1 − d)·v`, and exact for
                    // variables that did not move (frozen layers stay bit-identical).
                    let _ = s.lerp_(&v.detach(), 1.0 - d);
                }
            }
        });
    }
}
