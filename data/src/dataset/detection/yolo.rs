//! Ultralytics' layout: a dataset YAML naming image sources per split and the classes, and a
//! `labels/<stem>.txt` beside each `images/` folder with one `class cx cy w h` line per box.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use yaml_rust2::Yaml;

use super::{DetectionData, DetectionItem, YoloBox};
use crate::dataset::classification::files_recursive;
use crate::dataset::report::ScanOptions;
use crate::dataset::yaml_file::read_with_root;
use crate::decode::{is_image_path, verify_image};
use crate::error::{Error, Result};

/// An Ultralytics dataset YAML, resolved: absolute image sources per split and class names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetYaml {
    /// The file it was read from.
    pub file: PathBuf,
    /// The data set root (`path`, relative to the YAML's folder).
    pub root: PathBuf,
    /// Training image sources (folders or `.txt` lists).
    pub train: Vec<PathBuf>,
    /// Validation image sources.
    pub val: Vec<PathBuf>,
    /// Test image sources (optional).
    pub test: Vec<PathBuf>,
    /// Class names by index.
    pub names: Vec<String>,
}

impl DatasetYaml {
    /// Reads and resolves a dataset YAML: `path` (default: the YAML's folder), `train`, `val`,
    /// optional `test` (each a path or a list of paths, relative to `path`: image folders, image
    /// lists, or COCO `instances_*.json` files), `names` as a list or an `index: name` map
    /// (optional when `train` is COCO JSON: its categories), optional `nc` which must agree.
    pub fn read(file: &Path) -> Result<Self> {
        let (doc, root) = read_with_root(file)?;
        let bad =
            |key: &str, reason: String| Error::dataset(file, None, format!("`{key}`: {reason}"));
        let sources = |key: &str, required: bool| -> Result<Vec<PathBuf>> {
            match &doc[key] {
                Yaml::String(p) => Ok(vec![root.join(p)]),
                Yaml::Array(items) => items
                    .iter()
                    .map(|i| match i {
                        Yaml::String(p) => Ok(root.join(p)),
                        other => Err(bad(key, format!("expected a path, found {other:?}"))),
                    })
                    .collect(),
                Yaml::BadValue | Yaml::Null if !required => Ok(Vec::new()),
                Yaml::BadValue => Err(bad(key, "missing (required)".into())),
                other => Err(bad(
                    key,
                    format!("expected a path or list of paths, found {other:?}"),
                )),
            }
        };
        let train = sources("train", true)?;
        let names: Vec<String> = match &doc["names"] {
            Yaml::Array(items) => items.iter().map(yaml_scalar).collect(),
            Yaml::Hash(map) => {
                let mut pairs = Vec::new();
                for (k, v) in map {
                    let Yaml::Integer(i) = k else {
                        return Err(bad(
                            "names",
                            format!("map keys must be class indices, found {k:?}"),
                        ));
                    };
                    pairs.push((*i, yaml_scalar(v)));
                }
                pairs.sort();
                for (expected, (i, _)) in pairs.iter().enumerate() {
                    if *i != expected as i64 {
                        return Err(bad("names", format!("class indices must be 0..n without gaps; index {expected} is missing")));
                    }
                }
                pairs.into_iter().map(|(_, n)| n).collect()
            }
            // COCO splits carry their own category names.
            Yaml::BadValue if !train.is_empty() && train.iter().all(|p| is_json(p)) => {
                super::coco::coco_categories(&train[0])?
            }
            Yaml::BadValue => return Err(bad("names", "missing (required)".into())),
            other => {
                return Err(bad(
                    "names",
                    format!("expected a list or map, found {other:?}"),
                ))
            }
        };
        if let Yaml::Integer(nc) = doc["nc"] {
            if nc as usize != names.len() {
                return Err(bad(
                    "nc",
                    format!("says {nc} classes but `names` has {}", names.len()),
                ));
            }
        }
        Ok(Self {
            file: file.to_path_buf(),
            train,
            val: sources("val", true)?,
            test: sources("test", false)?,
            root,
            names,
        })
    }

    /// Scans one split (`"train"`, `"val"` or `"test"`).
    pub fn scan(&self, split: &str, options: ScanOptions) -> Result<DetectionData> {
        let sources = match split {
            "train" => &self.train,
            "val" => &self.val,
            "test" => &self.test,
            other => {
                return Err(Error::Invalid(format!(
                    "unknown split {other:?} (train, val, test)"
                )))
            }
        };
        if sources.is_empty() {
            return Err(Error::dataset(
                &self.file,
                None,
                format!("no `{split}` split"),
            ));
        }
        if sources.iter().any(|p| is_json(p)) {
            // COCO annotation files; a list may mix them with YOLO image sources.
            let mut data = DetectionData {
                names: self.names.clone(),
                ..Default::default()
            };
            let (json, yolo): (Vec<PathBuf>, Vec<PathBuf>) =
                sources.iter().cloned().partition(|p| is_json(p));
            for file in &json {
                let part = super::coco::scan_coco(file, &self.root, Some(&self.names), options)?;
                data.items.extend(part.items);
                data.report.extend(part.report);
            }
            if !yolo.is_empty() {
                let part = scan_yolo(&yolo, &self.names, options)?;
                data.items.extend(part.items);
                data.report.extend(part.report);
            }
            return Ok(data);
        }
        scan_yolo(sources, &self.names, options)
    }
}

/// A COCO annotation file, by extension.
fn is_json(p: &Path) -> bool {
    p.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
}

fn yaml_scalar(y: &Yaml) -> String {
    match y {
        Yaml::String(s) | Yaml::Real(s) => s.clone(),
        Yaml::Integer(i) => i.to_string(),
        Yaml::Boolean(b) => b.to_string(),
        other => format!("{other:?}"),
    }
}

/// The label file for an image: the last `/images/` in its path becomes `/labels/` and the
/// extension `.txt` (Ultralytics' convention).
pub fn label_path(image: &Path) -> PathBuf {
    let s = image.to_string_lossy();
    let sep = std::path::MAIN_SEPARATOR;
    let (from, to) = (format!("{sep}images{sep}"), format!("{sep}labels{sep}"));
    let swapped = match s.rfind(&from) {
        Some(i) => format!("{}{}{}", &s[..i], to, &s[i + from.len()..]),
        None => s.to_string(),
    };
    PathBuf::from(swapped).with_extension("txt")
}

/// The images of one source: a folder (searched recursively) or a `.txt` list of image paths
/// (relative to the list's folder).
fn source_images(source: &Path) -> Result<Vec<PathBuf>> {
    if source.is_dir() {
        return Ok(files_recursive(source)?
            .into_iter()
            .filter(|p| is_image_path(p))
            .collect());
    }
    if source.extension().is_some_and(|e| e == "txt") && source.is_file() {
        let text = std::fs::read_to_string(source).map_err(|e| Error::io(source, e))?;
        let base = source.parent().unwrap_or(Path::new("."));
        return Ok(text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|l| base.join(l.trim_start_matches("./")))
            .collect());
    }
    Err(Error::dataset(
        source,
        None,
        "image source not found (expected a folder or a .txt list)",
    ))
}

/// A label file's boxes, and its bad lines as `(line number, reason)`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelFile {
    /// The boxes of the good lines.
    pub boxes: Vec<YoloBox>,
    /// The bad lines: 1-based number and what is wrong.
    pub bad_lines: Vec<(usize, String)>,
}

/// Parses one YOLO label file; the caller decides whether an image with bad lines survives.
pub fn parse_label_file(path: &Path, num_classes: usize) -> Result<LabelFile> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut parsed = LabelFile::default();
    for (i, line) in text.lines().enumerate() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        match parse_label_line(&fields, num_classes) {
            Ok(b) => parsed.boxes.push(b),
            Err(reason) => parsed.bad_lines.push((i + 1, reason)),
        }
    }
    Ok(parsed)
}

fn parse_label_line(fields: &[&str], num_classes: usize) -> std::result::Result<YoloBox, String> {
    let polygon = fields.len() >= 7 && fields.len() % 2 == 1;
    if fields.len() != 5 && !polygon {
        return Err(format!(
            "expected 5 fields `class cx cy w h` (or a polygon `class x1 y1 x2 y2 x3 y3 …`), found {}",
            fields.len()
        ));
    }
    let mut values = Vec::with_capacity(fields.len());
    for f in fields {
        let v: f64 = f.parse().map_err(|_| format!("not a number: {f:?}"))?;
        if !v.is_finite() {
            return Err(format!("not a finite number: {f:?}"));
        }
        values.push(v);
    }
    let class = values[0];
    if class < 0.0 || class.fract() != 0.0 {
        return Err(format!(
            "class id must be a non-negative integer, found {}",
            fields[0]
        ));
    }
    let class = class as usize;
    if class >= num_classes {
        return Err(format!(
            "class id {class} is not below the number of classes ({num_classes})"
        ));
    }
    let coords = &values[1..];
    if let Some(v) = coords.iter().find(|v| !(0.0..=1.0).contains(*v)) {
        return Err(format!(
            "coordinate {v} outside [0, 1] (boxes must be normalised to the image size)"
        ));
    }
    let cxcywh = if polygon {
        let xs = coords.iter().step_by(2);
        let ys = coords.iter().skip(1).step_by(2);
        let (x1, x2) = xs.fold((1.0f64, 0.0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        let (y1, y2) = ys.fold((1.0f64, 0.0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        [(x1 + x2) / 2.0, (y1 + y2) / 2.0, x2 - x1, y2 - y1]
    } else {
        [coords[0], coords[1], coords[2], coords[3]]
    };
    if cxcywh[2] <= 0.0 || cxcywh[3] <= 0.0 {
        return Err(format!(
            "box has zero area (w {}, h {})",
            cxcywh[2], cxcywh[3]
        ));
    }
    Ok(YoloBox {
        class,
        cxcywh: cxcywh.map(|v| v as f32),
    })
}

/// Scans YOLO images and labels. An image with no label file is background; an image whose label
/// file has a bad line is skipped whole (every bad line listed), so no image ever trains with a
/// partial or shifted label set; label files with no image are noted. A split where no label file
/// exists at all is an error naming the folder searched.
pub fn scan_yolo(
    sources: &[PathBuf],
    names: &[String],
    options: ScanOptions,
) -> Result<DetectionData> {
    let mut data = DetectionData {
        names: names.to_vec(),
        ..Default::default()
    };
    let mut label_dirs = BTreeSet::new();
    let mut used_labels = HashSet::new();
    let mut found_labels = 0usize;
    for source in sources {
        let images = source_images(source)?;
        for image in images {
            if !image.exists() {
                data.report.problem(
                    options,
                    &image,
                    None,
                    "no such file (listed in the image source)",
                )?;
                continue;
            }
            if let Err(e) = verify_image(&image) {
                data.report.problem(options, &image, None, e.reason())?;
                continue;
            }
            let label = label_path(&image);
            if let Some(dir) = label.parent() {
                label_dirs.insert(dir.to_path_buf());
            }
            let boxes = if label.is_file() {
                found_labels += 1;
                used_labels.insert(label.clone());
                let parsed = match parse_label_file(&label, names.len()) {
                    Ok(p) => p,
                    Err(e) => {
                        data.report.problem(options, &label, None, e.reason())?;
                        continue;
                    }
                };
                if !parsed.bad_lines.is_empty() {
                    for (line, reason) in parsed.bad_lines {
                        data.report.problem(options, &label, Some(line), reason)?;
                    }
                    continue;
                }
                parsed.boxes
            } else {
                Vec::new()
            };
            data.items.push(DetectionItem { path: image, boxes });
        }
    }
    if found_labels == 0 && !data.items.is_empty() {
        let searched: Vec<String> = label_dirs.iter().map(|d| d.display().to_string()).collect();
        return Err(Error::dataset(
            &sources[0],
            None,
            format!(
                "no labels found: looked for <stem>.txt in {} (each image's path with its last \
                 `/images/` replaced by `/labels/`)",
                searched.join(", ")
            ),
        ));
    }
    for dir in &label_dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut orphans: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "txt") && !used_labels.contains(p))
            .collect();
        orphans.sort();
        for orphan in orphans {
            data.report.note(&orphan, "label file has no image");
        }
    }
    Ok(data)
}
