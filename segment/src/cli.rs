//! The `segment` command line: the clap tree and one function per command.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand};
use ferrovis_app::args::{flag_settings, DeviceArg, TrainFlags};
use ferrovis_app::weights_command::{run_weights, WeightsCommand};
use ferrovis_core::engine::{new_run_dir, RunControl};

use crate::config::{InferMode, Mode, SegmentConfig};
use crate::infer::InferOptions;
use crate::model::{Architecture, ModelSpec};
use crate::{data, demo, export, predict, train, val};

/// Command line of the `segment` binary.
#[derive(Debug, Parser)]
#[command(
    name = "segment",
    version,
    about = "Semantic segmentation with U-Net, DeepLab, FCN and LR-ASPP on pretrained encoders"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The `segment` subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train on image and mask folders (or a semantic.yaml).
    Train(TrainArgs),
    /// Per-class IoU, mIoU, pixel accuracy and mean Dice of a trained run.
    Val(ValArgs),
    /// Class-index masks, colour masks and overlays for images.
    Predict(PredictArgs),
    /// Write a run's model as TorchScript (traced) for `torch.jit.load`.
    Export(ExportArgs),
    /// Transfer learning against training from scratch on synthetic shapes' masks: a U-Net on an
    /// encoder pretrained on shapes (or ImageNet's MobileNetV2, when at hand), against the same
    /// U-Net from scratch; reports mIoU and draws predictions.
    Demo(DemoArgs),
    /// Weights: list and download them by name, inspect or convert checkpoint files
    /// (.pth/.pt zip or legacy, .safetensors, .ot), list a backbone's variables (`--arch`).
    #[command(subcommand)]
    Weights(WeightsCommand),
}

/// `segment train` options; each flag overrides the settings file.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// A semantic.yaml data set file (data.yaml).
    #[arg(long)]
    pub data: Option<String>,
    /// Training images (with --masks), instead of --data (data.images).
    #[arg(long)]
    pub images: Option<String>,
    /// Training masks (data.masks).
    #[arg(long)]
    pub masks: Option<String>,
    /// Architecture (model.arch).
    #[arg(long, value_enum)]
    pub arch: Option<Architecture>,
    /// Encoder, a backbone name (model.encoder).
    #[arg(long)]
    pub encoder: Option<String>,
    /// Transfer-learning mode (train.mode).
    #[arg(long, value_enum)]
    pub mode: Option<Mode>,
    /// The flags every `train` shares (`--resume`, `--weights` (the encoder's ImageNet
    /// checkpoint, or a whole model), `--epochs`, `--device`, `--config`, `--set`, …); the
    /// defaults are documented in `segment::config`.
    #[command(flatten)]
    pub common: TrainFlags,
}

impl TrainArgs {
    /// The configuration: file (or the resumed run's), then flags, then `--set`; each value is
    /// typed by its default, so nothing is quoted.
    pub fn config(&self) -> Result<SegmentConfig> {
        Ok(self.common.load(flag_settings(&[
            ("data.yaml", self.data.clone()),
            ("data.images", self.images.clone()),
            ("data.masks", self.masks.clone()),
            ("model.arch", self.arch.map(|a| enum_name(&a))),
            ("model.encoder", self.encoder.clone()),
            ("train.mode", self.mode.map(|m| enum_name(&m))),
        ]))?)
    }
}

/// The serde name of a unit enum value (`deeplabv3plus`, `fine-tune`).
fn enum_name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

/// Inference options shared by `val` and `predict`.
#[derive(Debug, Args)]
pub struct InferArgs {
    /// `whole` image, `resize` (longer side to --size, logits resized back) or `slide` windows
    /// (default: the run's setting).
    #[arg(long, value_enum)]
    pub infer: Option<InferMode>,
    /// Longer side for `resize`, window side for `slide`.
    #[arg(long)]
    pub size: Option<usize>,
    /// Average with the prediction of the mirrored image (test-time augmentation).
    #[arg(long)]
    pub flip: bool,
    /// `--device`.
    #[command(flatten)]
    pub device: DeviceArg,
}

/// `segment val` options.
#[derive(Debug, Args)]
pub struct ValArgs {
    /// A run folder written by `segment train` (its best weights), or a weights file inside one.
    #[arg(long, required_unless_present = "run")]
    pub weights: Option<PathBuf>,
    /// Old spelling of --weights RUN_DIR.
    #[arg(long, hide = true)]
    pub run: Option<PathBuf>,
    /// Validation images (default: the run's validation set).
    #[arg(long, requires = "masks")]
    pub images: Option<String>,
    /// Their masks.
    #[arg(long, requires = "images")]
    pub masks: Option<String>,
    /// Where val.json goes (default: the run folder).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Inference.
    #[command(flatten)]
    pub infer: InferArgs,
}

/// `segment export` options.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// A run folder written by `segment train` (its best weights), or a weights file inside one.
    #[arg(long)]
    pub weights: PathBuf,
    /// `--format torchscript|onnx` and `--out` (default `segment.pt` / `segment.onnx`).
    #[command(flatten)]
    pub export: ferrovis_app::args::ExportFlags,
    /// Input side traced (default: the run's inference size).
    #[arg(long)]
    pub size: Option<usize>,
}

/// `segment predict` options.
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// A run folder, a weights file inside one, or any checkpoint with --arch/--encoder/--classes.
    #[arg(long)]
    pub weights: PathBuf,
    /// Images, folders, globs, lists, videos, cameras (`0`) and stream URLs; and video
    /// settings as key=value (vid_stride, stream_buffer, fourcc, save, save_frames).
    #[arg(required = true)]
    pub sources: Vec<PathBuf>,
    /// Output folder (default: runs/segment/predict, numbered).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Architecture of a foreign checkpoint.
    #[arg(long, value_enum, requires_all = ["encoder", "classes"])]
    pub arch: Option<Architecture>,
    /// Encoder of a foreign checkpoint.
    #[arg(long)]
    pub encoder: Option<String>,
    /// Class count of a foreign checkpoint.
    #[arg(long)]
    pub classes: Option<i64>,
    /// A file of class names, one per line (overrides the run's).
    #[arg(long)]
    pub names: Option<PathBuf>,
    /// Inference.
    #[command(flatten)]
    pub infer: InferArgs,
}

/// `segment demo` options.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The demo folder: this task writes `<out>/segment`, the summary of every task's demo
    /// `<out>/report.html`.
    #[arg(long, default_value = "runs/demo")]
    pub out: PathBuf,
    /// The encoder's ImageNet weights (default: mobilenet_v2-b0353104.pth in
    /// $FERROVIS_WEIGHTS when present).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Epochs on the target shapes (default 20): the first two fifths with the encoder frozen.
    #[arg(long)]
    pub epochs: Option<usize>,
}

fn infer_options(args: &InferArgs, mode: InferMode, size: usize) -> InferOptions {
    InferOptions {
        mode: args.infer.unwrap_or(mode),
        size: args.size.unwrap_or(size),
        flip: args.flip,
        channels_last: false,
    }
}

/// Runs one parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(args) => train(args),
        Command::Val(args) => val(args),
        Command::Export(args) => export(args),
        Command::Predict(args) => predict(args),
        Command::Demo(args) => demo::run(&args.out, args.weights, args.epochs),
        Command::Weights(cmd) => run_weights(&cmd, None),
    }
}

/// `segment train`: a run folder, then the best epoch's table.
fn train(args: TrainArgs) -> Result<()> {
    let cfg = args.config()?;
    let control = RunControl {
        stop: Some(ferrovis_app::interrupt::flag()?),
        ..Default::default()
    };
    let summary = train::train(&cfg, &control, args.common.resume.as_deref())?;
    if let Some(e) = &summary.last {
        println!("\n{}", e.table());
    }
    println!(
        "best validation mIoU {:.4} at epoch {}; run folder {} ({:.0} s)",
        summary.best_miou.0,
        summary.best_miou.1,
        summary.run.display(),
        summary.seconds
    );
    Ok(())
}

/// `segment val`: a run's (or a checkpoint's) metrics on its validation data or on given folders.
fn val(args: ValArgs) -> Result<()> {
    let device = args.infer.device.device()?;
    let weights =
        ferrovis_app::args::renamed_required(args.weights, args.run, "--run", "--weights")?;
    let run = ferrovis_core::run::resolve_weights(&weights)?.run;
    let loaded = predict::load_model(&weights, None, None, device)?;
    let mut cfg: SegmentConfig = match run.as_ref().map(|r| r.config()) {
        Some(c) if c.is_file() => ferrovis_core::config::load(Some(&c), &[])?,
        _ if args.images.is_none() => anyhow::bail!(
            "{}: no run config.toml to find the validation data in: give --images and \
             --masks",
            weights.display()
        ),
        _ => SegmentConfig::default(),
    };
    if let (Some(i), Some(m)) = (&args.images, &args.masks) {
        cfg.data.yaml.clear();
        cfg.data.images = i.clone();
        cfg.data.masks = m.clone();
        cfg.data.val_images = i.clone();
        cfg.data.val_masks = m.clone();
    }
    cfg.data.names = loaded.meta.names.clone();
    let splits = data::splits(&cfg.data)?;
    let loader = val::loader(
        &splits.val,
        loaded.meta.mean,
        loaded.meta.std,
        false,
        cfg.data.workers,
    )?;
    let opts = infer_options(&args.infer, loaded.meta.infer, loaded.meta.infer_size);
    let e = val::evaluate(&loaded.model, &loader, &loaded.meta.names, &opts, device)?;
    println!("{}", e.table());
    let dir = args
        .out
        .or_else(|| run.map(|r| r.0))
        .unwrap_or_else(|| PathBuf::from("."));
    val::write_json(&dir, &e)?;
    println!("wrote {}", dir.join("val.json").display());
    Ok(())
}

/// `segment export`: TorchScript of a run's model.
fn export(args: ExportArgs) -> Result<()> {
    let out = args.export.out("segment");
    let target = args.export.target();
    let (loaded, size) = export::export(&args.weights, &out, target, args.size)?;
    let (kind, batch) = (target.describe(), target.batch());
    println!(
        "wrote {} ({kind}; input: normalised float ({batch}, 3, {size}, {size}) with mean \
         {:?} and std {:?}; output: logits ({batch}, {}, {size}, {size}))",
        out.display(),
        loaded.meta.mean,
        loaded.meta.std,
        loaded.meta.names.len()
    );
    Ok(())
}

/// `segment predict`: masks, colour masks and overlays for images.
fn predict(args: PredictArgs) -> Result<()> {
    let device = args.infer.device.device()?;
    let spec = match (args.arch, &args.encoder, args.classes) {
        (Some(arch), Some(encoder), Some(classes)) => Some(ModelSpec {
            arch,
            encoder: encoder.clone(),
            num_classes: classes,
            ..Default::default()
        }),
        (None, None, None) => None,
        _ => bail!("--arch, --encoder and --classes go together"),
    };
    let names = match &args.names {
        Some(f) => Some(
            std::fs::read_to_string(f)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", f.display()))?
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect(),
        ),
        None => None,
    };
    let loaded = predict::load_model(&args.weights, spec, names, device)?;
    let opts = infer_options(&args.infer, loaded.meta.infer, loaded.meta.infer_size);
    let out = args
        .out
        .unwrap_or_else(|| new_run_dir(std::path::Path::new("runs/segment"), "predict"));
    let (video, sources) = ferrovis_data::video::VideoOptions::from_sources(&args.sources)?;
    let results = predict::predict_sources(&loaded, &sources, &out, &opts, &video, device)?;
    println!(
        "{} images: masks, colour masks and overlays in {}",
        results.len(),
        out.display()
    );
    Ok(())
}
