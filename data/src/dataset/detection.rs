//! Detection data sets: Ultralytics' dataset YAML with YOLO txt labels, and Pascal VOC XML.
//! Both give a [`DetectionData`]: images with normalised `(class, cx, cy, w, h)` boxes.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand::Rng as _;
use tch::Tensor;
use yaml_rust2::Yaml;

use super::classification::files_recursive;
use super::report::{ScanOptions, ScanReport};
use super::yaml_file::read_with_root;
use crate::cache::Cache;
use crate::decode::{is_image_path, read_rgb, verify_image};
use crate::error::{Error, Result};
use crate::loader::Dataset;
use crate::rng::Rng;
use crate::tensor::to_normalized_chw;
use crate::transform::color::HsvGain;
use crate::transform::detect::{
    hflip_sample, letterbox, mosaic, resize_long_side, vflip_sample, BoxLabel, DetectionSample,
    Letterbox, RandomAffine,
};

/// A box normalised to the image size: centre and size in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct YoloBox {
    /// Class index into the data set's names.
    pub class: usize,
    /// `[cx, cy, w, h]`, each in [0, 1].
    pub cxcywh: [f32; 4],
}

/// One image and its boxes (none: a background image).
#[derive(Debug, Clone, PartialEq)]
pub struct DetectionItem {
    /// The image file.
    pub path: PathBuf,
    /// Its boxes.
    pub boxes: Vec<YoloBox>,
}

/// A scanned detection split.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DetectionData {
    /// Class names.
    pub names: Vec<String>,
    /// Usable images in a stable (sorted) order.
    pub items: Vec<DetectionItem>,
    /// What was skipped and why; label files without an image are notes here.
    pub report: ScanReport,
}

impl DetectionData {
    /// Total number of boxes.
    pub fn num_boxes(&self) -> usize {
        self.items.iter().map(|i| i.boxes.len()).sum()
    }

    /// Images with no boxes.
    pub fn num_background(&self) -> usize {
        self.items.iter().filter(|i| i.boxes.is_empty()).count()
    }

    /// Boxes per class.
    pub fn instances_per_class(&self) -> Vec<usize> {
        let mut counts = vec![0; self.names.len()];
        for b in self.items.iter().flat_map(|i| &i.boxes) {
            counts[b.class] += 1;
        }
        counts
    }
}

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
    /// optional `test` (each a path or a list of paths, relative to `path`), `names` as a list or
    /// an `index: name` map, optional `nc` which must agree.
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
            train: sources("train", true)?,
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
        scan_yolo(sources, &self.names, options)
    }
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
                data.report.problem(options, &image, None, reason_of(e))?;
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
                        data.report.problem(options, &label, None, reason_of(e))?;
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

fn reason_of(e: Error) -> String {
    match e {
        Error::Image { reason, .. } => reason,
        other => other.to_string(),
    }
}

/// Scans a Pascal VOC folder: `Annotations/*.xml` (or the ids in `ImageSets/Main/<set>.txt`)
/// with images in `JPEGImages/`. Class names are `names` when given (objects of other classes are
/// problems), else the sorted distinct names found. `difficult` objects are kept.
pub fn scan_voc(
    root: &Path,
    image_set: Option<&str>,
    names: Option<&[String]>,
    options: ScanOptions,
) -> Result<DetectionData> {
    let annotations = root.join("Annotations");
    let ids: Vec<String> = match image_set {
        Some(set) => {
            let list = root
                .join("ImageSets")
                .join("Main")
                .join(format!("{set}.txt"));
            std::fs::read_to_string(&list)
                .map_err(|e| Error::io(&list, e))?
                .lines()
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty())
                .collect()
        }
        None => {
            let entries =
                std::fs::read_dir(&annotations).map_err(|e| Error::io(&annotations, e))?;
            let mut ids: Vec<String> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "xml"))
                .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
                .collect();
            ids.sort();
            ids
        }
    };
    let mut report = ScanReport::default();
    let mut parsed = Vec::new();
    for id in ids {
        let xml = annotations.join(format!("{id}.xml"));
        match parse_voc_xml(&xml) {
            Ok(ann) => parsed.push((xml, ann)),
            Err(e) => report.problem(options, &xml, None, reason_of(e))?,
        }
    }
    let names: Vec<String> = match names {
        Some(n) => n.to_vec(),
        None => parsed
            .iter()
            .flat_map(|(_, a)| a.objects.iter().map(|o| o.0.clone()))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
    };
    let mut data = DetectionData {
        names,
        items: Vec::new(),
        report,
    };
    'files: for (xml, ann) in parsed {
        let image = root.join("JPEGImages").join(&ann.filename);
        let size = match verify_image(&image) {
            Ok(s) => s,
            Err(e) => {
                data.report.problem(
                    options,
                    &xml,
                    None,
                    format!("image {}: {}", image.display(), reason_of(e)),
                )?;
                continue;
            }
        };
        let (w, h) = ann.size.unwrap_or(size);
        let mut boxes = Vec::new();
        for (name, [x1, y1, x2, y2]) in &ann.objects {
            let Some(class) = data.names.iter().position(|n| n == name) else {
                data.report
                    .problem(options, &xml, None, format!("unknown class {name:?}"))?;
                continue 'files;
            };
            let (x1, x2) = (x1.max(0.0).min(w as f32), x2.max(0.0).min(w as f32));
            let (y1, y2) = (y1.max(0.0).min(h as f32), y2.max(0.0).min(h as f32));
            if x2 <= x1 || y2 <= y1 {
                data.report.problem(
                    options,
                    &xml,
                    None,
                    format!("object {name:?} has zero area"),
                )?;
                continue 'files;
            }
            boxes.push(YoloBox {
                class,
                cxcywh: [
                    (x1 + x2) / 2.0 / w as f32,
                    (y1 + y2) / 2.0 / h as f32,
                    (x2 - x1) / w as f32,
                    (y2 - y1) / h as f32,
                ],
            });
        }
        data.items.push(DetectionItem { path: image, boxes });
    }
    Ok(data)
}

struct VocAnnotation {
    filename: String,
    size: Option<(usize, usize)>,
    objects: Vec<(String, [f32; 4])>,
}

fn parse_voc_xml(path: &Path) -> Result<VocAnnotation> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let doc = roxmltree::Document::parse(&text).map_err(|e| {
        Error::dataset(
            path,
            Some(e.pos().row as usize),
            format!("invalid XML: {e}"),
        )
    })?;
    let root = doc.root_element();
    let child_text = |node: roxmltree::Node, tag: &str| -> Option<String> {
        node.children()
            .find(|c| c.has_tag_name(tag))
            .and_then(|c| c.text())
            .map(|t| t.trim().to_string())
    };
    let line_of = |node: roxmltree::Node| Some(doc.text_pos_at(node.range().start).row as usize);
    let filename = child_text(root, "filename")
        .ok_or_else(|| Error::dataset(path, None, "missing <filename>"))?;
    let size = root
        .children()
        .find(|c| c.has_tag_name("size"))
        .and_then(|s| {
            let w = child_text(s, "width")?.parse().ok()?;
            let h = child_text(s, "height")?.parse().ok()?;
            (w > 0 && h > 0).then_some((w, h))
        });
    let mut objects = Vec::new();
    for obj in root.children().filter(|c| c.has_tag_name("object")) {
        let name = child_text(obj, "name")
            .ok_or_else(|| Error::dataset(path, line_of(obj), "<object> without <name>"))?;
        let bndbox = obj
            .children()
            .find(|c| c.has_tag_name("bndbox"))
            .ok_or_else(|| Error::dataset(path, line_of(obj), "<object> without <bndbox>"))?;
        let mut coords = [0f32; 4];
        for (slot, tag) in coords.iter_mut().zip(["xmin", "ymin", "xmax", "ymax"]) {
            let text = child_text(bndbox, tag).ok_or_else(|| {
                Error::dataset(path, line_of(bndbox), format!("<bndbox> without <{tag}>"))
            })?;
            *slot = text.parse().map_err(|_| {
                Error::dataset(
                    path,
                    line_of(bndbox),
                    format!("<{tag}> is not a number: {text:?}"),
                )
            })?;
        }
        objects.push((name, coords));
    }
    Ok(VocAnnotation {
        filename,
        size,
        objects,
    })
}

/// YOLO training augmentation, with Ultralytics' default strengths.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectAugment {
    /// Probability of a 4-image mosaic.
    pub mosaic: f64,
    /// Mosaic is switched off from this epoch on (Ultralytics' `close_mosaic`: the last 10).
    pub mosaic_off_from_epoch: Option<usize>,
    /// Random affine after mosaic/letterbox.
    pub affine: RandomAffine,
    /// HSV gains.
    pub hsv: HsvGain,
    /// Probability of a left-right flip.
    pub fliplr: f64,
    /// Probability of an up-down flip.
    pub flipud: f64,
}

impl Default for DetectAugment {
    fn default() -> Self {
        Self {
            mosaic: 1.0,
            mosaic_off_from_epoch: None,
            affine: RandomAffine::default(),
            hsv: HsvGain::default(),
            fliplr: 0.5,
            flipud: 0.0,
        }
    }
}

/// One loaded detection sample.
#[derive(Debug)]
pub struct DetectionTarget {
    /// `(3, size, size)` float image in [0, 1] (YOLO models take unnormalised RGB).
    pub image: Tensor,
    /// Boxes in the output image's pixels.
    pub boxes: Vec<BoxLabel>,
    /// How the output maps back to the original image (evaluation only; identity-like under
    /// mosaic/affine, which have no inverse worth keeping).
    pub letterbox: Letterbox,
    /// The original image's width and height.
    pub original_size: (usize, usize),
}

/// A detection batch.
#[derive(Debug)]
pub struct DetectionBatch {
    /// `(N, 3, size, size)` images in [0, 1].
    pub images: Tensor,
    /// `(M, 6)` rows `(batch index, class, cx, cy, w, h)`, box coordinates normalised to the image
    /// size: Ultralytics' target layout.
    pub targets: Tensor,
    /// Per image: boxes in pixels, letterbox and original size.
    pub info: Vec<DetectionTarget>,
    /// The sample index of each image.
    pub indices: Vec<usize>,
}

/// Decodes, augments and batches a [`DetectionData`] for the [`Loader`](crate::loader::Loader).
pub struct DetectionDataset {
    items: Vec<DetectionItem>,
    size: usize,
    augment: Option<DetectAugment>,
    cache: Option<Cache<Resized>>,
}

impl DetectionDataset {
    /// Square `size` inputs; with `augment` None, images are only letterboxed (evaluation).
    pub fn new(items: Vec<DetectionItem>, size: usize, augment: Option<DetectAugment>) -> Self {
        Self {
            items,
            size,
            augment,
            cache: None,
        }
    }

    /// Keeps decoded images, resized so the longer side is `size`, in memory.
    pub fn with_cache(mut self) -> Self {
        self.cache = Some(Cache::new(self.items.len()));
        self
    }

    /// The items.
    pub fn items(&self) -> &[DetectionItem] {
        &self.items
    }

    /// The decoded image resized so its longer side is `size`, with its boxes in pixels.
    fn load(&self, index: usize) -> Result<Arc<Resized>> {
        let decode = || -> Result<Resized> {
            let item = &self.items[index];
            let image = read_rgb(&item.path)?;
            let original = (image.width, image.height);
            let (w, h) = (image.width as f32, image.height as f32);
            let boxes = item
                .boxes
                .iter()
                .map(|b| {
                    let [cx, cy, bw, bh] = b.cxcywh;
                    let xyxy = [
                        (cx - bw / 2.0) * w,
                        (cy - bh / 2.0) * h,
                        (cx + bw / 2.0) * w,
                        (cy + bh / 2.0) * h,
                    ];
                    BoxLabel {
                        class: b.class,
                        xyxy,
                    }
                })
                .collect();
            let sample = resize_long_side(&DetectionSample { image, boxes }, self.size)?;
            Ok(Resized { sample, original })
        };
        match &self.cache {
            Some(cache) => cache.get_or_load(index, decode),
            None => decode().map(Arc::new),
        }
    }
}

/// An image resized for the network, and the size it had on disk (after EXIF orientation).
#[derive(Debug)]
struct Resized {
    sample: DetectionSample,
    original: (usize, usize),
}

impl Dataset for DetectionDataset {
    type Sample = DetectionTarget;
    type Batch = DetectionBatch;

    fn len(&self) -> usize {
        self.items.len()
    }

    fn get(&self, index: usize, epoch: usize, rng: &mut Rng) -> Result<Self::Sample> {
        let loaded = self.load(index)?;
        let (resized, original) = (&loaded.sample, loaded.original);
        let s = self.size;
        let (mut sample, letterbox_info) = match &self.augment {
            None => {
                let (out, lb) = letterbox(resized, s, false)?;
                let r = resized.image.width as f32 / original.0 as f32;
                (
                    out,
                    Letterbox {
                        scale: lb.scale * r,
                        ..lb
                    },
                )
            }
            Some(aug) => {
                let mosaic_on = aug.mosaic_off_from_epoch.is_none_or(|off| epoch < off);
                let mut out = if mosaic_on && aug.mosaic > 0.0 && rng.gen_bool(aug.mosaic.min(1.0))
                {
                    let others: Vec<Arc<Resized>> = (0..3)
                        .map(|_| self.load(rng.gen_range(0..self.items.len())))
                        .collect::<Result<_>>()?;
                    let m = mosaic(
                        [
                            resized,
                            &others[0].sample,
                            &others[1].sample,
                            &others[2].sample,
                        ],
                        s,
                        rng,
                    );
                    aug.affine.apply(&m, s / 2, rng)?
                } else {
                    let (boxed, _) = letterbox(resized, s, true)?;
                    aug.affine.apply(&boxed, 0, rng)?
                };
                aug.hsv.apply(&mut out.image, rng)?;
                if aug.flipud > 0.0 && rng.gen_bool(aug.flipud.min(1.0)) {
                    vflip_sample(&mut out);
                }
                if aug.fliplr > 0.0 && rng.gen_bool(aug.fliplr.min(1.0)) {
                    hflip_sample(&mut out);
                }
                let identity = Letterbox {
                    scale: 1.0,
                    pad_left: 0.0,
                    pad_top: 0.0,
                };
                (out, identity)
            }
        };
        sample.boxes.retain(|b| b.width() > 0.0 && b.height() > 0.0);
        let image = to_normalized_chw(&sample.image, [0.0; 3], [1.0; 3]);
        Ok(DetectionTarget {
            image,
            boxes: sample.boxes,
            letterbox: letterbox_info,
            original_size: original,
        })
    }

    fn collate(&self, samples: Vec<(usize, Self::Sample)>) -> Result<Self::Batch> {
        let s = self.size as f32;
        let mut rows = Vec::new();
        let mut images = Vec::with_capacity(samples.len());
        let mut info = Vec::with_capacity(samples.len());
        let mut indices = Vec::with_capacity(samples.len());
        for (b, (index, mut target)) in samples.into_iter().enumerate() {
            for bx in &target.boxes {
                let [x1, y1, x2, y2] = bx.xyxy;
                rows.extend_from_slice(&[
                    b as f32,
                    bx.class as f32,
                    (x1 + x2) / 2.0 / s,
                    (y1 + y2) / 2.0 / s,
                    (x2 - x1) / s,
                    (y2 - y1) / s,
                ]);
            }
            images.push(std::mem::replace(&mut target.image, Tensor::new()));
            info.push(target);
            indices.push(index);
        }
        Ok(DetectionBatch {
            images: Tensor::f_stack(&images, 0)?,
            targets: Tensor::from_slice(&rows).view([-1, 6]),
            info,
            indices,
        })
    }

    fn source(&self, index: usize) -> Option<PathBuf> {
        self.items.get(index).map(|i| i.path.clone())
    }
}
