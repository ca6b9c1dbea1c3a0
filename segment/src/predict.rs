//! `segment predict`: images or folders through a trained model. For each image it writes
//! `<stem>.png` (class indices, one channel: what a data set's mask holds), `<stem>_color.png`
//! (each class in its PASCAL VOC colour, class 0 black) and `<stem>_overlay.jpg` (the colours blended over
//! the image at 50 %, class 0, background by convention, left clear).

use ferrovis_data::dataset::default_class_names;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use ferrovis_core::checkpoint::{self, LoadOptions};
use ferrovis_core::run::resolve_weights;
use ferrovis_data::decode::{read_rgb, write_mask, write_rgb};
use ferrovis_data::image::{Mask, RgbImage};
use ferrovis_data::sources::{expand, SkipLog};
use ferrovis_data::tensor::to_normalized_chw;
use ferrovis_data::video::{run_frames, VideoOptions};
use serde::Serialize;
use tch::{Device, Kind};

use crate::config::InferMode;
use crate::infer::{probabilities, InferOptions};
use crate::model::{ModelSpec, SegmentationModel};
use crate::run::RunMeta;

/// A trained model ready for inference.
pub struct LoadedModel {
    /// The network with its weights.
    pub model: SegmentationModel,
    /// Everything else the run recorded.
    pub meta: RunMeta,
}

/// Loads a run folder (its `weights/best.safetensors` and `segment.json`), a weights file inside
/// a run folder, or any checkpoint with `spec` (and `names`) given, e.g. torchvision's
/// `deeplabv3_resnet50` weights. Loading is strict: every tensor must fit.
pub fn load_model(
    path: &Path,
    spec: Option<ModelSpec>,
    names: Option<Vec<String>>,
    device: Device,
) -> Result<LoadedModel> {
    let resolved = resolve_weights(path)?;
    let file = resolved.file.clone();
    let mut meta = match (resolved.meta::<RunMeta>()?, spec) {
        (_, Some(spec)) => {
            let probe = SegmentationModel::new(&spec, Device::Cpu)?;
            let pre = probe.pretrained_cfg();
            RunMeta {
                names: default_class_names(spec.num_classes as usize),
                model: spec,
                mean: pre.mean,
                std: pre.std,
                infer: InferMode::Whole,
                infer_size: 512,
            }
        }
        (Some(meta), None) => meta,
        (None, None) => bail!(
            "{} is not inside a segment run folder (no ../../segment.json): give --arch, \
             --encoder and --classes for a foreign checkpoint",
            file.display()
        ),
    };
    if let Some(names) = names {
        if names.len() as i64 != meta.model.num_classes {
            bail!(
                "{} class names given for a model with {} classes",
                names.len(),
                meta.model.num_classes
            );
        }
        meta.names = names;
    }
    let model = SegmentationModel::new(&meta.model, device)?;
    checkpoint::load_file(&model.vs, &file, &LoadOptions::default().strict(true)).with_context(
        || {
            format!(
                "loading {} into {:?} on {} with {} classes",
                file.display(),
                meta.model.arch,
                meta.model.encoder,
                meta.model.num_classes
            )
        },
    )?;
    Ok(LoadedModel { model, meta })
}

/// Class indices `(H, W)` as a mask for one image.
pub fn predict_mask(
    loaded: &LoadedModel,
    img: &RgbImage,
    opts: &InferOptions,
    device: Device,
) -> Result<Mask> {
    let x = to_normalized_chw(img, loaded.meta.mean, loaded.meta.std)
        .unsqueeze(0)
        .to_device(device);
    let classes = probabilities(&loaded.model, &x, opts)
        .argmax(1, false)
        .squeeze_dim(0)
        .to_kind(Kind::Uint8)
        .to_device(Device::Cpu)
        .contiguous()
        .view(-1);
    let data = Vec::<u8>::try_from(&classes)?;
    Ok(Mask {
        width: img.width,
        height: img.height,
        data,
    })
}

/// The colour of class `k` in the outputs: the PASCAL VOC colour map (class 0 black, 1 dark
/// red, 2 green, 3 olive, 4 navy, …), which segmentation users know from VOC masks. Each bit
/// triple of `k` lands in the high bits of red, green and blue in turn.
pub fn segment_color(k: u8) -> [u8; 3] {
    let mut rgb = [0u8; 3];
    let mut c = k;
    for shift in (0..8).rev() {
        for (channel, value) in rgb.iter_mut().enumerate() {
            *value |= ((c >> channel) & 1) << shift;
        }
        c >>= 3;
        if c == 0 {
            break;
        }
    }
    rgb
}

/// The mask in colours.
pub fn colorize(mask: &Mask) -> RgbImage {
    let mut out = RgbImage::filled(mask.width, mask.height, [0, 0, 0]);
    for (px, &k) in out.data.chunks_mut(3).zip(&mask.data) {
        px.copy_from_slice(&segment_color(k));
    }
    out
}

/// The colours blended over the image at `alpha`; class 0 left clear.
pub fn overlay(img: &RgbImage, mask: &Mask, alpha: f32) -> RgbImage {
    let mut out = img.clone();
    for (px, &k) in out.data.chunks_mut(3).zip(&mask.data) {
        if k == 0 {
            continue;
        }
        let c = segment_color(k);
        for (v, c) in px.iter_mut().zip(c) {
            *v = ((1.0 - alpha) * *v as f32 + alpha * c as f32).round() as u8;
        }
    }
    out
}

/// One image's (or video frame's) result, as written to `predictions.json`.
#[derive(Debug, Clone, Serialize)]
pub struct ImagePrediction {
    /// The input (a video's file, camera or stream, for its frames).
    pub image: PathBuf,
    /// A video's frame number, from 1, among the frames kept (`vid_stride`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame: Option<usize>,
    /// The class-index PNG written.
    pub mask: PathBuf,
    /// `(class name, fraction of the pixels)` for each class present, largest first.
    pub classes: Vec<(String, f64)>,
    /// Inference time in milliseconds.
    pub ms: f64,
}

/// Predicts every image of `sources` (files, folders, globs, lists) into `out`. A file that
/// cannot be read is named, skipped, and counted in the error returned after everything else is
/// written.
pub fn predict(
    loaded: &LoadedModel,
    sources: &[PathBuf],
    out: &Path,
    opts: &InferOptions,
    device: Device,
) -> Result<Vec<ImagePrediction>> {
    predict_sources(loaded, sources, out, opts, &VideoOptions::default(), device)
}

/// [`predict`] on images and on videos, cameras and streams too: each frame's mask goes to
/// `<out>/<stem>_<frame>.png` and its overlay into the video `<out>/<stem>.avi` (as `video`
/// says).
pub fn predict_sources(
    loaded: &LoadedModel,
    sources: &[PathBuf],
    out: &Path,
    opts: &InferOptions,
    video: &VideoOptions,
    device: Device,
) -> Result<Vec<ImagePrediction>> {
    let sources = expand(sources)?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut results = Vec::new();
    let mut skipped = SkipLog::default();
    let mut done = 0;
    for source in &sources {
        let Some(file) = source.image() else {
            let name = PathBuf::from(source.name());
            let stem = source.stem();
            let outcome = run_frames(source, out, video, |frame| -> Result<RgbImage> {
                let stem = format!("{stem}_{}", frame.number);
                let (mut p, mask) = predict_one(loaded, &frame.image, opts, device, out, &stem)
                    .with_context(|| format!("predicting {stem}"))?;
                p.image = name.clone();
                p.frame = Some(frame.number);
                results.push(p);
                Ok(overlay(&frame.image, &mask, 0.5))
            })?;
            done += usize::from(skipped.video(source, outcome));
            continue;
        };
        let img = match read_rgb(file) {
            Ok(img) => img,
            Err(e) => {
                skipped.skip(file, e);
                continue;
            }
        };
        let stem = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "image".into());
        let (mut p, mask) = predict_one(loaded, &img, opts, device, out, &stem)
            .with_context(|| format!("predicting {}", file.display()))?;
        write_rgb(&out.join(format!("{stem}_color.png")), &colorize(&mask))?;
        write_rgb(
            &out.join(format!("{stem}_overlay.jpg")),
            &overlay(&img, &mask, 0.5),
        )?;
        p.image = file.to_path_buf();
        let shown: Vec<String> = p
            .classes
            .iter()
            .take(5)
            .map(|(n, f)| format!("{n} {:.1}%", f * 100.0))
            .collect();
        println!("{}: {} ({:.0} ms)", file.display(), shown.join(", "), p.ms);
        results.push(p);
        done += 1;
    }
    std::fs::write(
        out.join("predictions.json"),
        serde_json::to_string_pretty(&results)?,
    )?;
    skipped.finish(done)?;
    Ok(results)
}

/// The mask of `img`, written as `<out>/<stem>.png`, and what it holds.
fn predict_one(
    loaded: &LoadedModel,
    img: &RgbImage,
    opts: &InferOptions,
    device: Device,
    out: &Path,
    stem: &str,
) -> Result<(ImagePrediction, Mask)> {
    let t = Instant::now();
    let mask = predict_mask(loaded, img, opts, device)?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    let mask_path = out.join(format!("{stem}.png"));
    write_mask(&mask_path, &mask)?;
    let mut counts = vec![0usize; loaded.meta.names.len()];
    for &k in &mask.data {
        if let Some(c) = counts.get_mut(k as usize) {
            *c += 1;
        }
    }
    let total = mask.data.len().max(1) as f64;
    let mut classes: Vec<(String, f64)> = counts
        .iter()
        .enumerate()
        .filter(|(_, &c)| c > 0)
        .map(|(k, &c)| (loaded.meta.names[k].clone(), c as f64 / total))
        .collect();
    classes.sort_by(|a, b| b.1.total_cmp(&a.1));
    let p = ImagePrediction {
        image: PathBuf::new(),
        frame: None,
        mask: mask_path,
        classes,
        ms,
    };
    Ok((p, mask))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_leaves_class_zero_clear_and_blends_the_rest() {
        let img = RgbImage::filled(2, 1, [100, 100, 100]);
        let mask = Mask {
            width: 2,
            height: 1,
            data: vec![0, 1],
        };
        let o = overlay(&img, &mask, 0.5);
        assert_eq!(o.pixel(0, 0), [100, 100, 100]);
        let c = segment_color(1);
        let expect = c.map(|v| ((100.0 + v as f32) / 2.0).round() as u8);
        assert_eq!(o.pixel(1, 0), expect);
        assert_eq!(colorize(&mask).pixel(0, 0), [0, 0, 0]);
        // VOC's colour map: person (15) is (192, 128, 128), background black, 255 (the
        // ignore value in VOC's masks) (224, 224, 192).
        assert_eq!(segment_color(1), [128, 0, 0]);
        assert_eq!(segment_color(3), [128, 128, 0]);
        assert_eq!(segment_color(15), [192, 128, 128]);
        assert_eq!(segment_color(255), [224, 224, 192]);
    }
}
