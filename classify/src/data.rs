//! Finding the training and validation images of a run, and the transforms that feed them.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use ferrovis_core::backbone::{Interpolation, PretrainedCfg};
use ferrovis_core::timm::TimmConfig;
use ferrovis_data::dataset::{csv_list, image_folder, ClassificationData, ScanOptions};
use ferrovis_data::transform::{ClassifyTransform, ColorJitter, Filter, RandomResizedCrop};

use crate::config::DataSection;

/// The scanned training and validation sets (same class list).
pub struct Splits {
    /// Class names, the label order.
    pub classes: Vec<String>,
    /// Training images.
    pub train: ClassificationData,
    /// Validation images.
    pub val: ClassificationData,
    /// How the validation set was found, for the log.
    pub val_source: String,
}

/// Scans `data.root`: an ImageFolder with `train/` and `val/`, an ImageFolder of class folders
/// (split by `val_fraction`), or a CSV list (split the same way).
pub fn splits(data: &DataSection, seed: u64) -> Result<Splits> {
    if data.root.is_empty() {
        bail!("no data: set data.root (or --data DIR), or run `classify demo`");
    }
    let root = PathBuf::from(&data.root);
    let opts = ScanOptions::default();
    let is_csv = root.extension().is_some_and(|e| e == "csv");
    let (train_dir, val_dir) = (root.join(&data.train), root.join(&data.val));
    let (train, val, val_source) = if is_csv {
        let all = csv_list(&root, None, opts)?;
        let (t, v) = all.split(data.val_fraction, seed)?;
        (
            t,
            v,
            format!(
                "{:.0}% of each class of {}",
                data.val_fraction * 100.0,
                root.display()
            ),
        )
    } else if train_dir.is_dir() && val_dir.is_dir() {
        let train = image_folder(&train_dir, opts)?;
        let val = image_folder(&val_dir, opts)?;
        if val.classes != train.classes {
            bail!(
                "{} has classes {:?} but {} has {:?}: they must match",
                val_dir.display(),
                val.classes,
                train_dir.display(),
                train.classes
            );
        }
        (train, val, val_dir.display().to_string())
    } else {
        let base = if train_dir.is_dir() {
            train_dir
        } else {
            root.clone()
        };
        let all =
            image_folder(&base, opts).with_context(|| format!("scanning {}", base.display()))?;
        let (t, v) = all.split(data.val_fraction, seed)?;
        (
            t,
            v,
            format!(
                "{:.0}% of each class of {}",
                data.val_fraction * 100.0,
                base.display()
            ),
        )
    };
    if train.items.is_empty() || val.items.is_empty() {
        bail!(
            "{}: the training and the validation set both need images",
            root.display()
        );
    }
    Ok(Splits {
        classes: train.classes.clone(),
        train,
        val,
        val_source,
    })
}

/// The shorter side evaluation resizes to before the centre crop of `size`: `size / crop_pct`,
/// rounded as timm rounds it (`floor`), never below `size`. With the default 0.875 and OpenCV's
/// filters this is torchvision's `ceil(size * 256 / 224)`, as before the setting existed;
/// Pillow's filters are a Hub checkpoint's preprocessing, timm's, which floors there too.
fn eval_resize(size: usize, crop_pct: f64, filter: Filter) -> usize {
    let opencv = matches!(filter, Filter::Area | Filter::Linear);
    if opencv && (crop_pct - 0.875).abs() < 1e-12 {
        return (size * 256).div_ceil(224);
    }
    ((size as f64 / crop_pct.clamp(0.05, 1.0)).floor() as usize).max(size)
}

/// The resize filter `data.interpolation` names; `""` is `own`, the weights' own.
pub fn filter(data: &DataSection, own: Filter) -> Result<Filter> {
    Ok(match data.interpolation.as_str() {
        "" => own,
        "area" => Filter::Area,
        "bilinear" => Filter::Bilinear,
        "bicubic" => Filter::Bicubic,
        other => anyhow::bail!(
            "data.interpolation = {other:?}: expected \"\" (the weights' own), \"area\", \
             \"bilinear\" or \"bicubic\""
        ),
    })
}

/// Pillow's filter for a checkpoint configuration's interpolation (timm resizes PIL images).
pub fn pillow_filter(interpolation: Interpolation) -> Filter {
    match interpolation {
        Interpolation::Bilinear => Filter::Bilinear,
        Interpolation::Bicubic => Filter::Bicubic,
    }
}

/// `data` with a Hub checkpoint's preprocessing where the user kept the defaults: its input
/// size for an `image_size` of 224 and its `crop_pct` for 0.875 (the interpolation is the
/// weights' own unless `data.interpolation` names one).
pub fn with_checkpoint_preprocessing(data: &DataSection, config: &TimmConfig) -> DataSection {
    let defaults = DataSection::default();
    let mut data = data.clone();
    if data.image_size == defaults.image_size {
        data.image_size = config.input_size[1] as usize;
    }
    if data.crop_pct == defaults.crop_pct {
        data.crop_pct = config.crop_pct;
    }
    data
}

/// The training transform (random resized crop, flip, jitter; or the evaluation crop when
/// augmentation is off) and the evaluation transform, with the backbone's normalisation and
/// resizing with `filter`.
pub fn transforms(
    data: &DataSection,
    pre: &PretrainedCfg,
    filter: Filter,
) -> (ClassifyTransform, ClassifyTransform) {
    let eval = ClassifyTransform {
        mean: pre.mean,
        std: pre.std,
        resize: eval_resize(data.image_size, data.crop_pct, filter),
        filter,
        ..ClassifyTransform::eval(data.image_size)
    };
    let train = if data.augment {
        ClassifyTransform {
            random_resized_crop: Some(RandomResizedCrop {
                scale: (data.min_crop_scale.clamp(0.01, 1.0), 1.0),
                ..RandomResizedCrop::default()
            }),
            hflip: 0.5,
            rotate90: data.rotate90,
            color_jitter: ColorJitter {
                brightness: data.color_jitter,
                contrast: data.color_jitter,
                saturation: data.color_jitter,
                hue: 0.0,
            },
            ..eval.clone()
        }
    } else {
        eval.clone()
    };
    (train, eval)
}

#[cfg(test)]
mod tests {
    use super::{eval_resize, Filter};

    #[test]
    fn eval_resize_follows_crop_pct() {
        // torchvision's presets: 224 of 256; at 64 px its rule gives ceil(73.14) = 74.
        assert_eq!(eval_resize(224, 0.875, Filter::Area), 256);
        assert_eq!(eval_resize(64, 0.875, Filter::Area), 74);
        // timm's floor(size / crop_pct): 64 / 0.9 = 71.1; the whole image at 1.0.
        assert_eq!(eval_resize(64, 0.9, Filter::Area), 71);
        assert_eq!(eval_resize(64, 1.0, Filter::Area), 64);
        // timm's floor with Pillow's filters: 64 / 0.875 = 73.1.
        assert_eq!(eval_resize(64, 0.875, Filter::Bicubic), 73);
    }
}
