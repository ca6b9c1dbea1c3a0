//! One epoch's training steps: the learning rate for each iteration, the task's loss (under
//! autocast with AMP), the NaN guard, backward with accumulation, the gradients averaged over the
//! ranks, loss-scale checks, clipping, the optimiser and the EMA; Ctrl-C honoured between steps.

use std::sync::atomic::Ordering;

use super::{EpochProgress, Fit, FitOutcome, StopReason, TrainTask};
use crate::error::{Error, Result};
use crate::optim::Optimizer;

/// What an epoch's steps leave for its end: the summed loss, or why training stops now.
pub(super) enum Steps {
    /// Every step ran; the sum of their losses.
    Done(f64),
    /// Interrupted between steps: the epoch is dropped.
    Stopped(FitOutcome),
}

impl Fit<'_> {
    /// Runs the steps of `epoch` (0-based).
    pub(super) fn train_epoch(
        &mut self,
        task: &mut dyn TrainTask,
        opt: &mut Optimizer,
        epoch: usize,
    ) -> Result<Steps> {
        let (cfg, steps) = (self.cfg, self.steps);
        let mut loss_sum = 0.0;
        opt.zero_grad()?;
        let progress = EpochProgress::new(
            epoch + 1,
            cfg.epochs,
            steps,
            self.control.quiet || !self.main,
        );
        let mut steps_since_update = 0usize;
        for step in 0..steps {
            if self
                .control
                .stop
                .as_ref()
                .is_some_and(|f| f.load(Ordering::SeqCst))
            {
                progress.finish();
                tracing::warn!(
                    epoch = epoch + 1,
                    step,
                    run = %self.dir.path().display(),
                    "interrupted; the last completed epoch's checkpoint is kept"
                );
                return Ok(Steps::Stopped(FitOutcome {
                    epochs_completed: epoch,
                    best: self.best,
                    reason: StopReason::Interrupted,
                }));
            }
            let it = (epoch * steps + step) as u64;
            opt.set_lr(cfg.lr * cfg.schedule.factor(it, self.total_iters()));
            let accumulate = task
                .before_step(opt, epoch, step)?
                .unwrap_or(cfg.accumulate)
                .max(1);
            let loss = if self.autocast {
                tch::autocast(true, || task.train_step(epoch, step))?
            } else {
                task.train_step(epoch, step)?
            };
            let value = loss.double_value(&[]);
            if !value.is_finite() {
                let kept = if epoch > 0 {
                    format!(
                        "the checkpoint of epoch {epoch} is kept in {}",
                        self.dir.checkpoint().display()
                    )
                } else {
                    "no checkpoint had been written yet".into()
                };
                return Err(Error::Invalid(format!(
                    "loss became {value} at epoch {} step {}; training stopped and {kept}",
                    epoch + 1,
                    step + 1
                )));
            }
            loss_sum += value;
            progress.step(step, loss_sum / (step + 1) as f64);
            let loss_scale = self.scaler.map_or(1.0, |s| s.scale);
            let divisor = if cfg.accumulate_mean {
                accumulate as f64
            } else {
                1.0
            };
            (loss * (loss_scale / divisor)).backward();
            steps_since_update += 1;
            if steps_since_update >= accumulate || step + 1 == steps {
                steps_since_update = 0;
                self.update(opt, epoch, step)?;
            }
        }
        progress.finish();
        Ok(Steps::Done(loss_sum))
    }

    /// One optimiser update from the accumulated gradients.
    fn update(&mut self, opt: &mut Optimizer, epoch: usize, step: usize) -> Result<()> {
        if let Some(g) = self.group {
            crate::distributed::average_gradients(g, &opt.gradients())?;
        }
        let finite = self
            .scaler
            .as_mut()
            .is_none_or(|s| s.unscale_and_check(opt));
        if finite {
            if let Some(max) = self.cfg.grad_clip {
                clip_grad_norm(opt, max);
            }
            opt.step()?;
            if let Some(e) = self.ema.as_mut() {
                e.update(self.vs);
            }
        } else {
            tracing::warn!(
                epoch = epoch + 1,
                step = step + 1,
                "inf/NaN gradients under loss scaling: step skipped"
            );
        }
        opt.zero_grad()
    }
}

/// Clips the global L2 norm of all gradients to `max`, as `torch.nn.utils.clip_grad_norm_`.
fn clip_grad_norm(opt: &Optimizer, max: f64) {
    let grads = opt.gradients();
    if grads.is_empty() {
        return;
    }
    let total: f64 = grads
        .iter()
        .map(|g| g.square().sum(tch::Kind::Double).double_value(&[]))
        .sum::<f64>()
        .sqrt();
    let coef = max / (total + 1e-6);
    if coef < 1.0 {
        tch::no_grad(|| {
            for g in &grads {
                let _ = g.shallow_clone().g_mul_scalar_(coef);
            }
        });
    }
}
