//! Segmentation data sets: an image folder and a mask folder matched by file stem.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tch::Tensor;

use super::classification::files_recursive;
use super::report::{ScanOptions, ScanReport};
use crate::cache::Cache;
use crate::decode::{is_image_path, read_mask, read_rgb, verify_image};
use crate::error::{Error, Result};
use crate::image::Mask;
use crate::loader::Dataset;
use crate::rng::Rng;
use crate::tensor::{mask_to_tensor, to_normalized_chw};
use crate::transform::segment::{resize_sample, SegmentAugment, SegmentationSample, IGNORE_INDEX};

/// How mask pixel values become class indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MaskEncoding {
    /// Binary when every mask holds only 0 and 255 (mapped to 0 and 1), class indices otherwise.
    #[default]
    Auto,
    /// Foreground/background: values ≥ 128 become 1, the rest 0 (tolerates JPEG-like noise).
    Binary,
    /// Values are class indices already (255 = ignore).
    Index,
}

/// A table from stored mask values to class indices; unlisted values become 255 (ignore).
/// Used for sparse ids such as COCO panoptic categories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassRemap {
    table: [u8; 256],
}

impl ClassRemap {
    /// From explicit `(stored value, class index)` pairs.
    pub fn from_pairs(pairs: &[(u8, u8)]) -> Self {
        let mut table = [IGNORE_INDEX; 256];
        for &(from, to) in pairs {
            table[from as usize] = to;
        }
        Self { table }
    }

    /// Maps the given ids, in ascending order, to 0, 1, 2, … (e.g. the sorted keys of a
    /// `semantic.yaml` class map).
    pub fn contiguous(ids: &[u8]) -> Self {
        let sorted: BTreeSet<u8> = ids.iter().copied().collect();
        let pairs: Vec<(u8, u8)> = sorted
            .into_iter()
            .enumerate()
            .map(|(i, id)| (id, i as u8))
            .collect();
        Self::from_pairs(&pairs)
    }

    /// The class index of a stored value.
    pub fn map(&self, value: u8) -> u8 {
        self.table[value as usize]
    }
}

/// One image and its mask file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentationItem {
    /// The image file.
    pub image: PathBuf,
    /// The mask file.
    pub mask: PathBuf,
}

/// A scanned segmentation data set.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentationData {
    /// Usable pairs, sorted by image path.
    pub items: Vec<SegmentationItem>,
    /// The encoding in force (never `Auto` after a scan).
    pub encoding: MaskEncoding,
    /// The value remapping, if any.
    pub remap: Option<ClassRemap>,
    /// Every class index present in the masks after encoding and remapping (255 excluded).
    pub classes_seen: BTreeSet<u8>,
    /// What was skipped and why.
    pub report: ScanReport,
}

impl SegmentationData {
    /// Reads a mask and applies the encoding and remapping.
    pub fn load_mask(&self, item: &SegmentationItem) -> Result<Mask> {
        let mut mask = read_mask(&item.mask)?;
        encode(&mut mask, self.encoding, self.remap.as_ref());
        Ok(mask)
    }
}

fn encode(mask: &mut Mask, encoding: MaskEncoding, remap: Option<&ClassRemap>) {
    match encoding {
        MaskEncoding::Binary => mask.data.iter_mut().for_each(|v| *v = (*v >= 128) as u8),
        MaskEncoding::Index | MaskEncoding::Auto => {
            if let Some(r) = remap {
                mask.data.iter_mut().for_each(|v| *v = r.map(*v));
            }
        }
    }
}

fn stems(dir: &Path, report: &mut ScanReport) -> Result<BTreeMap<String, PathBuf>> {
    let mut map = BTreeMap::new();
    for path in files_recursive(dir)? {
        if !is_image_path(&path) {
            report.non_images.push(path);
            continue;
        }
        let stem = path
            .strip_prefix(dir)
            .unwrap_or(&path)
            .with_extension("")
            .to_string_lossy()
            .into_owned();
        map.insert(stem, path);
    }
    Ok(map)
}

/// Pairs `images_dir/<stem>.*` with `masks_dir/<stem>.*` (sub-folders included). Images without a
/// mask and masks without an image are problems; so are unreadable masks, masks whose size
/// differs from their image's, and (with `num_classes`) class indices ≥ the class count other
/// than 255. Every mask is decoded once to check it.
pub fn scan_pairs(
    images_dir: &Path,
    masks_dir: &Path,
    encoding: MaskEncoding,
    remap: Option<ClassRemap>,
    num_classes: Option<usize>,
    options: ScanOptions,
) -> Result<SegmentationData> {
    for dir in [images_dir, masks_dir] {
        if !dir.is_dir() {
            return Err(Error::dataset(dir, None, "not a directory"));
        }
    }
    let mut report = ScanReport::default();
    let images = stems(images_dir, &mut report)?;
    let masks = stems(masks_dir, &mut report)?;
    let mut checked = Vec::new();
    for (stem, image) in &images {
        let Some(mask_path) = masks.get(stem) else {
            report.problem(
                options,
                image,
                None,
                format!("no mask named {stem}.* in {}", masks_dir.display()),
            )?;
            continue;
        };
        let size = match verify_image(image) {
            Ok(s) => s,
            Err(e) => {
                report.problem(options, image, None, e.reason())?;
                continue;
            }
        };
        let mask = match read_mask(mask_path) {
            Ok(m) => m,
            Err(e) => {
                report.problem(options, mask_path, None, e.reason())?;
                continue;
            }
        };
        if (mask.width, mask.height) != size {
            report.problem(
                options,
                mask_path,
                None,
                format!(
                    "mask is {}x{} but its image {} is {}x{}",
                    mask.width,
                    mask.height,
                    image.display(),
                    size.0,
                    size.1
                ),
            )?;
            continue;
        }
        checked.push((image.clone(), mask_path.clone(), mask));
    }
    for (stem, mask) in &masks {
        if !images.contains_key(stem) {
            report.problem(
                options,
                mask,
                None,
                format!(
                    "mask has no image named {stem}.* in {}",
                    images_dir.display()
                ),
            )?;
        }
    }
    let encoding = match encoding {
        MaskEncoding::Auto => {
            let binary = !checked.is_empty()
                && remap.is_none()
                && checked
                    .iter()
                    .all(|(_, _, m)| m.data.iter().all(|&v| v == 0 || v == 255));
            if binary {
                MaskEncoding::Binary
            } else {
                MaskEncoding::Index
            }
        }
        other => other,
    };
    let mut data = SegmentationData {
        items: Vec::new(),
        encoding,
        remap,
        classes_seen: BTreeSet::new(),
        report,
    };
    for (image, mask_path, mut mask) in checked {
        encode(&mut mask, encoding, data.remap.as_ref());
        let mut values: BTreeSet<u8> = mask.data.iter().copied().collect();
        values.remove(&IGNORE_INDEX);
        if let Some(n) = num_classes {
            if let Some(bad) = values.iter().find(|&&v| v as usize >= n) {
                data.report.problem(
                    options,
                    &mask_path,
                    None,
                    format!("class index {bad} is not below the number of classes ({n}) and is not 255 (ignore)"),
                )?;
                continue;
            }
        }
        data.classes_seen.extend(values);
        data.items.push(SegmentationItem {
            image,
            mask: mask_path,
        });
    }
    if data.items.is_empty() {
        return Err(Error::dataset(
            images_dir,
            None,
            format!("no usable image/mask pairs\n{}", data.report),
        ));
    }
    Ok(data)
}

/// A segmentation batch.
#[derive(Debug)]
pub struct SegmentationBatch {
    /// `(N, 3, H, W)` normalised images.
    pub images: Tensor,
    /// `(N, H, W)` int64 class indices, 255 = ignore.
    pub masks: Tensor,
    /// The sample index of each row.
    pub indices: Vec<usize>,
}

/// How samples reach a common size for batching.
#[derive(Debug, Clone, PartialEq)]
pub enum SegmentResize {
    /// Training augmentation: random scale, pad-and-crop, flip.
    Augment(SegmentAugment),
    /// Resize image and mask to a fixed `width`×`height`.
    Fixed(usize, usize),
    /// Keep the original size (batch size 1, or equal-sized images).
    Original,
}

/// Decodes, transforms and batches image/mask pairs for the [`Loader`](crate::loader::Loader).
pub struct SegmentationDataset {
    data: SegmentationData,
    resize: SegmentResize,
    mean: [f64; 3],
    std: [f64; 3],
    cache: Option<Cache<SegmentationSample>>,
}

impl SegmentationDataset {
    /// A data set over scanned pairs, normalised with `mean`/`std` (on [0, 1] pixels).
    pub fn new(
        data: SegmentationData,
        resize: SegmentResize,
        mean: [f64; 3],
        std: [f64; 3],
    ) -> Self {
        Self {
            data,
            resize,
            mean,
            std,
            cache: None,
        }
    }

    /// Keeps decoded images and masks in memory.
    pub fn with_cache(mut self) -> Self {
        self.cache = Some(Cache::new(self.data.items.len()));
        self
    }

    /// The scanned data.
    pub fn data(&self) -> &SegmentationData {
        &self.data
    }

    fn load(&self, index: usize) -> Result<Arc<SegmentationSample>> {
        let load = || -> Result<SegmentationSample> {
            let item = &self.data.items[index];
            let image = read_rgb(&item.image)?;
            let mask = self.data.load_mask(item)?;
            SegmentationSample::new(image, mask)
                .map_err(|e| Error::image(&item.mask, e.to_string()))
        };
        match &self.cache {
            Some(cache) => cache.get_or_load(index, load),
            None => load().map(Arc::new),
        }
    }
}

impl Dataset for SegmentationDataset {
    type Sample = (Tensor, Tensor);
    type Batch = SegmentationBatch;

    fn len(&self) -> usize {
        self.data.items.len()
    }

    fn get(&self, index: usize, _epoch: usize, rng: &mut Rng) -> Result<Self::Sample> {
        let sample = self.load(index)?;
        let out = match &self.resize {
            SegmentResize::Augment(aug) => aug.apply(&sample, rng)?,
            SegmentResize::Fixed(w, h) => resize_sample(&sample, *w, *h)?,
            SegmentResize::Original => (*sample).clone(),
        };
        Ok((
            to_normalized_chw(&out.image, self.mean, self.std),
            mask_to_tensor(&out.mask),
        ))
    }

    fn collate(&self, samples: Vec<(usize, Self::Sample)>) -> Result<Self::Batch> {
        let sizes: BTreeSet<Vec<i64>> = samples.iter().map(|(_, (i, _))| i.size()).collect();
        if sizes.len() > 1 {
            return Err(Error::Invalid(format!(
                "cannot batch images of different sizes {sizes:?}: use a fixed resize or batch size 1"
            )));
        }
        let indices = samples.iter().map(|(i, _)| *i).collect();
        let (images, masks): (Vec<Tensor>, Vec<Tensor>) =
            samples.into_iter().map(|(_, s)| s).unzip();
        Ok(SegmentationBatch {
            images: Tensor::f_stack(&images, 0)?,
            masks: Tensor::f_stack(&masks, 0)?,
            indices,
        })
    }

    fn source(&self, index: usize) -> Option<PathBuf> {
        self.data.items.get(index).map(|i| i.image.clone())
    }
}
