//! A torchvision detector by architecture name (Faster R-CNN, SSD, FCOS or RetinaNet): built for a
//! class count, started from pretrained weights (a torchvision detection checkpoint, or an ImageNet
//! one for the backbone) or from a run folder, and run on decoded images.

use std::path::Path;

use anyhow::{bail, Context, Result};
use ferrovis_core::checkpoint::{self, LoadOptions};
use ferrovis_core::metrics::detection::Detection;
use ferrovis_core::run::resolve_weights;
use tch::nn::VarStore;
use tch::{Device, Tensor};

use crate::config::{DetectConfig, Family};
use crate::run::RunMeta;
use crate::source::{identify, WeightsSource};
use crate::torchvision::detector::Detector;
use crate::torchvision::faster_rcnn::{FasterRcnn, FasterRcnnConfig};
use crate::torchvision::fcos::{Fcos, FcosConfig};
use crate::torchvision::retinanet::{RetinaNet, RetinaNetConfig};
use crate::torchvision::ssd::{Ssd, SsdConfig};
use crate::torchvision::targets::{Detections, Target};

/// A torchvision detector with its variables.
#[derive(Debug)]
pub struct Model {
    /// The variables (on the model's device).
    pub vs: VarStore,
    /// The network.
    pub net: Box<dyn Detector>,
    /// Class names (without the background).
    pub names: Vec<String>,
}

/// The `model=` values that mean "no weights" for a torchvision architecture: empty, `none`,
/// or the YOLO default left in place.
fn no_weights(model: &str) -> bool {
    model.is_empty() || model == "none" || model.starts_with("yolov8")
}

/// The network `cfg.arch` names for `num_classes` object classes (the background is added).
/// `frozen_norm`: Faster R-CNN's, FCOS's and RetinaNet v1's backbone with FrozenBatchNorm
/// (torchvision's choice when weights are given); `full_tail`: SSDlite's MobileNetV3 without the
/// reduced tail (see [`full_tail`]).
pub(crate) fn build_net(
    p: &tch::nn::Path,
    cfg: &DetectConfig,
    num_classes: usize,
    frozen_norm: bool,
    full_tail: bool,
) -> Result<Box<dyn Detector>> {
    let family = Family::of(&cfg.arch)?;
    if family == Family::Yolo {
        bail!("arch=yolov8 is not one of torchvision's detectors");
    }
    if family == Family::Ssd {
        let backbone = SsdConfig::backbone_of(&cfg.arch, full_tail)?;
        let config = SsdConfig::by_name(&cfg.arch, num_classes as i64 + 1, backbone)?;
        return Ok(Box::new(Ssd::new(p, &config)?));
    }
    if family == Family::Fcos {
        let mut config = FcosConfig::by_name(&cfg.arch, num_classes as i64 + 1, frozen_norm)?;
        if let Some(s) = cfg.min_size {
            config.transform.min_size = vec![s as i64];
        }
        if let Some(s) = cfg.max_size {
            config.transform.max_size = s as i64;
        }
        return Ok(Box::new(Fcos::new(p, &config)?));
    }
    if family == Family::RetinaNet {
        let mut config = RetinaNetConfig::by_name(&cfg.arch, num_classes as i64 + 1, frozen_norm)?;
        if let Some(s) = cfg.min_size {
            config.transform.min_size = vec![s as i64];
        }
        if let Some(s) = cfg.max_size {
            config.transform.max_size = s as i64;
        }
        return Ok(Box::new(RetinaNet::new(p, &config)?));
    }
    let config = rcnn_config(cfg, num_classes, frozen_norm)?;
    Ok(Box::new(FasterRcnn::new(p, &config)?))
}

/// Faster R-CNN's settings for `num_classes` object classes (the background is added), with
/// `cfg`'s input sizes.
fn rcnn_config(
    cfg: &DetectConfig,
    num_classes: usize,
    pretrained: bool,
) -> Result<FasterRcnnConfig> {
    let mut config = FasterRcnnConfig::by_name(&cfg.arch, num_classes as i64 + 1, pretrained)?;
    if let Some(s) = cfg.min_size {
        config.transform.min_size = vec![s as i64];
    }
    if let Some(s) = cfg.max_size {
        config.transform.max_size = s as i64;
    }
    if let Some(n) = cfg.rpn_post_nms_top_n_train {
        config.rpn.post_nms_top_n_train = n as i64;
    }
    if let Some(n) = cfg.rpn_post_nms_top_n_test {
        config.rpn.post_nms_top_n_test = n as i64;
    }
    if let Some(n) = cfg.box_batch_size_per_image {
        config.roi_heads.batch_size_per_image = n as i64;
    }
    Ok(config)
}

impl Model {
    /// A model to train: `cfg.arch` for `names`, from `cfg.model` when it names weights, with
    /// torchvision's `trainable_backbone_layers` (3 by default with weights; every layer
    /// without). Returns the model and a line describing what was loaded.
    pub fn for_training(
        cfg: &DetectConfig,
        names: &[String],
        device: Device,
    ) -> Result<(Self, String)> {
        let pretrained = !no_weights(&cfg.model);
        let file = if pretrained {
            Some(resolve_weights(Path::new(&cfg.model))?.file)
        } else {
            None
        };
        // Read once: its names decide the network (SSDlite's tail) and then load into it.
        let sd = file.as_deref().map(checkpoint::read).transpose()?;
        let full = sd.as_ref().is_some_and(full_tail);
        let vs = VarStore::new(device);
        let net = build_net(&vs.root(), cfg, names.len(), pretrained, full)?;
        net.init_fresh(&vs);
        let mut line = format!("{} with {} classes", cfg.arch, names.len());
        if let (Some(file), Some(sd)) = (&file, &sd) {
            let report = net.load_state_dict(&vs, sd, file)?;
            line += &format!(", from {}: {}", file.display(), report.summary());
        } else {
            line += ", random initialisation (no model= weights)";
        }
        let all = net.backbone_layers();
        let default_trainable = net.default_trainable_layers();
        let trainable = match cfg.trainable_backbone_layers {
            Some(n) if !pretrained && n != all => {
                // torchvision trains every layer when nothing is pretrained, whatever is asked.
                tracing::warn!(
                    asked = n,
                    "no pretrained weights: every backbone layer trains"
                );
                all
            }
            Some(n) => n,
            None if pretrained => default_trainable,
            None => all,
        };
        let frozen = net.set_trainable_backbone_layers(&vs, trainable)?;
        net.prefer_layout(&vs)?;
        line +=
            &format!("; {trainable} of {all} backbone layers trainable ({frozen} tensors frozen)");
        Ok((
            Model {
                vs,
                net,
                names: names.to_vec(),
            },
            line,
        ))
    }

    /// The model of a run folder (or its weights file), as its `detect.json` describes it.
    pub fn from_run(weights: &Path, cfg: &DetectConfig, device: Device) -> Result<Self> {
        let source = identify(weights, None)?;
        if source.meta.is_none() {
            bail!(
                "{}: no detect.json next to it, so its architecture and classes are unknown",
                weights.display()
            );
        }
        Self::from_source(&source, cfg, None, device)
    }

    /// The model `source` holds: a run's (its `detect.json` names the classes), or a torchvision
    /// checkpoint on its own, whose class count is read off its predictor: torchvision's 91 COCO
    /// categories when it has 91 outputs and no `names` are given, else `names` (the data set's),
    /// else `class1`, `class2`, ….
    pub fn from_source(
        source: &WeightsSource,
        cfg: &DetectConfig,
        names: Option<&[String]>,
        device: Device,
    ) -> Result<Self> {
        if !source.family.is_torchvision() {
            bail!(
                "{}: a {} checkpoint, not one of torchvision's detectors",
                source.file.display(),
                source.arch
            );
        }
        let cfg = DetectConfig {
            family: source.family,
            arch: source.arch.clone(),
            ..cfg.clone()
        };
        let sd = checkpoint::read(&source.file)?;
        let names = match &source.meta {
            Some(meta) => meta.names.clone(),
            None => class_names(&sd, &source.file, source.family, names)?,
        };
        // A backbone trained from pretrained weights has frozen BatchNorms, which keep no step
        // counter: the checkpoint says which normalisation to build.
        let frozen = !sd
            .iter()
            .any(|(k, _)| k.starts_with("backbone.body.") && k.ends_with(".num_batches_tracked"));
        let vs = VarStore::new(device);
        let net = build_net(&vs.root(), &cfg, names.len(), frozen, full_tail(&sd))?;
        // Old spellings of the FPN and the RPN head (harmless to the rest), and of RetinaNet's
        // towers for RetinaNet only: its old tower names are FCOS's current ones.
        let mut opts = FasterRcnn::legacy_renames(LoadOptions::default().strict(true))?;
        if crate::torchvision::retinanet::ARCHS.contains(&source.arch.as_str()) {
            opts = RetinaNet::legacy_renames(opts)?;
        }
        checkpoint::load_into(&vs, &sd, &opts)
            .with_context(|| format!("loading {} as {}", source.file.display(), source.arch))?;
        net.prefer_layout(&vs)?;
        Ok(Model { vs, net, names })
    }

    /// Detections of each image (`(3, H, W)`, 0–1, any device), 0-based classes, in its pixels.
    pub fn detect(&self, images: &[Tensor]) -> Result<Vec<Vec<Detection>>> {
        let device = self.vs.device();
        let images: Vec<Tensor> = images.iter().map(|t| t.to_device(device)).collect();
        let dets = tch::no_grad(|| self.net.detect(&images))?;
        dets.iter().map(to_detections).collect()
    }

    /// The training losses of a batch, named as [`Detector::loss_names`] names them, in that
    /// order.
    pub fn losses(&self, images: &[Tensor], targets: &[Target]) -> Result<Vec<Tensor>> {
        let device = self.vs.device();
        let images: Vec<Tensor> = images.iter().map(|t| t.to_device(device)).collect();
        let targets: Vec<Target> = targets
            .iter()
            .map(|t| Target {
                boxes: t.boxes.to_device(device),
                labels: t.labels.to_device(device),
            })
            .collect();
        self.net.losses(&images, &targets)
    }

    /// The run metadata of this model.
    pub fn meta(&self, cfg: &DetectConfig) -> RunMeta {
        RunMeta {
            scale: '-',
            names: self.names.clone(),
            imgsz: cfg.min_size.unwrap_or(self.net.input_size()),
            arch: Some(self.net.arch().to_string()),
        }
    }
}

/// Whether SSDlite's MobileNetV3 is built with its full tail for `sd`: torchvision builds it so
/// only from an ImageNet backbone (a classification checkpoint, no `backbone.*` names), and a
/// detection checkpoint trained from one keeps the 960-channel last convolution.
fn full_tail(sd: &ferrovis_core::checkpoint::StateDict) -> bool {
    let imagenet = !crate::torchvision::detector::is_detection_checkpoint(sd);
    imagenet
        || sd
            .get("backbone.features.1.3.0.weight")
            .is_some_and(|t| t.size()[0] == 960)
}

/// One image's detections as the metrics' type (classes 0-based, background gone: RetinaNet
/// scores the background as a class too, and a detection of it is no object).
fn to_detections(d: &Detections) -> Result<Vec<Detection>> {
    let boxes: Vec<f32> = Vec::try_from(d.boxes.to_device(Device::Cpu).reshape([-1]))?;
    let scores: Vec<f32> = Vec::try_from(d.scores.to_device(Device::Cpu))?;
    let labels: Vec<i64> = Vec::try_from(d.labels.to_device(Device::Cpu))?;
    Ok(boxes
        .chunks_exact(4)
        .zip(scores.iter().zip(&labels))
        .filter(|(_, (_, &l))| l > 0)
        .map(|(b, (&s, &l))| Detection::new([b[0], b[1], b[2], b[3]], s, (l - 1) as usize))
        .collect())
}

/// torchvision's COCO categories, index 0 the background, `N/A` where COCO skips an id
/// (`FasterRCNN_ResNet50_FPN_Weights.COCO_V1.meta["categories"]`).
const COCO_CATEGORIES: &str = include_str!("../../assets/coco91_names.txt");

/// The object classes of a torchvision checkpoint outside a run folder: its predictor's output
/// count (the background included) decides how many; `names` (without the background) name them
/// when given, torchvision's COCO categories when there are 91, else `class1`, `class2`, ….
fn class_names(
    sd: &ferrovis_core::checkpoint::StateDict,
    file: &Path,
    family: Family,
    names: Option<&[String]>,
) -> Result<Vec<String>> {
    let out = |name: &str| sd.get(name).map(|t| t.size()[0]);
    // SSD's class head predicts every class for each default box of a cell: 4 boxes at SSD300's
    // first level, 6 at SSDlite's (torchvision's aspect ratios).
    let with_background = match family {
        Family::FasterRcnn => out("roi_heads.box_predictor.cls_score.weight"),
        // RetinaNet's predicts every class for each of its nine anchors a cell.
        Family::RetinaNet => out("head.classification_head.cls_logits.weight").map(|n| n / 9),
        Family::Ssd => out("head.classification_head.module_list.0.weight")
            .map(|n| n / 4)
            .or_else(|| out("head.classification_head.module_list.0.1.weight").map(|n| n / 6)),
        Family::Fcos => out("head.classification_head.cls_logits.weight"),
        Family::Yolo => None,
    }
    .with_context(|| {
        format!(
            "{}: no class predictor to count the classes by",
            file.display()
        )
    })?;
    let count = (with_background - 1).max(0) as usize;
    match names {
        Some(names) if names.len() == count => Ok(names.to_vec()),
        Some(names) => bail!(
            "{} predicts {count} classes (and the background) but {} names are given",
            file.display(),
            names.len()
        ),
        None if with_background == 91 => Ok(COCO_CATEGORIES
            .lines()
            .skip(1)
            .map(str::to_string)
            .collect()),
        None => Ok((1..=count).map(|i| format!("class{i}")).collect()),
    }
}
