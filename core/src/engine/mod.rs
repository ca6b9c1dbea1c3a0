//! The epoch loop every task shares. A task supplies a loss per step and metrics per epoch
//! ([`TrainTask`]); the engine owns the learning-rate schedule, gradient accumulation and clipping,
//! the EMA, validation, `results.csv`, best/last weights, full checkpoints, exact resume, early
//! stopping and the NaN guard.
//!
//! Run folder (see [`crate::run`]):
//! ```text
//! <run>/config.toml                the resolved configuration (when given)
//! <run>/results.csv                one row per epoch: epoch, train_loss, metrics…, lr, seconds
//!                                   (training + validation; checkpoint writes not counted)
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

mod amp;
mod control;
mod end_of_epoch;
mod epoch;
pub mod lr_find;
mod progress;
mod resume;
mod session;

use std::path::Path;
use std::time::Instant;

pub use crate::run::{new_run_dir, RunDir};
pub use amp::LossScaler;
pub use control::RunControl;
pub use progress::EpochProgress;
pub use session::{Session, SessionConfig};

use tch::nn::VarStore;
use tch::Tensor;

use crate::atomic_file::write_atomic;
use crate::distributed::ProcessGroup;
use crate::error::{Error, Result};
use crate::optim::{ModelEma, Optimizer, Schedule};

use epoch::Steps;
use resume::ResumeState;

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
    /// Learning-rate schedule over all iterations (the engine knows how many: epochs × the
    /// task's steps per epoch).
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
    /// Write TensorBoard event files into the run folder: every `results.csv` column with the
    /// epoch as the step, each parameter group's learning rate, and the pictures the run drew.
    pub tensorboard: bool,
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
            tensorboard: true,
        }
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
    let mut fit = Fit {
        vs,
        cfg,
        control,
        dir,
        group,
        main,
        steps: task.steps_per_epoch().max(1),
        autocast: cfg.amp && vs.device().is_cuda(),
        ema: cfg.ema.map(|(decay, tau)| ModelEma::new(vs, decay, tau)),
        scaler: cfg.amp.then(LossScaler::default),
        best: None,
        bad_epochs: 0,
        board: None,
    };
    if main && cfg.tensorboard {
        fit.board = Some(crate::tensorboard::EventWriter::create(&fit.dir.0)?);
    }
    let mut start = 0usize;
    if control.resume {
        let state = ResumeState::load(&fit.dir, vs, opt, fit.ema.as_mut())?;
        (start, fit.best, fit.bad_epochs) = (state.epoch, state.best, state.bad_epochs);
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
        let started = Instant::now();
        let loss_sum = match fit.train_epoch(task, opt, epoch)? {
            Steps::Done(sum) => sum,
            Steps::Stopped(outcome) => return Ok(outcome),
        };
        if let Some(outcome) = fit.end_epoch(task, opt, epoch, loss_sum, started)? {
            return Ok(outcome);
        }
    }
    Ok(FitOutcome {
        epochs_completed: cfg.epochs.max(start),
        best: fit.best,
        reason: StopReason::Completed,
    })
}

/// A run being fitted: what [`fit`] was given, and what it carries from one epoch to the next.
struct Fit<'a> {
    vs: &'a VarStore,
    cfg: &'a TrainConfig,
    control: &'a RunControl,
    dir: RunDir,
    group: Option<&'static ProcessGroup>,
    /// Rank 0, or the only process: the one that writes and shows progress.
    main: bool,
    steps: usize,
    autocast: bool,
    ema: Option<ModelEma>,
    scaler: Option<LossScaler>,
    best: Option<(f64, usize)>,
    bad_epochs: usize,
    /// The run's TensorBoard event file (rank 0, when `tensorboard` is on).
    board: Option<crate::tensorboard::EventWriter>,
}

impl Fit<'_> {
    /// The iterations of the whole run: what the learning-rate schedule spans.
    fn total_iters(&self) -> u64 {
        (self.cfg.epochs * self.steps) as u64
    }
}
