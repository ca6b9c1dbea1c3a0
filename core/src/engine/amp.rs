//! Mixed precision's loss scaling, as PyTorch's `GradScaler`.

use crate::optim::Optimizer;

/// Dynamic loss scaling (PyTorch's `GradScaler` rule): start at 2^16, halve and skip the step when
/// a gradient is inf/NaN, double after 2000 steps without one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossScaler {
    /// Current scale.
    pub scale: f64,
    good_steps: u32,
}

impl Default for LossScaler {
    fn default() -> Self {
        LossScaler {
            scale: 65536.0,
            good_steps: 0,
        }
    }
}

impl LossScaler {
    /// Unscales the gradients of `opt` in place and tells whether all are finite; updates the scale.
    pub fn unscale_and_check(&mut self, opt: &Optimizer) -> bool {
        let grads = opt.gradients();
        let finite = tch::no_grad(|| {
            grads.iter().all(|g| {
                let _ = g.shallow_clone().g_mul_scalar_(1.0 / self.scale);
                g.isfinite().all().int64_value(&[]) == 1
            })
        });
        if finite {
            self.good_steps += 1;
            if self.good_steps == 2000 {
                self.scale *= 2.0;
                self.good_steps = 0;
            }
        } else {
            self.scale /= 2.0;
            self.good_steps = 0;
        }
        finite
    }
}
