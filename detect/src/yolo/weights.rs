//! Loading YOLOv8 weights: Ultralytics checkpoints (`yolov8n.pt`, `best.pt`: a pickled
//! `DetectionModel` in float16 under `ema` or `model`, read by the core checkpoint reader without
//! Python) and our own `.safetensors`, by state-dict name.

use std::path::Path;

use anyhow::{bail, Context, Result};
use ferrovis_core::checkpoint::{self, LoadOptions, StateDict};
use tch::nn::VarStore;

use crate::yolo::yolov8::{Scale, YoloConfig, YoloV8, DETECT_INDEX};

/// What a checkpoint holds, read off its tensor shapes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CheckpointShape {
    /// The model size.
    pub scale: Scale,
    /// The classes its head predicts.
    pub num_classes: i64,
}

/// Reads a checkpoint's tensors (any format the core reader knows).
pub fn read(path: &Path) -> Result<StateDict> {
    checkpoint::read(path).with_context(|| format!("reading YOLOv8 weights {}", path.display()))
}

/// The scale and class count of a YOLOv8 state dict (from the stem width and the class branch).
pub fn shape_of(sd: &StateDict, path: &Path) -> Result<CheckpointShape> {
    let stem = sd.get("model.0.conv.weight").with_context(|| {
        format!(
            "{} has no model.0.conv.weight: not a YOLOv8 detection checkpoint",
            path.display()
        )
    })?;
    let width = stem.size()[0];
    let scale = Scale::ALL
        .into_iter()
        .find(|s| s.channels(64) == width)
        .with_context(|| {
            format!(
                "{}: stem width {width} matches no YOLOv8 scale",
                path.display()
            )
        })?;
    let key = format!("model.{DETECT_INDEX}.cv3.0.2.bias");
    let classes = sd
        .get(&key)
        .with_context(|| format!("{} has no {key}: not a YOLOv8 Detect head", path.display()))?;
    Ok(CheckpointShape {
        scale,
        num_classes: classes.size()[0],
    })
}

/// Loads `sd` into a model's variables. Everything must fit except the class branch
/// (`model.22.cv3`), which is left freshly initialised where the class count differs. Returns a
/// one-line report ("319 of 355 tensors loaded; 36 start fresh (…)").
pub fn load(vs: &VarStore, sd: &StateDict, path: &Path) -> Result<String> {
    let class_branch = format!("^model\\.{DETECT_INDEX}\\.cv3\\.");
    let opts = LoadOptions::default().strict(true).reinit(&class_branch)?;
    let report = checkpoint::load_into(vs, sd, &opts).with_context(|| {
        format!(
            "{} does not fit this YOLOv8 (another scale?) outside the class branch",
            path.display()
        )
    })?;
    Ok(format!("{}: {}", path.display(), report.summary()))
}

/// A model for `num_classes` classes from `spec`: a checkpoint path (its scale is read from it
/// and its tensors loaded, the class branch re-initialised when the count differs), Ultralytics'
/// release name (`yolov8n.pt` … `yolov8x.pt` when no such file is here: its cached copy,
/// downloaded first when needed, as Ultralytics does) or a scale name (`yolov8n` … `yolov8x`,
/// random initialisation). Returns the model and a line saying which.
pub fn build(
    spec: &str,
    num_classes: i64,
    device: tch::Device,
) -> Result<(VarStore, YoloV8, String)> {
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
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or(spec);
    if path.is_file() {
        let sd = read(path)?;
        let shape = shape_of(&sd, path)?;
        let vs = VarStore::new(device);
        let model = YoloV8::new(
            &vs.root(),
            YoloConfig {
                scale: shape.scale,
                num_classes,
            },
        );
        let line = load(&vs, &sd, path)?;
        return Ok((vs, model, line));
    }
    let looks_like_file = path.extension().is_some();
    match Scale::by_name(stem) {
        Some(scale) if !looks_like_file || path.extension().is_some_and(|e| e == "yaml") => {
            let vs = VarStore::new(device);
            let model = YoloV8::new(&vs.root(), YoloConfig { scale, num_classes });
            let line = format!(
                "yolov8{}: random initialisation ({} parameters)",
                scale.name,
                crate::yolo::yolov8::parameter_count(&vs)
            );
            Ok((vs, model, line))
        }
        _ => bail!(
            "model={spec}: no such file: pass the path of a YOLOv8 checkpoint (Ultralytics .pt or \
             ferrovis .safetensors), a release name (model=yolov8n.pt … yolov8x.pt, downloaded \
             once), or model=yolov8n (s, m, l, x) to start from random initialisation"
        ),
    }
}
