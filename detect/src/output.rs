//! What every detector's `predict` and `val` write, whichever family it is: the predictions
//! (drawn images, `labels/<stem>.txt`, `predictions.json`, as Ultralytics lays them out) and the
//! validation's table, precision-recall curves and `metrics.json`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use ferrovis_core::metrics::{charts, render, DetectionReport};
use ferrovis_data::decode::{read_rgb, write_rgb};
use ferrovis_data::draw::{class_color, draw_boxes, LabelledBox};
use ferrovis_data::image::RgbImage;
use ferrovis_data::sources::SkipLog;

use crate::track::{ByteTracker, Detection, TrackerConfig};
use serde::Serialize;

/// One detection in original-image pixels.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PixelDetection {
    /// Class index.
    pub class: usize,
    /// Class name.
    pub name: String,
    /// Confidence.
    pub confidence: f32,
    /// `[x1, y1, x2, y2]` in the original image.
    pub xyxy: [f32; 4],
    /// The track's identity when tracking (`detect track`): the box is then the track's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub track_id: Option<u64>,
}

/// The detections of one image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImagePrediction {
    /// The image file.
    pub image: PathBuf,
    /// Its width and height.
    pub size: (usize, usize),
    /// What was found, by decreasing confidence.
    pub detections: Vec<PixelDetection>,
}

/// The outputs of `predict` for any detector: every image of `sources` (files, folders, globs,
/// lists) through `detect_one`, then `<out>/<name>` (boxes drawn), `<out>/labels/<stem>.txt` and
/// `<out>/predictions.json`. A file that cannot be read is named, skipped, and counted in the
/// error returned after everything else is written.
///
/// With `tracker` (`detect track`), the images are a sequence of frames in order: each
/// frame's detections go through one [`ByteTracker`], and the confirmed tracks replace them —
/// drawn with their identities, `class x1 y1 x2 y2 confidence id` label lines, `track_id` in
/// the JSON — and `<out>/mot.txt` lists them in the MOT Challenge's format
/// (`frame,id,left,top,width,height,confidence,-1,-1,-1`, frames from 1).
pub fn write_predictions(
    sources: &[PathBuf],
    out: &Path,
    tracker: Option<&TrackerConfig>,
    mut detect_one: impl FnMut(&Path, &RgbImage) -> Result<ImagePrediction>,
) -> Result<Vec<ImagePrediction>> {
    let mut tracker = tracker.map(|cfg| ByteTracker::new(*cfg));
    let mut mot = String::new();
    let files = ferrovis_data::sources::expand(sources)?;
    std::fs::create_dir_all(out.join("labels"))
        .with_context(|| format!("creating {}", out.display()))?;
    let mut all = Vec::new();
    let mut skipped = SkipLog::default();
    for file in files {
        let t = Instant::now();
        let image = match read_rgb(&file) {
            Ok(image) => image,
            Err(e) => {
                skipped.skip(&file, e);
                // An unreadable frame is still a frame: tracks age, numbering follows the files.
                if let Some(tracker) = tracker.as_mut() {
                    tracker.update(&[]);
                }
                continue;
            }
        };
        let mut p = detect_one(&file, &image)?;
        if let Some(tracker) = tracker.as_mut() {
            p.detections = track_frame(tracker, &p.detections, &mut mot);
        }
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        let counts = summary(&p);
        println!("{}: {counts} ({ms:.1} ms)", file.display());
        let name = file
            .file_name()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("image.jpg"));
        let boxes: Vec<LabelledBox> = p
            .detections
            .iter()
            .map(|d| LabelledBox {
                xyxy: d.xyxy,
                caption: match d.track_id {
                    Some(id) => format!("id:{id} {} {:.2}", d.name, d.confidence),
                    None => format!("{} {:.2}", d.name, d.confidence),
                },
                // A track keeps its colour from frame to frame.
                color: class_color(d.track_id.map_or(d.class, |id| id as usize)),
            })
            .collect();
        let drawn = draw_boxes(&image, &boxes)?;
        write_rgb(&out.join(&name), &drawn)?;
        let txt: String = p
            .detections
            .iter()
            .map(|d| {
                let id = d.track_id.map(|id| format!(" {id}")).unwrap_or_default();
                format!(
                    "{} {:.1} {:.1} {:.1} {:.1} {:.4}{id}\n",
                    d.class, d.xyxy[0], d.xyxy[1], d.xyxy[2], d.xyxy[3], d.confidence
                )
            })
            .collect();
        let stem = name.with_extension("txt");
        std::fs::write(out.join("labels").join(&stem), txt)?;
        all.push(p);
    }
    std::fs::write(
        out.join("predictions.json"),
        serde_json::to_string_pretty(&all)?,
    )?;
    if tracker.is_some() {
        std::fs::write(out.join("mot.txt"), &mot)?;
    }
    println!("results in {}", out.display());
    skipped.finish(all.len())?;
    Ok(all)
}

/// A frame's detections through `tracker`: its confirmed tracks, each with the name of the
/// detection it last matched, also appended to `mot` as MOT Challenge lines.
fn track_frame(
    tracker: &mut ByteTracker,
    detections: &[PixelDetection],
    mot: &mut String,
) -> Vec<PixelDetection> {
    let input: Vec<Detection> = detections
        .iter()
        .map(|d| Detection {
            xyxy: d.xyxy,
            score: d.confidence,
            class: d.class as f32,
        })
        .collect();
    let tracks = tracker.update(&input);
    let frame = tracker.frame();
    tracks
        .into_iter()
        .map(|t| {
            let [x1, y1, x2, y2] = t.xyxy;
            *mot += &format!(
                "{frame},{},{x1:.2},{y1:.2},{:.2},{:.2},{:.4},-1,-1,-1\n",
                t.track_id,
                x2 - x1,
                y2 - y1,
                t.score
            );
            PixelDetection {
                class: t.class as usize,
                name: detections
                    .get(t.detection)
                    .map(|d| d.name.clone())
                    .unwrap_or_default(),
                confidence: t.score,
                xyxy: t.xyxy,
                track_id: Some(t.track_id),
            }
        })
        .collect()
}

/// "2 person, 1 dog" (or "no detections").
pub fn summary(p: &ImagePrediction) -> String {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for d in &p.detections {
        match counts.iter_mut().find(|(n, _)| *n == d.name) {
            Some((_, c)) => *c += 1,
            None => counts.push((d.name.clone(), 1)),
        }
    }
    if counts.is_empty() {
        return "no detections".into();
    }
    counts
        .iter()
        .map(|(n, c)| format!("{c} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The part of a validation report every detector writes: the metrics table on stdout,
/// `PR_curve.png`, and `metrics.json` holding `json` (its caller's fields: metrics, fitness, …)
/// in `dir`; then the line saying where they are.
pub fn write_validation(
    report: &DetectionReport,
    names: &[String],
    dir: &Path,
    json: &serde_json::Value,
) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    charts::pr_curves_png(&dir.join("PR_curve.png"), report, names)?;
    let path = dir.join("metrics.json");
    std::fs::write(&path, serde_json::to_string_pretty(json)?)
        .with_context(|| format!("writing {}", path.display()))?;
    println!("plots and metrics.json in {}", dir.display());
    Ok(())
}

/// The metrics table of a validation, as every detector prints it first.
pub fn print_table(report: &DetectionReport, names: &[String]) {
    println!("{}", render::detection_table(report, names));
}

/// Warns (once, with the count and the files) about the validation images a loader left out,
/// so metrics over fewer images than the split holds are never silent.
pub fn warn_left_out(failures: &[ferrovis_data::loader::LoadFailure]) {
    if failures.is_empty() {
        return;
    }
    let files: Vec<String> = failures
        .iter()
        .map(|f| match &f.source {
            Some(path) => format!("{} ({})", path.display(), f.message),
            None => format!("sample {} ({})", f.index, f.message),
        })
        .collect();
    tracing::warn!(
        count = failures.len(),
        files = %files.join(", "),
        "validation images could not be loaded and were left out"
    );
}
