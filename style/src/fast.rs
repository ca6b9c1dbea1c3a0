//! Fast feed-forward style transfer: `style train` fits a [`TransformerNet`] to one style with the
//! perceptual loss on a frozen VGG (content at the content layers, Gram matrices at the style
//! layers, optional total variation), through the core engine (run folder, results.csv,
//! best/last weights, resume); `style predict` applies a trained network in one pass, `style val`
//! scores it with its run's loss, `style export` traces it.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ferrovis_core::checkpoint::{self, LoadOptions};
use ferrovis_core::distributed;
use ferrovis_core::engine::{fit, RunControl, TrainConfig, TrainTask};
use ferrovis_core::optim::{Optimizer, OptimizerKind, ParamGroup};
use ferrovis_core::run::{resolve_weights, resume_config, training_dir, RunDir};
use ferrovis_data::dataset::classification::files_recursive;
use ferrovis_data::decode::{is_image_path, read_rgb};
use ferrovis_data::loader::Shard;
use ferrovis_data::transform::{center_crop, resize_shorter, Filter};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use crate::features::{DefaultLayers, FeatureNet};
use crate::image;
use crate::loss::{gram, PerceptualLoss, WeightedTerms};
use crate::transformer::{TransformerNet, OUTPUT_LAYER, OUTPUT_LR_SCALE};

/// Settings of `style train`; a run records them as its metadata (`style.json`, see
/// [`crate::run`]) and its `config.toml`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FastConfig {
    /// The style image.
    pub style: PathBuf,
    /// A folder of content images (searched recursively).
    pub content_dir: PathBuf,
    /// VGG weights for the loss (torchvision VGG or vgg_r31).
    pub vgg: PathBuf,
    /// Training crops: shorter side resized to this, centre crop.
    pub size: usize,
    /// Use at most this many content images (0: all).
    pub max_images: usize,
    /// Images per step.
    pub batch_size: usize,
    /// Epochs.
    pub epochs: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// Layers and weights of the perceptual loss.
    pub loss: PerceptualLoss,
    /// Seed.
    pub seed: u64,
    /// Where runs go.
    pub project: PathBuf,
    /// Run name.
    pub name: String,
}

impl Default for FastConfig {
    /// No style image or content folder yet (the command requires them), the VGG weights
    /// resolved when the run starts, and Johnson et al.'s recipe as the PyTorch examples run it:
    /// 256-pixel crops, batches of 4, 2 epochs, Adam at 1e-3.
    fn default() -> Self {
        FastConfig {
            style: PathBuf::new(),
            content_dir: PathBuf::new(),
            vgg: PathBuf::new(),
            size: 256,
            max_images: 0,
            batch_size: 4,
            epochs: 2,
            lr: 1e-3,
            loss: PerceptualLoss::default(),
            seed: 0,
            project: PathBuf::from("runs/style"),
            name: "fast".into(),
        }
    }
}

/// Loads every content image as a `size`×`size` crop, stacked `(N, 3, size, size)`.
pub fn content_batch(dir: &Path, size: usize, max_images: usize) -> Result<Tensor> {
    if !dir.is_dir() {
        bail!("{}: not a folder of content images", dir.display());
    }
    let mut files: Vec<PathBuf> = files_recursive(dir)?
        .into_iter()
        .filter(|p| is_image_path(p))
        .collect();
    files.sort();
    if max_images > 0 {
        files.truncate(max_images);
    }
    if files.is_empty() {
        bail!("{}: no images to train on", dir.display());
    }
    let mut images = Vec::with_capacity(files.len());
    for f in &files {
        // As the other tasks' loaders do: an image that does not decode is left out, named.
        let img = match read_rgb(f) {
            Ok(img) => img,
            Err(e) => {
                tracing::warn!(file = %f.display(), error = %e, "content image skipped");
                continue;
            }
        };
        let img = center_crop(&resize_shorter(&img, size, Filter::Bilinear)?, size)?;
        images.push(image::to_tensor(&img));
    }
    if images.is_empty() {
        bail!(
            "{}: none of its {} images could be read",
            dir.display(),
            files.len()
        );
    }
    Ok(Tensor::cat(&images, 0))
}

/// The perceptual-loss task the engine trains.
pub struct FastTask<'a> {
    net: &'a TransformerNet,
    fnet: &'a FeatureNet,
    images: Tensor,
    style_grams: Vec<Tensor>,
    loss: PerceptualLoss,
    batch_size: usize,
    order: Option<Tensor>,
    device: Device,
    /// Data-parallel training: this rank's share of each epoch's order.
    shard: Option<Shard>,
}

impl<'a> FastTask<'a> {
    /// The task of `cfg` on `images`: its loss resolved on `fnet` (Johnson's layers by default)
    /// and the style image's Gram matrices computed once.
    fn new(
        net: &'a TransformerNet,
        fnet: &'a FeatureNet,
        cfg: &FastConfig,
        images: Tensor,
        device: Device,
    ) -> Result<Self> {
        let loss = cfg.loss.resolved(fnet, DefaultLayers::Johnson)?;
        let style = image::load(&cfg.style, cfg.size, device)?;
        let style_grams = tch::no_grad(|| fnet.activations(&style, &loss.style_layers))?
            .iter()
            .map(gram)
            .collect();
        Ok(FastTask {
            net,
            fnet,
            images,
            style_grams,
            loss,
            batch_size: cfg.batch_size.max(1),
            order: None,
            device,
            shard: None,
        })
    }

    /// The weighted perceptual-loss terms of a batch of content images `(N, 3, H, W)` in
    /// [0, 1].
    pub fn terms(&self, x: &Tensor) -> ferrovis_core::Result<WeightedTerms> {
        let y = self.net.forward(x);
        let targets = tch::no_grad(|| self.fnet.activations(x, &self.loss.content_layers))
            .map_err(ferrovis_core::Error::task)?;
        self.loss
            .terms(self.fnet, &y, &targets, &self.style_grams)
            .map_err(ferrovis_core::Error::task)
    }
}

impl TrainTask for FastTask<'_> {
    fn steps_per_epoch(&self) -> usize {
        let n = self.images.size()[0] as usize;
        self.shard.map_or(n, |s| s.len(n)).div_ceil(self.batch_size)
    }

    fn on_epoch_start(&mut self, _epoch: usize) -> ferrovis_core::Result<()> {
        // The engine seeded the generator for this epoch: every rank draws the same order.
        let order = Tensor::randperm(self.images.size()[0], (Kind::Int64, Device::Cpu));
        self.order = Some(match self.shard {
            None => order,
            Some(s) => s.take_tensor(&order).map_err(ferrovis_core::Error::task)?,
        });
        Ok(())
    }

    fn train_step(&mut self, _epoch: usize, step: usize) -> ferrovis_core::Result<Tensor> {
        let order = self
            .order
            .as_ref()
            .ok_or_else(|| ferrovis_core::Error::Invalid("epoch not started".into()))?;
        let n = order.size()[0];
        let start = (step * self.batch_size) as i64;
        let idx = order.narrow(0, start, (self.batch_size as i64).min(n - start));
        let x = self.images.index_select(0, &idx).to_device(self.device);
        Ok(self.terms(&x)?.total())
    }

    fn validate(&mut self, _epoch: usize) -> ferrovis_core::Result<Vec<(String, f64)>> {
        // A fixed set: the first images, in order.
        let k = self.images.size()[0].min(self.batch_size as i64);
        let x = self.images.narrow(0, 0, k).to_device(self.device);
        let t = tch::no_grad(|| self.terms(&x))?;
        let value = |t: &Tensor| t.double_value(&[]);
        // The terms apart show which one training still has to bring down.
        Ok(vec![
            ("val_loss".into(), value(&t.total())),
            ("val_content".into(), value(&t.content)),
            ("val_style".into(), value(&t.style)),
            ("val_tv".into(), value(&t.tv)),
        ])
    }
}

/// Trains a transformation network in a new run folder, or continues the run in `resume` from
/// its last checkpoint (up to `cfg.epochs` in all, which may be more than it first had); returns
/// the run folder.
pub fn train_fast(
    cfg: &FastConfig,
    device: Device,
    resume: Option<&Path>,
    control: &RunControl,
) -> Result<PathBuf> {
    // Under torchrun: each rank its own GPU, the group joined before the run folder is chosen;
    // each rank trains on its share of the images (the fixed validation batch is scored whole).
    let device = distributed::rank_device(device);
    let shard = distributed::group(device)?.map(|g| Shard::new(g.rank(), g.world_size(), true));
    let fnet = FeatureNet::load(&cfg.vgg, device)?;
    let images = content_batch(&cfg.content_dir, cfg.size, cfg.max_images)?;
    tch::manual_seed(cfg.seed as i64);
    let vs = VarStore::new(device);
    let net = TransformerNet::new(&vs.root());
    let mut task = FastTask::new(&net, &fnet, cfg, images, device)?;
    task.shard = shard;
    println!(
        "train-fast: {} content images at {}px, style {}, {}: content {} style {}",
        task.images.size()[0],
        cfg.size,
        cfg.style.display(),
        fnet.name,
        task.loss.content_layers.join(","),
        task.loss.style_layers.join(",")
    );
    if let Some(dir) = resume {
        // Checks the folder holds a checkpoint (the configuration comes from the caller).
        resume_config(Some(&RunDir::new(dir).config()), Some(dir))?;
    }
    let run = training_dir(&cfg.project, &cfg.name, resume);
    RunDir::new(&run).write_meta(cfg)?;
    let control = RunControl {
        resume: resume.is_some(),
        config_toml: Some(ferrovis_core::config::to_toml(cfg)?),
        ..control.clone()
    };
    let (output, body): (Vec<_>, Vec<_>) = vs
        .variables()
        .into_iter()
        .partition(|(name, _)| name.starts_with(&format!("{OUTPUT_LAYER}.")));
    let group = |name: &str, params, lr_scale| ParamGroup {
        name: name.into(),
        params,
        lr_scale,
        weight_decay: 0.0,
    };
    let kind = OptimizerKind::from_name("adam", 0.0)?;
    let mut opt = Optimizer::new(
        kind,
        vec![
            group("transformer", body, 1.0),
            group("output", output, OUTPUT_LR_SCALE),
        ],
        cfg.lr,
    );
    // A constant rate, the best weights at the lowest val_loss (TrainConfig's defaults).
    let train_cfg = TrainConfig {
        epochs: cfg.epochs,
        lr: cfg.lr,
        seed: cfg.seed,
        // Mixed precision where it pays (CUDA), as Ultralytics and the other tasks do.
        amp: device.is_cuda(),
        ..TrainConfig::default()
    };
    fit(&vs, &mut task, &mut opt, &train_cfg, &run, &control)?;
    Ok(run)
}

/// What `style val` measures: the weighted perceptual-loss terms of a trained network's outputs,
/// averaged over content images (the quantity training minimised, on images it may not have
/// seen).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Validation {
    /// Content images scored.
    pub images: usize,
    /// Total loss.
    pub loss: f64,
    /// Weighted content term.
    pub content: f64,
    /// Weighted style term.
    pub style: f64,
    /// Weighted total-variation term.
    pub tv: f64,
}

/// Scores the network in `weights` (a `style train` run folder, or a weights file inside one)
/// with its run's loss, style image and VGG, on the images of `content_dir` (default: the
/// run's content folder), `max_images` at most (0: all).
pub fn validate(
    weights: &Path,
    content_dir: Option<&Path>,
    max_images: usize,
    device: Device,
) -> Result<Validation> {
    let resolved = resolve_weights(weights)?;
    let cfg: FastConfig = resolved.meta()?.with_context(|| {
        format!(
            "{} is not in a style run folder (no style.json): val needs the run's style image, \
             VGG and loss",
            weights.display()
        )
    })?;
    let (_vs, net) = load_transformer(&resolved.file, device)?;
    let fnet = FeatureNet::load(&cfg.vgg, device)?;
    let dir = content_dir.unwrap_or(&cfg.content_dir);
    let images = content_batch(dir, cfg.size, max_images)?;
    let task = FastTask::new(&net, &fnet, &cfg, images.shallow_clone(), device)?;
    let n = images.size()[0];
    let mut sums = [0.0f64; 4];
    for start in (0..n).step_by(task.batch_size) {
        let k = (task.batch_size as i64).min(n - start);
        let x = images.narrow(0, start, k).to_device(device);
        let t = tch::no_grad(|| task.terms(&x))?;
        // Each term is a batch mean: weight it by the batch's size for the mean over images.
        for (sum, term) in sums
            .iter_mut()
            .zip([&t.total(), &t.content, &t.style, &t.tv])
        {
            *sum += term.double_value(&[]) * k as f64;
        }
    }
    let mean = |i: usize| sums[i] / n as f64;
    Ok(Validation {
        images: n as usize,
        loss: mean(0),
        content: mean(1),
        style: mean(2),
        tv: mean(3),
    })
}

/// A trained transformation network: a run folder (its best weights) or a weights file, such as
/// the PyTorch examples' `candy.pth` (their stale InstanceNorm statistics are ignored).
pub fn load_transformer(path: &Path, device: Device) -> Result<(VarStore, TransformerNet)> {
    let file = resolve_weights(path)?.file;
    let mut vs = VarStore::new(device);
    let net = TransformerNet::new(&vs.root());
    let opts = LoadOptions::default()
        .strict(true)
        .skip("running_(mean|var)$")?;
    checkpoint::load_file(&vs, &file, &opts)
        .with_context(|| format!("{} is not a TransformerNet", file.display()))?;
    vs.freeze();
    Ok((vs, net))
}

/// Stylises `files` (scaled so the longer side is `size`, unless 0) into `out`, one PNG per
/// image named after it; returns how many were written. The next image is decoded and the
/// previous one encoded on their own threads while the network runs on this one, so the
/// network's time is the whole time when it is the slowest stage.
pub fn stylise_files(
    net: &TransformerNet,
    files: &[PathBuf],
    size: usize,
    out: &Path,
    device: Device,
) -> Result<usize> {
    std::thread::scope(|scope| {
        let (decoded_tx, decoded) = std::sync::mpsc::sync_channel::<Result<(PathBuf, Tensor)>>(1);
        let (stylised, stylised_rx) = std::sync::mpsc::sync_channel::<(PathBuf, Tensor)>(1);
        scope.spawn(move || {
            for f in files {
                let item = image::load(f, size, Device::Cpu).map(|x| (f.clone(), x));
                let failed = item.is_err();
                // A closed channel means the network stopped: nothing more to decode.
                if decoded_tx.send(item).is_err() || failed {
                    break;
                }
            }
        });
        let writer = scope.spawn(move || -> Result<usize> {
            let mut written = 0;
            for (path, y) in stylised_rx {
                image::save(&y, &path)?;
                written += 1;
            }
            Ok(written)
        });
        let mut failure = None;
        for item in decoded {
            let (file, x) = match item {
                Ok(v) => v,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            let y = tch::no_grad(|| net.forward(&x.to_device(device)));
            let name = file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "image".into());
            // A closed channel means the writer failed: its error is returned below.
            if stylised.send((out.join(format!("{name}.png")), y)).is_err() {
                break;
            }
        }
        drop(stylised);
        let written = writer
            .join()
            .map_err(|_| anyhow::anyhow!("the PNG writer thread panicked"))?;
        match failure {
            Some(e) => Err(e),
            None => written,
        }
    })
}

/// Traces the network in `weights` (a run folder or a weights file) for `size`×`size` RGB inputs
/// in [0, 1] and writes TorchScript to `out`.
pub fn export(weights: &Path, out: &Path, size: i64) -> Result<()> {
    let (_vs, net) = load_transformer(weights, Device::Cpu)?;
    let example = Tensor::rand([1, 3, size, size], (Kind::Float, Device::Cpu));
    ferrovis_core::export::trace_to_file("TransformerNet", &[example], out, &mut |x| {
        vec![net.forward(&x[0])]
    })?;
    Ok(())
}
