//! The `style` task: neural style transfer with VGG features — by optimisation (Gatys et al.,
//! L-BFGS or Adam) and in one pass by feature statistics (AdaIN, WCT) with a relu3_1
//! encoder/decoder.
//!
//! `main.rs` only parses arguments; the commands live here so other programs can call them.

pub mod arbitrary;
pub mod demo;
pub mod fast;
pub mod features;
pub mod gatys;
pub mod image;
pub mod loss;
pub mod r31;
pub mod transformer;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand};
use ferrovis_core::cli::{run_weights, WeightsCommand};
use ferrovis_core::device::parse_device;
use tch::{Device, Tensor};

use crate::arbitrary::{AutoEncoder, Transform};
use crate::features::{DefaultLayers, FeatureNet, VGG19_HINT};
use crate::gatys::{GatysConfig, Init, Method};
use crate::loss::PerceptualLoss;

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
    /// Train a feed-forward transformation network for one style (Johnson et al.).
    TrainFast(TrainFastArgs),
    /// Apply a trained transformation network to images in one pass.
    Stylize(StylizeArgs),
    /// Stylise the embedded cat with the embedded Starry Night.
    Demo(DemoArgs),
    /// Inspect or convert checkpoint files (.pth/.pt zip or legacy, .safetensors, .ot).
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
    /// Blend weight of each style image, in order (default: equal).
    #[arg(long = "style-weight")]
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
    /// Device: auto, cpu, cuda, cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
}

/// `style transfer` options.
#[derive(Debug, Args)]
pub struct TransferArgs {
    /// Images.
    #[command(flatten)]
    pub images: ImageArgs,
    /// VGG weights: torchvision's vgg19-dcbb9e9d.pth (or another VGG), or vgg_r31.pth
    /// (default: $FERROVIS_VGG).
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

/// The perceptual loss's layers and weights: shared by `transfer` and `train-fast`.
#[derive(Debug, Args)]
pub struct LossArgs {
    /// Content layers, comma-separated (default: transfer conv4_2, conv3_1 with vgg_r31;
    /// train-fast relu2_2).
    #[arg(long, value_delimiter = ',')]
    pub content_layers: Vec<String>,
    /// Style layers, comma-separated (default: transfer conv1_1,…,conv5_1, up to conv3_1 with
    /// vgg_r31; train-fast the last ReLU of blocks 1–4, e.g. relu1_2,relu2_2,relu3_3,relu4_3).
    #[arg(long, value_delimiter = ',')]
    pub style_layers: Vec<String>,
    /// Weight of the content loss.
    #[arg(long, default_value_t = 1.0)]
    pub content_factor: f64,
    /// Weight of the style loss.
    #[arg(long, default_value_t = 1e5)]
    pub style_factor: f64,
    /// Weight of the total-variation loss.
    #[arg(long, default_value_t = 0.0)]
    pub tv_factor: f64,
}

impl LossArgs {
    /// The settings these options give.
    pub fn to_loss(&self) -> PerceptualLoss {
        PerceptualLoss {
            content_layers: self.content_layers.clone(),
            style_layers: self.style_layers.clone(),
            content_weight: self.content_factor,
            style_weight: self.style_factor,
            tv_weight: self.tv_factor,
        }
    }
}

/// `style adain` / `style wct` options.
#[derive(Debug, Args)]
pub struct OnePassArgs {
    /// Images.
    #[command(flatten)]
    pub images: ImageArgs,
    /// The relu3_1 encoder (default: ../shared/weights/vgg_r31.pth).
    #[arg(long, default_value = "../shared/weights/vgg_r31.pth")]
    pub encoder: PathBuf,
    /// Its decoder.
    #[arg(long, default_value = "../shared/weights/dec_r31.pth")]
    pub decoder: PathBuf,
    /// Style strength: 1 transfers fully, 0 reconstructs the content.
    #[arg(long, default_value_t = 1.0)]
    pub alpha: f64,
}

/// `style train-fast` options.
#[derive(Debug, Args)]
pub struct TrainFastArgs {
    /// The style image.
    #[arg(long)]
    pub style: PathBuf,
    /// A folder of content images (e.g. COCO), searched recursively.
    #[arg(long)]
    pub content_dir: PathBuf,
    /// VGG weights for the perceptual loss (torchvision VGG or vgg_r31.pth; default $FERROVIS_VGG).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Training crop side.
    #[arg(long, default_value_t = 256)]
    pub size: usize,
    /// Use at most this many content images (0: all).
    #[arg(long, default_value_t = 0)]
    pub max_images: usize,
    /// Images per step.
    #[arg(long, default_value_t = 4)]
    pub batch_size: usize,
    /// Epochs.
    #[arg(long, default_value_t = 2)]
    pub epochs: usize,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// The loss.
    #[command(flatten)]
    pub loss: LossArgs,
    /// Continue the run in this folder from its last checkpoint, up to --epochs in all (give
    /// the same style, images and loss settings).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Where runs go.
    #[arg(long, default_value = "runs/style")]
    pub project: PathBuf,
    /// Run name.
    #[arg(long, default_value = "fast")]
    pub name: String,
    /// Device: auto, cpu, cuda, cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
}

/// `style stylize` options.
#[derive(Debug, Args)]
pub struct StylizeArgs {
    /// A `train-fast` run folder or a TransformerNet weights file.
    #[arg(long)]
    pub model: PathBuf,
    /// Images or folders.
    #[arg(required = true)]
    pub sources: Vec<PathBuf>,
    /// Longer side (0: as they are).
    #[arg(long, default_value_t = 0)]
    pub size: usize,
    /// Output folder.
    #[arg(long, default_value = "runs/style/stylized")]
    pub out: PathBuf,
    /// Device: auto, cpu, cuda, cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
}

/// `style demo` options.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where the results go.
    #[arg(long, default_value = "runs/style/demo")]
    pub out: PathBuf,
    /// Folder with vgg_r31.pth and dec_r31.pth (default: $FERROVIS_WEIGHTS_DIR, else
    /// ../shared/weights).
    #[arg(long)]
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
            "{} --style-weight values for {} --style images",
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

fn vgg_path(weights: &Option<PathBuf>) -> Result<PathBuf> {
    match weights
        .clone()
        .or_else(|| std::env::var_os("FERROVIS_VGG").map(PathBuf::from))
    {
        Some(p) => Ok(p),
        None => bail!("no VGG weights: pass --weights FILE or set FERROVIS_VGG; {VGG19_HINT}"),
    }
}

/// Runs a Gatys transfer as the arguments say.
pub fn run_transfer(args: &TransferArgs) -> Result<gatys::Transfer> {
    let device = parse_device(&args.images.device)?;
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

/// Runs AdaIN or WCT as the arguments say.
pub fn run_one_pass(args: &OnePassArgs, transform: Transform) -> Result<Tensor> {
    let device = parse_device(&args.images.device)?;
    let ae = AutoEncoder::load(&args.encoder, &args.decoder, device)?;
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
        Command::Transfer(args) => {
            run_transfer(&args)?;
        }
        Command::Adain(args) => {
            let _ = run_one_pass(&args, Transform::Adain)?;
        }
        Command::Wct(args) => {
            let _ = run_one_pass(&args, Transform::Wct)?;
        }
        Command::TrainFast(a) => {
            let device = parse_device(&a.device)?;
            let cfg = fast::FastConfig {
                style: a.style.clone(),
                content_dir: a.content_dir.clone(),
                vgg: vgg_path(&a.weights)?,
                size: a.size,
                max_images: a.max_images,
                batch_size: a.batch_size,
                epochs: a.epochs,
                lr: a.lr,
                loss: a.loss.to_loss(),
                seed: 0,
                project: a.project.clone(),
                name: a.name.clone(),
            };
            let control = ferrovis_core::engine::RunControl {
                stop: Some(ferrovis_core::engine::ctrl_c_flag()?),
                ..Default::default()
            };
            let run = fast::train_fast(&cfg, device, a.resume.as_deref(), &control)?;
            println!("run folder: {}", run.display());
        }
        Command::Stylize(a) => {
            let device = parse_device(&a.device)?;
            let (_vs, net) = fast::load_transformer(&a.model, device)?;
            let files = ferrovis_data::decode::image_files(&a.sources)?;
            let t = Instant::now();
            for f in &files {
                let x = image::load(f, a.size, device)?;
                let y = tch::no_grad(|| net.forward(&x));
                let name = f
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "image".into());
                image::save(&y, &a.out.join(format!("{name}.png")))?;
            }
            let secs = t.elapsed().as_secs_f64();
            println!(
                "{} images in {secs:.2} s ({:.2} images/s) into {}",
                files.len(),
                files.len() as f64 / secs.max(1e-9),
                a.out.display()
            );
        }
        Command::Demo(args) => demo::run(&args)?,
        Command::Weights(cmd) => run_weights(&cmd)?,
    }
    Ok(())
}

/// `dir/name` when it is a file.
pub fn existing(dir: &Path, name: &str) -> Option<PathBuf> {
    Some(dir.join(name)).filter(|p| p.is_file())
}
