//! Classification data sets: torchvision's ImageFolder layout and `path,label` CSV lists.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand::seq::SliceRandom;
use tch::Tensor;

use super::report::{ScanOptions, ScanReport};
use crate::cache::Cache;
use crate::decode::{is_image_path, read_rgb, verify_image};
use crate::error::{Error, Result};
use crate::image::RgbImage;
use crate::loader::Dataset;
use crate::rng::{self, Rng};
use crate::transform::{resize_shorter, ClassifyTransform};

/// One labelled image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassificationItem {
    /// The image file.
    pub path: PathBuf,
    /// Index into [`ClassificationData::classes`].
    pub label: usize,
}

/// A scanned classification data set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClassificationData {
    /// Class names; a label is an index into this list.
    pub classes: Vec<String>,
    /// The usable images, in a stable order (sorted by class, then path).
    pub items: Vec<ClassificationItem>,
    /// What was skipped and why.
    pub report: ScanReport,
}

impl ClassificationData {
    /// Number of images per class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes.len()];
        for item in &self.items {
            counts[item.label] += 1;
        }
        counts
    }

    /// Splits off a validation set: `fraction` of each class (at least one image where the class
    /// has two or more), chosen by `seed`. Both parts keep the class list.
    pub fn split(&self, fraction: f64, seed: u64) -> Result<(Self, Self)> {
        if !(0.0..1.0).contains(&fraction) {
            return Err(Error::Invalid(format!(
                "validation fraction must be in [0, 1), got {fraction}"
            )));
        }
        let mut train = Self {
            classes: self.classes.clone(),
            items: Vec::new(),
            report: self.report.clone(),
        };
        let mut val = Self {
            classes: self.classes.clone(),
            ..Default::default()
        };
        for class in 0..self.classes.len() {
            let mut members: Vec<&ClassificationItem> =
                self.items.iter().filter(|i| i.label == class).collect();
            members.shuffle(&mut rng::derive(seed, &[class as u64]));
            let mut n_val = (members.len() as f64 * fraction).round() as usize;
            if fraction > 0.0 && n_val == 0 && members.len() >= 2 {
                n_val = 1;
            }
            let (v, t) = members.split_at(n_val);
            val.items.extend(v.iter().map(|&i| i.clone()));
            train.items.extend(t.iter().map(|&i| i.clone()));
        }
        train
            .items
            .sort_by(|a, b| (a.label, &a.path).cmp(&(b.label, &b.path)));
        val.items
            .sort_by(|a, b| (a.label, &a.path).cmp(&(b.label, &b.path)));
        Ok((train, val))
    }
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut paths = Vec::new();
    for entry in entries {
        paths.push(entry.map_err(|e| Error::io(dir, e))?.path());
    }
    paths.sort();
    Ok(paths)
}

/// Every file under `dir`, recursively, sorted.
pub fn files_recursive(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in read_dir_sorted(dir)? {
        if path.is_dir() {
            files.extend(files_recursive(&path)?);
        } else {
            files.push(path);
        }
    }
    Ok(files)
}

/// Checks one image file for the scan: unreadable or truncated files become problems.
fn admit_image(path: &Path, options: ScanOptions, report: &mut ScanReport) -> Result<bool> {
    match verify_image(path) {
        Ok(_) => Ok(true),
        Err(e) => {
            report.problem(options, path, None, e.reason())?;
            Ok(false)
        }
    }
}

/// Scans torchvision's ImageFolder layout, `root/<class>/**/<image>`: classes are the
/// sub-folder names in sorted order; files that are not images are skipped and counted;
/// unreadable or truncated images are problems (skipped, or an error in strict mode).
pub fn image_folder(root: &Path, options: ScanOptions) -> Result<ClassificationData> {
    if !root.is_dir() {
        return Err(Error::dataset(
            root,
            None,
            "not a directory (expected root/<class>/<images>)",
        ));
    }
    let class_dirs: Vec<PathBuf> = read_dir_sorted(root)?
        .into_iter()
        .filter(|p| p.is_dir())
        .collect();
    if class_dirs.is_empty() {
        return Err(Error::dataset(
            root,
            None,
            "no class folders: ImageFolder expects root/<class>/<images>",
        ));
    }
    let mut data = ClassificationData::default();
    for (label, dir) in class_dirs.iter().enumerate() {
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::dataset(dir, None, "class folder name is not valid UTF-8"))?;
        data.classes.push(name.to_string());
        for path in files_recursive(dir)? {
            if !is_image_path(&path) {
                data.report.non_images.push(path);
            } else if admit_image(&path, options, &mut data.report)? {
                data.items.push(ClassificationItem { path, label });
            }
        }
    }
    if data.items.is_empty() {
        return Err(Error::dataset(
            root,
            None,
            format!("no usable images\n{}", data.report),
        ));
    }
    Ok(data)
}

/// Reads a `path,label` CSV list. Paths are relative to the CSV's folder unless absolute; labels
/// are class names; a first row `path,label` is taken as a header. Classes are the given list, or
/// the sorted distinct labels. Bad lines (wrong number of fields, unknown class, missing or bad
/// image) are problems, named by line.
pub fn csv_list(
    file: &Path,
    classes: Option<&[String]>,
    options: ScanOptions,
) -> Result<ClassificationData> {
    let base = file.parent().unwrap_or(Path::new("."));
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_path(file)
        .map_err(|e| Error::dataset(file, None, e.to_string()))?;
    let mut data = ClassificationData::default();
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 1;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                data.report
                    .problem(options, file, Some(line), e.to_string())?;
                continue;
            }
        };
        if record.len() == 1 && record[0].is_empty() {
            continue; // blank line
        }
        if line == 1 && record.len() == 2 && &record[0] == "path" && &record[1] == "label" {
            continue;
        }
        if record.len() != 2 {
            data.report.problem(
                options,
                file,
                Some(line),
                format!("expected 2 fields `path,label`, found {}", record.len()),
            )?;
            continue;
        }
        rows.push((line, record[0].to_string(), record[1].to_string()));
    }
    data.classes = match classes {
        Some(c) => c.to_vec(),
        None => rows
            .iter()
            .map(|(_, _, l)| l.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
    };
    for (line, path, label) in rows {
        let Some(label) = data.classes.iter().position(|c| *c == label) else {
            data.report.problem(
                options,
                file,
                Some(line),
                format!(
                    "unknown class {label:?} (classes: {})",
                    data.classes.join(", ")
                ),
            )?;
            continue;
        };
        let path = base.join(path);
        match verify_image(&path) {
            Ok(_) => data.items.push(ClassificationItem { path, label }),
            Err(e) => data
                .report
                .problem(options, file, Some(line), e.to_string())?,
        }
    }
    if data.items.is_empty() {
        return Err(Error::dataset(
            file,
            None,
            format!("no usable images\n{}", data.report),
        ));
    }
    Ok(data)
}

/// A classification batch.
#[derive(Debug)]
pub struct ClassificationBatch {
    /// `(N, 3, size, size)` normalised images.
    pub images: Tensor,
    /// `(N,)` int64 class indices.
    pub labels: Tensor,
    /// The sample index of each row.
    pub indices: Vec<usize>,
}

/// Decodes, transforms and batches a list of labelled images for the [`Loader`](crate::loader::Loader).
pub struct ClassificationDataset {
    items: Vec<ClassificationItem>,
    transform: ClassifyTransform,
    cache: Option<(Cache<RgbImage>, usize)>,
}

impl ClassificationDataset {
    /// A data set over `items`, transformed by `transform`.
    pub fn new(items: Vec<ClassificationItem>, transform: ClassifyTransform) -> Self {
        Self {
            items,
            transform,
            cache: None,
        }
    }

    /// Keeps decoded images in memory, reduced so the shorter side is at most `shorter_side`
    /// (never enlarged). Use at least the transform's `resize` to leave evaluation unchanged.
    pub fn with_cache(mut self, shorter_side: usize) -> Self {
        self.cache = Some((Cache::new(self.items.len()), shorter_side));
        self
    }

    /// The items.
    pub fn items(&self) -> &[ClassificationItem] {
        &self.items
    }

    /// The transform.
    pub fn transform(&self) -> &ClassifyTransform {
        &self.transform
    }

    /// The cached image of `index`, decoded (and reduced) on first use.
    fn cached_image(
        &self,
        cache: &Cache<RgbImage>,
        side: usize,
        index: usize,
    ) -> Result<Arc<RgbImage>> {
        cache.get_or_load(index, || {
            let img = read_rgb(&self.items[index].path)?;
            if img.width.min(img.height) > side {
                // A checkpoint's Pillow filter where it names one, so the evaluation crop of a
                // cached image is the uncached one.
                resize_shorter(&img, side, self.transform.crop_filter())
            } else {
                Ok(img)
            }
        })
    }
}

impl Dataset for ClassificationDataset {
    type Sample = (Tensor, i64);
    type Batch = ClassificationBatch;

    fn len(&self) -> usize {
        self.items.len()
    }

    fn get(&self, index: usize, _epoch: usize, rng: &mut Rng) -> Result<Self::Sample> {
        let path = &self.items[index].path;
        let transformed = match &self.cache {
            None => self.transform.apply_file(path, rng),
            Some((cache, side)) => self
                .cached_image(cache, *side, index)
                .and_then(|img| self.transform.apply(&img, rng)),
        };
        let tensor = transformed.map_err(|e| match e {
            e @ (Error::Image { .. } | Error::Io { .. }) => e,
            other => Error::image(path, other.to_string()),
        })?;
        Ok((tensor, self.items[index].label as i64))
    }

    fn collate(&self, samples: Vec<(usize, Self::Sample)>) -> Result<Self::Batch> {
        let indices = samples.iter().map(|(i, _)| *i).collect();
        let (images, labels): (Vec<Tensor>, Vec<i64>) = samples.into_iter().map(|(_, s)| s).unzip();
        Ok(ClassificationBatch {
            images: Tensor::f_stack(&images, 0)?,
            labels: Tensor::from_slice(&labels),
            indices,
        })
    }

    fn source(&self, index: usize) -> Option<PathBuf> {
        self.items.get(index).map(|i| i.path.clone())
    }
}
