//! The `classify` configuration: a TOML file over these documented defaults, any key overridable
//! with `--set section.key=value` or a dedicated flag.

use serde::{Deserialize, Serialize};

/// Everything a classification run needs.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClassifyConfig {
    /// The network.
    pub model: ModelSection,
    /// The images.
    pub data: DataSection,
    /// The optimisation.
    pub train: TrainSection,
}

/// Which backbone, from which weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelSection {
    /// A backbone name from `ferrovis_core::backbone` (`resnet18`, `mobilenet_v2`,
    /// `efficientnet_lite0`, `vgg16`, …).
    pub arch: String,
    /// Pretrained weights (any format `weights inspect` reads); empty: random initialisation.
    pub weights: String,
    /// Dropout before the new classifier.
    pub dropout: f64,
}

impl Default for ModelSection {
    fn default() -> Self {
        Self {
            arch: "mobilenet_v2".into(),
            weights: String::new(),
            dropout: 0.2,
        }
    }
}

/// Where the images are and how they are fed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataSection {
    /// An ImageFolder root holding `train/` and `val/` (or only class folders, split by
    /// `val_fraction`), or a `path,label` CSV file.
    pub root: String,
    /// Training sub-folder of `root`.
    pub train: String,
    /// Validation sub-folder of `root`; when missing, `val_fraction` of each class is held out.
    pub val: String,
    /// Held-out fraction when there is no validation folder.
    pub val_fraction: f64,
    /// Network input side.
    pub image_size: usize,
    /// Samples per batch.
    pub batch_size: usize,
    /// Loader threads (0: one per core).
    pub workers: usize,
    /// Training augmentation (random resized crop + flip); off: the evaluation resize and crop.
    pub augment: bool,
    /// Smallest crop area (fraction of the image) of the random resized crop; torchvision's 0.08.
    pub min_crop_scale: f64,
    /// Evaluation: the shorter side is resized to `image_size / crop_pct`, then the centre
    /// `image_size` square is cropped (timm's `crop_pct`; torchvision's presets: 224 of 256 =
    /// 0.875). 1.0 keeps the whole image, for objects that reach its borders.
    pub crop_pct: f64,
    /// Resize filter: `""` the weights' own (a Hub checkpoint's `config.json` interpolation,
    /// resampled as Pillow does; OpenCV's area averaging otherwise), or `area`, `bilinear`,
    /// `bicubic`.
    pub interpolation: String,
    /// Random quarter turns when augmenting (with the flip: all eight symmetries of the square),
    /// for images with no "up": shapes, aerial or microscope images.
    pub rotate90: bool,
    /// Colour jitter strength (brightness, contrast, saturation) when augmenting; 0 for none.
    pub color_jitter: f32,
    /// Keep decoded images in memory between epochs.
    pub cache: bool,
    /// Draw training samples inversely to their class frequency (imbalanced data).
    pub balance_classes: bool,
}

impl Default for DataSection {
    fn default() -> Self {
        Self {
            root: String::new(),
            train: "train".into(),
            val: "val".into(),
            val_fraction: 0.2,
            image_size: 224,
            batch_size: 32,
            workers: 0,
            augment: true,
            min_crop_scale: 0.08,
            crop_pct: 0.875,
            interpolation: String::new(),
            rotate90: false,
            color_jitter: 0.0,
            cache: false,
            balance_classes: false,
        }
    }
}

/// What trains: the transfer-learning mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Frozen backbone, new head only.
    FeatureExtract,
    /// Every layer, the backbone at `backbone_lr_scale` of the head's rate.
    FineTune,
    /// The last `partial_stages` stages (the head included).
    Partial,
    /// `head_epochs` epochs head-only, then everything with rates spread from `lr_spread`·lr on
    /// the stem up to lr on the head (fastai's `fine_tune`).
    Gradual,
    /// Nothing trains: a k-nearest-neighbour classifier on the frozen backbone's features of
    /// the training images (DINOv2's k-NN evaluation: cosine similarity, `knn_k` neighbours,
    /// votes weighted by softmax(similarity / `knn_temperature`)).
    Knn,
}

/// Optimisation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainSection {
    /// Transfer-learning mode.
    pub mode: Mode,
    /// Epochs.
    pub epochs: usize,
    /// `adamw`, `adam` or `sgd`.
    pub optimizer: String,
    /// Base learning rate (the head's).
    pub lr: f64,
    /// Weight decay (not on biases and norm weights).
    pub weight_decay: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// `cosine` (after `warmup_epochs` of linear warmup, down to `final_lr_factor`) or
    /// `onecycle` (PyTorch's `OneCycleLR`: a cosine rise from lr/25 over `warmup_epochs`, or
    /// the first 30 % when that is 0, then a cosine fall to lr/25/10⁴).
    pub schedule: String,
    /// Cosine decay to this fraction of the base rate; warmup is `warmup_epochs` long.
    pub final_lr_factor: f64,
    /// Linear warmup, in epochs.
    pub warmup_epochs: f64,
    /// Label smoothing of the cross-entropy.
    pub label_smoothing: f64,
    /// Mixup: mix each batch with a shuffled copy of itself, λ ~ Beta(α, α); α here, 0 = off.
    pub mixup: f64,
    /// CutMix: paste a box of a shuffled copy, box area ~ 1 − λ, λ ~ Beta(α, α); 0 = off. With
    /// both on, each batch picks one of the two at random (as timm does).
    pub cutmix: f64,
    /// `fine-tune`: backbone learning rate as a fraction of the head's.
    pub backbone_lr_scale: f64,
    /// `partial`: how many of the last stages train.
    pub partial_stages: usize,
    /// `gradual`: head-only epochs before unfreezing.
    pub head_epochs: usize,
    /// `gradual`: the stem's learning-rate factor once unfrozen.
    pub lr_spread: f64,
    /// `knn`: neighbours consulted (DINOv2's 20).
    pub knn_k: i64,
    /// `knn`: temperature of the votes' softmax (DINOv2's 0.07).
    pub knn_temperature: f64,
    /// Seed of every random choice.
    pub seed: u64,
    /// `auto`, `cpu`, `cuda` or `cuda:N`.
    pub device: String,
    /// Lay weights and images out channels-last (NHWC): same results, faster convolutions.
    pub channels_last: bool,
    /// Mixed precision on CUDA: float16 autocast with dynamic loss scaling (PyTorch's `autocast`
    /// + `GradScaler`). Ignored on the CPU, where training stays float32.
    pub amp: bool,
    /// Write TensorBoard event files into the run folder (`tensorboard --logdir <project>`).
    pub tensorboard: bool,
    /// Where run folders go.
    pub project: String,
    /// Run folder name (empty: the mode).
    pub name: String,
}

impl Default for TrainSection {
    fn default() -> Self {
        Self {
            mode: Mode::FeatureExtract,
            epochs: 10,
            optimizer: "adamw".into(),
            lr: 1e-3,
            weight_decay: 1e-4,
            momentum: 0.9,
            schedule: "cosine".into(),
            final_lr_factor: 0.01,
            warmup_epochs: 0.0,
            label_smoothing: 0.0,
            mixup: 0.0,
            cutmix: 0.0,
            backbone_lr_scale: 0.1,
            partial_stages: 2,
            head_epochs: 1,
            lr_spread: 0.01,
            knn_k: ferrovis_core::knn::DEFAULT_K,
            knn_temperature: ferrovis_core::knn::DEFAULT_TEMPERATURE,
            seed: 0,
            device: "auto".into(),
            channels_last: true,
            amp: true,
            tensorboard: true,
            project: "runs/classify".into(),
            name: String::new(),
        }
    }
}
