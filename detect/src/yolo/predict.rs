//! `detect predict`: images or folders through a trained model; boxes drawn onto copies of the
//! images, and per-image txt and one JSON file in original-image pixels.
//!
//! Preprocessing is Ultralytics': letterbox to `imgsz` with padding only up to a multiple of 32
//! (grey 114, OpenCV bilinear resize), RGB, /255; post-processing conf 0.25, IoU 0.7, 300 boxes.

use ferrovis_data::dataset::default_class_names;
use std::path::{Path, PathBuf};

use anyhow::Result;
use ferrovis_core::checkpoint;
use ferrovis_core::metrics::detection::Detection;
use ferrovis_core::run::resolve_weights;
use ferrovis_data::image::RgbImage;
use ferrovis_data::tensor::to_normalized_chw;
use ferrovis_data::transform::detect::{letterbox_to, DetectionSample};
use tch::nn::VarStore;
use tch::Device;

use crate::output::{write_predictions, ImagePrediction, PixelDetection};
use crate::run::RunMeta;
use crate::track::TrackerConfig;
use crate::yolo::boxes::to_original;
use crate::yolo::model::{Yolo, YoloConfig};
use crate::yolo::postprocess::{end2end_detections, non_max_suppression, NmsConfig};
use crate::yolo::weights;
use ferrovis_data::video::VideoOptions;

/// COCO's 80 class names (index order of Ultralytics' COCO models).
pub const COCO_NAMES: &str = include_str!("../../assets/coco_names.txt");

/// A model ready for inference, with its class names and input size.
pub struct LoadedModel {
    /// The variables.
    pub vs: VarStore,
    /// The network.
    pub model: Yolo,
    /// Class names.
    pub names: Vec<String>,
    /// Input size it was trained at.
    pub imgsz: usize,
}

/// Loads `weights` (a checkpoint) or a run folder's best weights. Class names come from the run's
/// `detect.json` (next to `weights/`), else the checkpoint's own (an Ultralytics `.pt` stores them
/// on its model), else COCO's for 80 classes, else `class0`, `class1`, ….
/// With `fuse`, BatchNorms are folded into the convolutions and the model runs channels-last
/// (inference only, as Ultralytics' predictor and validator do).
pub fn load_model(weights_path: &Path, device: Device, fuse: bool) -> Result<LoadedModel> {
    let resolved = resolve_weights(weights_path)?;
    let file = resolved.file.clone();
    let sd = weights::read(&file)?;
    let shape = weights::shape_of(&sd, &file)?;
    let vs = VarStore::new(device);
    let mut model = Yolo::new(
        &vs.root(),
        YoloConfig {
            version: shape.version,
            scale: shape.scale,
            num_classes: shape.num_classes,
        },
    );
    weights::load(&vs, shape.version, &sd, &file)?;
    if fuse {
        model.fuse(true);
    }
    let meta = resolved.meta::<RunMeta>()?;
    let nc = shape.num_classes as usize;
    // The names an Ultralytics .pt carries on its model come before COCO's guess for 80 classes.
    let stored = checkpoint::class_names(&file)?.filter(|n| n.len() == nc);
    let (names, imgsz) = match (meta, stored) {
        (Some(m), _) if m.names.len() == nc => (m.names, m.imgsz),
        (_, Some(names)) => (names, 640),
        _ if nc == 80 => (COCO_NAMES.lines().map(str::to_string).collect(), 640),
        _ => (default_class_names(nc), 640),
    };
    Ok(LoadedModel {
        vs,
        model,
        names,
        imgsz,
    })
}

/// Detects objects in one decoded image (`path` is recorded with the result).
pub fn predict_image(
    m: &LoadedModel,
    path: &Path,
    image: &RgbImage,
    imgsz: usize,
    nms: &NmsConfig,
) -> Result<ImagePrediction> {
    let size = (image.width, image.height);
    let sample = DetectionSample {
        image: image.clone(),
        boxes: Vec::new(),
    };
    let (boxed, lb) = letterbox_to(&sample, imgsz, true, Some(32))?;
    let x = to_normalized_chw(&boxed.image, [0.0; 3], [1.0; 3])
        .unsqueeze(0)
        .to_device(m.vs.device());
    // The one-to-one head where asked and present (at least 300 candidates before the
    // threshold, as Ultralytics' predictor keeps), else the NMS path.
    let end2end = nms
        .end2end
        .then(|| {
            let k = (nms.max_det as i64).max(crate::yolo::yolo26::MAX_DET);
            tch::no_grad(|| m.model.predict_end2end(&x, k))
        })
        .flatten();
    let dets: Vec<Detection> = match end2end {
        Some(rows) => end2end_detections(&rows, nms),
        None => non_max_suppression(&tch::no_grad(|| m.model.predict(&x)), nms),
    }
    .into_iter()
    .next()
    .unwrap_or_default();
    let detections = dets
        .into_iter()
        .map(|d| PixelDetection {
            track_id: None,
            class: d.class,
            name: m.names.get(d.class).cloned().unwrap_or_default(),
            confidence: d.score,
            xyxy: to_original(&lb, d.bbox, size),
        })
        .collect();
    Ok(ImagePrediction {
        image: path.to_path_buf(),
        frame: None,
        size,
        detections,
    })
}

/// Predicts every image, writes `<out>/<name>` (boxes drawn), `<out>/labels/<stem>.txt`
/// (`class x1 y1 x2 y2 confidence` per line, pixels) and `<out>/predictions.json`.
pub fn predict(
    m: &LoadedModel,
    sources: &[PathBuf],
    imgsz: usize,
    nms: &NmsConfig,
    out: &Path,
    video: &VideoOptions,
    tracker: Option<&TrackerConfig>,
) -> Result<Vec<ImagePrediction>> {
    write_predictions(sources, out, video, tracker, |file, image| {
        predict_image(m, file, image, imgsz, nms)
    })
}
