//! Training/validation/prediction settings with Ultralytics' argument names and defaults
//! (`default.yaml`), so `detect train data=coco128.yaml model=yolov8n.pt epochs=3 imgsz=320`
//! reads as `yolo detect train …` does. Settings come from the defaults, then an optional TOML
//! file, then `key=value` arguments.

use std::path::Path;

use anyhow::{bail, Result};
use ferrovis_core::config::{self, Value};
use ferrovis_data::transform::detect::DetectAugment;
use ferrovis_data::transform::detect::RandomAffine;
use ferrovis_data::transform::HsvGain;
use serde::{Deserialize, Serialize};

/// Every setting, flat, named as Ultralytics names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectConfig {
    /// The detector: `yolov8` or `yolo11` (Ultralytics' recipe; the version of a checkpoint
    /// given as `model=` is read off its tensors), or a torchvision architecture
    /// (`fasterrcnn_resnet50_fpn`, `fasterrcnn_mobilenet_v3_large_fpn`, …, `ssd300_vgg16`,
    /// `ssdlite320_mobilenet_v3_large`, `ssdlite320_mobilenet_v2`, `fcos_resnet50_fpn`,
    /// `retinanet_resnet50_fpn`, `retinanet_resnet50_fpn_v2`) trained with torchvision's recipe
    /// (see [`DetectConfig::load`]).
    pub arch: String,
    /// A checkpoint to start from (`yolo11n.pt`, `yolov8n.pt`, `best.pt`, `.safetensors`), or a
    /// model name (`yolo11n` … `yolo11x`, `yolov8n` … `yolov8x`, `.yaml` allowed) for random
    /// initialisation.
    pub model: String,
    /// Dataset YAML (`path`, `train`, `val`, `names`).
    pub data: String,
    /// Epochs.
    pub epochs: usize,
    /// Images per batch.
    pub batch: usize,
    /// Square input size (a multiple of 32).
    pub imgsz: usize,
    /// Loader threads.
    pub workers: usize,
    /// `auto`, `SGD`, `AdamW` or `Adam`.
    pub optimizer: String,
    /// Initial learning rate.
    pub lr0: f64,
    /// Final learning rate as a fraction of `lr0` (linear decay).
    pub lrf: f64,
    /// SGD momentum / Adam β₁.
    pub momentum: f64,
    /// Weight decay (convolution weights only), for a nominal batch of `nbs`.
    pub weight_decay: f64,
    /// Warmup epochs (at least 100 iterations).
    pub warmup_epochs: f64,
    /// Momentum at the start of warmup.
    pub warmup_momentum: f64,
    /// Bias learning rate at the start of warmup.
    pub warmup_bias_lr: f64,
    /// Box loss gain.
    #[serde(rename = "box")]
    pub box_gain: f64,
    /// Class loss gain.
    pub cls: f64,
    /// DFL gain.
    pub dfl: f64,
    /// Nominal batch size: gradients accumulate over `round(nbs / batch)` batches.
    pub nbs: usize,
    /// Mosaic is switched off for the last this many epochs.
    pub close_mosaic: usize,
    /// HSV hue gain.
    pub hsv_h: f32,
    /// HSV saturation gain.
    pub hsv_s: f32,
    /// HSV value gain.
    pub hsv_v: f32,
    /// Rotation ± degrees.
    pub degrees: f32,
    /// Translation ± fraction.
    pub translate: f32,
    /// Scale gain ±.
    pub scale: f32,
    /// Shear ± degrees.
    pub shear: f32,
    /// Up-down flip probability.
    pub flipud: f64,
    /// Left-right flip probability.
    pub fliplr: f64,
    /// Mosaic probability.
    pub mosaic: f64,
    /// Freeze `model.0` … `model.{freeze−1}` (10: the backbone).
    pub freeze: usize,
    /// Seed of every random choice.
    pub seed: u64,
    /// `auto`, `cpu`, `cuda`, `cuda:N` (or `0` for `cuda:0`).
    pub device: String,
    /// Keep decoded images in memory.
    pub cache: bool,
    /// Where run folders go.
    pub project: String,
    /// Run folder name.
    pub name: String,
    /// Stop after this many epochs without a better fitness.
    pub patience: usize,
    /// Write TensorBoard event files into the run folder (`tensorboard --logdir <project>`).
    pub tensorboard: bool,
    /// Confidence threshold (validation 0.001, prediction 0.25 when unset).
    pub conf: Option<f32>,
    /// NMS IoU threshold.
    pub iou: f32,
    /// Detections per image.
    pub max_det: usize,
    /// `false`: an end-to-end model (YOLO26) reports its one-to-one head's detections without
    /// NMS, as Ultralytics' `nms=False` does; by default (`true`) every YOLO goes through NMS,
    /// YOLO26 with its one-to-many head, as Ultralytics 8.4 predicts and validates it.
    pub nms: bool,
    /// torchvision detectors: the backbone layers left trainable (`None`: torchvision's default,
    /// 3 with pretrained weights, all without).
    pub trainable_backbone_layers: Option<usize>,
    /// torchvision detectors: the short side images are resized to (`None`: the
    /// architecture's, 800 or 320).
    pub min_size: Option<usize>,
    /// torchvision detectors: the longest side allowed (`None`: the architecture's, 1333 or 640).
    pub max_size: Option<usize>,
    /// torchvision detectors: proposals kept per image after the RPN's NMS in training
    /// (`None`: 2000).
    pub rpn_post_nms_top_n_train: Option<usize>,
    /// torchvision detectors: the same in evaluation (`None`: 1000, or 150 for the 320 model).
    pub rpn_post_nms_top_n_test: Option<usize>,
    /// torchvision detectors: proposals sampled per image for the box losses (`None`: 512).
    pub box_batch_size_per_image: Option<usize>,
    /// torchvision detectors: training batches hold images of one aspect-ratio group among
    /// `2k + 2` (torchvision's references: 3), so less padding is computed; negative: off.
    pub aspect_ratio_group_factor: i64,
    /// torchvision detectors: the learning rate is multiplied by `lr_gamma` every `lr_step`
    /// epochs (torchvision's StepLR).
    pub lr_step: usize,
    /// torchvision detectors: see `lr_step`.
    pub lr_gamma: f64,
    /// torchvision detectors: the training augmentation, by the references' name (`hflip`,
    /// `ssd`: photometric distortion, zoom-out, IoU crop and flip; `ssdlite`: IoU crop and
    /// flip); empty: the architecture's (`hflip` for Faster R-CNN, `ssd` for SSD300, `ssdlite`
    /// for SSDlite). Flips happen with probability `fliplr`.
    pub data_augmentation: String,
    /// The family `arch` names, parsed once when the settings load ([`DetectConfig::load`]).
    #[serde(skip)]
    pub family: Family,
}

/// The detector families `arch=` chooses between: each has its own recipe and reads its own
/// settings (a setting the chosen family ignores is warned about when the settings load).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Family {
    /// YOLOv8 and YOLO11 with Ultralytics' recipe (`arch=yolov8`, `arch=yolo11`).
    #[default]
    Yolo,
    /// torchvision's Faster R-CNN (`arch=fasterrcnn_…`) with torchvision's recipe.
    FasterRcnn,
    /// torchvision's SSD300 and SSDlite320 (`arch=ssd300_vgg16`, `arch=ssdlite320_…`) with
    /// torchvision's recipe.
    Ssd,
    /// torchvision's FCOS (`arch=fcos_resnet50_fpn`) with torchvision's recipe.
    Fcos,
    /// torchvision's RetinaNet (`arch=retinanet_resnet50_fpn`, `arch=retinanet_resnet50_fpn_v2`)
    /// with torchvision's recipe.
    RetinaNet,
}

/// Settings only YOLO's recipe reads.
const YOLO_ONLY: [&str; 21] = [
    "box",
    "cls",
    "dfl",
    "nbs",
    "close_mosaic",
    "hsv_h",
    "hsv_s",
    "hsv_v",
    "degrees",
    "translate",
    "scale",
    "shear",
    "flipud",
    "mosaic",
    "freeze",
    "lrf",
    "warmup_momentum",
    "warmup_bias_lr",
    "cache",
    "imgsz",
    "nms",
];

/// Settings only torchvision's recipe reads.
const TORCHVISION_ONLY: [&str; 10] = [
    "trainable_backbone_layers",
    "min_size",
    "max_size",
    "rpn_post_nms_top_n_train",
    "rpn_post_nms_top_n_test",
    "box_batch_size_per_image",
    "aspect_ratio_group_factor",
    "lr_step",
    "lr_gamma",
    "data_augmentation",
];

/// Settings of torchvision's two-stage detectors that SSD (fixed input size, no proposals) has
/// no use for.
const TWO_STAGE_ONLY: [&str; 5] = [
    "min_size",
    "max_size",
    "rpn_post_nms_top_n_train",
    "rpn_post_nms_top_n_test",
    "box_batch_size_per_image",
];

/// Settings of the proposals and RoI heads, which single-stage detectors lack.
const PROPOSAL_ONLY: [&str; 3] = [
    "rpn_post_nms_top_n_train",
    "rpn_post_nms_top_n_test",
    "box_batch_size_per_image",
];

impl Family {
    /// The family of architecture `arch`; an error listing the architectures for anything else.
    pub fn of(arch: &str) -> Result<Self> {
        use crate::torchvision::{faster_rcnn, fcos, retinanet, ssd};
        if crate::yolo::model::Version::of_arch(arch).is_some() {
            Ok(Family::Yolo)
        } else if ssd::ARCHS.contains(&arch) {
            Ok(Family::Ssd)
        } else if fcos::ARCHS.contains(&arch) {
            Ok(Family::Fcos)
        } else if retinanet::ARCHS.contains(&arch) {
            Ok(Family::RetinaNet)
        } else if arch.starts_with("fasterrcnn_") {
            Ok(Family::FasterRcnn)
        } else {
            bail!(
                "arch={arch}: expected yolov8, yolo11, one of {}, fasterrcnn_<backbone>, or one of {}",
                faster_rcnn::ARCHS.join(", "),
                ssd::ARCHS
                    .iter()
                    .chain(&fcos::ARCHS)
                    .chain(&retinanet::ARCHS)
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    }

    /// Whether this is one of torchvision's detectors (trained with torchvision's recipe).
    pub fn is_torchvision(self) -> bool {
        self != Family::Yolo
    }

    /// The settings this family ignores.
    pub fn ignored_settings(self) -> Vec<&'static str> {
        match self {
            Family::Yolo => TORCHVISION_ONLY.to_vec(),
            Family::FasterRcnn => YOLO_ONLY.to_vec(),
            Family::Ssd => YOLO_ONLY.iter().chain(&TWO_STAGE_ONLY).copied().collect(),
            Family::Fcos => YOLO_ONLY.iter().chain(&PROPOSAL_ONLY).copied().collect(),
            Family::RetinaNet => YOLO_ONLY.iter().chain(&PROPOSAL_ONLY).copied().collect(),
        }
    }
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            arch: "yolov8".into(),
            model: "yolov8n".into(),
            data: String::new(),
            epochs: 100,
            batch: 16,
            imgsz: 640,
            workers: 2,
            optimizer: "auto".into(),
            lr0: 0.01,
            lrf: 0.01,
            momentum: 0.937,
            weight_decay: 5e-4,
            warmup_epochs: 3.0,
            warmup_momentum: 0.8,
            warmup_bias_lr: 0.1,
            box_gain: 7.5,
            cls: 0.5,
            dfl: 1.5,
            nbs: 64,
            close_mosaic: 10,
            hsv_h: 0.015,
            hsv_s: 0.7,
            hsv_v: 0.4,
            degrees: 0.0,
            translate: 0.1,
            scale: 0.5,
            shear: 0.0,
            flipud: 0.0,
            fliplr: 0.5,
            mosaic: 1.0,
            freeze: 0,
            seed: 0,
            device: "auto".into(),
            cache: false,
            project: "runs/detect".into(),
            name: "train".into(),
            patience: 100,
            tensorboard: true,
            conf: None,
            iou: 0.7,
            max_det: 300,
            nms: true,
            trainable_backbone_layers: None,
            min_size: None,
            max_size: None,
            rpn_post_nms_top_n_train: None,
            rpn_post_nms_top_n_test: None,
            box_batch_size_per_image: None,
            aspect_ratio_group_factor: 3,
            lr_step: 3,
            lr_gamma: 0.1,
            data_augmentation: String::new(),
            family: Family::Yolo,
        }
    }
}

impl DetectConfig {
    /// Defaults, then `file` (TOML) when given, then `key=value` overrides, each typed by its
    /// default (core's loader: unknown keys name the closest valid one).
    ///
    /// A torchvision architecture starts from torchvision's fine-tuning recipe instead of
    /// Ultralytics' defaults, for every key the file and the arguments leave unset (see
    /// [`torchvision_recipe`]): SGD, momentum 0.9, warm-up over the first epoch, 10 epochs, the
    /// rate divided by 10 every 3 epochs, horizontal flips; Faster R-CNN lr0 0.005, weight decay
    /// 5e-4, batch 2; SSD300 lr0 0.002, weight decay 5e-4, batch 4; SSDlite lr0 0.006, weight
    /// decay 4e-5, batch 8; FCOS lr0 0.0025, weight decay 1e-4, batch 2.
    pub fn load(file: Option<&Path>, overrides: &[String]) -> Result<Self> {
        // These have no default: each command or architecture picks its own.
        let optional = [
            ("conf", Value::Float(0.25)),
            ("trainable_backbone_layers", Value::Integer(3)),
            ("min_size", Value::Integer(800)),
            ("max_size", Value::Integer(1333)),
            ("rpn_post_nms_top_n_train", Value::Integer(2000)),
            ("rpn_post_nms_top_n_test", Value::Integer(1000)),
            ("box_batch_size_per_image", Value::Integer(512)),
        ];
        let mut cfg: DetectConfig = config::load_with_optional(file, overrides, &optional)?;
        let family = Family::of(&cfg.arch)?;
        let given = given_keys(file, overrides)?;
        for key in family.ignored_settings() {
            if given.contains(key) {
                tracing::warn!(key, arch = %cfg.arch, "ignored: {family:?} does not use this setting");
            }
        }
        if family.is_torchvision() {
            let mut with_recipe: Vec<String> = torchvision_recipe(&cfg.arch)
                .iter()
                .filter(|(key, _)| !given.contains(*key))
                .map(|(key, value)| format!("{key}={value}"))
                .collect();
            with_recipe.extend(overrides.iter().cloned());
            cfg = config::load_with_optional(file, &with_recipe, &optional)?;
        }
        cfg.family = family;
        // `arch=yolo11` alone means YOLO11's smallest model, as `arch=yolov8` means YOLOv8's.
        if cfg.arch == "yolo11" && !given.contains("model") {
            cfg.model = "yolo11n".into();
        }
        if !cfg.imgsz.is_multiple_of(32) || cfg.imgsz == 0 {
            bail!(
                "imgsz={} must be a positive multiple of 32 (the largest stride)",
                cfg.imgsz
            );
        }
        if cfg.batch == 0 {
            bail!("batch must be at least 1");
        }
        Ok(cfg)
    }

    /// A torchvision detector's training augmentation (see `data_augmentation`).
    pub fn tv_augmentation(&self) -> Result<ferrovis_data::transform::ssd::SsdAugment> {
        let name = match self.data_augmentation.as_str() {
            "" if self.arch.starts_with("ssdlite") => "ssdlite",
            "" if self.arch.starts_with("ssd") => "ssd",
            "" => "hflip",
            other => other,
        };
        let mut aug =
            ferrovis_data::transform::ssd::SsdAugment::by_name(name).ok_or_else(|| {
                anyhow::anyhow!("data_augmentation={name}: expected hflip, ssd or ssdlite")
            })?;
        aug.fliplr = self.fliplr;
        Ok(aug)
    }

    /// True for a torchvision architecture (anything but `yolov8`).
    pub fn is_torchvision(&self) -> bool {
        self.family.is_torchvision()
    }

    /// Training augmentation from these settings.
    pub fn augment(&self) -> DetectAugment {
        DetectAugment {
            mosaic: self.mosaic,
            mosaic_off_from_epoch: Some(self.epochs.saturating_sub(self.close_mosaic)),
            affine: RandomAffine {
                degrees: self.degrees,
                translate: self.translate,
                scale: self.scale,
                shear: self.shear,
            },
            hsv: HsvGain {
                h: self.hsv_h,
                s: self.hsv_s,
                v: self.hsv_v,
            },
            fliplr: self.fliplr,
            flipud: self.flipud,
        }
    }

    /// The device string in ferrovis' form (`0` → `cuda:0`).
    pub fn device_name(&self) -> String {
        match self.device.parse::<usize>() {
            Ok(i) => format!("cuda:{i}"),
            Err(_) => self.device.clone(),
        }
    }
}

/// torchvision's fine-tuning recipe, the defaults of a torchvision architecture. Faster R-CNN's
/// is its detection tutorial's. SSD300's learning rate, weight decay and batch are its
/// references' per-device settings (`--lr 0.002 --batch-size 4 --weight-decay 0.0005`); SSDlite's
/// references train from scratch at lr 0.15 on 192 images a step, so fine-tuning takes that rate
/// scaled to a batch of 8 (0.15 · 8/192 ≈ 0.006) with its weight decay 4e-5. FCOS's references
/// train at lr 0.01 on 16 images a step with weight decay 1e-4: at a batch of 2, that rate scaled
/// as the tutorial scales Faster R-CNN's (0.02 for 16 images → 0.005 for 2), 0.0025; RetinaNet's
/// references train at the same half of Faster R-CNN's rate, so it fine-tunes at 0.0025 too.
/// Epochs, warm-up and the step schedule are the tutorial's for all.
pub fn torchvision_recipe(arch: &str) -> [(&'static str, &'static str); 7] {
    let (lr0, weight_decay, batch) = if arch.starts_with("fcos") {
        ("0.0025", "0.0001", "2")
    } else if arch.starts_with("ssdlite") {
        ("0.006", "0.00004", "8")
    } else if arch.starts_with("ssd") {
        ("0.002", "0.0005", "4")
    } else if arch.starts_with("retinanet") {
        ("0.0025", "0.0005", "2")
    } else {
        ("0.005", "0.0005", "2")
    };
    [
        ("optimizer", "SGD"),
        ("lr0", lr0),
        ("momentum", "0.9"),
        ("weight_decay", weight_decay),
        ("batch", batch),
        ("epochs", "10"),
        ("warmup_epochs", "1.0"),
    ]
}

/// The top-level keys a TOML file and `key=value` arguments set.
fn given_keys(
    file: Option<&Path>,
    overrides: &[String],
) -> Result<std::collections::HashSet<String>> {
    let mut keys: std::collections::HashSet<String> = overrides
        .iter()
        .filter_map(|o| o.split_once('=').map(|(k, _)| k.trim().to_string()))
        .collect();
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let table: toml::Table = text
            .parse()
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        keys.extend(table.keys().cloned());
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_value_overrides_with_types_and_errors() {
        let args: Vec<String> = [
            "epochs=3",
            "imgsz=320",
            "lr0=0.02",
            "cache=true",
            "model=yolov8s",
            "conf=0.5",
        ]
        .map(String::from)
        .to_vec();
        let cfg = DetectConfig::load(None, &args).expect("valid");
        assert_eq!(
            (cfg.epochs, cfg.imgsz, cfg.lr0, cfg.cache),
            (3, 320, 0.02, true)
        );
        assert_eq!((cfg.model.as_str(), cfg.conf), ("yolov8s", Some(0.5)));
        assert_eq!(cfg.box_gain, 7.5);
        let err = format!(
            "{:#}",
            DetectConfig::load(None, &["lr=0.1".into()]).unwrap_err()
        );
        assert!(
            err.contains("unknown key \"lr\"") && err.contains("did you mean \"lr0\"?"),
            "{err}"
        );
        let err = format!(
            "{:#}",
            DetectConfig::load(None, &["epochs=three".into()]).unwrap_err()
        );
        assert!(err.contains("epochs=three: expected an integer"), "{err}");
        let err = format!(
            "{:#}",
            DetectConfig::load(None, &["imgsz=300".into()]).unwrap_err()
        );
        assert!(err.contains("multiple of 32"), "{err}");
        assert_eq!(
            DetectConfig::load(None, &["device=0".into()])
                .expect("ok")
                .device_name(),
            "cuda:0"
        );
    }

    #[test]
    fn torchvision_architectures_start_from_torchvision_recipe() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cfg = DetectConfig::load(None, &args(&["arch=fasterrcnn_resnet50_fpn", "lr0=0.01"]))
            .expect("valid");
        assert_eq!(
            (
                cfg.optimizer.as_str(),
                cfg.lr0,
                cfg.momentum,
                cfg.weight_decay,
                cfg.batch,
                cfg.epochs
            ),
            ("SGD", 0.01, 0.9, 5e-4, 2, 10)
        );
        assert_eq!((cfg.lr_step, cfg.lr_gamma, cfg.min_size), (3, 0.1, None));
        let yolo = DetectConfig::load(None, &[]).expect("valid");
        assert_eq!((yolo.lr0, yolo.batch, yolo.momentum), (0.01, 16, 0.937));
        let cfg = DetectConfig::load(
            None,
            &args(&["arch=fasterrcnn_resnet50_fpn", "min_size=320"]),
        )
        .expect("valid");
        assert_eq!(cfg.min_size, Some(320));
    }

    #[test]
    fn ssd_recipes_and_augmentation_follow_the_architecture() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let ssd = DetectConfig::load(None, &args(&["arch=ssd300_vgg16"])).expect("valid");
        assert_eq!((ssd.lr0, ssd.weight_decay, ssd.batch), (0.002, 5e-4, 4));
        let aug = ssd.tv_augmentation().expect("known");
        assert!(aug.photometric && aug.zoom_out.is_some() && aug.iou_crop);
        let lite = DetectConfig::load(None, &args(&["arch=ssdlite320_mobilenet_v3_large"]))
            .expect("valid");
        assert_eq!((lite.lr0, lite.weight_decay, lite.batch), (0.006, 4e-5, 8));
        let aug = lite.tv_augmentation().expect("known");
        assert!(aug.iou_crop && !aug.photometric && aug.fliplr == 0.5);
        let rcnn = DetectConfig::load(
            None,
            &args(&["arch=fasterrcnn_resnet50_fpn", "fliplr=0.25"]),
        )
        .expect("valid");
        let aug = rcnn.tv_augmentation().expect("known");
        assert!(!aug.iou_crop && aug.fliplr == 0.25);
        let bad = DetectConfig::load(None, &args(&["arch=ssd300_vgg16", "data_augmentation=lsj"]))
            .expect("valid")
            .tv_augmentation()
            .unwrap_err()
            .to_string();
        assert!(bad.contains("data_augmentation=lsj"), "{bad}");
    }

    #[test]
    fn fcos_is_a_torchvision_family_with_its_recipe() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cfg = DetectConfig::load(None, &args(&["arch=fcos_resnet50_fpn", "min_size=512"]))
            .expect("valid");
        assert_eq!(cfg.family, Family::Fcos);
        assert!(cfg.family.is_torchvision());
        assert_eq!((cfg.lr0, cfg.weight_decay, cfg.batch), (0.0025, 1e-4, 2));
        assert_eq!(cfg.min_size, Some(512));
        assert!(!cfg.tv_augmentation().expect("known").iou_crop);
        let ignored = Family::Fcos.ignored_settings();
        assert!(ignored.contains(&"rpn_post_nms_top_n_test") && !ignored.contains(&"min_size"));
        let err = Family::of("fcos_resnet101_fpn").unwrap_err().to_string();
        assert!(err.contains("fcos_resnet50_fpn"), "{err}");
    }
}
