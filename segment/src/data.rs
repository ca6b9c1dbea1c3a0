//! Finding a run's training and validation pairs and its class names.

use ferrovis_data::dataset::default_class_names;
use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ferrovis_data::dataset::{
    scan_pairs, ClassRemap, MaskEncoding, ScanOptions, SegmentationData, SemanticYaml,
};

use crate::config::DataSection;

/// The scanned training and validation pairs.
#[derive(Debug)]
pub struct Splits {
    /// Class names by class index.
    pub names: Vec<String>,
    /// Training pairs.
    pub train: SegmentationData,
    /// Validation pairs.
    pub val: SegmentationData,
    /// How the validation set was found, for the log.
    pub val_source: String,
}

/// Orders file names as a person would: runs of digits compare as numbers (`2` < `10`).
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    fn chunks(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                out.push((bytes[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for ((da, xa), (db, xb)) in ca.iter().zip(&cb) {
        let ord = if *da && *db {
            let (ta, tb) = (xa.trim_start_matches('0'), xb.trim_start_matches('0'));
            ta.len().cmp(&tb.len()).then(ta.cmp(tb))
        } else {
            xa.cmp(xb)
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    ca.len().cmp(&cb.len()).then(a.cmp(b))
}

/// `classes.txt` (one name per line) in the image folder or one of its two parents.
fn classes_txt(images: &Path) -> Result<Option<Vec<String>>> {
    for dir in images.ancestors().take(3) {
        let file = dir.join("classes.txt");
        if file.is_file() {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let names: Vec<String> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect();
            return Ok(Some(names));
        }
    }
    Ok(None)
}

fn scan(
    images: &Path,
    masks: &Path,
    encoding: MaskEncoding,
    remap: Option<ClassRemap>,
    num_classes: Option<usize>,
) -> Result<SegmentationData> {
    let data = scan_pairs(
        images,
        masks,
        encoding,
        remap,
        num_classes,
        ScanOptions::default(),
    )
    .with_context(|| format!("scanning {} with {}", images.display(), masks.display()))?;
    if !data.report.is_clean() {
        print!("{}", data.report);
    }
    Ok(data)
}

/// Scans the configured pairs.
pub fn splits(data: &DataSection) -> Result<Splits> {
    let (train_dirs, val_dirs, mut names, remap) = if !data.yaml.is_empty() {
        let y = SemanticYaml::read(Path::new(&data.yaml))?;
        let val = y.val.map(|v| (v.images, v.masks));
        ((y.train.images, y.train.masks), val, y.names, y.remap)
    } else {
        if data.images.is_empty() || data.masks.is_empty() {
            bail!(
                "no data: set data.images and data.masks (or data.yaml, a semantic.yaml), or run \
                 `segment demo`"
            );
        }
        let val = (!data.val_images.is_empty()).then(|| {
            (
                PathBuf::from(&data.val_images),
                PathBuf::from(&data.val_masks),
            )
        });
        if val.is_some() && data.val_masks.is_empty() {
            bail!("data.val_images is set but data.val_masks is not");
        }
        let train = (PathBuf::from(&data.images), PathBuf::from(&data.masks));
        let names = classes_txt(&train.0)?.unwrap_or_default();
        let remap = (!data.remap.is_empty()).then(|| ClassRemap::from_pairs(&data.remap));
        (train, val, names, remap)
    };
    if !data.names.is_empty() {
        names = data.names.clone();
    }
    let known = (!names.is_empty()).then_some(names.len());
    let mut train = scan(
        &train_dirs.0,
        &train_dirs.1,
        data.encoding,
        remap.clone(),
        known,
    )?;
    let (val, val_source) = match val_dirs {
        // The training scan resolved `auto`: validation masks are read the same way.
        Some((vi, vm)) => (
            scan(&vi, &vm, train.encoding, remap, known)?,
            vi.display().to_string(),
        ),
        None => {
            if !(0.0..1.0).contains(&data.val_fraction) || data.val_fraction == 0.0 {
                bail!(
                    "data.val_fraction must be in (0, 1) when there are no validation folders, got {}",
                    data.val_fraction
                );
            }
            train.items.sort_by(|a, b| {
                natural_cmp(&a.image.to_string_lossy(), &b.image.to_string_lossy())
            });
            let n_val = ((train.items.len() as f64 * data.val_fraction).round() as usize)
                .clamp(1, train.items.len().saturating_sub(1).max(1));
            if train.items.len() < 2 {
                bail!(
                    "{}: one image/mask pair cannot be split into training and validation",
                    train_dirs.0.display()
                );
            }
            let mut val = train.clone();
            val.items = train.items.split_off(train.items.len() - n_val);
            let first = val.items.first().map(|i| i.image.display().to_string());
            (
                val,
                format!(
                    "the last {n_val} pairs in file-name order (from {})",
                    first.unwrap_or_default()
                ),
            )
        }
    };
    if names.is_empty() {
        let max = train
            .classes_seen
            .iter()
            .chain(&val.classes_seen)
            .max()
            .copied()
            .unwrap_or(0) as usize;
        names = if train.encoding == MaskEncoding::Binary {
            vec!["background".into(), "foreground".into()]
        } else {
            default_class_names(max.max(1) + 1)
        };
    }
    if let Some(&bad) = val
        .classes_seen
        .iter()
        .find(|&&c| c as usize >= names.len())
    {
        bail!(
            "validation masks hold class {bad} but there are {} classes ({})",
            names.len(),
            names.join(", ")
        );
    }
    Ok(Splits {
        names,
        train,
        val,
        val_source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_compares_numbers_as_numbers() {
        let mut v = vec!["10.png", "2.png", "1.png", "a/0.png", "03.png"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, vec!["1.png", "2.png", "03.png", "10.png", "a/0.png"]);
    }
}
