//! One training run from start to finish, as every task runs one: [`Session::start`] (this
//! rank's device, the process group under `torchrun`, the seed, the run folder, the resolved
//! settings), [`Session::fit`] (the engine's epochs), then [`Session::load_best`] before the final
//! evaluation, which [`Session::is_main`] reports on rank 0 only.
//!
//! ```no_run
//! # fn demo(vs: &tch::nn::VarStore, task: &mut dyn ferrovis_core::TrainTask,
//! #         opt: &mut ferrovis_core::Optimizer) -> ferrovis_core::Result<()> {
//! use ferrovis_core::engine::{RunControl, Session, SessionConfig, TrainConfig};
//! let session = Session::start(
//!     &SessionConfig {
//!         device: ferrovis_core::parse_device("auto")?,
//!         seed: 0,
//!         project: std::path::Path::new("runs/mytask"),
//!         name: "train",
//!         resume: None,
//!         config_toml: String::new(),
//!     },
//!     &RunControl::default(),
//! )?;
//! // … build the model on session.device(), shard the data by session.shard() …
//! let outcome = session.fit(vs, task, opt, &TrainConfig::default())?;
//! session.load_best(vs)?;
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::time::Instant;

use tch::nn::VarStore;
use tch::Device;

use super::{fit, FitOutcome, RunControl, TrainConfig, TrainTask};
use crate::checkpoint::{self, LoadOptions};
use crate::distributed::{self, ProcessGroup};
use crate::error::Result;
use crate::run::{training_dir, RunDir, RunMeta};

/// What a [`Session`] starts from.
#[derive(Debug, Clone)]
pub struct SessionConfig<'a> {
    /// The device asked for (`parse_device`); under `torchrun` each rank takes its own GPU.
    pub device: Device,
    /// The seed libtorch's generator gets before the model is built.
    pub seed: u64,
    /// Where run folders go.
    pub project: &'a Path,
    /// The new run folder's name (`name`, `name2`, … when taken).
    pub name: &'a str,
    /// The run folder to continue from its last checkpoint, instead of a new one.
    pub resume: Option<&'a Path>,
    /// The resolved settings, written to `<run>/config.toml` (empty: none).
    pub config_toml: String,
}

/// A training run under way (see the module documentation).
#[derive(Debug)]
pub struct Session {
    device: Device,
    group: Option<&'static ProcessGroup>,
    run: RunDir,
    control: RunControl,
    started: Instant,
}

impl Session {
    /// Starts a run: this rank's device, the process group joined (under `torchrun`) before the
    /// run folder is chosen (rank 0 chooses, every rank gets its choice), libtorch seeded, and
    /// `control` told whether this resumes and what settings to record.
    pub fn start(cfg: &SessionConfig, control: &RunControl) -> Result<Self> {
        let device = distributed::rank_device(cfg.device);
        let group = distributed::group(device)?;
        tch::manual_seed(cfg.seed as i64);
        let run = RunDir::new(training_dir(cfg.project, cfg.name, cfg.resume));
        let mut control = control.clone();
        control.resume = cfg.resume.is_some();
        if !cfg.config_toml.is_empty() {
            control.config_toml = Some(cfg.config_toml.clone());
        }
        Ok(Session {
            device,
            group,
            run,
            control,
            started: Instant::now(),
        })
    }

    /// The device the model trains on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// The process group of a data-parallel run.
    pub fn group(&self) -> Option<&'static ProcessGroup> {
        self.group
    }

    /// `(rank, world size)` of a data-parallel run, to shard the data by.
    pub fn shard(&self) -> Option<(usize, usize)> {
        self.group.map(|g| (g.rank(), g.world_size()))
    }

    /// Whether this process reports (rank 0, or the only one).
    pub fn is_main(&self) -> bool {
        self.group.is_none_or(|g| g.is_main())
    }

    /// The run folder.
    pub fn run(&self) -> &RunDir {
        &self.run
    }

    /// The run folder's path.
    pub fn path(&self) -> PathBuf {
        self.run.path().to_path_buf()
    }

    /// Records the task's metadata in the run folder (rank 0 writes).
    pub fn write_meta<M: RunMeta>(&self, meta: &M) -> Result<()> {
        self.run.write_meta(meta)
    }

    /// Trains (or continues) in the run folder: see [`fit`].
    pub fn fit(
        &self,
        vs: &VarStore,
        task: &mut dyn TrainTask,
        opt: &mut crate::optim::Optimizer,
        cfg: &TrainConfig,
    ) -> Result<FitOutcome> {
        fit(vs, task, opt, cfg, self.run.path(), &self.control)
    }

    /// Loads the best epoch's weights into `vs` (strictly), as the final evaluation wants them;
    /// returns their file.
    pub fn load_best(&self, vs: &VarStore) -> Result<PathBuf> {
        let best = self.run.best();
        checkpoint::load_file(vs, &best, &LoadOptions::default().strict(true))?;
        Ok(best)
    }

    /// Seconds since the session started.
    pub fn seconds(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }
}
