//! The `segment` configuration: a TOML file over these documented defaults, any key overridable
//! with `--set section.key=value` or a dedicated flag.

use ferrovis_data::dataset::MaskEncoding;
use serde::{Deserialize, Serialize};

use crate::model::Architecture;

/// Everything a segmentation run needs.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SegmentConfig {
    /// The network.
    pub model: ModelSection,
    /// The images and masks.
    pub data: DataSection,
    /// The optimisation.
    pub train: TrainSection,
}

/// Which network, from which weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelSection {
    /// `unet`, `deeplabv3`, `deeplabv3plus`, `fcn` or `lraspp` (on `mobilenet_v3_large` or
    /// `mobilenet_v3_small`).
    pub arch: Architecture,
    /// Encoder: a core backbone name (`resnet34`, `resnet50`, `mobilenet_v2`,
    /// `efficientnet_lite0`, `vgg16_bn`, …).
    pub encoder: String,
    /// Pretrained weights: the encoder's ImageNet checkpoint (torchvision's `.pth`, loaded under
    /// the encoder's prefix, its classifier dropped) or a whole segmentation checkpoint
    /// (torchvision's DeepLabV3, FCN or LR-ASPP, a previous run's weights); empty: random
    /// initialisation.
    pub weights: String,
    /// DeepLabV3 and FCN: the auxiliary head on `layer3` (LR-ASPP has none and ignores it).
    pub aux: bool,
    /// DeepLabV3+: the encoder's output stride.
    pub output_stride: i64,
}

impl Default for ModelSection {
    fn default() -> Self {
        Self {
            arch: Architecture::Unet,
            encoder: "resnet34".into(),
            weights: String::new(),
            aux: true,
            output_stride: 16,
        }
    }
}

/// How a validation or prediction image goes through the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum InferMode {
    /// The whole image at its own size.
    Whole,
    /// Longer side resized to `infer_size`, logits resized back to the image.
    Resize,
    /// `infer_size` windows at 2/3 stride, overlapping logits averaged (large images).
    Slide,
}

/// Where the images and masks are and how they are fed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataSection {
    /// A `semantic.yaml` data set file (train/val image and mask folders, `id: name` classes);
    /// when set, the folder keys below are not used.
    pub yaml: String,
    /// Training images.
    pub images: String,
    /// Training masks, matched to images by file stem.
    pub masks: String,
    /// Validation images (empty: `val_fraction` of the training pairs is held out).
    pub val_images: String,
    /// Validation masks.
    pub val_masks: String,
    /// Without validation folders: the last fraction of the pairs in natural file-name order
    /// (`2.png` before `10.png`) is the validation set: a fixed split.
    pub val_fraction: f64,
    /// Class names by index (empty: from the YAML, else `classes.txt` beside the image folder,
    /// else `background`/`foreground` for binary masks or `class<i>`).
    pub names: Vec<String>,
    /// How mask values become classes: `auto` (0/255 masks are binary), `binary`, `index`.
    pub encoding: MaskEncoding,
    /// Stored mask value → class index pairs, e.g. `[[0, 255], [7, 1], [26, 2]]`; values not
    /// listed become 255 (ignore). Empty: values are class indices.
    pub remap: Vec<(u8, u8)>,
    /// Training crop side.
    pub image_size: usize,
    /// Training random scale range.
    pub scale: (f32, f32),
    /// Probability of a horizontal flip in training.
    pub hflip: f64,
    /// Random quarter turns in training (with the flip, all eight symmetries of the square), for
    /// images with no "up": shapes, aerial or microscope images.
    pub rotate90: bool,
    /// Samples per training batch.
    pub batch_size: usize,
    /// Loader threads (0: one per core).
    pub workers: usize,
    /// Keep decoded images and masks in memory.
    pub cache: bool,
    /// Validation inference: `whole`, `resize`, `slide`.
    pub infer: InferMode,
    /// Size for `resize` (longer side) and `slide` (window side).
    pub infer_size: usize,
}

impl Default for DataSection {
    fn default() -> Self {
        Self {
            yaml: String::new(),
            images: String::new(),
            masks: String::new(),
            val_images: String::new(),
            val_masks: String::new(),
            val_fraction: 0.2,
            names: Vec::new(),
            encoding: MaskEncoding::Auto,
            remap: Vec::new(),
            image_size: 256,
            scale: (0.5, 2.0),
            hflip: 0.5,
            rotate90: false,
            batch_size: 8,
            workers: 0,
            cache: true,
            infer: InferMode::Whole,
            infer_size: 512,
        }
    }
}

/// What trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Frozen encoder (its BatchNorm statistics too); the decoder trains.
    FeatureExtract,
    /// Everything; the encoder at `encoder_lr_scale` of the decoder's rate.
    FineTune,
}

/// Optimisation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainSection {
    /// Transfer-learning mode.
    pub mode: Mode,
    /// Epochs.
    pub epochs: usize,
    /// `sgd` (with the poly schedule, the DeepLab recipe), `adamw` or `adam` (with cosine decay).
    pub optimizer: String,
    /// Base learning rate (the decoder's).
    pub lr: f64,
    /// Weight decay (not on biases and norm weights).
    pub weight_decay: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// Poly schedule power (SGD).
    pub poly_power: f64,
    /// Cosine decay floor as a fraction of the base rate (AdamW).
    pub final_lr_factor: f64,
    /// Linear warmup, in epochs.
    pub warmup_epochs: f64,
    /// `fine-tune`: the encoder's learning rate as a fraction of the decoder's.
    pub encoder_lr_scale: f64,
    /// The loss: `ce`, `dice`, `focal` or a sum such as `ce+dice` or `ce+0.5*dice`.
    pub loss: String,
    /// Weight of the auxiliary head's loss (DeepLabV3, FCN).
    pub aux_weight: f64,
    /// Seed of every random choice.
    pub seed: u64,
    /// `auto`, `cpu`, `cuda` or `cuda:N`.
    pub device: String,
    /// Lay weights and images out channels-last (NHWC): same results, faster CPU convolutions.
    pub channels_last: bool,
    /// Mixed precision on CUDA: float16 autocast with dynamic loss scaling (PyTorch's `autocast`
    /// + `GradScaler`). Ignored on the CPU, where training stays float32.
    pub amp: bool,
    /// Write TensorBoard event files into the run folder (`tensorboard --logdir <project>`).
    pub tensorboard: bool,
    /// Where run folders go.
    pub project: String,
    /// Run folder name (empty: the architecture).
    pub name: String,
}

impl Default for TrainSection {
    fn default() -> Self {
        Self {
            mode: Mode::FineTune,
            epochs: 30,
            optimizer: "sgd".into(),
            lr: 0.01,
            weight_decay: 1e-4,
            momentum: 0.9,
            poly_power: 0.9,
            final_lr_factor: 0.01,
            warmup_epochs: 0.0,
            encoder_lr_scale: 0.1,
            loss: "ce".into(),
            aux_weight: 0.5,
            seed: 0,
            device: "auto".into(),
            channels_last: true,
            amp: true,
            tensorboard: true,
            project: "runs/segment".into(),
            name: String::new(),
        }
    }
}
