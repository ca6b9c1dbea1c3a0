//! The `style` command line: the clap tree and one function per command.

use ferrovis_data::sources::SkipLog;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use ferrovis_app::args::{flag_settings, DeviceArg, RunFolderArgs, SettingsArgs};
use ferrovis_app::weights_command::{run_weights, WeightsCommand};
use tch::{Device, Tensor};

use crate::arbitrary::{AutoEncoder, Transform};
use crate::features::{DefaultLayers, FeatureNet, VGG19_HINT};
use crate::gatys::{GatysConfig, Init, Method};
use crate::loss::PerceptualLoss;
use crate::{demo, fast, gatys, image};

/// Command line of the `style` binary.
#[derive(Debug, Parser)]
#[command(name = "style", version, about = "Neural style transfer with VGG")]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The `style` subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Optimise an image to the content of one and the style of others (Gatys et al.).
    Transfer(TransferArgs),
    /// One-pass arbitrary style by adaptive instance normalisation (relu3_1 encoder/decoder).
    Adain(OnePassArgs),
    /// One-pass arbitrary style by whitening and colouring (relu3_1 encoder/decoder).
    Wct(OnePassArgs),
    /// Train a feed-forward transformation network for one style (Johnson et al.; `train-fast`
    /// is the old name).
    #[command(alias = "train-fast")]
    Train(TrainFastArgs),
    /// The perceptual loss a trained network reaches on content images (its run's style, VGG and
    /// loss).
    Val(ValArgs),
    /// Apply a trained transformation network to images in one pass (`stylize` is the old name).
    #[command(alias = "stylize")]
    Predict(StylizeArgs),
    /// Write a trained transformation network as TorchScript (traced) for `torch.jit.load`, or as
    /// ONNX (`--format onnx`).
    Export(ExportArgs),
    /// Stylise the embedded cat with the embedded Starry Night.
    Demo(DemoArgs),
    /// Weights: list and download them by name, inspect or convert checkpoint files
    /// (.pth/.pt zip or legacy, .safetensors, .ot), list a backbone's variables (`--arch`).
    #[command(subcommand)]
    Weights(WeightsCommand),
}

/// Content, styles, output: shared by every method.
#[derive(Debug, Args)]
pub struct ImageArgs {
    /// The content image.
    #[arg(long)]
    pub content: PathBuf,
    /// A style image (repeat to blend several).
    #[arg(long = "style", required = true)]
    pub styles: Vec<PathBuf>,
    /// Blend weight of each style image, in order (default: equal). Before this release it was
    /// spelled --style-weight, which now is the style loss's weight as in PyTorch's examples.
    #[arg(long = "style-blend")]
    pub style_weights: Vec<f64>,
    /// Longer side of the images worked on (the output's size).
    #[arg(long, default_value_t = 512)]
    pub size: usize,
    /// Keep the content's colours (luminance-only transfer).
    #[arg(long)]
    pub preserve_colors: bool,
    /// Output image.
    #[arg(long, default_value = "stylised.png")]
    pub out: PathBuf,
    /// `--device`.
    #[command(flatten)]
    pub device: DeviceArg,
}

/// `style transfer` options.
#[derive(Debug, Args)]
pub struct TransferArgs {
    /// Images.
    #[command(flatten)]
    pub images: ImageArgs,
    /// VGG weights: torchvision's vgg19-dcbb9e9d.pth (or another VGG), or vgg_r31.pth, as a file
    /// or a name (`vgg19`, `vgg16`, `vgg_r31`; default: $FERROVIS_WEIGHTS, a file or a folder
    /// holding one of them, else `vgg19`).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// The loss.
    #[command(flatten)]
    pub loss: LossArgs,
    /// Start from the content image or from noise.
    #[arg(long, value_enum, default_value = "content")]
    pub init: Init,
    /// Optimiser.
    #[arg(long, value_enum, default_value = "lbfgs")]
    pub optimizer: Method,
    /// Loss evaluations.
    #[arg(long, default_value_t = 300)]
    pub iterations: usize,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 0.02)]
    pub lr: f64,
    /// Write intermediate images here.
    #[arg(long)]
    pub frames: Option<PathBuf>,
    /// Every this many evaluations.
    #[arg(long, default_value_t = 50)]
    pub frame_every: usize,
}

/// The perceptual loss's layers and weights: shared by `transfer` and `train`.
#[derive(Debug, Args)]
pub struct LossArgs {
    /// Content layers, comma-separated (default: transfer conv4_2, conv3_1 with vgg_r31;
    /// train relu2_2).
    #[arg(long, value_delimiter = ',')]
    pub content_layers: Vec<String>,
    /// Style layers, comma-separated (default: transfer conv1_1,…,conv5_1, up to conv3_1 with
    /// vgg_r31; train the last ReLU of blocks 1–4, e.g. relu1_2,relu2_2,relu3_3,relu4_3).
    #[arg(long, value_delimiter = ',')]
    pub style_layers: Vec<String>,
    /// Weight of the content loss [default: 1].
    #[arg(long)]
    pub content_weight: Option<f64>,
    /// Weight of the style loss, as PyTorch's examples' --style-weight [default: 1e5].
    #[arg(long)]
    pub style_weight: Option<f64>,
    /// Weight of the total-variation loss [default: 0].
    #[arg(long)]
    pub tv_weight: Option<f64>,
    /// Old spelling of --content-weight.
    #[arg(long, hide = true)]
    pub content_factor: Option<f64>,
    /// Old spelling of --style-weight.
    #[arg(long, hide = true)]
    pub style_factor: Option<f64>,
    /// Old spelling of --tv-weight.
    #[arg(long, hide = true)]
    pub tv_factor: Option<f64>,
}

impl LossArgs {
    /// The settings these options give, over the defaults.
    pub fn to_loss(&self) -> PerceptualLoss {
        let mut loss = PerceptualLoss::default();
        self.apply(&mut loss);
        loss
    }

    /// Replaces in `loss` what these options set (layers given, weights given).
    pub fn apply(&self, loss: &mut PerceptualLoss) {
        use ferrovis_app::args::renamed;
        if !self.content_layers.is_empty() {
            loss.content_layers = self.content_layers.clone();
        }
        if !self.style_layers.is_empty() {
            loss.style_layers = self.style_layers.clone();
        }
        let weights = [
            (
                &mut loss.content_weight,
                self.content_weight,
                self.content_factor,
                "--content-factor",
                "--content-weight",
            ),
            (
                &mut loss.style_weight,
                self.style_weight,
                self.style_factor,
                "--style-factor",
                "--style-weight",
            ),
            (
                &mut loss.tv_weight,
                self.tv_weight,
                self.tv_factor,
                "--tv-factor",
                "--tv-weight",
            ),
        ];
        for (slot, new, old, old_flag, new_flag) in weights {
            if let Some(v) = renamed(new, old, old_flag, new_flag) {
                *slot = v;
            }
        }
    }
}

/// `style adain` / `style wct` options.
#[derive(Debug, Args)]
pub struct OnePassArgs {
    /// Images.
    #[command(flatten)]
    pub images: ImageArgs,
    /// The relu3_1 encoder, a file or the name `vgg_r31` (default: vgg_r31.pth in
    /// $FERROVIS_WEIGHTS, else the name).
    #[arg(long)]
    pub encoder: Option<PathBuf>,
    /// Its decoder, a file or the name `dec_r31` (default: dec_r31.pth in $FERROVIS_WEIGHTS,
    /// else the name).
    #[arg(long)]
    pub decoder: Option<PathBuf>,
    /// Style strength: 1 transfers fully, 0 reconstructs the content.
    #[arg(long, default_value_t = 1.0)]
    pub alpha: f64,
}

/// `style train` options. The settings start from the defaults, or with `--resume` from the
/// run's own (its style.json); a settings file (`--config`, TOML with [`fast::FastConfig`]'s keys),
/// then each option given, then `--set key=value` and trailing `key=value` replace them (e.g.
/// `--epochs 8 --lr 3e-3`, `--set loss.tv_weight=1e-6`).
#[derive(Debug, Args)]
pub struct TrainFastArgs {
    /// The style image (style).
    #[arg(long)]
    pub style: Option<PathBuf>,
    /// A folder of content images (e.g. COCO), searched recursively (content_dir).
    #[arg(long)]
    pub content_dir: Option<PathBuf>,
    /// VGG weights for the perceptual loss (torchvision VGG or vgg_r31.pth, a file or a name;
    /// default $FERROVIS_WEIGHTS, else `vgg19`) (vgg).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Training crop side [default: 256] (size).
    #[arg(long)]
    pub size: Option<usize>,
    /// Use at most this many content images (0: all) [default: 0] (max_images).
    #[arg(long)]
    pub max_images: Option<usize>,
    /// Images per step [default: 4] (batch_size).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Epochs in all [default: 2] (epochs).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Adam's learning rate [default: 1e-3] (lr).
    #[arg(long)]
    pub lr: Option<f64>,
    /// The loss.
    #[command(flatten)]
    pub loss: LossArgs,
    /// Continue the run in this folder from its last checkpoint, up to --epochs in all.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// `--project` [default: runs/style], `--name` [default: fast].
    #[command(flatten)]
    pub run_folder: RunFolderArgs,
    /// Seed [default: 0] (seed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// `--device`.
    #[command(flatten)]
    pub device: DeviceArg,
    /// `--config`, `--set` and trailing settings.
    #[command(flatten)]
    pub settings: SettingsArgs,
}

impl TrainFastArgs {
    /// The settings: the resumed run's own (its style.json) or the defaults, then the settings
    /// file, the options given, `--set` and trailing settings.
    pub fn config(&self) -> Result<fast::FastConfig> {
        let base = match &self.resume {
            Some(run) => ferrovis_core::run::RunDir::new(run).read_meta()?,
            None => fast::FastConfig::default(),
        };
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        let mut flags = flag_settings(&[
            ("style", path(&self.style)),
            ("content_dir", path(&self.content_dir)),
            ("vgg", path(&self.weights)),
            ("size", self.size.map(|v| v.to_string())),
            ("max_images", self.max_images.map(|v| v.to_string())),
            ("batch_size", self.batch_size.map(|v| v.to_string())),
            ("epochs", self.epochs.map(|v| v.to_string())),
            ("lr", self.lr.map(|v| v.to_string())),
            ("seed", self.seed.map(|v| v.to_string())),
        ]);
        flags.extend(self.run_folder.settings("project", "name"));
        let mut cfg = self.settings.load_over(&base, flags)?;
        self.loss.apply(&mut cfg.loss);
        if cfg.style.as_os_str().is_empty() || cfg.content_dir.as_os_str().is_empty() {
            bail!("style train needs --style and --content-dir (or --resume RUN)");
        }
        if cfg.vgg.as_os_str().is_empty() {
            cfg.vgg = vgg_path(&None)?;
        }
        Ok(cfg)
    }
}

/// `style val` options.
#[derive(Debug, Args)]
pub struct ValArgs {
    /// A `style train` run folder (its best weights), or a weights file inside one.
    #[arg(long)]
    pub weights: PathBuf,
    /// Content images to score (default: the run's content folder).
    #[arg(long)]
    pub content_dir: Option<PathBuf>,
    /// Use at most this many content images (0: all).
    #[arg(long, default_value_t = 0)]
    pub max_images: usize,
    /// Where val.json goes (default: the run folder).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// `--device`.
    #[command(flatten)]
    pub device: DeviceArg,
}

/// `style predict` options.
#[derive(Debug, Args)]
pub struct StylizeArgs {
    /// A `style train` run folder or a TransformerNet weights file (e.g. PyTorch's candy.pth).
    #[arg(long, required_unless_present = "model")]
    pub weights: Option<PathBuf>,
    /// Old spelling of --weights.
    #[arg(long, hide = true)]
    pub model: Option<PathBuf>,
    /// Images, folders, globs, lists, videos, cameras (`0`) and stream URLs; and video
    /// settings as key=value (vid_stride, stream_buffer, fourcc, save, save_frames).
    #[arg(required = true)]
    pub sources: Vec<PathBuf>,
    /// Longer side (0: as they are).
    #[arg(long, default_value_t = 0)]
    pub size: usize,
    /// Output folder.
    #[arg(long, default_value = "runs/style/stylized")]
    pub out: PathBuf,
    /// `--device`.
    #[command(flatten)]
    pub device: DeviceArg,
}

/// `style export` options.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// A `style train` run folder or a TransformerNet weights file.
    #[arg(long)]
    pub weights: PathBuf,
    /// `--format torchscript|onnx` and `--out` (default `style.pt` / `style.onnx`).
    #[command(flatten)]
    pub export: ferrovis_app::args::ExportFlags,
    /// The traced input's side (the module takes images of this size).
    #[arg(long, default_value_t = 256)]
    pub size: i64,
}

/// `style demo` options.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The demo folder: this task writes `<out>/style`, the summary of every task's demo
    /// `<out>/report.html`.
    #[arg(long, default_value = "runs/demo")]
    pub out: PathBuf,
    /// Folder with vgg_r31.pth and dec_r31.pth (default: $FERROVIS_WEIGHTS's folder).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Old spelling of --weights.
    #[arg(long, hide = true)]
    pub weights_dir: Option<PathBuf>,
    /// Longer side of the images.
    #[arg(long, default_value_t = 256)]
    pub size: usize,
    /// Gatys loss evaluations.
    #[arg(long, default_value_t = 100)]
    pub iterations: usize,
}

/// The content tensor and `(style, weight)` pairs on `device`.
pub fn load_images(args: &ImageArgs, device: Device) -> Result<(Tensor, Vec<(Tensor, f64)>)> {
    if !args.style_weights.is_empty() && args.style_weights.len() != args.styles.len() {
        bail!(
            "{} --style-blend values for {} --style images",
            args.style_weights.len(),
            args.styles.len()
        );
    }
    let content = image::load(&args.content, args.size, device)?;
    let styles = args
        .styles
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let w = args.style_weights.get(i).copied().unwrap_or(1.0);
            Ok((image::load(p, args.size, device)?, w))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((content, styles))
}

fn finish(result: &Tensor, content: &Tensor, args: &ImageArgs) -> Result<()> {
    let (h, w) = (result.size()[2], result.size()[3]);
    let out = if args.preserve_colors {
        image::keep_colors(result, &content.narrow(2, 0, h).narrow(3, 0, w))
    } else {
        result.shallow_clone()
    };
    image::save(&out, &args.out)?;
    println!("wrote {}", args.out.display());
    Ok(())
}

/// `--weights`, else `$FERROVIS_WEIGHTS` (a VGG checkpoint, or a folder holding torchvision's
/// VGG19 or VGG16 or the vgg_r31 encoder), else torchvision's ImageNet VGG19 by its registry
/// name `vgg19` (torch.hub's cached copy, or fetched), as PyTorch's style-transfer tutorial
/// starts from `vgg19(weights=VGG19_Weights.DEFAULT)`.
fn vgg_path(weights: &Option<PathBuf>) -> Result<PathBuf> {
    const NAMES: [&str; 3] = ["vgg19-dcbb9e9d.pth", "vgg16-397923af.pth", "vgg_r31.pth"];
    let from_env = || {
        ferrovis_app::pretrained::env_weights()
            .map(|p| ferrovis_app::pretrained::weights_in(&p, &NAMES).unwrap_or(p))
    };
    match weights.clone().or_else(from_env) {
        Some(p) => Ok(p),
        None => ferrovis_core::hub::resolve("vgg19").with_context(|| {
            format!(
                "no VGG weights: pass --weights FILE or NAME or set FERROVIS_WEIGHTS; {VGG19_HINT}"
            )
        }),
    }
}

/// Runs a Gatys transfer as the arguments say.
pub fn run_transfer(args: &TransferArgs) -> Result<gatys::Transfer> {
    let device = args.images.device.device()?;
    let net = FeatureNet::load(&vgg_path(&args.weights)?, device)?;
    let (content, styles) = load_images(&args.images, device)?;
    let cfg = GatysConfig {
        loss: args.loss.to_loss().resolved(&net, DefaultLayers::Gatys)?,
        init: args.init,
        method: args.optimizer,
        iterations: args.iterations,
        lr: args.lr,
        frame_every: args.frame_every,
        frames: args.frames.clone(),
        log_every: 50,
        seed: 0,
    };
    println!(
        "{}: content {} style {} ({:?}, {} evaluations)",
        net.name,
        cfg.loss.content_layers.join(","),
        cfg.loss.style_layers.join(","),
        cfg.method,
        cfg.iterations
    );
    let t = Instant::now();
    let result = gatys::transfer(&net, &content, &styles, &cfg)?;
    let (first, last) = (
        result.history.first().map(|h| h.total).unwrap_or(0.0),
        result.history.last().map(|h| h.total).unwrap_or(0.0),
    );
    println!(
        "loss {first:.4e} -> {last:.4e} in {} evaluations, {:.1} s",
        result.history.len(),
        t.elapsed().as_secs_f64()
    );
    finish(&result.image, &content, &args.images)?;
    Ok(result)
}

/// The folder `$FERROVIS_WEIGHTS` names for the relu3_1 pair: itself, or the folder of the file
/// it names (vgg_r31.pth and dec_r31.pth lie side by side).
pub(crate) fn r31_dir_from_env() -> Option<PathBuf> {
    ferrovis_app::pretrained::env_weights().map(|p| match p.parent() {
        Some(dir) if p.is_file() => dir.to_path_buf(),
        _ => p,
    })
}

/// The flag's file or name, else `file` in the folder of `$FERROVIS_WEIGHTS`, else the
/// registry's `name` (cached, or fetched from LinearStyleTransfer's archive), else an error
/// saying what to pass.
fn r31_path(given: &Option<PathBuf>, file: &str, name: &str, flag: &str) -> Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p.clone());
    }
    if let Some(p) =
        r31_dir_from_env().and_then(|dir| ferrovis_app::pretrained::weights_in(&dir, &[file]))
    {
        return Ok(p);
    }
    ferrovis_core::hub::resolve(name).with_context(|| {
        format!(
            "no {file}: pass {flag} FILE or NAME, or set FERROVIS_WEIGHTS to the folder holding \
             vgg_r31.pth and dec_r31.pth (LinearStyleTransfer's relu3_1 encoder and decoder)"
        )
    })
}

/// Runs AdaIN or WCT as the arguments say.
pub fn run_one_pass(args: &OnePassArgs, transform: Transform) -> Result<Tensor> {
    let device = args.images.device.device()?;
    let ae = AutoEncoder::load(
        &r31_path(&args.encoder, "vgg_r31.pth", "vgg_r31", "--encoder")?,
        &r31_path(&args.decoder, "dec_r31.pth", "dec_r31", "--decoder")?,
        device,
    )?;
    let (content, styles) = load_images(&args.images, device)?;
    let t = Instant::now();
    let out = ae.stylize(&content, &styles, transform, args.alpha)?;
    println!("{transform:?} in {:.2} s", t.elapsed().as_secs_f64());
    finish(&out, &content, &args.images)?;
    Ok(out)
}

/// Runs one parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Transfer(args) => run_transfer(&args).map(|_| ()),
        Command::Adain(args) => run_one_pass(&args, Transform::Adain).map(|_| ()),
        Command::Wct(args) => run_one_pass(&args, Transform::Wct).map(|_| ()),
        Command::Train(a) => train(a),
        Command::Val(a) => val(a),
        Command::Predict(a) => predict(a),
        Command::Export(a) => export(a),
        Command::Demo(args) => demo::run(&args),
        Command::Weights(cmd) => run_weights(&cmd, None),
    }
}

/// `style train`: a feed-forward network for one style, in a run folder.
fn train(a: TrainFastArgs) -> Result<()> {
    let device = a.device.device()?;
    let cfg = a.config()?;
    let control = ferrovis_core::engine::RunControl {
        stop: Some(ferrovis_app::interrupt::flag()?),
        ..Default::default()
    };
    let run = fast::train_fast(&cfg, device, a.resume.as_deref(), &control)?;
    println!("run folder: {}", run.display());
    Ok(())
}

/// `style val`: a trained network's perceptual loss on content images, into `val.json`.
fn val(a: ValArgs) -> Result<()> {
    let device = a.device.device()?;
    let v = fast::validate(&a.weights, a.content_dir.as_deref(), a.max_images, device)?;
    println!(
        "{} images: loss {:.4} (content {:.4}, style {:.4}, tv {:.4})",
        v.images, v.loss, v.content, v.style, v.tv
    );
    let dir = match &a.out {
        Some(d) => d.clone(),
        None => ferrovis_core::run::resolve_weights(&a.weights)?
            .run
            .map(|r| r.0)
            .unwrap_or_else(|| PathBuf::from(".")),
    };
    let path = dir.join("val.json");
    std::fs::create_dir_all(&dir)?;
    ferrovis_core::atomic_file::write_atomic(&path, serde_json::to_string_pretty(&v)?.as_bytes())?;
    println!("wrote {}", path.display());
    Ok(())
}

/// `style predict`: a trained network applied to images.
fn predict(a: StylizeArgs) -> Result<()> {
    let device = a.device.device()?;
    let weights = ferrovis_app::args::renamed_required(a.weights, a.model, "--model", "--weights")?;
    let (_vs, net) = fast::load_transformer(&weights, device)?;
    let (video, sources) = ferrovis_data::video::VideoOptions::from_sources(&a.sources)?;
    let sources = ferrovis_data::sources::expand(&sources)?;
    let files: Vec<PathBuf> = sources
        .iter()
        .filter_map(|s| s.image().map(PathBuf::from))
        .collect();
    let t = Instant::now();
    let mut skipped = SkipLog::default();
    let written = if files.is_empty() {
        0
    } else {
        fast::stylise_files(&net, &files, a.size, &a.out, device, &mut skipped)?
    };
    let secs = t.elapsed().as_secs_f64();
    if !files.is_empty() {
        println!(
            "{written} images in {secs:.2} s ({:.2} images/s) into {}",
            written as f64 / secs.max(1e-9),
            a.out.display()
        );
    }
    let mut done = written;
    for source in sources.iter().filter(|s| s.image().is_none()) {
        let outcome = fast::stylise_video(&net, source, a.size, &a.out, &video, device)?;
        done += usize::from(skipped.video(source, outcome));
    }
    Ok(skipped.finish(done)?)
}

/// `style export`: TorchScript of a trained network.
fn export(a: ExportArgs) -> Result<()> {
    let out = a.export.out("style");
    let target = a.export.target();
    fast::export(&a.weights, &out, target, a.size)?;
    let (kind, batch) = (target.describe(), target.batch());
    println!(
        "wrote {} ({kind}; input: RGB float ({batch}, 3, {size}, {size}) in [0, 1], output: \
         the stylised image, same shape and range)",
        out.display(),
        size = a.size
    );
    Ok(())
}

/// `dir/name` when it is a file.
pub fn existing(dir: &Path, name: &str) -> Option<PathBuf> {
    Some(dir.join(name)).filter(|p| p.is_file())
}
