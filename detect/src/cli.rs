//! The `detect` command line: the clap tree and one function per command, each dispatching to
//! the family the weights or `arch=` name ([`crate::yolo`] or [`crate::torchvision`]).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use ferrovis_app::args::{DeviceOverride, ExportTarget, RunFolderArgs, SetArg, SettingsArgs};
use ferrovis_app::weights_command::{run_weights, WeightsCommand};
use ferrovis_core::device::parse_device;
use ferrovis_core::engine::RunControl;

use crate::config::DetectConfig;
use crate::source::{identify, WeightsSource};
use crate::track::TrackerConfig;
use crate::yolo::postprocess::NmsConfig;
use crate::{demo, torchvision, yolo};
use ferrovis_data::video::VideoOptions;

/// Command line of the `detect` binary.
#[derive(Debug, Parser)]
#[command(
    name = "detect",
    version,
    about = "Object detection: YOLOv8 (Ultralytics' recipe), Faster R-CNN, SSD and RetinaNet (torchvision's): fine-tune, validate, predict"
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
        /// Continue the run in this folder from its last checkpoint.
        #[arg(long)]
        resume: Option<PathBuf>,
        /// Starting weights: a checkpoint, a run folder, or a scale name (as model=).
        #[arg(long)]
        weights: Option<String>,
        /// Seed (as seed=).
        #[arg(long)]
        seed: Option<u64>,
        /// `--device` (as device=).
        #[command(flatten)]
        device: DeviceOverride,
        /// `--project`, `--name` (as project=, name=).
        #[command(flatten)]
        run_folder: RunFolderArgs,
        /// `--config` (a TOML file of settings with Ultralytics' names, applied before the
        /// key=value arguments), `--set`, and settings as key=value (data, model, epochs, batch,
        /// imgsz, freeze, lr0, device, …).
        #[command(flatten)]
        settings: SettingsArgs,
    },
    /// Validate weights on a data set's val split: `detect val --weights best.pt data=coco128.yaml`.
    Val {
        /// A run folder (its weights/best.safetensors), or any detector's checkpoint or weights
        /// name (YOLOv8, torchvision's Faster R-CNN, SSD or RetinaNet).
        #[arg(long)]
        weights: PathBuf,
        /// Where the plots and metrics.json go (default: runs/detect/val).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Flags every binary shares.
        #[command(flatten)]
        common: CommonFlags,
        /// Settings as key=value (data, imgsz, batch, conf, iou, max_det, device, and arch= for
        /// a checkpoint outside a run folder whose tensors do not say it).
        settings: Vec<String>,
    },
    /// Detect objects in images, folders, globs, lists, videos, cameras and streams:
    /// `detect predict --weights best.pt img.jpg dir/ clip.mp4 0 rtsp://cam/live`.
    Predict {
        /// A checkpoint, or a run folder.
        #[arg(long)]
        weights: PathBuf,
        /// Where drawn images and videos, labels/*.txt and predictions.json go.
        #[arg(long, default_value = "runs/detect/predict")]
        out: PathBuf,
        /// Flags every binary shares.
        #[command(flatten)]
        common: CommonFlags,
        /// Sources, and key=value settings (conf, iou, imgsz, max_det, device, arch; for
        /// videos vid_stride, stream_buffer, fourcc, save, save_frames).
        sources: Vec<String>,
    },
    /// Track objects through videos, cameras, streams, or images in order (a folder, a glob,
    /// a list) with BoT-SORT or ByteTrack: `detect track --weights best.pt clip.mp4
    /// tracker=bytetrack.yaml`.
    Track {
        /// A checkpoint, or a run folder.
        #[arg(long)]
        weights: PathBuf,
        /// Where drawn frames and videos, labels/*.txt (with the track id), predictions.json
        /// and the MOT files go.
        #[arg(long, default_value = "runs/detect/track")]
        out: PathBuf,
        /// Flags every binary shares.
        #[command(flatten)]
        common: CommonFlags,
        /// Sources as predict's, and key=value settings (predict's, and tracker=botsort.yaml,
        /// the default, bytetrack.yaml, or a file with their keys).
        sources: Vec<String>,
    },
    /// Write a model as TorchScript or ONNX (traced; NMS stays outside):
    /// `detect export --weights RUN [--format onnx]`.
    Export {
        /// A checkpoint, or a run folder.
        #[arg(long)]
        weights: PathBuf,
        /// `--format torchscript|onnx` and `--out` (default `yolov8.pt` / `yolov8.onnx`).
        #[command(flatten)]
        export: ferrovis_app::args::ExportFlags,
        /// Input size traced (default: the size the run was trained at, else 640).
        #[arg(long)]
        imgsz: Option<usize>,
        /// An end-to-end model (YOLO26): trace its one-to-one head's NMS-free output, (N, 300, 6)
        /// rows x1, y1, x2, y2, score, class (Ultralytics' `nms=False`).
        #[arg(long)]
        end2end: bool,
        /// ONNX: write non-maximum suppression into the graph (Ultralytics' `nms=True`): output
        /// (N, max_det, 6) rows x1, y1, x2, y2, score, class, zeros after the last detection.
        #[arg(long)]
        nms: bool,
        /// With --nms: the minimum class probability (default 0.25, as Ultralytics exports).
        #[arg(long, requires = "nms")]
        conf: Option<f32>,
        /// With --nms: the IoU above which a lower-scored box of its class is dropped (0.7).
        #[arg(long, requires = "nms")]
        iou: Option<f32>,
        /// With --nms: rows per image (300).
        #[arg(long, requires = "nms")]
        max_det: Option<i64>,
    },
    /// Transfer learning on synthetic shapes against training from scratch: YOLOv8n pretrained
    /// on shapes and fine-tuned on new ones (freeze=10), then SSDlite and Faster R-CNN on the
    /// ImageNet MobileNetV2 backbone (or one of them, by `arch=`; `model=yolo11n` runs the YOLO
    /// demo with YOLO11n).
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
        /// `arch=yolov8`, `arch=yolo11`, `arch=fasterrcnn` or `arch=ssdlite` (none: YOLOv8,
        /// SSDlite and Faster R-CNN in that order); `model=yolo11n` (or another YOLO model name)
        /// for the YOLO demo's model, which alone then runs unless `arch=` says otherwise.
        settings: Vec<String>,
    },
    /// Weights: list and download them by name, inspect or convert checkpoint files
    /// (.pth/.pt zip or legacy, .safetensors, .ot), list a model's variables (`--arch`).
    #[command(subcommand)]
    Weights(WeightsCommand),
}

/// `--device` and `--set`, which mean what they mean in the other binaries; each becomes the
/// Ultralytics setting of the same meaning.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CommonFlags {
    /// `--device` (as device=).
    #[command(flatten)]
    pub device: DeviceOverride,
    /// `--set`.
    #[command(flatten)]
    pub set: SetArg,
}

impl CommonFlags {
    /// `settings` (key=value arguments) followed by these flags' settings.
    fn overrides(&self, mut settings: Vec<String>) -> Vec<String> {
        settings.retain(|s| !s.is_empty());
        settings.extend(self.set.set.iter().cloned());
        settings.extend(device_setting(&self.device));
        settings
    }
}

/// `device=…` for `--device`, when given.
fn device_setting(device: &DeviceOverride) -> Option<String> {
    device.device.as_ref().map(|d| format!("device={d}"))
}

/// Splits positional arguments into `key=value` settings and the rest.
fn split_settings(args: &[String]) -> (Vec<String>, Vec<PathBuf>) {
    let (kv, rest): (Vec<&String>, Vec<&String>) = args.iter().partition(|a| {
        a.contains('=') && !a.contains("://") && !std::path::Path::new(a.as_str()).exists()
    });
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
    base.end2end = !cfg.nms;
    base
}

/// The `arch=` among `settings`, when given.
fn given_arch(settings: &[String]) -> Option<&str> {
    settings
        .iter()
        .rev()
        .find_map(|s| s.strip_prefix("arch="))
        .filter(|a| !a.is_empty())
}

/// `settings` with `arch=` set to `source`'s architecture (so the recipe and the warnings follow
/// the weights' family) unless given.
fn with_arch(mut settings: Vec<String>, source: &WeightsSource) -> Vec<String> {
    if given_arch(&settings).is_none() {
        settings.insert(0, format!("arch={}", source.arch));
    }
    settings
}

/// Runs one parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train {
            resume,
            weights,
            seed,
            device,
            run_folder,
            settings,
        } => train(resume, weights, seed, &device, &run_folder, &settings),
        Command::Val {
            weights,
            out,
            common,
            settings,
        } => val(&weights, out, common.overrides(settings)),
        Command::Predict {
            weights,
            out,
            common,
            sources,
        } => {
            let (settings, files) = split_settings(&sources);
            predict(&weights, &out, common.overrides(settings), &files, None)
        }
        Command::Track {
            weights,
            out,
            common,
            sources,
        } => {
            let (settings, files) = split_settings(&sources);
            // tracker= is the tracker's, not the detector's.
            let (tracker, settings): (Vec<String>, Vec<String>) = settings
                .into_iter()
                .partition(|s| s.starts_with("tracker="));
            let spec = tracker
                .last()
                .and_then(|s| s.strip_prefix("tracker="))
                .unwrap_or("botsort.yaml");
            let tracker = TrackerConfig::load(spec)?;
            // The tracker's second association needs the low-score boxes: as Ultralytics'
            // `track`, the detector keeps boxes from 0.1 unless `conf=` says otherwise.
            let mut settings = settings;
            if !settings.iter().any(|s| s.starts_with("conf=")) {
                settings.push("conf=0.1".into());
            }
            predict(
                &weights,
                &out,
                common.overrides(settings),
                &files,
                Some(&tracker),
            )
        }
        Command::Export {
            weights,
            export: flags,
            imgsz,
            end2end,
            nms,
            conf,
            iou,
            max_det,
        } => {
            let nms = nms.then(|| {
                let d = ferrovis_core::onnx::Nms::default();
                ferrovis_core::onnx::Nms {
                    conf: conf.unwrap_or(d.conf),
                    iou: iou.unwrap_or(d.iou),
                    max_det: max_det.unwrap_or(d.max_det),
                }
            });
            export(
                &weights,
                &flags.out("yolov8"),
                flags.target(),
                imgsz,
                end2end,
                nms,
            )
        }
        Command::Demo {
            out,
            dir,
            epochs,
            weights,
            settings,
        } => run_demo(out, dir, epochs, weights, &settings),
        Command::Weights(cmd) => run_weights(&cmd, Some(&crate::weights_arch::build)),
    }
}

/// `detect train`: the family `arch=` names, on its recipe.
fn train(
    resume: Option<PathBuf>,
    weights: Option<String>,
    seed: Option<u64>,
    device: &DeviceOverride,
    run_folder: &RunFolderArgs,
    settings: &SettingsArgs,
) -> Result<()> {
    let mut flags: Vec<String> = weights.map(|w| format!("model={w}")).into_iter().collect();
    flags.extend(seed.map(|s| format!("seed={s}")));
    flags.extend(device_setting(device));
    flags.extend(run_folder.settings("project", "name"));
    let file = ferrovis_core::run::resume_config(settings.config.as_deref(), resume.as_deref())?;
    let cfg = DetectConfig::load(file.as_deref(), &settings.overrides(flags)?)?;
    let control = RunControl {
        stop: Some(ferrovis_app::interrupt::flag()?),
        ..Default::default()
    };
    if cfg.is_torchvision() {
        torchvision::train::train(&cfg, &control, resume.as_deref())?;
    } else {
        yolo::train::train(&cfg, &control, resume.as_deref())?;
    }
    Ok(())
}

/// `detect val`: any detector's weights on a data set's val split.
fn val(weights: &Path, out: Option<PathBuf>, settings: Vec<String>) -> Result<()> {
    let source = identify(weights, given_arch(&settings))?;
    // A run's own settings (its data set, image size) are the defaults of its validation.
    let file = ferrovis_core::run::resolve_weights(weights)?
        .run
        .map(|r| r.config())
        .filter(|p| p.is_file());
    let cfg = DetectConfig::load(file.as_deref(), &with_arch(settings, &source))?;
    if source.family.is_torchvision() {
        torchvision::train::val(&source, &cfg, out)?;
        return Ok(());
    }
    // Under torchrun each rank scores its share of the images and rank 0 reports the whole
    // set's metrics (the statistics are gathered in `val::evaluate`).
    let device = ferrovis_core::distributed::rank_device(parse_device(&cfg.device_name())?);
    let group = ferrovis_core::distributed::group(device)?;
    let m = yolo::predict::load_model(&source.file, device, true)?;
    let (yaml, _, val) = crate::data::check_dataset(&cfg.data)?;
    if yaml.names.len() != m.names.len() {
        anyhow::bail!(
            "{} predicts {} classes but {} has {}",
            weights.display(),
            m.names.len(),
            yaml.file.display(),
            yaml.names.len()
        );
    }
    // Standalone validation batches `batch` images, as Ultralytics' does (training validates
    // twice as many at a time); the rectangular batch shapes depend on it.
    let loader = yolo::train::loader(&val, &cfg, false, cfg.batch)?.with_shard(
        group.map(|g| ferrovis_data::loader::Shard::new(g.rank(), g.world_size(), false)),
    );
    let result = yolo::val::evaluate(
        &m.model,
        &loader,
        &nms_from(&cfg, NmsConfig::val()),
        device,
        None,
    )?;
    let dir =
        out.unwrap_or_else(|| ferrovis_core::engine::new_run_dir(Path::new(&cfg.project), "val"));
    if ferrovis_core::distributed::is_main_process() {
        yolo::val::report(&result, &yaml.names, &dir)?;
    }
    Ok(())
}

/// `detect predict` (and `detect track` with a tracker): any detector's weights on images and
/// folders.
fn predict(
    weights: &Path,
    out: &Path,
    settings: Vec<String>,
    files: &[PathBuf],
    tracker: Option<&TrackerConfig>,
) -> Result<()> {
    if files.is_empty() {
        anyhow::bail!("give at least one image, folder, video, camera or stream to predict on");
    }
    let (video, settings) = VideoOptions::from_settings(settings)?;
    let source = identify(weights, given_arch(&settings))?;
    let imgsz_given = settings.iter().any(|s| s.starts_with("imgsz="));
    let cfg = DetectConfig::load(None, &with_arch(settings, &source))?;
    if source.family.is_torchvision() {
        torchvision::train::predict(&source, &cfg, files, out, &video, tracker)?;
        return Ok(());
    }
    let device = parse_device(&cfg.device_name())?;
    let m = yolo::predict::load_model(&source.file, device, true)
        .with_context(|| format!("loading {}", weights.display()))?;
    let imgsz = if imgsz_given { cfg.imgsz } else { m.imgsz };
    let nms = nms_from(&cfg, NmsConfig::predict());
    yolo::predict::predict(&m, files, imgsz, &nms, out, &video, tracker)?;
    Ok(())
}

/// `detect export`: YOLO as TorchScript or ONNX.
fn export(
    weights: &Path,
    out: &Path,
    target: ExportTarget,
    imgsz: Option<usize>,
    end2end: bool,
    nms: Option<ferrovis_core::onnx::Nms>,
) -> Result<()> {
    let source = identify(weights, None)?;
    if source.family.is_torchvision() {
        anyhow::bail!(
            "{}: export traces YOLO models only; a torchvision detector's post-processing \
             (proposals, per-class NMS) runs in Rust, outside a traced graph",
            weights.display()
        );
    }
    let (kind, batch) = (target.describe(), target.batch());
    if end2end && nms.is_some() {
        anyhow::bail!("--end2end and --nms exclude each other: an end-to-end head needs no NMS");
    }
    if let Some(nms) = nms {
        if !(0.0..=1.0).contains(&nms.conf) || !(0.0..=1.0).contains(&nms.iou) || nms.max_det < 1 {
            anyhow::bail!(
                "--conf {} and --iou {} must lie in [0, 1] and --max-det {} be at least 1",
                nms.conf,
                nms.iou,
                nms.max_det
            );
        }
        let (_, size) = yolo::export::export_with_nms(weights, out, target, imgsz, nms)?;
        println!(
            "wrote {} ({kind}, with NMS; input `images`: RGB float ({batch}, 3, {size}, {size}) \
             in [0, 1], letterboxed; output `output0`: ({batch}, {}, 6) rows x1, y1, x2, y2, \
             score, class in pixels, by decreasing score, conf > {}, IoU {}; zeros after the \
             last detection)",
            out.display(),
            nms.max_det,
            nms.conf,
            nms.iou
        );
        return Ok(());
    }
    if end2end {
        let (_, size) = yolo::export::export_end2end(weights, out, target, imgsz)?;
        println!(
            "wrote {} ({kind}; input: RGB float ({batch}, 3, {size}, {size}) in [0, 1], \
             letterboxed; output: ({batch}, 300, 6) rows x1, y1, x2, y2, score, class in pixels, \
             by decreasing score, no NMS needed: keep the rows above your confidence threshold)",
            out.display()
        );
        return Ok(());
    }
    let (m, size) = yolo::export::export(weights, out, target, imgsz)?;
    println!(
        "wrote {} ({kind}; input `images`: RGB float ({batch}, 3, {size}, {size}) in [0, 1], \
         letterboxed; output `output0`: ({batch}, 4 + {}, anchors) boxes cx, cy, w, h in pixels \
         and class probabilities, before NMS)",
        out.display(),
        m.names.len()
    );
    Ok(())
}

/// `detect demo`: transfer against scratch for each family.
fn run_demo(
    out: PathBuf,
    dir: Option<PathBuf>,
    epochs: Option<usize>,
    weights: Option<PathBuf>,
    settings: &[String],
) -> Result<()> {
    let out = ferrovis_app::args::renamed(None, dir, "--dir", "--out").unwrap_or(out);
    let (mut arch, mut model) = (None, None);
    for s in settings {
        match s.split_once('=') {
            Some(("arch", a)) => arch = Some(a.to_string()),
            Some(("model", m)) => model = Some(m.to_string()),
            _ => anyhow::bail!(
                "demo: unknown setting {s:?} (arch=yolov8, yolo11, fasterrcnn or ssdlite; \
                 model=yolo11n)"
            ),
        }
    }
    let weights = weights.as_deref();
    let yolo_model = match (arch.as_deref(), model) {
        (_, Some(m)) => m,
        (Some("yolo11"), None) => "yolo11n".to_string(),
        _ => "yolov8n".to_string(),
    };
    let (yolo, ssdlite, rcnn) = match arch.as_deref() {
        // A YOLO model named alone: its demo.
        None if yolo_model != "yolov8n" => (true, false, false),
        // All three: YOLOv8 pretrained on shapes, SSDlite and Faster R-CNN on ImageNet.
        None => (true, true, true),
        Some("yolov8" | "yolo11") => (true, false, false),
        Some("fasterrcnn" | "fasterrcnn_mobilenet_v2_fpn") => (false, false, true),
        Some("ssdlite" | "ssdlite320_mobilenet_v2") => (false, true, false),
        Some(other) => {
            anyhow::bail!("demo: arch={other}: expected yolov8, yolo11, fasterrcnn or ssdlite")
        }
    };
    let mut rows = Vec::new();
    if yolo {
        rows.push(demo::run(&out, epochs.unwrap_or(25), &yolo_model)?.row);
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
    let all = ferrovis_app::demo_report::record(&out, "detect", rows)?;
    println!("\n{}", ferrovis_app::demo_report::table(&all));
    println!(
        "report: {}",
        ferrovis_app::demo_report::report_path(&out).display()
    );
    println!("\nother detectors (`detect train`):");
    for line in demo::model_list() {
        println!("  {line}");
    }
    Ok(())
}
