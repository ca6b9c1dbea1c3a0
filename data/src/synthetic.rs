//! The "shapes" data set: a deterministic generator of coloured shapes on textured, noisy
//! backgrounds, written to disk in the standard layouts (ImageFolder, YOLO + dataset YAML,
//! image + mask folders). It is what the demos train on when the user brings no data, and its
//! class subset option lets one pretrain on some shapes and transfer to others.

use std::path::{Path, PathBuf};

use opencv::core::{Mat, Point, Scalar, Vector};
use opencv::imgproc;
use opencv::prelude::*;
use rand::Rng as _;

use crate::decode::{
    mask_to_mat, mat_to_single_channel, rgb_from_mat, rgb_mat, write_mask, write_rgb,
};
use crate::error::{Error, Result};
use crate::image::{Mask, RgbImage};
use crate::rng::{derive, Rng};

/// Every shape the generator knows: the default six, the four the demos transfer to, then six
/// more that widen the classify demo's source task. The order is part of the data: a shape's
/// position here seeds its classification images, so new shapes go at the end.
pub const SHAPES: &[&str] = &[
    "circle",
    "square",
    "triangle",
    "star",
    "hexagon",
    "cross",
    "pentagon",
    "diamond",
    "ellipse",
    "arrow",
    "octagon",
    "rectangle",
    "trapezoid",
    "semicircle",
    "chevron",
    "tee",
];

/// The default classes: the generator's first six shapes.
pub const DEFAULT_SHAPES: &[&str] = SHAPES.split_at(6).0;

/// The shapes the demos transfer to (the next four): none of them is in [`SOURCE_SHAPES`] (so
/// none in [`DEFAULT_SHAPES`]), on which the demos pretrain their own source models.
pub const TARGET_SHAPES: &[&str] = SHAPES.split_at(10).0.split_at(6).1;

/// A wider source task than [`DEFAULT_SHAPES`] alone, still disjoint from [`TARGET_SHAPES`]:
/// twelve classes whose differences (corner counts, elongation, concavities, curved against
/// straight sides) are the ones the targets are told apart by, so that features learnt on them
/// transfer. Six classes teach too little: a ResNet18 pretrained on the default set alone and
/// fine-tuned on 30 images of each target shape reached 0.75 accuracy.
pub const SOURCE_SHAPES: &[&str] = &[
    "circle",
    "square",
    "triangle",
    "star",
    "hexagon",
    "cross",
    "octagon",
    "rectangle",
    "trapezoid",
    "semicircle",
    "chevron",
    "tee",
];

/// What to generate.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShapesConfig {
    /// Seed: the same seed writes the same files, byte for byte.
    pub seed: u64,
    /// Side length of the square images.
    pub image_size: usize,
    /// Training images (per class for classification).
    pub train: usize,
    /// Validation images (per class for classification).
    pub val: usize,
    /// The shapes to use, a subset of [`SHAPES`]; their order here is their class order.
    pub classes: Vec<String>,
    /// Most shapes per detection/segmentation image (at least one).
    pub max_objects: usize,
}

impl Default for ShapesConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            image_size: 128,
            train: 60,
            val: 20,
            classes: DEFAULT_SHAPES.iter().map(|s| s.to_string()).collect(),
            max_objects: 4,
        }
    }
}

impl ShapesConfig {
    fn check(&self) -> Result<()> {
        if self.classes.is_empty() {
            return Err(Error::Invalid(
                "shapes: at least one class is needed".into(),
            ));
        }
        if let Some(bad) = self.classes.iter().find(|c| !SHAPES.contains(&c.as_str())) {
            return Err(Error::Invalid(format!(
                "shapes: unknown class {bad:?} (known: {})",
                SHAPES.join(", ")
            )));
        }
        if self.image_size < 32 {
            return Err(Error::Invalid(
                "shapes: image_size must be at least 32".into(),
            ));
        }
        Ok(())
    }
}

/// One drawn shape: its class (index into the config's classes) and bounding box in pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DrawnShape {
    /// Class index.
    pub class: usize,
    /// `[x1, y1, x2, y2]`, clipped to the image.
    pub xyxy: [f32; 4],
}

/// A generated scene: the image, its segmentation mask (0 = background, shape class + 1) and
/// the shapes' boxes.
#[derive(Debug, Clone, PartialEq)]
pub struct Scene {
    /// The image.
    pub image: RgbImage,
    /// Per-pixel class: 0 background, `class + 1` for a shape (later shapes cover earlier ones).
    pub mask: Mask,
    /// The shapes, in drawing order.
    pub shapes: Vec<DrawnShape>,
}

/// A textured background: a colour gradient, soft blobs and per-pixel noise.
fn background(size: usize, rng: &mut Rng) -> RgbImage {
    let a: [f32; 3] = [0; 3].map(|_| rng.gen_range(20.0..235.0));
    let b: [f32; 3] = [0; 3].map(|_| rng.gen_range(20.0..235.0));
    let angle: f32 = rng.gen_range(0.0..std::f32::consts::TAU);
    let (dx, dy) = (angle.cos(), angle.sin());
    let blobs: Vec<(f32, f32, f32, f32)> = (0..4)
        .map(|_| {
            (
                rng.gen_range(0.0..size as f32),
                rng.gen_range(0.0..size as f32),
                rng.gen_range(0.1..0.4) * size as f32,
                rng.gen_range(-40.0..40.0),
            )
        })
        .collect();
    let mut img = RgbImage::filled(size, size, [0, 0, 0]);
    let n = size as f32;
    for y in 0..size {
        for x in 0..size {
            let t = ((x as f32 - n / 2.0) * dx + (y as f32 - n / 2.0) * dy) / n + 0.5;
            let mut shade: f32 = rng.gen_range(-18.0..18.0);
            for &(bx, by, r, amp) in &blobs {
                let d2 = ((x as f32 - bx).powi(2) + (y as f32 - by).powi(2)) / (r * r);
                shade += amp * (-d2).exp();
            }
            let px =
                [0, 1, 2].map(|c| (a[c] * (1.0 - t) + b[c] * t + shade).clamp(0.0, 255.0) as u8);
            img.set_pixel(x, y, px);
        }
    }
    img
}

/// The outline of a shape as polygon vertices (`None` for the circle, drawn natively).
fn outline(shape: &str, cx: f32, cy: f32, r: f32, turn: f32) -> Option<Vec<(f32, f32)>> {
    let regular = |n: usize, offset: f32| -> Vec<(f32, f32)> {
        (0..n)
            .map(|k| {
                let a = turn + offset + k as f32 * std::f32::consts::TAU / n as f32;
                (cx + r * a.cos(), cy + r * a.sin())
            })
            .collect()
    };
    let rotate = |pts: &[(f32, f32)]| -> Vec<(f32, f32)> {
        let (s, c) = turn.sin_cos();
        pts.iter()
            .map(|&(x, y)| (cx + x * c - y * s, cy + x * s + y * c))
            .collect()
    };
    match shape {
        "circle" => None,
        "square" => Some(regular(4, std::f32::consts::FRAC_PI_4)),
        "triangle" => Some(regular(3, -std::f32::consts::FRAC_PI_2)),
        "hexagon" => Some(regular(6, 0.0)),
        "pentagon" => Some(regular(5, -std::f32::consts::FRAC_PI_2)),
        "octagon" => Some(regular(8, std::f32::consts::PI / 8.0)),
        // Twice as long as it is wide: elongation without the ellipse's curve.
        "rectangle" => Some(rotate(&[
            (-r, -0.5 * r),
            (r, -0.5 * r),
            (r, 0.5 * r),
            (-r, 0.5 * r),
        ])),
        "trapezoid" => Some(rotate(&[
            (-r, 0.6 * r),
            (r, 0.6 * r),
            (0.45 * r, -0.6 * r),
            (-0.45 * r, -0.6 * r),
        ])),
        // A 24-gon arc closed by its diameter, centred on its box.
        "semicircle" => Some(rotate(
            &(0..=24)
                .map(|k| {
                    let a = k as f32 * std::f32::consts::PI / 24.0;
                    (r * a.cos(), 0.5 * r - r * a.sin())
                })
                .collect::<Vec<_>>(),
        )),
        // An arrow's head without its shaft: a thick V.
        "chevron" => Some(rotate(&[
            (-0.6 * r, -r),
            (-0.1 * r, -r),
            (0.7 * r, 0.0),
            (-0.1 * r, r),
            (-0.6 * r, r),
            (0.2 * r, 0.0),
        ])),
        "tee" => Some(rotate(&[
            (-r, -r),
            (r, -r),
            (r, -0.45 * r),
            (0.25 * r, -0.45 * r),
            (0.25 * r, r),
            (-0.25 * r, r),
            (-0.25 * r, -0.45 * r),
            (-r, -0.45 * r),
        ])),
        // A rhombus half as wide as it is tall, so it is not a turned square.
        "diamond" => Some(rotate(&[
            (0.0, -r),
            (0.5 * r, 0.0),
            (0.0, r),
            (-0.5 * r, 0.0),
        ])),
        // Drawn as a 48-gon: OpenCV's own ellipse would need its own box and mask code.
        "ellipse" => Some(rotate(
            &(0..48)
                .map(|k| {
                    let a = k as f32 * std::f32::consts::TAU / 48.0;
                    (r * a.cos(), 0.55 * r * a.sin())
                })
                .collect::<Vec<_>>(),
        )),
        "arrow" => Some(rotate(&[
            (r, 0.0),
            (0.1 * r, -0.75 * r),
            (0.1 * r, -0.3 * r),
            (-r, -0.3 * r),
            (-r, 0.3 * r),
            (0.1 * r, 0.3 * r),
            (0.1 * r, 0.75 * r),
        ])),
        "star" => Some(
            (0..10)
                .map(|k| {
                    let a =
                        turn - std::f32::consts::FRAC_PI_2 + k as f32 * std::f32::consts::PI / 5.0;
                    let rr = if k % 2 == 0 { r } else { 0.45 * r };
                    (cx + rr * a.cos(), cy + rr * a.sin())
                })
                .collect(),
        ),
        _ => {
            let w = 0.33 * r;
            let arms = [
                (-w, -r),
                (w, -r),
                (w, -w),
                (r, -w),
                (r, w),
                (w, w),
                (w, r),
                (-w, r),
                (-w, w),
                (-r, w),
                (-r, -w),
                (-w, -w),
            ];
            Some(rotate(&arms))
        }
    }
}

/// A colour far enough from the background's mean to stay visible.
fn shape_colour(bg: &RgbImage, rng: &mut Rng) -> [u8; 3] {
    let n = (bg.width * bg.height) as f32;
    let mean: [f32; 3] = [0, 1, 2].map(|c| {
        bg.data
            .iter()
            .skip(c)
            .step_by(3)
            .map(|&v| v as f32)
            .sum::<f32>()
            / n
    });
    loop {
        let c: [u8; 3] = [0; 3].map(|_| rng.gen_range(0..=255u8));
        let d: f32 = (0..3)
            .map(|i| (c[i] as f32 - mean[i]).powi(2))
            .sum::<f32>()
            .sqrt();
        if d > 110.0 {
            return c;
        }
    }
}

fn draw(
    image: &mut Mat,
    mask: &mut Mat,
    shape: &str,
    (cx, cy, r, turn): (f32, f32, f32, f32),
    colour: [u8; 3],
    label: u8,
) -> Result<[f32; 4]> {
    let fill = Scalar::new(colour[0] as f64, colour[1] as f64, colour[2] as f64, 0.0);
    let label = Scalar::all(label as f64);
    let size = image.cols() as f32;
    let clip = |b: [f32; 4]| b.map(|v| v.clamp(0.0, size));
    match outline(shape, cx, cy, r, turn) {
        None => {
            let centre = Point::new(cx.round() as i32, cy.round() as i32);
            imgproc::circle(
                image,
                centre,
                r.round() as i32,
                fill,
                -1,
                imgproc::LINE_AA,
                0,
            )?;
            imgproc::circle(
                mask,
                centre,
                r.round() as i32,
                label,
                -1,
                imgproc::LINE_8,
                0,
            )?;
            Ok(clip([cx - r, cy - r, cx + r, cy + r]))
        }
        Some(pts) => {
            let poly: Vector<Point> = pts
                .iter()
                .map(|&(x, y)| Point::new(x.round() as i32, y.round() as i32))
                .collect();
            let polys: Vector<Vector<Point>> = std::iter::once(poly).collect();
            imgproc::fill_poly(image, &polys, fill, imgproc::LINE_AA, 0, Point::default())?;
            imgproc::fill_poly(mask, &polys, label, imgproc::LINE_8, 0, Point::default())?;
            let xs = pts.iter().map(|p| p.0);
            let ys = pts.iter().map(|p| p.1);
            Ok(clip([
                xs.clone().fold(f32::MAX, f32::min),
                ys.clone().fold(f32::MAX, f32::min),
                xs.fold(f32::MIN, f32::max),
                ys.fold(f32::MIN, f32::max),
            ]))
        }
    }
}

fn iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let area = |v: [f32; 4]| (v[2] - v[0]) * (v[3] - v[1]);
    inter / (area(a) + area(b) - inter).max(1e-6)
}

/// Draws one scene. `classes` are the config's class indices to draw, one shape each, as large
/// single objects when there is one and smaller non-overlapping ones otherwise.
pub fn scene(config: &ShapesConfig, classes: &[usize], rng: &mut Rng) -> Result<Scene> {
    let size = config.image_size;
    let bg = background(size, rng);
    let mut image = rgb_mat(&bg)?;
    let mut mask = mask_to_mat(&Mask::filled(size, size, 0))?;
    let n = size as f32;
    let mut shapes: Vec<DrawnShape> = Vec::new();
    for &class in classes {
        let single = classes.len() == 1;
        let (lo, hi) = if single { (0.22, 0.4) } else { (0.08, 0.2) };
        // A few tries to avoid covering earlier shapes; the last try is kept regardless.
        let mut params = (0.0, 0.0, 0.0, 0.0);
        for attempt in 0..20 {
            let r = rng.gen_range(lo..hi) * n;
            let cx = rng.gen_range(r * 0.8..n - r * 0.8);
            let cy = rng.gen_range(r * 0.8..n - r * 0.8);
            params = (cx, cy, r, rng.gen_range(0.0..std::f32::consts::TAU));
            let b = [cx - r, cy - r, cx + r, cy + r];
            if attempt == 19 || shapes.iter().all(|s| iou(s.xyxy, b) < 0.05) {
                break;
            }
        }
        let colour = shape_colour(&bg, rng);
        let xyxy = draw(
            &mut image,
            &mut mask,
            &config.classes[class],
            params,
            colour,
            class as u8 + 1,
        )?;
        shapes.push(DrawnShape { class, xyxy });
    }
    Ok(Scene {
        image: rgb_from_mat(&image)?,
        mask: mat_to_single_channel(&mask)?,
        shapes,
    })
}

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))
}

fn write_text(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

const SPLITS: [(&str, u64); 2] = [("train", 0), ("val", 1)];

fn split_count(config: &ShapesConfig, split: &str) -> usize {
    if split == "train" {
        config.train
    } else {
        config.val
    }
}

/// Writes ImageFolder trees `dir/train/<class>/NNNN.png` and `dir/val/<class>/NNNN.png`, one
/// large shape per image. Returns `dir`.
pub fn write_classification(dir: &Path, config: &ShapesConfig) -> Result<PathBuf> {
    config.check()?;
    for (split, tag) in SPLITS {
        for (class, name) in config.classes.iter().enumerate() {
            let folder = dir.join(split).join(name);
            create_dir(&folder)?;
            for i in 0..split_count(config, split) {
                let shape_id = SHAPES.iter().position(|s| s == name).unwrap_or(class) as u64;
                let mut rng = derive(config.seed, &[0, tag, shape_id, i as u64]);
                let s = scene(config, &[class], &mut rng)?;
                write_rgb(&folder.join(format!("{i:04}.png")), &s.image)?;
            }
        }
    }
    Ok(dir.to_path_buf())
}

fn object_classes(config: &ShapesConfig, rng: &mut Rng) -> Vec<usize> {
    let count = rng.gen_range(1..=config.max_objects.max(1));
    (0..count)
        .map(|_| rng.gen_range(0..config.classes.len()))
        .collect()
}

/// Writes a YOLO data set: `dir/images/{train,val}/NNNN.png`, `dir/labels/{train,val}/NNNN.txt`
/// and `dir/shapes.yaml`. Returns the YAML's path.
pub fn write_detection(dir: &Path, config: &ShapesConfig) -> Result<PathBuf> {
    config.check()?;
    for (split, tag) in SPLITS {
        let (images, labels) = (
            dir.join("images").join(split),
            dir.join("labels").join(split),
        );
        create_dir(&images)?;
        create_dir(&labels)?;
        for i in 0..split_count(config, split) {
            let mut rng = derive(config.seed, &[1, tag, i as u64]);
            let classes = object_classes(config, &mut rng);
            let s = scene(config, &classes, &mut rng)?;
            write_rgb(&images.join(format!("{i:04}.png")), &s.image)?;
            let n = config.image_size as f32;
            let text: String = s
                .shapes
                .iter()
                .map(|d| {
                    let [x1, y1, x2, y2] = d.xyxy;
                    format!(
                        "{} {:.6} {:.6} {:.6} {:.6}\n",
                        d.class,
                        (x1 + x2) / 2.0 / n,
                        (y1 + y2) / 2.0 / n,
                        (x2 - x1) / n,
                        (y2 - y1) / n
                    )
                })
                .collect();
            write_text(&labels.join(format!("{i:04}.txt")), &text)?;
        }
    }
    let names: String = config
        .classes
        .iter()
        .enumerate()
        .map(|(i, c)| format!("  {i}: {c}\n"))
        .collect();
    let yaml = dir.join("shapes.yaml");
    write_text(
        &yaml,
        &format!(
            "# Synthetic shapes (ferrovis), seed {}\n\
             # No `path:`: Ultralytics and ferrovis both take the folder of this file as the root\n\
             # (Ultralytics resolves `path: .` against the working directory instead).\n\
             train: images/train\nval: images/val\nnames:\n{names}",
            config.seed
        ),
    )?;
    Ok(yaml)
}

/// Writes a segmentation data set: `dir/{train,val}/images/NNNN.png` and
/// `dir/{train,val}/masks/NNNN.png` (0 = background, shape class + 1), and `dir/classes.txt`
/// with one class name per line. Returns `dir`.
pub fn write_segmentation(dir: &Path, config: &ShapesConfig) -> Result<PathBuf> {
    config.check()?;
    for (split, tag) in SPLITS {
        let (images, masks) = (
            dir.join(split).join("images"),
            dir.join(split).join("masks"),
        );
        create_dir(&images)?;
        create_dir(&masks)?;
        for i in 0..split_count(config, split) {
            let mut rng = derive(config.seed, &[2, tag, i as u64]);
            let classes = object_classes(config, &mut rng);
            let s = scene(config, &classes, &mut rng)?;
            write_rgb(&images.join(format!("{i:04}.png")), &s.image)?;
            write_mask(&masks.join(format!("{i:04}.png")), &s.mask)?;
        }
    }
    let names: String = std::iter::once("background")
        .chain(config.classes.iter().map(String::as_str))
        .map(|c| format!("{c}\n"))
        .collect();
    write_text(&dir.join("classes.txt"), &names)?;
    Ok(dir.to_path_buf())
}

/// A layout [`write_once`] writes.
pub type Writer = fn(&Path, &ShapesConfig) -> Result<PathBuf>;

/// Writes a data set with `write` ([`write_classification`], [`write_detection`],
/// [`write_segmentation`]) into `dir` unless it already holds the one `config` describes:
/// `dir/shapes.json` records the config of a completed write. Returns what `write` returns (for
/// a reused set, `dir`, or `dir/shapes.yaml` when that exists, as [`write_detection`] returns).
pub fn write_once(dir: &Path, config: &ShapesConfig, write: Writer) -> Result<PathBuf> {
    let stamp = dir.join("shapes.json");
    let want = serde_json::to_string(config).map_err(|e| Error::Invalid(format!("shapes: {e}")))?;
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(want.as_str()) {
        let yaml = dir.join("shapes.yaml");
        return Ok(if yaml.is_file() {
            yaml
        } else {
            dir.to_path_buf()
        });
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let written = write(dir, config)?;
    write_text(&stamp, &want)?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shoelace area of a polygon.
    fn area(pts: &[(f32, f32)]) -> f32 {
        let n = pts.len();
        (0..n)
            .map(|i| {
                let (a, b) = (pts[i], pts[(i + 1) % n]);
                a.0 * b.1 - b.0 * a.1
            })
            .sum::<f32>()
            .abs()
            / 2.0
    }

    #[test]
    fn the_later_shapes_have_their_hand_computed_areas() {
        let r = 10.0;
        // (shape, area / r²): a regular pentagon 5/2·sin 72°; a rhombus with diagonals 2r and r;
        // a 48-gon inscribed in the r × 0.55r ellipse, 24·sin(2π/48)·0.55; the arrow's shaft
        // (1.1r × 0.6r) and head (base 1.5r, height 0.9r).
        let expected = [
            ("pentagon", 2.5 * 72f32.to_radians().sin()),
            ("diamond", 1.0),
            (
                "ellipse",
                24.0 * (std::f32::consts::TAU / 48.0).sin() * 0.55,
            ),
            ("arrow", 1.1 * 0.6 + 1.5 * 0.9 / 2.0),
            // The source-only shapes: a regular octagon 4·sin 45°; a 2r × r rectangle; a
            // trapezoid with parallel sides 2r and 0.9r, 1.2r apart; 24 triangles of the
            // semicircle's fan, 12·sin(π/24); the chevron's two parallelograms 0.5r wide and r
            // high; the tee's bar (2r × 0.55r) and stem (0.5r × 1.45r).
            ("octagon", 4.0 * 45f32.to_radians().sin()),
            ("rectangle", 2.0),
            ("trapezoid", (2.0 + 0.9) / 2.0 * 1.2),
            ("semicircle", 12.0 * (std::f32::consts::PI / 24.0).sin()),
            ("chevron", 1.0),
            ("tee", 2.0 * 0.55 + 0.5 * 1.45),
        ];
        for (shape, want) in expected {
            for turn in [0.0, 1.0] {
                let pts = outline(shape, 50.0, 40.0, r, turn).unwrap();
                let got = area(&pts) / (r * r);
                assert!(
                    (got - want).abs() < 1e-3,
                    "{shape} at {turn}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn write_once_skips_a_set_already_written_and_rewrites_another() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("shapes");
        let config = ShapesConfig {
            image_size: 32,
            train: 1,
            val: 1,
            classes: vec!["circle".into()],
            ..Default::default()
        };
        write_once(&root, &config, write_classification).unwrap();
        let marker = root.join("train/circle/extra.txt");
        std::fs::write(&marker, "kept while the config is the same").unwrap();
        write_once(&root, &config, write_classification).unwrap();
        assert!(marker.is_file());
        let other = ShapesConfig { train: 2, ..config };
        write_once(&root, &other, write_classification).unwrap();
        assert!(!marker.is_file());
        assert_eq!(
            std::fs::read_dir(root.join("train/circle"))
                .unwrap()
                .count(),
            2
        );
    }

    #[test]
    fn the_default_set_is_the_first_six_and_new_shapes_are_accepted() {
        assert_eq!(ShapesConfig::default().classes, DEFAULT_SHAPES);
        assert_eq!(&SHAPES[..6], DEFAULT_SHAPES);
        // The demos' wider source set and their targets split the shapes, and the wider set
        // holds the default one.
        assert!(DEFAULT_SHAPES.iter().all(|s| SOURCE_SHAPES.contains(s)));
        assert_eq!(SOURCE_SHAPES.len(), 12);
        assert_eq!(TARGET_SHAPES, ["pentagon", "diamond", "ellipse", "arrow"]);
        let mut all: Vec<&str> = [SOURCE_SHAPES, TARGET_SHAPES].concat();
        all.sort_unstable();
        let mut known = SHAPES.to_vec();
        known.sort_unstable();
        assert_eq!(all, known);
        let cfg = ShapesConfig {
            classes: vec!["arrow".into(), "ellipse".into()],
            ..Default::default()
        };
        assert!(cfg.check().is_ok());
        let bad = ShapesConfig {
            classes: vec!["heart".into()],
            ..Default::default()
        };
        assert!(bad.check().unwrap_err().to_string().contains("heart"));
    }
}
