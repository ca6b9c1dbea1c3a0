//! The `classify` command line: the clap tree and one function per command.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use ferrovis_app::args::{flag_settings, DeviceArg, TrainFlags};
use ferrovis_app::weights_command::{run_weights, WeightsCommand};
use ferrovis_core::engine::RunControl;
use ferrovis_data::video::VideoOptions;

use crate::config::{ClassifyConfig, Mode};
use crate::{demo, eval, export, predict, train};

/// Command line of the `classify` binary.
#[derive(Debug, Parser)]
#[command(
    name = "classify",
    version,
    about = "Transfer learning for image classification (ResNet, VGG, EfficientNet, MobileNetV2)"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The `classify` subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a new head (and optionally the backbone) on an image folder.
    Train(TrainArgs),
    /// Accuracy, per-class precision/recall/F1 and a confusion matrix of a trained run (`eval` is
    /// the old name).
    #[command(alias = "eval")]
    Val(ValArgs),
    /// Class names and probabilities for images (a run folder, or a checkpoint + --arch).
    Predict(PredictArgs),
    /// Write a run's model as TorchScript (traced) for `torch.jit.load`.
    Export(ExportArgs),
    /// Transfer learning against training from scratch on synthetic shapes: a ResNet18
    /// pretrained on shapes (or MobileNetV2 on ImageNet, when its weights are at hand) adapted to
    /// new ones by feature extraction and fine-tuning, against the same model from scratch.
    Demo(DemoArgs),
    /// Weights: list and download them by name, inspect or convert checkpoint files
    /// (.pth/.pt zip or legacy, .safetensors, .ot), list a backbone's variables (`--arch`).
    #[command(subcommand)]
    Weights(WeightsCommand),
}

/// `classify train` options; each flag overrides the settings file.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Image folder with train/ and val/ (or class folders, or a CSV list) (data.root).
    #[arg(long)]
    pub data: Option<String>,
    /// Backbone name (model.arch).
    #[arg(long)]
    pub arch: Option<String>,
    /// Transfer-learning mode (train.mode).
    #[arg(long, value_enum)]
    pub mode: Option<Mode>,
    /// The flags every `train` shares (`--resume`, `--weights`, `--epochs`, `--device`,
    /// `--config`, `--set`, …); the defaults are documented in `classify::config`.
    #[command(flatten)]
    pub common: TrainFlags,
}

impl TrainArgs {
    /// The configuration: file (or the resumed run's), then flags, then `--set`; each value is
    /// typed by its default, so nothing is quoted.
    pub fn config(&self) -> Result<ClassifyConfig> {
        Ok(self.common.load(flag_settings(&[
            ("data.root", self.data.clone()),
            ("model.arch", self.arch.clone()),
            (
                "train.mode",
                self.mode.map(|m| train::mode_name(m).to_string()),
            ),
        ]))?)
    }
}

/// `classify val` options.
#[derive(Debug, Args)]
pub struct ValArgs {
    /// A run folder written by `classify train` (its best weights), a weights file inside one, or
    /// any checkpoint with --arch and --data (one head output per class folder).
    #[arg(long, required_unless_present = "run")]
    pub weights: Option<PathBuf>,
    /// Old spelling of --weights RUN_DIR.
    #[arg(long, hide = true)]
    pub run: Option<PathBuf>,
    /// The checkpoint's architecture (for a checkpoint outside a run folder).
    #[arg(long)]
    pub arch: Option<String>,
    /// A labelled image folder (default: the run's validation folder).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Where val.json and confusion_matrix.png go (default: the run folder, or the current one).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// `--device`.
    #[command(flatten)]
    pub device: DeviceArg,
}

/// `classify predict` options.
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// Images, folders, globs, lists, videos, cameras (`0`) and stream URLs; and video
    /// settings as key=value (vid_stride, stream_buffer, fourcc, save, save_frames).
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// Where a video's annotated copy goes (`<stem>.avi`, each frame's top classes drawn).
    #[arg(long, default_value = "runs/classify/predict")]
    pub out: PathBuf,
    /// A run folder written by `classify train`, a weights file inside one, or any checkpoint
    /// (e.g. torchvision's ImageNet weights) with --arch.
    #[arg(long, required_unless_present = "run")]
    pub weights: Option<PathBuf>,
    /// Old spelling of --weights RUN_DIR.
    #[arg(long, hide = true)]
    pub run: Option<PathBuf>,
    /// The checkpoint's architecture (for a checkpoint outside a run folder).
    #[arg(long)]
    pub arch: Option<String>,
    /// How many classes to show per image.
    #[arg(long, default_value_t = 5)]
    pub top_k: usize,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
    /// `--device`.
    #[command(flatten)]
    pub device: DeviceArg,
}

/// `classify export` options.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// A run folder written by `classify train` (its best weights), or a weights file inside one.
    #[arg(long, required_unless_present = "run")]
    pub weights: Option<PathBuf>,
    /// Old spelling of --weights RUN_DIR.
    #[arg(long, hide = true)]
    pub run: Option<PathBuf>,
    /// `--format torchscript|onnx` and `--out` (default `model.pt` / `model.onnx`).
    #[command(flatten)]
    pub export: ferrovis_app::args::ExportFlags,
}

/// `classify demo` options.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The demo folder: this task writes `<out>/classify`, the summary of every task's demo
    /// `<out>/report.html`.
    #[arg(long, default_value = "runs/demo")]
    pub out: PathBuf,
    /// Pretrained MobileNetV2 weights (default: mobilenet_v2-b0353104.pth in
    /// $FERROVIS_WEIGHTS when present).
    #[arg(long)]
    pub weights: Option<PathBuf>,
}

/// Runs one parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(args) => {
            let cfg = args.config()?;
            let control = RunControl {
                stop: Some(ferrovis_app::interrupt::flag()?),
                ..Default::default()
            };
            let summary = train::train(&cfg, &control, args.common.resume.as_deref())?;
            println!(
                "best validation accuracy {:.4} ({}), {:.0} s; run folder {}",
                summary.best_accuracy,
                summary.path,
                summary.seconds,
                summary.run.display()
            );
            // The final report on the best weights is rank 0's alone in a data-parallel run
            // (the others have written nothing and stop here).
            if !ferrovis_core::distributed::is_main_process() {
                return Ok(());
            }
            let run = ferrovis_core::run::RunDir::new(&summary.run);
            eval::eval_run(
                &run,
                &run.best(),
                None,
                ferrovis_core::device::parse_device(&cfg.train.device)?,
                None,
            )
            .map(|_| ())
        }
        Command::Val(args) => {
            let device = args.device.device()?;
            let weights =
                ferrovis_app::args::renamed_required(args.weights, args.run, "--run", "--weights")?;
            match predict::ModelSource::resolve(&weights, args.arch.as_deref())? {
                predict::ModelSource::Run { run, file } => {
                    eval::eval_run(&run, &file, args.data.as_deref(), device, args.out.as_deref())
                }
                predict::ModelSource::Hub { spec } => anyhow::bail!(
                    "{spec}: `classify val` scores a run folder or a torchvision checkpoint; \
                     fine-tune the Hub checkpoint on the data first (classify train --weights \
                     {spec}), or `classify predict` with it"
                ),
                predict::ModelSource::Weights { path, arch } => {
                    let data = args.data.as_deref().ok_or_else(|| {
                        anyhow::anyhow!(
                            "{}: a checkpoint outside a run folder needs --data (a labelled folder)",
                            path.display()
                        )
                    })?;
                    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("."));
                    eval::eval_weights(&path, &arch, data, device, &out)
                }
            }
            .map(|_| ())
        }
        Command::Predict(args) => {
            let device = args.device.device()?;
            let weights =
                ferrovis_app::args::renamed_required(args.weights, args.run, "--run", "--weights")?;
            let source = predict::ModelSource::resolve(&weights, args.arch.as_deref())?;
            let (clf, classes, transform) = predict::load(&source, device)?;
            let (video, sources) = VideoOptions::from_sources(&args.images)?;
            let sources = ferrovis_data::sources::expand(&sources)?;
            let images: Vec<PathBuf> = sources
                .iter()
                .filter_map(|s| s.image().map(PathBuf::from))
                .collect();
            let (mut predictions, mut skipped) =
                predict::predict_files(&clf, &classes, &transform, &images, args.top_k, device)?;
            let mut done = predictions.len();
            for source in sources.iter().filter(|s| s.image().is_none()) {
                let (frames, outcome) = predict::predict_video(
                    &clf, &classes, &transform, source, &args.out, &video, args.top_k, device,
                )?;
                predictions.extend(frames);
                done += usize::from(skipped.video(source, outcome));
            }
            predict::print(&predictions, args.json)?;
            Ok(skipped.finish(done)?)
        }
        Command::Export(args) => {
            let weights =
                ferrovis_app::args::renamed_required(args.weights, args.run, "--run", "--weights")?;
            let out = args.export.out("model");
            let target = args.export.target();
            let size = export::export(&weights, &out, target)?;
            println!(
                "wrote {} ({}; input: normalised float ({}, 3, {size}, {size}), output: logits)",
                out.display(),
                target.describe(),
                target.batch()
            );
            Ok(())
        }
        Command::Demo(args) => demo::run(&args),
        Command::Weights(cmd) => run_weights(&cmd, None),
    }
}
