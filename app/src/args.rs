//! The command-line arguments every task binary declares the same way, flattened into each
//! binary's clap tree so a concept is declared once: [`DeviceArg`] / [`DeviceOverride`]
//! (`--device`), [`SettingsArgs`] (`--config FILE`, `--set KEY=VALUE`, trailing `KEY=VALUE`),
//! [`TrainFlags`] (the flags of every `train` command), and the handling of renamed flags.

use std::path::{Path, PathBuf};

use clap::Args;
use ferrovis_core::error::{Error, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// `--device` for a command that runs a model: `auto` (CUDA when present), `cpu`, `cuda`,
/// `cuda:N`.
#[derive(Debug, Clone, Args)]
pub struct DeviceArg {
    /// Device: auto (CUDA when present), cpu, cuda, cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
}

impl DeviceArg {
    /// The device named.
    pub fn device(&self) -> Result<tch::Device> {
        ferrovis_core::device::parse_device(&self.device)
    }
}

/// `--device` for a command whose settings already name a device (a training configuration's
/// `train.device`, detect's `device=`): given, it overrides that setting.
#[derive(Debug, Clone, Default, Args)]
pub struct DeviceOverride {
    /// Device: auto (CUDA when present), cpu, cuda, cuda:N [default: the settings' device].
    #[arg(long)]
    pub device: Option<String>,
}

/// The settings a command layers over its defaults: a TOML file, then `--set KEY=VALUE`, then
/// trailing `KEY=VALUE` arguments (Ultralytics' style). Each value is typed by the default it
/// replaces, so nothing is quoted ([`ferrovis_core::config`]).
#[derive(Debug, Clone, Default, Args)]
pub struct SettingsArgs {
    /// TOML settings file (the defaults are documented in each task's `config` module).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// `--set`.
    #[command(flatten)]
    pub set: SetArg,
    /// Settings as KEY=VALUE arguments, as `--set` (`train.epochs=3 data.batch_size=16`).
    #[arg(value_name = "KEY=VALUE")]
    pub settings: Vec<String>,
}

/// `--set KEY=VALUE`, alone: for a command whose trailing arguments mix settings with other
/// things (detect's images), so it cannot take [`SettingsArgs`] whole.
#[derive(Debug, Clone, Default, Args)]
pub struct SetArg {
    /// Any setting by its key, e.g. `--set train.label_smoothing=0.1` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

impl SettingsArgs {
    /// `flags` (what the command's own flags translate to, `key=value`), then `--set`, then
    /// the trailing settings; a trailing argument that is no `key=value` is an error naming it.
    pub fn overrides(&self, mut flags: Vec<String>) -> Result<Vec<String>> {
        flags.extend(self.set.set.iter().cloned());
        flags.extend(settings(&self.settings)?);
        Ok(flags)
    }

    /// The configuration: the file given (else, with `resume`, the resumed run's `config.toml`)
    /// over `T`'s defaults, then [`overrides`](Self::overrides).
    pub fn load<T: Serialize + DeserializeOwned + Default>(
        &self,
        flags: Vec<String>,
        resume: Option<&Path>,
    ) -> Result<T> {
        let file = ferrovis_core::run::resume_config(self.config.as_deref(), resume)?;
        ferrovis_core::config::load(file.as_deref(), &self.overrides(flags)?)
    }

    /// `base` with the file given (if any), then the overrides, applied over it: for a command
    /// whose starting point is not `T::default()` (a resumed run's own settings).
    pub fn load_over<T: Serialize + DeserializeOwned>(
        &self,
        base: &T,
        flags: Vec<String>,
    ) -> Result<T> {
        ferrovis_core::config::load_over(base, self.config.as_deref(), &self.overrides(flags)?)
    }
}

/// `--project DIR --name NAME`: where a training's run folder goes (`DIR/NAME`, then `NAME2`, …
/// when taken, as Ultralytics numbers them). Every `train` takes them; each task maps them to
/// its own settings (classify and segment `train.project`/`train.name`, detect `project=`/`name=`,
/// style `project`/`name`).
#[derive(Debug, Clone, Default, Args)]
pub struct RunFolderArgs {
    /// Where run folders go.
    #[arg(long)]
    pub project: Option<PathBuf>,
    /// The run folder's name.
    #[arg(long)]
    pub name: Option<String>,
}

impl RunFolderArgs {
    /// `project_key=…` and `name_key=…` for the flags given.
    pub fn settings(&self, project_key: &str, name_key: &str) -> Vec<String> {
        flag_settings(&[
            (
                project_key,
                self.project.as_ref().map(|p| p.display().to_string()),
            ),
            (name_key, self.name.clone()),
        ])
    }
}

/// The flags every `train` command shares; each is a shorthand for one setting (named in its
/// help) and overrides the settings file.
#[derive(Debug, Clone, Default, Args)]
pub struct TrainFlags {
    /// Continue the run in this folder from its last checkpoint, with its own settings (flags
    /// still override them, e.g. `--epochs` to train longer).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Pretrained weights: a checkpoint file or a name such as `resnet50` or
    /// `mobilenet_v2:IMAGENET1K_V1` (model.weights).
    #[arg(long)]
    pub weights: Option<String>,
    /// Epochs (train.epochs).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Base learning rate (train.lr).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Batch size (data.batch_size).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Input side: the training crop (data.image_size).
    #[arg(long)]
    pub image_size: Option<usize>,
    /// Seed (train.seed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// `--device` (train.device).
    #[command(flatten)]
    pub device: DeviceOverride,
    /// `--project`, `--name` (train.project, train.name).
    #[command(flatten)]
    pub run_folder: RunFolderArgs,
    /// `--config`, `--set` and trailing settings.
    #[command(flatten)]
    pub settings: SettingsArgs,
}

impl TrainFlags {
    /// The configuration: the settings file (or the resumed run's), then `task_flags` (the
    /// task's own flags as `key=value`), then these flags, then `--set` and trailing settings.
    pub fn load<T: Serialize + DeserializeOwned + Default>(
        &self,
        mut task_flags: Vec<String>,
    ) -> Result<T> {
        task_flags.extend(flag_settings(&[
            ("model.weights", self.weights.clone()),
            ("train.epochs", self.epochs.map(|v| v.to_string())),
            ("train.lr", self.lr.map(|v| v.to_string())),
            ("data.batch_size", self.batch_size.map(|v| v.to_string())),
            ("data.image_size", self.image_size.map(|v| v.to_string())),
            ("train.device", self.device.device.clone()),
            ("train.seed", self.seed.map(|v| v.to_string())),
        ]));
        task_flags.extend(self.run_folder.settings("train.project", "train.name"));
        self.settings.load(task_flags, self.resume.as_deref())
    }
}

/// `key=value` for each setting given (`None` values are skipped): how a task turns its own
/// flags into settings for [`TrainFlags::load`].
pub fn flag_settings(pairs: &[(&str, Option<String>)]) -> Vec<String> {
    pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
        .collect()
}

/// The value of a renamed option: the new spelling's, else the old one's with a note on stderr
/// that `old_flag` is deprecated in favour of `new_flag` (old spellings are kept for one release,
/// hidden from `--help`).
pub fn renamed<T>(new: Option<T>, old: Option<T>, old_flag: &str, new_flag: &str) -> Option<T> {
    match (new, old) {
        (Some(v), _) => Some(v),
        (None, Some(v)) => {
            eprintln!("note: {old_flag} is deprecated; use {new_flag}");
            Some(v)
        }
        (None, None) => None,
    }
}

/// [`renamed`] for an option that must be given in one spelling or the other: an error naming
/// `new_flag` when neither was.
pub fn renamed_required<T>(
    new: Option<T>,
    old: Option<T>,
    old_flag: &str,
    new_flag: &str,
) -> Result<T> {
    renamed(new, old, old_flag, new_flag).ok_or_else(|| Error::Invalid(format!("give {new_flag}")))
}

/// Checks a binary's trailing arguments: `key=value` settings (Ultralytics' style, accepted by
/// every binary) go to the configuration overrides; anything else is an error naming it.
pub fn settings(args: &[String]) -> Result<Vec<String>> {
    args.iter()
        .map(|a| {
            if a.contains('=') {
                Ok(a.clone())
            } else {
                Err(Error::Invalid(format!(
                    "unexpected argument {a:?}: settings are key=value (e.g. train.epochs=3)"
                )))
            }
        })
        .collect()
}

/// The format `export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// A traced TorchScript module (`torch.jit.load`, libtorch).
    Torchscript,
    /// An ONNX model written from Rust (ONNX Runtime, TensorRT, OpenVINO, …), opset 18 as Ultralytics writes.
    Onnx,
}

/// Which input dimensions an ONNX export leaves free (`--dynamic`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DynamicAxes {
    /// The batch only.
    Batch,
    /// The batch, height and width (what `--dynamic` alone means, as in Ultralytics).
    All,
}

/// What an export writes: the format and, for ONNX, the free input dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportTarget {
    /// TorchScript or ONNX.
    pub format: ExportFormat,
    /// ONNX's dynamic axes (`Dynamic::None`: every size as traced).
    pub dynamic: ferrovis_core::onnx::Dynamic,
}

impl ExportTarget {
    /// What was written, for the message an export prints: `TorchScript`, `ONNX, opset 18`, and
    /// the free dimensions.
    pub fn describe(&self) -> String {
        use ferrovis_core::onnx::{Dynamic, DEFAULT_OPSET};
        match (self.format, self.dynamic) {
            (ExportFormat::Torchscript, _) => "TorchScript".into(),
            (ExportFormat::Onnx, Dynamic::None) => format!("ONNX, opset {DEFAULT_OPSET}"),
            (ExportFormat::Onnx, Dynamic::Batch) => {
                format!("ONNX, opset {DEFAULT_OPSET}, free batch")
            }
            (ExportFormat::Onnx, Dynamic::BatchAndSize) => {
                format!("ONNX, opset {DEFAULT_OPSET}, free batch, height and width")
            }
        }
    }

    /// The batch size the written model takes: `N` (any), or `1` for a static ONNX graph.
    pub fn batch(&self) -> &'static str {
        match (self.format, self.dynamic) {
            (ExportFormat::Onnx, ferrovis_core::onnx::Dynamic::None) => "1",
            _ => "N",
        }
    }
}

impl From<ExportFormat> for ExportTarget {
    fn from(format: ExportFormat) -> Self {
        Self {
            format,
            dynamic: ferrovis_core::onnx::Dynamic::None,
        }
    }
}

/// `--format`, `--dynamic` and `--out` of every task's `export`.
#[derive(Debug, Args)]
pub struct ExportFlags {
    /// What to write: `torchscript` or `onnx`.
    #[arg(long, value_enum, default_value = "torchscript")]
    pub format: ExportFormat,
    /// ONNX only: leave the batch, height and width free (`--dynamic`), or the batch only
    /// (`--dynamic batch`, for models that take one image size, such as ViT).
    #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "all")]
    pub dynamic: Option<DynamicAxes>,
    /// The file to write (default: `model.pt`, or `model.onnx` for ONNX).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

impl ExportFlags {
    /// The format and free dimensions asked for.
    pub fn target(&self) -> ExportTarget {
        ExportTarget {
            format: self.format,
            dynamic: match self.dynamic {
                None => ferrovis_core::onnx::Dynamic::None,
                Some(DynamicAxes::Batch) => ferrovis_core::onnx::Dynamic::Batch,
                Some(DynamicAxes::All) => ferrovis_core::onnx::Dynamic::BatchAndSize,
            },
        }
    }

    /// `--out`, or `<stem>.pt` / `<stem>.onnx` by format.
    pub fn out(&self, stem: &str) -> PathBuf {
        self.out.clone().unwrap_or_else(|| {
            PathBuf::from(match self.format {
                ExportFormat::Torchscript => format!("{stem}.pt"),
                ExportFormat::Onnx => format!("{stem}.onnx"),
            })
        })
    }
}
