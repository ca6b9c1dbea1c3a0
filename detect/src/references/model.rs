//! A torchvision detector by architecture name (Faster R-CNN or SSD): built for a class count,
//! started from pretrained weights (a torchvision detection checkpoint, or an ImageNet one for the
//! backbone) or from a run folder, and run on decoded images.

use std::path::Path;

use anyhow::{bail, Context, Result};
use ferrovis_core::checkpoint::{self, LoadOptions};
use ferrovis_core::metrics::detection::Detection;
use ferrovis_core::run::resolve_weights;
use tch::nn::VarStore;
use tch::{Device, Tensor};

use crate::config::DetectConfig;
use crate::faster_rcnn::{FasterRcnn, FasterRcnnConfig, ARCHS};
use crate::rcnn::{Detections, Target};
use crate::run::RunMeta;
use crate::ssd::{self, Ssd, SsdConfig};

/// One of torchvision's detectors (one per model, so the variants' sizes do not matter).
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum TvNet {
    /// `fasterrcnn_*`.
    FasterRcnn(FasterRcnn),
    /// `ssd300_vgg16`, `ssdlite320_*`.
    Ssd(Ssd),
}

impl TvNet {
    /// The architecture's name.
    pub fn arch(&self) -> &str {
        match self {
            TvNet::FasterRcnn(n) => &n.config.arch,
            TvNet::Ssd(n) => &n.config.arch,
        }
    }

    /// The input size `results` and `detect.json` report: the (last) short side, or SSD's
    /// fixed height.
    pub fn input_size(&self) -> usize {
        let size = match self {
            TvNet::FasterRcnn(n) => n.config.transform.min_size.last().copied().unwrap_or(800),
            TvNet::Ssd(n) => n.config.transform.fixed_size.map_or(300, |s| s.0),
        };
        size as usize
    }

    fn backbone_layers(&self) -> usize {
        match self {
            TvNet::FasterRcnn(n) => n.backbone_layers(),
            TvNet::Ssd(n) => n.backbone_layers(),
        }
    }

    /// SSD on the CPU runs channels-last ([`Ssd::use_channels_last`], measured faster); Faster
    /// R-CNN keeps NCHW, not measured the other way yet.
    fn prefer_layout(&self, vs: &VarStore) -> Result<()> {
        match self {
            TvNet::Ssd(n) if vs.device() == Device::Cpu => n.use_channels_last(vs),
            _ => Ok(()),
        }
    }

    fn set_trainable_backbone_layers(&self, vs: &VarStore, n: usize) -> Result<usize> {
        match self {
            TvNet::FasterRcnn(net) => net.set_trainable_backbone_layers(vs, n),
            TvNet::Ssd(net) => net.set_trainable_backbone_layers(vs, n),
        }
    }
}

/// The names of each architecture's training losses, in the order [`TvModel::losses`] returns
/// them (torchvision's names).
pub fn loss_names(arch: &str) -> &'static [&'static str] {
    if arch.starts_with("fasterrcnn_") {
        &[
            "loss_classifier",
            "loss_box_reg",
            "loss_objectness",
            "loss_rpn_box_reg",
        ]
    } else {
        &["bbox_regression", "classification"]
    }
}

/// A torchvision detector with its variables.
#[derive(Debug)]
pub struct TvModel {
    /// The variables (on the model's device).
    pub vs: VarStore,
    /// The network.
    pub net: TvNet,
    /// Class names (without the background).
    pub names: Vec<String>,
}

/// The `model=` values that mean "no weights" for a torchvision architecture: empty, `none`,
/// or the YOLO default left in place.
fn no_weights(model: &str) -> bool {
    model.is_empty() || model == "none" || model.starts_with("yolov8")
}

/// The network `cfg.arch` names for `num_classes` object classes (the background is added).
/// `frozen_norm`: Faster R-CNN's backbone with FrozenBatchNorm (torchvision's choice when weights
/// are given); `full_tail`: SSDlite's MobileNetV3 without the reduced tail (see [`full_tail`]).
fn build_net(
    p: &tch::nn::Path,
    cfg: &DetectConfig,
    num_classes: usize,
    frozen_norm: bool,
    full_tail: bool,
) -> Result<TvNet> {
    if ssd::ARCHS.contains(&cfg.arch.as_str()) {
        let two_stage = [
            ("min_size", cfg.min_size),
            ("max_size", cfg.max_size),
            ("rpn_post_nms_top_n_train", cfg.rpn_post_nms_top_n_train),
            ("rpn_post_nms_top_n_test", cfg.rpn_post_nms_top_n_test),
            ("box_batch_size_per_image", cfg.box_batch_size_per_image),
        ];
        for (key, _) in two_stage.iter().filter(|(_, v)| v.is_some()) {
            // As torchvision warns: SSD's input size is fixed, and it has no RPN or RoI heads.
            tracing::warn!(key, arch = %cfg.arch, "ignored: SSD has a fixed input size and no proposals");
        }
        let backbone = SsdConfig::backbone_of(&cfg.arch, full_tail)?;
        let config = SsdConfig::by_name(&cfg.arch, num_classes as i64 + 1, backbone)?;
        return Ok(TvNet::Ssd(Ssd::new(p, &config)?));
    }
    let config = rcnn_config(cfg, num_classes, frozen_norm)?;
    Ok(TvNet::FasterRcnn(FasterRcnn::new(p, &config)?))
}

/// Faster R-CNN's settings for `num_classes` object classes (the background is added), with
/// `cfg`'s input sizes.
fn rcnn_config(
    cfg: &DetectConfig,
    num_classes: usize,
    pretrained: bool,
) -> Result<FasterRcnnConfig> {
    if !cfg.arch.starts_with("fasterrcnn_") {
        bail!(
            "arch={}: expected yolov8, one of {}, fasterrcnn_<backbone>, or one of {}",
            cfg.arch,
            ARCHS.join(", "),
            ssd::ARCHS.join(", ")
        );
    }
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

impl TvModel {
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
        if let TvNet::Ssd(ssd) = &net {
            ssd.init_backbone_normal(&vs);
        }
        let mut line = format!("{} with {} classes", cfg.arch, names.len());
        if let (Some(file), Some(sd)) = (&file, &sd) {
            let report = match &net {
                TvNet::FasterRcnn(n) => n.load_state_dict(&vs, sd, file)?,
                TvNet::Ssd(n) => n.load_state_dict(&vs, sd, file)?,
            };
            line += &format!(", from {}: {}", file.display(), report.summary());
        } else {
            line += ", random initialisation (no model= weights)";
        }
        let all = net.backbone_layers();
        let default_trainable = match &net {
            TvNet::FasterRcnn(_) => 3,
            TvNet::Ssd(n) => n.default_trainable_layers(),
        };
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
            TvModel {
                vs,
                net,
                names: names.to_vec(),
            },
            line,
        ))
    }

    /// The model of a run folder (or its weights file), as its `detect.json` describes it.
    pub fn from_run(weights: &Path, cfg: &DetectConfig, device: Device) -> Result<Self> {
        let resolved = resolve_weights(weights)?;
        let meta: RunMeta = resolved.meta()?.with_context(|| {
            format!(
                "{}: no detect.json next to it, so its architecture and classes are unknown",
                weights.display()
            )
        })?;
        let Some(arch) = meta.arch.clone() else {
            bail!(
                "{}: a YOLOv8 run, not a torchvision detector's",
                weights.display()
            );
        };
        let cfg = DetectConfig {
            arch,
            ..cfg.clone()
        };
        let sd = checkpoint::read(&resolved.file)?;
        // A backbone trained from pretrained weights has frozen BatchNorms, which keep no step
        // counter: the checkpoint says which normalisation to build.
        let frozen = !sd
            .iter()
            .any(|(k, _)| k.starts_with("backbone.body.") && k.ends_with(".num_batches_tracked"));
        let vs = VarStore::new(device);
        let net = build_net(&vs.root(), &cfg, meta.names.len(), frozen, full_tail(&sd))?;
        checkpoint::load_into(&vs, &sd, &LoadOptions::default().strict(true))
            .with_context(|| format!("loading {}", resolved.file.display()))?;
        net.prefer_layout(&vs)?;
        Ok(TvModel {
            vs,
            net,
            names: meta.names,
        })
    }

    /// Detections of each image (`(3, H, W)`, 0–1, any device), 0-based classes, in its pixels.
    pub fn detect(&self, images: &[Tensor]) -> Result<Vec<Vec<Detection>>> {
        let device = self.vs.device();
        let images: Vec<Tensor> = images.iter().map(|t| t.to_device(device)).collect();
        let dets = tch::no_grad(|| match &self.net {
            TvNet::FasterRcnn(n) => n.detect(&images),
            TvNet::Ssd(n) => n.detect(&images),
        })?;
        dets.iter().map(to_detections).collect()
    }

    /// The training losses of a batch, named as [`loss_names`] names them, in that order.
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
        Ok(match &self.net {
            TvNet::FasterRcnn(n) => {
                let l = n.losses(&images, &targets)?;
                vec![
                    l.loss_classifier,
                    l.loss_box_reg,
                    l.loss_objectness,
                    l.loss_rpn_box_reg,
                ]
            }
            TvNet::Ssd(n) => {
                let l = n.losses(&images, &targets)?;
                vec![l.bbox_regression, l.classification]
            }
        })
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
    let imagenet = !sd.iter().any(|(name, _)| name.starts_with("backbone."));
    imagenet
        || sd
            .get("backbone.features.1.3.0.weight")
            .is_some_and(|t| t.size()[0] == 960)
}

/// One image's detections as the metrics' type (classes 0-based, background gone).
fn to_detections(d: &Detections) -> Result<Vec<Detection>> {
    let boxes: Vec<f32> = Vec::try_from(d.boxes.to_device(Device::Cpu).reshape([-1]))?;
    let scores: Vec<f32> = Vec::try_from(d.scores.to_device(Device::Cpu))?;
    let labels: Vec<i64> = Vec::try_from(d.labels.to_device(Device::Cpu))?;
    Ok(boxes
        .chunks_exact(4)
        .zip(scores.iter().zip(&labels))
        .map(|(b, (&s, &l))| Detection::new([b[0], b[1], b[2], b[3]], s, (l - 1).max(0) as usize))
        .collect())
}
