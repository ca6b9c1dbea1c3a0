//! The `detect` task: object detection with YOLOv8 (Ultralytics' recipe) or torchvision's
//! Faster R-CNN and SSD (torchvision's recipe): fine-tune, validate, predict.
//!
//! Settings use Ultralytics' names (`detect train data=coco128.yaml model=yolov8n.pt epochs=3`);
//! `main.rs` only parses arguments, the commands live here so other programs can call them.
//!
//! - [`yolov8`]: the model (layer table, Ultralytics state-dict names);
//! - [`weights`]: loading Ultralytics `.pt` and ferrovis `.safetensors` checkpoints;
//! - [`assigner`], [`loss`], [`boxes`]: the training loss;
//! - [`postprocess`]: NMS; [`val`]: metrics; [`predict`]: drawn and written detections;
//! - [`config`], [`train`]: Ultralytics' recipe on the core engine; [`demo`]: the synthetic demo;
//! - [`faster_rcnn`] on [`rcnn`]'s transform, RPN and RoI heads: torchvision's Faster R-CNN;
//! - [`ssd`]: torchvision's SSD300 and SSDlite320 (on the same transform, fixed size);
//! - [`references`]: torchvision's recipe for both (`arch=fasterrcnn_…`, `arch=ssd…`), same
//!   commands and run folders as YOLOv8.

pub mod assigner;
pub mod boxes;
pub mod config;
pub mod demo;
pub mod export;
pub mod faster_rcnn;
pub mod loss;
pub mod postprocess;
pub mod predict;
pub mod rcnn;
pub mod references;
pub mod run;
pub mod ssd;
pub mod train;
pub mod val;
pub mod weights;
pub mod yolov8;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use ferrovis_core::cli::{run_weights, WeightsCommand};
use ferrovis_core::device::parse_device;
use ferrovis_core::engine::{ctrl_c_flag, RunControl};

use crate::config::DetectConfig;
use crate::postprocess::NmsConfig;

/// Command line of the `detect` binary.
#[derive(Debug, Parser)]
#[command(
    name = "detect",
    version,
    about = "YOLOv8 object detection: fine-tune, validate, predict"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The `detect` subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train or fine-tune: `detect train data=coco128.yaml model=yolov8n.pt epochs=3 imgsz=320`.
    Train {
        /// A TOML file of settings (Ultralytics' names), applied before the key=value arguments.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Continue the run in this folder from its last checkpoint.
        #[arg(long)]
        resume: Option<PathBuf>,
        /// Starting weights: a checkpoint, a run folder, or a scale name (as model=).
        #[arg(long)]
        weights: Option<String>,
        /// Seed (as seed=).
        #[arg(long)]
        seed: Option<u64>,
        /// Flags every binary shares.
        #[command(flatten)]
        common: CommonFlags,
        /// Settings as key=value (data, model, epochs, batch, imgsz, freeze, lr0, device, …).
        settings: Vec<String>,
    },
    /// Validate weights on a data set's val split: `detect val --weights best.pt data=coco128.yaml`.
    Val {
        /// A checkpoint, or a run folder (its weights/best.safetensors).
        #[arg(long)]
        weights: PathBuf,
        /// Where the plots and metrics.json go (default: runs/detect/val).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Flags every binary shares.
        #[command(flatten)]
        common: CommonFlags,
        /// Settings as key=value (data, imgsz, batch, conf, iou, max_det, device).
        settings: Vec<String>,
    },
    /// Detect objects in images or folders: `detect predict --weights best.pt img.jpg dir/`.
    Predict {
        /// A checkpoint, or a run folder.
        #[arg(long)]
        weights: PathBuf,
        /// Where drawn images, labels/*.txt and predictions.json go.
        #[arg(long, default_value = "runs/detect/predict")]
        out: PathBuf,
        /// Flags every binary shares.
        #[command(flatten)]
        common: CommonFlags,
        /// Images, folders, and key=value settings (conf, iou, imgsz, max_det, device).
        sources: Vec<String>,
    },
    /// Write a model as TorchScript (traced; NMS stays outside): `detect export --weights RUN`.
    Export {
        /// A checkpoint, or a run folder.
        #[arg(long)]
        weights: PathBuf,
        /// The TorchScript file to write.
        #[arg(long, default_value = "yolov8.pt")]
        out: PathBuf,
        /// Input size traced (default: the size the run was trained at, else 640).
        #[arg(long)]
        imgsz: Option<usize>,
    },
    /// Transfer learning on synthetic shapes against training from scratch: YOLOv8n pretrained
    /// on shapes and fine-tuned on new ones (freeze=10), then SSDlite and Faster R-CNN on the
    /// ImageNet MobileNetV2 backbone (or one of them, by `arch=`).
    Demo {
        /// The demo folder: this task writes `<out>/detect`, the summary of every task's demo
        /// `<out>/report.html`.
        #[arg(long, default_value = "runs/demo")]
        out: PathBuf,
        /// Old spelling of --out.
        #[arg(long, hide = true)]
        dir: Option<PathBuf>,
        /// Epochs of the fine-tuning and of the from-scratch run (pretraining: 30; Faster
        /// R-CNN: 24, SSDlite: 20 unless given).
        #[arg(long)]
        epochs: Option<usize>,
        /// The ImageNet MobileNetV2 checkpoint for `arch=fasterrcnn` and `arch=ssdlite`
        /// (default: in $FERROVIS_WEIGHTS or torch.hub's cache, else `mobilenet_v2:IMAGENET1K_V1`
        /// fetched unless offline).
        #[arg(long)]
        weights: Option<PathBuf>,
        /// `arch=yolov8`, `arch=fasterrcnn` or `arch=ssdlite` (none: all three in that order).
        settings: Vec<String>,
    },
    /// Inspect or convert checkpoint files (.pth/.pt zip or legacy, .safetensors, .ot).
    #[command(subcommand)]
    Weights(WeightsCommand),
}

/// `--device` and `--set`, which mean what they mean in the other binaries; each becomes the
/// Ultralytics setting of the same meaning.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CommonFlags {
    /// Device: auto, cpu, cuda, cuda:N or N (as device=).
    #[arg(long)]
    pub device: Option<String>,
    /// A setting, as key=value arguments (repeatable): `--set epochs=3`.
    #[arg(long = "set")]
    pub set: Vec<String>,
}

impl CommonFlags {
    /// `settings` (key=value arguments) followed by these flags' settings.
    fn overrides(&self, mut settings: Vec<String>) -> Vec<String> {
        settings.retain(|s| !s.is_empty());
        settings.extend(self.set.iter().cloned());
        if let Some(d) = &self.device {
            settings.push(format!("device={d}"));
        }
        settings
    }
}

/// Splits positional arguments into `key=value` settings and the rest.
fn split_settings(args: &[String]) -> (Vec<String>, Vec<PathBuf>) {
    let (kv, rest): (Vec<&String>, Vec<&String>) = args
        .iter()
        .partition(|a| a.contains('=') && !std::path::Path::new(a.as_str()).exists());
    (
        kv.into_iter().cloned().collect(),
        rest.into_iter().map(PathBuf::from).collect(),
    )
}

fn nms_from(cfg: &DetectConfig, mut base: NmsConfig) -> NmsConfig {
    if let Some(c) = cfg.conf {
        base.conf = c;
    }
    base.iou = cfg.iou;
    base.max_det = cfg.max_det;
    base
}

/// True when `weights` belongs to a run of a torchvision detector (its `detect.json` names an
/// `arch`).
fn torchvision_run(weights: &std::path::Path) -> Result<bool> {
    let resolved = ferrovis_core::run::resolve_weights(weights)?;
    Ok(resolved
        .meta::<run::RunMeta>()?
        .is_some_and(|m| m.arch.is_some()))
}

/// Runs one parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train {
            config,
            resume,
            weights,
            seed,
            common,
            settings,
        } => {
            let mut settings = common.overrides(settings);
            settings.extend(weights.map(|w| format!("model={w}")));
            settings.extend(seed.map(|s| format!("seed={s}")));
            let file = ferrovis_core::run::resume_config(config.as_deref(), resume.as_deref())?;
            let cfg = DetectConfig::load(file.as_deref(), &settings)?;
            let control = RunControl {
                stop: Some(ctrl_c_flag()?),
                ..Default::default()
            };
            if cfg.is_torchvision() {
                references::train::train(&cfg, &control, resume.as_deref())?;
            } else {
                train::train(&cfg, &control, resume.as_deref())?;
            }
        }
        Command::Val {
            weights,
            out,
            common,
            settings,
        } => {
            let settings = common.overrides(settings);
            // A run's own settings (its data set, image size) are the defaults of its validation.
            let file = ferrovis_core::run::resolve_weights(&weights)?
                .run
                .map(|r| r.config())
                .filter(|p| p.is_file());
            let cfg = DetectConfig::load(file.as_deref(), &settings)?;
            if torchvision_run(&weights)? {
                references::train::val(&weights, &cfg, out)?;
                return Ok(());
            }
            // Under torchrun each rank scores its share of the images and rank 0 reports the
            // whole set's metrics (the statistics are gathered in `val::evaluate`).
            let device = ferrovis_core::distributed::rank_device(parse_device(&cfg.device_name())?);
            let group = ferrovis_core::distributed::group(device)?;
            let m = predict::load_model(&weights, device, true)?;
            let (yaml, _, val) = train::check_dataset(&cfg.data)?;
            if yaml.names.len() != m.names.len() {
                anyhow::bail!(
                    "{} predicts {} classes but {} has {}",
                    weights.display(),
                    m.names.len(),
                    yaml.file.display(),
                    yaml.names.len()
                );
            }
            let loader = train::loader(&val, &cfg, false, cfg.batch * 2)?.with_shard(
                group.map(|g| ferrovis_data::loader::Shard::new(g.rank(), g.world_size(), false)),
            );
            let result = val::evaluate(
                &m.model,
                &loader,
                &nms_from(&cfg, NmsConfig::val()),
                device,
                None,
            )?;
            let dir = out.unwrap_or_else(|| {
                ferrovis_core::engine::new_run_dir(std::path::Path::new(&cfg.project), "val")
            });
            if ferrovis_core::distributed::is_main_process() {
                val::report(&result, &yaml.names, &dir)?;
            }
        }
        Command::Predict {
            weights,
            out,
            common,
            sources,
        } => {
            let (settings, files) = split_settings(&sources);
            let settings = common.overrides(settings);
            if files.is_empty() {
                anyhow::bail!("give at least one image or folder to predict on");
            }
            let cfg = DetectConfig::load(None, &settings)?;
            if torchvision_run(&weights)? {
                references::train::predict(&weights, &cfg, &files, &out)?;
                return Ok(());
            }
            let device = parse_device(&cfg.device_name())?;
            let m = predict::load_model(&weights, device, true)
                .with_context(|| format!("loading {}", weights.display()))?;
            let imgsz = if settings.iter().any(|s| s.starts_with("imgsz=")) {
                cfg.imgsz
            } else {
                m.imgsz
            };
            predict::predict(
                &m,
                &files,
                imgsz,
                &nms_from(&cfg, NmsConfig::predict()),
                &out,
            )?;
        }
        Command::Export {
            weights,
            out,
            imgsz,
        } => {
            if torchvision_run(&weights)? {
                anyhow::bail!(
                    "{}: export traces YOLOv8 only; a torchvision detector's post-processing \
                     (proposals, per-class NMS) runs in Rust, outside a traced graph",
                    weights.display()
                );
            }
            let (m, size) = export::export(&weights, &out, imgsz)?;
            println!(
                "wrote {} (TorchScript; input: RGB float (N, 3, {size}, {size}) in [0, 1], \
                 letterboxed; output: (N, 4 + {}, anchors) boxes cx, cy, w, h in pixels and class \
                 probabilities, before NMS)",
                out.display(),
                m.names.len()
            );
        }
        Command::Demo {
            out,
            dir,
            epochs,
            weights,
            settings,
        } => {
            let out = ferrovis_core::cli::renamed(None, dir, "--dir", "--out").unwrap_or(out);
            let mut arch = None;
            for s in &settings {
                match s.split_once('=') {
                    Some(("arch", a)) => arch = Some(a.to_string()),
                    _ => anyhow::bail!(
                        "demo: unknown setting {s:?} (arch=yolov8, fasterrcnn or ssdlite)"
                    ),
                }
            }
            let weights = weights.as_deref();
            let (yolo, ssdlite, rcnn) = match arch.as_deref() {
                // All three: YOLOv8 pretrained on shapes, SSDlite and Faster R-CNN on ImageNet.
                None => (true, true, true),
                Some("yolov8") => (true, false, false),
                Some("fasterrcnn" | "fasterrcnn_mobilenet_v2_fpn") => (false, false, true),
                Some("ssdlite" | "ssdlite320_mobilenet_v2") => (false, true, false),
                Some(other) => {
                    anyhow::bail!("demo: arch={other}: expected yolov8, fasterrcnn or ssdlite")
                }
            };
            let mut rows = Vec::new();
            if yolo {
                rows.push(demo::run(&out, epochs.unwrap_or(25))?.row);
            }
            let imagenet = if ssdlite || rcnn {
                demo::imagenet_weights(weights)
            } else {
                None
            };
            type TvDemo = fn(&Path, usize, &Path) -> Result<demo::TvDemoResult>;
            let tv_demos: [(bool, &str, usize, TvDemo); 2] = [
                (ssdlite, demo::SSDLITE_MODEL, 20, demo::run_ssdlite),
                (rcnn, demo::FASTER_RCNN_MODEL, 24, demo::run_faster_rcnn),
            ];
            for (_, model, default_epochs, run_demo) in tv_demos.into_iter().filter(|d| d.0) {
                println!();
                let Some(w) = imagenet.as_deref() else {
                    let row = demo::skipped_row(model);
                    println!("== {model}: {}", row.note);
                    rows.push(row);
                    continue;
                };
                rows.push(run_demo(&out, epochs.unwrap_or(default_epochs), w)?.row);
            }
            let all = ferrovis_core::demo_report::record(&out, "detect", rows)?;
            println!("\n{}", ferrovis_core::demo_report::table(&all));
            println!(
                "report: {}",
                ferrovis_core::demo_report::report_path(&out).display()
            );
        }
        Command::Weights(cmd) => run_weights(&cmd)?,
    }
    Ok(())
}
