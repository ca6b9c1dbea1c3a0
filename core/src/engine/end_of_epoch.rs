//! The end of an epoch: validation (of the EMA weights when there are some), the monitored
//! metric, `last` and `best` weights, `results.csv`, the resume checkpoint and the chart, then
//! early stopping and a requested stop.

use std::time::Instant;

use tch::nn::VarStore;
use tch::Tensor;

use super::resume::{append_results, ResumeState};
use super::{Fit, FitOutcome, StopReason, TrainTask};
use crate::checkpoint;
use crate::error::{Error, Result};
use crate::optim::Optimizer;

impl Fit<'_> {
    /// Ends `epoch` (0-based), begun at `started`, whose steps' losses summed to `loss_sum`;
    /// `Some` when training stops here.
    pub(super) fn end_epoch(
        &mut self,
        task: &mut dyn TrainTask,
        opt: &Optimizer,
        epoch: usize,
        loss_sum: f64,
        started: Instant,
    ) -> Result<Option<FitOutcome>> {
        let (vs, cfg, group, dir) = (self.vs, self.cfg, self.group, &self.dir);
        // Validate (and save) the EMA weights when there are some, then restore the model's.
        let backup: Option<Vec<(String, Tensor)>> = self.ema.as_ref().map(|e| {
            let b = sorted_vars(vs)
                .into_iter()
                .map(|(n, t)| (n, t.detach().copy()))
                .collect();
            copy_into(vs, &e.shadow);
            b
        });
        if let Some(g) = group {
            crate::distributed::broadcast_buffers(g, vs)?;
        }
        let mut metrics = task.train_columns();
        metrics.extend(task.validate(epoch)?);
        // The epoch's work, training and validation: the checkpoint writes below take what the
        // disk takes (a frozen backbone's megabytes every epoch), which is not the training's.
        let seconds = started.elapsed().as_secs_f64();
        let mut train_loss = [loss_sum / self.steps as f64];
        if let Some(g) = group {
            g.all_reduce_f64(&mut train_loss, crate::distributed::ReduceOp::Avg)?;
        }
        let train_loss = train_loss[0];
        let monitored = if cfg.monitor == "train_loss" {
            Some(train_loss)
        } else {
            metrics
                .iter()
                .find(|(n, _)| *n == cfg.monitor)
                .map(|(_, v)| *v)
        }
        .ok_or_else(|| {
            Error::Invalid(format!(
                "monitored metric {:?} is not among the task's metrics",
                cfg.monitor
            ))
        })?;
        let monitored = match group {
            Some(g) => {
                let mut v = [monitored];
                g.broadcast_f64(&mut v, 0)?;
                v[0]
            }
            None => monitored,
        };
        let improved = self.best.is_none_or(|(b, _)| {
            if cfg.maximize {
                monitored > b
            } else {
                monitored < b
            }
        });
        let weights = sorted_vars(vs);
        let named = || weights.iter().map(|(n, t)| (n.as_str(), t));
        if self.main {
            checkpoint::save_safetensors(dir.last(), named())?;
        }
        if improved {
            self.best = Some((monitored, epoch + 1));
            self.bad_epochs = 0;
            if self.main {
                checkpoint::save_safetensors(dir.best(), named())?;
            }
        } else {
            self.bad_epochs += 1;
        }
        if let Some(b) = backup {
            copy_into(vs, &b);
        }
        let lr = opt.lrs().first().copied().unwrap_or(0.0);
        if self.main {
            append_results(dir, epoch + 1, train_loss, &metrics, lr, seconds)?;
            ResumeState {
                epoch: epoch + 1,
                best: self.best,
                bad_epochs: self.bad_epochs,
            }
            .save(
                dir,
                vs,
                opt,
                self.ema.as_ref(),
                self.control.config_toml.as_deref(),
            )?;
            // The chart first: every way out of the loop leaves it showing the last epoch.
            #[cfg(feature = "plot")]
            crate::metrics::charts::results_png(&dir.results(), &dir.results_png())?;
            if let Some(board) = self.board.as_mut() {
                // results.csv's columns, the epoch as the step; then each group's rate and the
                // pictures drawn during the epoch.
                let mut scalars = vec![("train_loss".to_string(), train_loss)];
                scalars.extend(metrics.iter().cloned());
                scalars.push(("lr".into(), lr));
                scalars.push(("seconds".into(), seconds));
                scalars.extend(
                    opt.lrs()
                        .iter()
                        .enumerate()
                        .map(|(i, v)| (format!("lr/pg{i}"), *v)),
                );
                let step = (epoch + 1) as i64;
                board.scalars(step, &scalars)?;
                let since = std::time::SystemTime::now() - started.elapsed();
                for (tag, png) in pictures_since(&dir.0, since)? {
                    board.png(&tag, step, png)?;
                }
                board.flush()?;
            }
        }
        let stop = |reason| FitOutcome {
            epochs_completed: epoch + 1,
            best: self.best,
            reason,
        };
        if cfg.patience.is_some_and(|p| self.bad_epochs >= p) {
            return Ok(Some(stop(StopReason::EarlyStopped)));
        }
        if self.control.stop_after == Some(epoch + 1) && epoch + 1 < cfg.epochs {
            return Ok(Some(stop(StopReason::Interrupted)));
        }
        Ok(None)
    }
}

/// The PNG files directly in `dir` written at or after `since`, by name (the tag: the file's
/// stem), in name order.
fn pictures_since(
    dir: &std::path::Path,
    since: std::time::SystemTime,
) -> Result<Vec<(String, Vec<u8>)>> {
    let mut found = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let fresh = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t >= since);
        if fresh && path.extension().is_some_and(|e| e == "png") {
            let tag = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let png = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            found.push((tag, png));
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(found)
}

/// The model's variables, sorted by name.
pub(super) fn sorted_vars(vs: &VarStore) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// Copies `src` tensors into the model variables of the same names.
fn copy_into(vs: &VarStore, src: &[(String, Tensor)]) {
    let vars = vs.variables();
    tch::no_grad(|| {
        for (n, t) in src {
            if let Some(v) = vars.get(n) {
                v.shallow_clone().copy_(t);
            }
        }
    });
}
