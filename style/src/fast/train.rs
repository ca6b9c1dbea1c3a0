//! `style train`: a [`TransformerNet`] fitted to one style through the core engine.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use ferrovis_core::engine::{RunControl, Session, SessionConfig, TrainConfig, TrainTask};
use ferrovis_core::optim::{Optimizer, OptimizerKind, ParamGroup};
use ferrovis_core::run::{resume_config, RunDir};
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
    /// Write TensorBoard event files into the run folder (`tensorboard --logdir <project>`).
    pub tensorboard: bool,
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
            tensorboard: true,
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
    pub(super) batch_size: usize,
    order: Option<Tensor>,
    device: Device,
    /// Data-parallel training: this rank's share of each epoch's order.
    shard: Option<Shard>,
}

impl<'a> FastTask<'a> {
    /// The task of `cfg` on `images`: its loss resolved on `fnet` (Johnson's layers by default)
    /// and the style image's Gram matrices computed once.
    pub(super) fn new(
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
    if let Some(dir) = resume {
        // Checks the folder holds a checkpoint (the configuration comes from the caller).
        resume_config(Some(&RunDir::new(dir).config()), Some(dir))?;
    }
    let session = Session::start(
        &SessionConfig {
            device,
            seed: cfg.seed,
            project: &cfg.project,
            name: &cfg.name,
            resume,
            config_toml: ferrovis_core::config::to_toml(cfg)?,
        },
        control,
    )?;
    let device = session.device();
    // Each rank trains on its share of the images (the fixed validation batch is scored whole).
    let shard = session
        .shard()
        .map(|(rank, world)| Shard::new(rank, world, true));
    let fnet = FeatureNet::load(&cfg.vgg, device)?;
    let images = content_batch(&cfg.content_dir, cfg.size, cfg.max_images)?;
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
    session.write_meta(cfg)?;
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
        tensorboard: cfg.tensorboard,
        ..TrainConfig::default()
    };
    session.fit(&vs, &mut task, &mut opt, &train_cfg)?;
    Ok(session.path())
}
