//! What every detector's `predict` and `val` write, whichever family it is: the predictions
//! (drawn images and videos, `labels/<stem>.txt`, `predictions.json`, as Ultralytics lays them
//! out) and the
//! validation's table, precision-recall curves and `metrics.json`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use ferrovis_core::metrics::{charts, render, DetectionReport};
use ferrovis_data::decode::{read_rgb, write_rgb};
use ferrovis_data::draw::{class_color, draw_boxes, LabelledBox};
use ferrovis_data::image::RgbImage;
use ferrovis_data::sources::{SkipLog, Source};
use ferrovis_data::video::{run_frames, VideoOptions, VideoOutcome};

use crate::track::{Detection, Tracker, TrackerConfig};
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

/// The detections of one image or video frame.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImagePrediction {
    /// The image file (a video's file, camera or stream, for its frames).
    pub image: PathBuf,
    /// A video's frame number, from 1, among the frames kept (`vid_stride`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame: Option<usize>,
    /// Its width and height.
    pub size: (usize, usize),
    /// What was found, by decreasing confidence.
    pub detections: Vec<PixelDetection>,
}

/// The outputs of `predict` for any detector: every image and video frame of `sources`
/// (files, folders, globs, lists, videos, cameras, streams) through `detect_one`, written as
/// Ultralytics lays them out: `<out>/<name>` (boxes drawn) and `<out>/labels/<stem>.txt` for
/// an image; `<out>/<stem>.avi` (the annotated video, as `video` says) and
/// `<out>/labels/<stem>_<frame>.txt` for a video; then `<out>/predictions.json`. A file that
/// cannot be read is named, skipped, and counted in the error returned after everything else
/// is written; so is a video that stops early, whose earlier frames are kept.
///
/// With `tracker` (`detect track`), the images are a sequence of frames in order, and each
/// video is one: each frame's detections go through the sequence's [`Tracker`], and the
/// confirmed tracks replace them — drawn with their identities, `class x1 y1 x2 y2 confidence
/// id` label lines, `track_id` in the JSON — and the MOT Challenge's format
/// (`frame,id,left,top,width,height,confidence,-1,-1,-1`, frames from 1) lists them in
/// `<out>/mot.txt` (the images) and `<out>/<stem>_mot.txt` (each video).
pub fn write_predictions(
    sources: &[PathBuf],
    out: &Path,
    video: &VideoOptions,
    tracker: Option<&TrackerConfig>,
    mut detect_one: impl FnMut(&Path, &RgbImage) -> Result<ImagePrediction>,
) -> Result<Vec<ImagePrediction>> {
    let sources = ferrovis_data::sources::expand(sources)?;
    std::fs::create_dir_all(out.join("labels"))
        .with_context(|| format!("creating {}", out.display()))?;
    let mut images = Sequence::new(tracker);
    let mut all = Vec::new();
    let mut skipped = SkipLog::default();
    let mut done = 0;
    for source in &sources {
        let Some(file) = source.image() else {
            let outcome = predict_video(source, out, video, tracker, &mut detect_one, &mut all)?;
            done += usize::from(skipped.video(source, outcome));
            continue;
        };
        let t = Instant::now();
        let image = match read_rgb(file) {
            Ok(image) => image,
            Err(e) => {
                skipped.skip(file, e);
                // An unreadable frame is still a frame: tracks age, numbering follows the files.
                images.skip_frame();
                continue;
            }
        };
        let mut p = detect_one(file, &image)?;
        images.track(&mut p, &image);
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        println!("{}: {} ({ms:.1} ms)", file.display(), summary(&p));
        let name = file
            .file_name()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("image.jpg"));
        write_rgb(&out.join(&name), &draw(&image, &p)?)?;
        let labels = out.join("labels").join(name.with_extension("txt"));
        std::fs::write(&labels, label_lines(&p))
            .with_context(|| format!("writing {}", labels.display()))?;
        all.push(p);
        done += 1;
    }
    std::fs::write(
        out.join("predictions.json"),
        serde_json::to_string_pretty(&all)?,
    )?;
    images.write_mot(&out.join("mot.txt"))?;
    println!("results in {}", out.display());
    skipped.finish(done)?;
    Ok(all)
}

/// One video, camera or stream through `detect_one` (and a tracker of its own), frame by frame:
/// the annotated video and each frame's labels are written as they come.
fn predict_video(
    source: &Source,
    out: &Path,
    video: &VideoOptions,
    tracker: Option<&TrackerConfig>,
    detect_one: &mut impl FnMut(&Path, &RgbImage) -> Result<ImagePrediction>,
    all: &mut Vec<ImagePrediction>,
) -> Result<VideoOutcome> {
    let mut sequence = Sequence::new(tracker);
    let name = PathBuf::from(source.name());
    let stem = source.stem();
    let outcome = run_frames(source, out, video, |frame| -> Result<RgbImage> {
        let mut p = detect_one(&name, &frame.image)?;
        p.image = name.clone();
        p.frame = Some(frame.number);
        sequence.track(&mut p, &frame.image);
        let labels = out
            .join("labels")
            .join(format!("{stem}_{}.txt", frame.number));
        std::fs::write(&labels, label_lines(&p))
            .with_context(|| format!("writing {}", labels.display()))?;
        let drawn = draw(&frame.image, &p)?;
        all.push(p);
        Ok(drawn)
    })?;
    sequence.write_mot(&out.join(format!("{stem}_mot.txt")))?;
    Ok(outcome)
}

/// A sequence of frames being tracked (or not): its tracker and its MOT Challenge lines.
struct Sequence {
    tracker: Option<Tracker>,
    mot: String,
}

impl Sequence {
    fn new(cfg: Option<&TrackerConfig>) -> Sequence {
        Sequence {
            tracker: cfg.map(Tracker::new),
            mot: String::new(),
        }
    }

    /// Replaces `p`'s detections with the tracks they update, when tracking.
    fn track(&mut self, p: &mut ImagePrediction, image: &RgbImage) {
        if let Some(tracker) = self.tracker.as_mut() {
            p.detections = track_frame(tracker, &p.detections, image, &mut self.mot);
        }
    }

    /// A frame that could not be read: the tracks age all the same.
    fn skip_frame(&mut self) {
        if let Some(tracker) = self.tracker.as_mut() {
            tracker.skip_frame();
        }
    }

    fn write_mot(&self, path: &Path) -> Result<()> {
        if self.tracker.as_ref().is_some_and(|t| t.frame() > 0) {
            std::fs::write(path, &self.mot)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    }
}

/// The frame with its detections (or tracks, each keeping its colour) drawn.
fn draw(image: &RgbImage, p: &ImagePrediction) -> Result<RgbImage> {
    let boxes: Vec<LabelledBox> = p
        .detections
        .iter()
        .map(|d| LabelledBox {
            xyxy: d.xyxy,
            caption: match d.track_id {
                Some(id) => format!("id:{id} {} {:.2}", d.name, d.confidence),
                None => format!("{} {:.2}", d.name, d.confidence),
            },
            color: class_color(d.track_id.map_or(d.class, |id| id as usize)),
        })
        .collect();
    Ok(draw_boxes(image, &boxes)?)
}

/// `class x1 y1 x2 y2 confidence [id]`, a line per detection.
fn label_lines(p: &ImagePrediction) -> String {
    p.detections
        .iter()
        .map(|d| {
            let id = d.track_id.map(|id| format!(" {id}")).unwrap_or_default();
            format!(
                "{} {:.1} {:.1} {:.1} {:.1} {:.4}{id}\n",
                d.class, d.xyxy[0], d.xyxy[1], d.xyxy[2], d.xyxy[3], d.confidence
            )
        })
        .collect()
}

/// A frame's detections through `tracker`: its confirmed tracks, each with the name of the
/// detection it last matched, also appended to `mot` as MOT Challenge lines.
fn track_frame(
    tracker: &mut Tracker,
    detections: &[PixelDetection],
    image: &RgbImage,
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
    let tracks = tracker.update(&input, image);
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
