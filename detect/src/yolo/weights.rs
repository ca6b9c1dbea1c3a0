//! Loading YOLO weights: Ultralytics checkpoints (`yolov8n.pt`, `yolo11n.pt`, `best.pt`: a pickled
//! `DetectionModel` in float16 under `ema` or `model`, read by the core checkpoint reader without
//! Python) and our own `.safetensors`, by state-dict name. The version, scale and class count are
//! read off the tensors, so any of them loads without being told what it is.

use std::path::Path;

use anyhow::{bail, Context, Result};
use ferrovis_core::checkpoint::{self, LoadOptions, StateDict};
use tch::nn::VarStore;

use crate::yolo::model::{parameter_count, Scale, Version, Yolo, YoloConfig};

/// What a checkpoint holds, read off its tensor shapes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CheckpointShape {
    /// The generation.
    pub version: Version,
    /// The model size.
    pub scale: Scale,
    /// The classes its head predicts.
    pub num_classes: i64,
}

/// Reads a checkpoint's tensors (any format the core reader knows).
pub fn read(path: &Path) -> Result<StateDict> {
    checkpoint::read(path).with_context(|| format!("reading YOLO weights {}", path.display()))
}

/// The version, scale and class count of a YOLO state dict: the Detect head's index and class
/// branch say the version (YOLOv8's `model.22.cv3.i` starts with a full 3×3 Conv, YOLO11's
/// `model.23.cv3.i.0.0` with a depthwise one, YOLO26's has a `one2one_cv2`), the stem's width and the first block's repeats the
/// scale, the class branch's last bias the classes.
pub fn shape_of(sd: &StateDict, path: &Path) -> Result<CheckpointShape> {
    let stem = sd.get("model.0.conv.weight").with_context(|| {
        format!(
            "{} has no model.0.conv.weight: not an Ultralytics YOLO detection checkpoint",
            path.display()
        )
    })?;
    let version = if sd.get("model.23.one2one_cv2.0.2.weight").is_some() {
        Version::V26
    } else if sd.get("model.23.cv3.0.0.0.conv.weight").is_some() {
        Version::V11
    } else if sd.get("model.22.cv3.0.0.conv.weight").is_some() {
        Version::V8
    } else {
        let last = sd
            .names()
            .filter_map(|n| {
                n.strip_prefix("model.")?
                    .split('.')
                    .next()?
                    .parse::<usize>()
                    .ok()
            })
            .max()
            .unwrap_or(0);
        let heads: Vec<&str> = sd
            .names()
            .filter(|n| n.starts_with(&format!("model.{last}.")))
            .take(3)
            .collect();
        bail!(
            "{}: neither a YOLOv8 Detect head (model.22.cv3.0.0.conv.weight) nor a YOLO11 \
             (model.23.cv3.0.0.0.conv.weight) or YOLO26 (model.23.one2one_cv2.0.2.weight) one; \
             its last layer is model.{last} ({}, …): another \
             YOLO version or task, which ferrovis does not build",
            path.display(),
            heads.join(", ")
        );
    };
    let width = stem.size()[0];
    // YOLO11 m and l share a stem width; the blocks in model.2 (3 nominal in YOLOv8's table,
    // 2 in YOLO11's, times the scale's depth) tell them apart.
    let blocks = (0..)
        .take_while(|i| {
            let prefix = format!("model.2.m.{i}.");
            sd.names().any(|n| n.starts_with(&prefix))
        })
        .count() as i64;
    let nominal = match version {
        Version::V8 => 3,
        Version::V11 | Version::V26 => 2,
    };
    let scale = version
        .scales()
        .into_iter()
        .find(|s| s.channels(64) == width && s.repeats(nominal) == blocks)
        .with_context(|| {
            format!(
                "{}: stem width {width} with {blocks} block(s) in model.2 matches no {version} \
                 scale",
                path.display()
            )
        })?;
    let key = format!("model.{}.cv3.0.2.bias", version.detect_index());
    let classes = sd.get(&key).with_context(|| {
        format!(
            "{} has no {key}: not a complete {version} Detect head",
            path.display()
        )
    })?;
    Ok(CheckpointShape {
        version,
        scale,
        num_classes: classes.size()[0],
    })
}

/// Loads `sd` into the variables of a `version` model. Everything must fit except the class
/// branch (`model.22.cv3` or `model.23.cv3`), which is left freshly initialised where the class
/// count differs. Returns a one-line report ("319 of 355 tensors loaded; 36 start fresh (…)").
pub fn load(vs: &VarStore, version: Version, sd: &StateDict, path: &Path) -> Result<String> {
    // YOLO26's one-to-one class branch is a class branch too.
    let class_branch = format!("^model\\.{}\\.(one2one_)?cv3\\.", version.detect_index());
    let opts = LoadOptions::default().strict(true).reinit(&class_branch)?;
    let report = checkpoint::load_into(vs, sd, &opts).with_context(|| {
        format!(
            "{} does not fit this {version} (another scale or version?) outside the class branch",
            path.display()
        )
    })?;
    Ok(format!("{}: {}", path.display(), report.summary()))
}

/// A model for `num_classes` classes from `spec`: a checkpoint path (its version and scale are
/// read from it and its tensors loaded, the class branch re-initialised when the count differs),
/// Ultralytics' release name (`yolov8n.pt` … `yolo11x.pt` when no such file is here: its cached
/// copy, downloaded first when needed, as Ultralytics does) or a model name (`yolo11n`,
/// `yolo11n.yaml`, `yolov8s`, …: random initialisation). Returns the model and a line saying
/// which.
pub fn build(
    spec: &str,
    num_classes: i64,
    device: tch::Device,
) -> Result<(VarStore, Yolo, String)> {
    // Ultralytics' release names (`yolov8n.pt`) when no such file is here; scale names stay.
    let named = if spec.ends_with(".pt") {
        ferrovis_core::hub::local_or_named(Path::new(spec)).with_context(|| {
            format!(
                "model={spec} (or model={} to start from random initialisation)",
                spec.trim_end_matches(".pt")
            )
        })?
    } else {
        Path::new(spec).to_path_buf()
    };
    let path = named.as_path();
    if path.is_file() {
        let sd = read(path)?;
        let shape = shape_of(&sd, path)?;
        let vs = VarStore::new(device);
        let model = Yolo::new(
            &vs.root(),
            YoloConfig {
                version: shape.version,
                scale: shape.scale,
                num_classes,
            },
        );
        let line = load(&vs, shape.version, &sd, path)?;
        let line = format!("{} {line}", model.config().name());
        return Ok((vs, model, line));
    }
    let name = path.file_name().and_then(|s| s.to_str()).unwrap_or(spec);
    match Version::parse_model_name(name) {
        Some((version, scale)) if !name.ends_with(".pt") => {
            let vs = VarStore::new(device);
            let config = YoloConfig {
                version,
                scale,
                num_classes,
            };
            let model = Yolo::new(&vs.root(), config);
            let line = format!(
                "{}: random initialisation ({} parameters)",
                config.name(),
                parameter_count(&vs)
            );
            Ok((vs, model, line))
        }
        Some((version, scale)) => bail!(
            "model={spec}: no such file: give the path of a {version} checkpoint, or \
             model={}{} to start from random initialisation",
            version.prefix(),
            scale.name
        ),
        None => bail!(
            "model={spec}: no such file: pass the path of a YOLOv8 or YOLO11 checkpoint \
             (Ultralytics .pt or ferrovis .safetensors), a release name (model=yolo11n.pt … \
             yolo11x.pt, yolov8n.pt … yolov8x.pt, downloaded once), or a model name \
             (model=yolo11n, yolo11n.yaml, yolov8s, …) to start from random initialisation"
        ),
    }
}
