//! The epoch loop every task shares. A task supplies a loss per step and metrics per epoch
//! ([`TrainTask`]); the engine owns the learning-rate schedule, gradient accumulation and clipping,
//! the EMA, validation, `results.csv`, best/last weights, full checkpoints, exact resume, early
//! stopping and the NaN guard.
//!
//! Run folder (see [`crate::run`]):
//! ```text
//! <run>/config.toml                the resolved configuration (when given)
//! <run>/results.csv                one row per epoch: epoch, train_loss, metrics…, lr, seconds
//! <run>/weights/last.safetensors   model weights (EMA weights when EMA is on), PyTorch names
//! <run>/weights/best.safetensors   the same at the best monitored metric
//! <run>/checkpoint.safetensors     model + optimiser state + EMA + bookkeeping, for resume
//! <run>/results.png                one panel per results.csv column against epoch
//! ```
//! Every file is written atomically: killing the process at any instant leaves the previous
//! checkpoint loadable.
//!
//! **Data parallel.** Launched as one of several processes (`torchrun`, see
//! [`crate::distributed`]), [`fit`] trains one replica per rank as PyTorch's
//! `DistributedDataParallel` does: the weights are broadcast from rank 0 after loading (and after
//! a resume), each rank runs its shard of every epoch (the task's loader shards it), the
//! gradients are averaged over the ranks in ~25 MB buckets after the backward pass and before
//! loss-scale checks, clipping and the optimiser (once per optimiser step under accumulation), the
//! buffers (BatchNorm statistics) are set to rank 0's before each validation, and only rank 0
//! writes the run folder and shows progress. The monitored metric is rank 0's, so every rank
//! takes the same best/early-stopping decisions.
//!
//! **Determinism.** At the start of each epoch the engine seeds libtorch's generator from
//! `(seed, epoch)`. A task that draws its shuffling, augmentation and dropout from that generator
//! (or from its own streams derived from `(seed, epoch, index)`) continues after a resume exactly as
//! an uninterrupted run would, so no generator state needs saving. libtorch's generator is
//! process-global: two trainings running at the same time in one process would draw from each
//! other's stream, so run them one after the other.

mod progress;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

pub use crate::run::{new_run_dir, RunDir};
pub use progress::EpochProgress;

use tch::nn::VarStore;
use tch::Tensor;

use crate::atomic_file::write_atomic;
use crate::checkpoint::{self, LoadOptions, StateDict};
use crate::error::{Error, Result};
use crate::optim::{ModelEma, Optimizer, Schedule};

/// What the engine needs from a task.
pub trait TrainTask {
    /// Forward/backward steps in one epoch.
    fn steps_per_epoch(&self) -> usize;
    /// The (scalar) loss of step `step` of `epoch`, with the autograd graph attached.
    fn train_step(&mut self, epoch: usize, step: usize) -> Result<Tensor>;
    /// Validation metrics after `epoch`, by name.
    fn validate(&mut self, epoch: usize) -> Result<Vec<(String, f64)>>;

    /// Called before each epoch (also after a resume), e.g. to unfreeze layers at epoch k for
    /// gradual unfreezing (see [`crate::freeze`]).
    fn on_epoch_start(&mut self, _epoch: usize) -> Result<()> {
        Ok(())
    }

    /// Called before each step, after the engine set the scheduled learning rate: a task may
    /// take over per-group rates and momentum (YOLO's warmup) and return how many steps to
    /// accumulate before the next update (`None`: [`TrainConfig::accumulate`]).
    fn before_step(
        &mut self,
        _opt: &mut Optimizer,
        _epoch: usize,
        _step: usize,
    ) -> Result<Option<usize>> {
        Ok(None)
    }

    /// Extra training columns for `results.csv` after `train_loss` (e.g. the means of a loss's
    /// components over the epoch), read once at the end of each epoch.
    fn train_columns(&mut self) -> Vec<(String, f64)> {
        Vec::new()
    }
}

/// Training settings the engine applies.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    /// Epochs to run in all.
    pub epochs: usize,
    /// Base learning rate (the schedule multiplies it).
    pub lr: f64,
    /// Learning-rate schedule over all iterations; `total_iters` is filled in by the engine.
    pub schedule: Schedule,
    /// Forward/backward steps per optimiser update (1 = none).
    pub accumulate: usize,
    /// Average the accumulated gradients (true, the usual PyTorch loop) or sum them (false, as
    /// Ultralytics does, whose loss is already scaled by the batch size).
    pub accumulate_mean: bool,
    /// Clip the global gradient norm to this value.
    pub grad_clip: Option<f64>,
    /// EMA `(decay, tau)`; validation and saved weights then use the EMA weights.
    pub ema: Option<(f64, f64)>,
    /// Metric that decides `best` and early stopping (one of the task's names, or `train_loss`).
    pub monitor: String,
    /// Whether larger is better for `monitor`.
    pub maximize: bool,
    /// Stop after this many epochs without improvement.
    pub patience: Option<usize>,
    /// Drives every random choice (see the module documentation).
    pub seed: u64,
    /// Mixed precision: float16 autocast on CUDA with dynamic loss scaling (as PyTorch's
    /// `autocast` + `GradScaler`). The scaler also runs on the CPU, where autocast does not.
    pub amp: bool,
}

impl Default for TrainConfig {
    /// Ten epochs at a constant 1e-3, no accumulation, clipping, EMA or early stopping; the best
    /// weights are those of the lowest `val_loss`; seed 0; no mixed precision.
    fn default() -> Self {
        TrainConfig {
            epochs: 10,
            lr: 1e-3,
            schedule: Schedule::default(),
            accumulate: 1,
            accumulate_mean: true,
            grad_clip: None,
            ema: None,
            monitor: "val_loss".into(),
            maximize: false,
            patience: None,
            seed: 0,
            amp: false,
        }
    }
}

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

/// Why [`fit`] returned.
#[derive(Debug, Clone, PartialEq)]
pub enum StopReason {
    /// All epochs ran.
    Completed,
    /// `patience` epochs without improvement.
    EarlyStopped,
    /// Stopped on request after an epoch (Ctrl-C, or a test simulating a kill).
    Interrupted,
}

/// The result of [`fit`].
#[derive(Debug, Clone, PartialEq)]
pub struct FitOutcome {
    /// Epochs completed (including any before a resume).
    pub epochs_completed: usize,
    /// Best monitored value and its epoch (1-based), if any epoch ran.
    pub best: Option<(f64, usize)>,
    /// Why training stopped.
    pub reason: StopReason,
}

/// How a call to [`fit`] starts and may stop.
#[derive(Debug, Clone, Default)]
pub struct RunControl {
    /// Continue from `<run>/checkpoint.safetensors`.
    pub resume: bool,
    /// Stop cleanly after this many completed epochs.
    pub stop_after: Option<usize>,
    /// Set (by a Ctrl-C handler, say) to stop after the current step. The epoch in progress is
    /// dropped; the checkpoint of the last completed epoch stays, and resuming redoes that epoch
    /// exactly.
    pub stop: Option<Arc<AtomicBool>>,
    /// No progress output.
    pub quiet: bool,
    /// The resolved configuration, written to `<run>/config.toml` (see [`crate::config::to_toml`]).
    pub config_toml: Option<String>,
}

impl RunControl {
    /// A fresh run without progress output (tests, scripts, library callers).
    pub fn quiet() -> Self {
        RunControl {
            quiet: true,
            ..Default::default()
        }
    }
}

/// The next batch for [`TrainTask::train_step`] from an epoch's batches (any iterator of
/// results, such as the data crate's `EpochBatches`): batches that ended before
/// [`TrainTask::steps_per_epoch`], or were never started, are an error; a batch that failed to
/// load comes through as the task's own error ([`Error::Task`]), its chain kept.
pub fn next_batch<B, E, I>(batches: Option<&mut I>) -> Result<B>
where
    I: Iterator<Item = std::result::Result<B, E>>,
    E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
{
    batches
        .and_then(|b| b.next())
        .ok_or_else(|| Error::Invalid("the loader ended early".into()))?
        .map_err(Error::task)
}

/// Seed of epoch `epoch` for run seed `seed` (a splitmix64 step, so nearby seeds differ widely).
pub fn epoch_seed(seed: u64, epoch: usize) -> i64 {
    let mut z = seed.wrapping_add((epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) >> 1) as i64
}

fn sorted_vars(vs: &VarStore) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
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

/// Runs (or, with [`RunControl::resume`], continues) training in the run folder `run`.
pub fn fit(
    vs: &VarStore,
    task: &mut dyn TrainTask,
    opt: &mut Optimizer,
    cfg: &TrainConfig,
    run: &Path,
    control: &RunControl,
) -> Result<FitOutcome> {
    let outcome = fit_epochs(vs, task, opt, cfg, run, control)?;
    // In a data-parallel run, nobody goes on (to read the best weights, say) before rank 0 has
    // written the last epoch's files.
    if let Some(g) = crate::distributed::current() {
        g.barrier()?;
    }
    Ok(outcome)
}

fn fit_epochs(
    vs: &VarStore,
    task: &mut dyn TrainTask,
    opt: &mut Optimizer,
    cfg: &TrainConfig,
    run: &Path,
    control: &RunControl,
) -> Result<FitOutcome> {
    let dir = RunDir(run.to_path_buf());
    let group = crate::distributed::group(vs.device())?;
    let main = group.is_none_or(|g| g.is_main());
    if main {
        std::fs::create_dir_all(dir.0.join("weights")).map_err(|e| Error::io(&dir.0, e))?;
        if let Some(text) = &control.config_toml {
            write_atomic(&dir.config(), text.as_bytes())?;
        }
    }
    let steps = task.steps_per_epoch().max(1);
    let mut schedule = cfg.schedule.clone();
    schedule.total_iters = (cfg.epochs * steps) as u64;
    let mut ema = cfg.ema.map(|(decay, tau)| ModelEma::new(vs, decay, tau));
    let mut scaler = cfg.amp.then(LossScaler::default);
    let autocast = cfg.amp && vs.device().is_cuda();
    let (mut start, mut best, mut bad_epochs) = (0usize, None::<(f64, usize)>, 0usize);
    if control.resume {
        let state = ResumeState::load(&dir, vs, opt, ema.as_mut())?;
        (start, best, bad_epochs) = (state.epoch, state.best, state.bad_epochs);
    }
    if let Some(g) = group {
        crate::distributed::broadcast_variables(g, vs)?;
        // Every rank must average the same list of gradients, even where a step leaves some
        // parameter out on one rank only.
        opt.keep_zeroed_gradients();
    }
    for epoch in start..cfg.epochs {
        tch::manual_seed(epoch_seed(cfg.seed, epoch));
        task.on_epoch_start(epoch)?;
        let t0 = Instant::now();
        let mut loss_sum = 0.0;
        opt.zero_grad()?;
        let progress = EpochProgress::new(epoch + 1, cfg.epochs, steps, control.quiet || !main);
        let mut steps_since_update = 0usize;
        for step in 0..steps {
            if control
                .stop
                .as_ref()
                .is_some_and(|f| f.load(Ordering::SeqCst))
            {
                progress.finish();
                tracing::warn!(
                    epoch = epoch + 1,
                    step,
                    run = %dir.path().display(),
                    "interrupted; the last completed epoch's checkpoint is kept"
                );
                return Ok(FitOutcome {
                    epochs_completed: epoch,
                    best,
                    reason: StopReason::Interrupted,
                });
            }
            let it = (epoch * steps + step) as u64;
            opt.set_lr(cfg.lr * schedule.factor(it));
            let accumulate = task
                .before_step(opt, epoch, step)?
                .unwrap_or(cfg.accumulate)
                .max(1);
            let loss = if autocast {
                tch::autocast(true, || task.train_step(epoch, step))?
            } else {
                task.train_step(epoch, step)?
            };
            let value = loss.double_value(&[]);
            if !value.is_finite() {
                let kept = if epoch > 0 {
                    format!(
                        "the checkpoint of epoch {epoch} is kept in {}",
                        dir.checkpoint().display()
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
            let loss_scale = scaler.map_or(1.0, |s| s.scale);
            let divisor = if cfg.accumulate_mean {
                accumulate as f64
            } else {
                1.0
            };
            (loss * (loss_scale / divisor)).backward();
            steps_since_update += 1;
            if steps_since_update >= accumulate || step + 1 == steps {
                steps_since_update = 0;
                if let Some(g) = group {
                    crate::distributed::average_gradients(g, &opt.gradients())?;
                }
                let finite = scaler.as_mut().is_none_or(|s| s.unscale_and_check(opt));
                if finite {
                    if let Some(max) = cfg.grad_clip {
                        clip_grad_norm(opt, max);
                    }
                    opt.step()?;
                    if let Some(e) = ema.as_mut() {
                        e.update(vs);
                    }
                } else {
                    tracing::warn!(
                        epoch = epoch + 1,
                        step = step + 1,
                        "inf/NaN gradients under loss scaling: step skipped"
                    );
                }
                opt.zero_grad()?;
            }
        }
        progress.finish();
        // Validate (and save) the EMA weights when there are some, then restore the model's.
        let backup: Option<Vec<(String, Tensor)>> = ema.as_ref().map(|e| {
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
        let mut train_loss = [loss_sum / steps as f64];
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
        let improved = best.is_none_or(|(b, _)| {
            if cfg.maximize {
                monitored > b
            } else {
                monitored < b
            }
        });
        let weights = sorted_vars(vs);
        let named = || weights.iter().map(|(n, t)| (n.as_str(), t));
        if main {
            checkpoint::save_safetensors(dir.last(), named())?;
        }
        if improved {
            best = Some((monitored, epoch + 1));
            bad_epochs = 0;
            if main {
                checkpoint::save_safetensors(dir.best(), named())?;
            }
        } else {
            bad_epochs += 1;
        }
        if let Some(b) = backup {
            copy_into(vs, &b);
        }
        let lr = opt.lrs().first().copied().unwrap_or(0.0);
        if main {
            append_results(
                &dir,
                epoch + 1,
                train_loss,
                &metrics,
                lr,
                t0.elapsed().as_secs_f64(),
            )?;
            ResumeState {
                epoch: epoch + 1,
                best,
                bad_epochs,
            }
            .save(&dir, vs, opt, ema.as_ref(), control.config_toml.as_deref())?;
            // The chart first: every way out of the loop leaves it showing the last epoch.
            #[cfg(feature = "plot")]
            crate::metrics::charts::results_png(&dir.results(), &dir.results_png())?;
        }
        if cfg.patience.is_some_and(|p| bad_epochs >= p) {
            return Ok(FitOutcome {
                epochs_completed: epoch + 1,
                best,
                reason: StopReason::EarlyStopped,
            });
        }
        if control.stop_after == Some(epoch + 1) && epoch + 1 < cfg.epochs {
            return Ok(FitOutcome {
                epochs_completed: epoch + 1,
                best,
                reason: StopReason::Interrupted,
            });
        }
    }
    Ok(FitOutcome {
        epochs_completed: cfg.epochs.max(start),
        best,
        reason: StopReason::Completed,
    })
}

/// Appends one row to `results.csv` (writing the header first in a new file), atomically.
fn append_results(
    dir: &RunDir,
    epoch: usize,
    train_loss: f64,
    metrics: &[(String, f64)],
    lr: f64,
    seconds: f64,
) -> Result<()> {
    let path = dir.results();
    let mut text = std::fs::read_to_string(&path).unwrap_or_default();
    let names: Vec<String> = std::iter::once("epoch".to_string())
        .chain(std::iter::once("train_loss".to_string()))
        .chain(metrics.iter().map(|(n, _)| n.clone()))
        .chain(["lr".to_string(), "seconds".to_string()])
        .collect();
    let header = names.join(",");
    match text.lines().next() {
        None => text = header + "\n",
        // A resumed run whose task now reports other metrics would misalign the columns.
        Some(existing) if existing != header => {
            return Err(Error::Invalid(format!(
                "{}: its columns are {existing:?}, this run's are {header:?}; resume with the \
                 settings the run started with",
                path.display()
            )))
        }
        Some(_) => {}
    }
    let mut row = vec![epoch.to_string(), format!("{train_loss:.6}")];
    row.extend(metrics.iter().map(|(_, v)| format!("{v:.6}")));
    row.push(format!("{lr:.6e}"));
    row.push(format!("{seconds:.2}"));
    text += &(row.join(",") + "\n");
    write_atomic(&path, text.as_bytes())
}

/// The bookkeeping stored with a checkpoint.
struct ResumeState {
    epoch: usize,
    best: Option<(f64, usize)>,
    bad_epochs: usize,
}

impl ResumeState {
    fn save(
        &self,
        dir: &RunDir,
        vs: &VarStore,
        opt: &Optimizer,
        ema: Option<&ModelEma>,
        config: Option<&str>,
    ) -> Result<()> {
        let mut all = StateDict::new();
        for (n, t) in sorted_vars(vs) {
            all.insert(format!("model.{n}"), t);
        }
        for (n, t) in opt.state_dict().iter() {
            all.insert(format!("optim.{n}"), t.shallow_clone());
        }
        let mut meta = HashMap::from([
            ("format".to_string(), "ferrovis-checkpoint-1".to_string()),
            ("epoch".to_string(), self.epoch.to_string()),
            ("bad_epochs".to_string(), self.bad_epochs.to_string()),
        ]);
        if let Some(text) = config {
            meta.insert("config".into(), text.to_string());
        }
        if let Some((v, e)) = self.best {
            // Exact bits, so a resumed run compares against the very same value.
            meta.insert("best".into(), format!("{}", v.to_bits()));
            meta.insert("best_epoch".into(), e.to_string());
        }
        if let Some(e) = ema {
            for (n, t) in &e.shadow {
                all.insert(format!("ema.{n}"), t.shallow_clone());
            }
            meta.insert("ema_updates".into(), e.updates.to_string());
        }
        checkpoint::save_safetensors_with_metadata(dir.checkpoint(), all.iter(), Some(meta))
    }

    fn load(
        dir: &RunDir,
        vs: &VarStore,
        opt: &mut Optimizer,
        ema: Option<&mut ModelEma>,
    ) -> Result<Self> {
        let path = dir.checkpoint();
        let meta = checkpoint::read_safetensors_metadata(&path)?;
        let field = |k: &str| -> Result<u64> {
            meta.get(k).and_then(|v| v.parse().ok()).ok_or_else(|| {
                Error::checkpoint(&path, format!("checkpoint metadata has no valid {k:?}"))
            })
        };
        if meta.get("format").map(String::as_str) != Some("ferrovis-checkpoint-1") {
            return Err(Error::checkpoint(
                &path,
                "not a ferrovis training checkpoint",
            ));
        }
        let all = checkpoint::read(&path)?;
        let part = |prefix: &str| -> StateDict {
            all.iter()
                .filter_map(|(n, t)| {
                    n.strip_prefix(prefix)
                        .map(|n| (n.to_string(), t.shallow_clone()))
                })
                .collect()
        };
        checkpoint::load_into(vs, &part("model."), &LoadOptions::default().strict(true))?;
        opt.load_state_dict(&part("optim."))?;
        if let Some(e) = ema {
            let saved = part("ema.");
            for (n, t) in &mut e.shadow {
                let s = saved
                    .get(n)
                    .ok_or_else(|| Error::checkpoint(&path, format!("no EMA weight for {n}")))?;
                tch::no_grad(|| t.copy_(s));
            }
            e.updates = field("ema_updates")?;
        }
        let best = match (meta.get("best"), meta.get("best_epoch")) {
            (Some(_), Some(_)) => Some((
                f64::from_bits(field("best")?),
                field("best_epoch")? as usize,
            )),
            _ => None,
        };
        Ok(ResumeState {
            epoch: field("epoch")? as usize,
            best,
            bad_epochs: field("bad_epochs")? as usize,
        })
    }
}
