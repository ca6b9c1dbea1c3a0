//! The data every detector trains and validates on: the dataset YAML checked and scanned as
//! Ultralytics reports it, and the loader settings they share.

use std::path::Path;

use anyhow::{bail, Result};
use ferrovis_data::dataset::report::ScanOptions;
use ferrovis_data::dataset::{DatasetYaml, DetectionData};
use ferrovis_data::loader::{LoaderOptions, Sampler};

use crate::config::DetectConfig;

/// Reads the dataset YAML, scans both splits and prints Ultralytics' dataset check.
pub fn check_dataset(data: &str) -> Result<(DatasetYaml, DetectionData, DetectionData)> {
    if data.is_empty() {
        bail!(
            "data= is required: the dataset YAML (path, train, val, names), e.g. data=coco128.yaml"
        );
    }
    let yaml = DatasetYaml::read(Path::new(data))?;
    let train = yaml.scan("train", ScanOptions::default())?;
    let val = yaml.scan("val", ScanOptions::default())?;
    for (split, d) in [("train", &train), ("val", &val)] {
        println!(
            "{split}: {} images, {} boxes, {} backgrounds",
            d.items.len(),
            d.num_boxes(),
            d.num_background()
        );
        if !d.report.is_clean() {
            print!("{}", d.report);
        }
    }
    let per_class = train.instances_per_class();
    let listed: Vec<String> = yaml
        .names
        .iter()
        .zip(&per_class)
        .filter(|(_, &n)| n > 0)
        .map(|(name, n)| format!("{name} {n}"))
        .collect();
    println!("train instances per class: {}", listed.join(", "));
    if train.items.is_empty() {
        bail!("{}: the train split has no images", yaml.file.display());
    }
    Ok((yaml, train, val))
}

/// The loader settings every detector uses: shuffled batches in training, the data set's order
/// otherwise, `cfg`'s seed and workers.
pub fn loader_options(cfg: &DetectConfig, train: bool, batch: usize) -> LoaderOptions {
    LoaderOptions {
        batch_size: batch,
        sampler: if train {
            Sampler::Shuffle
        } else {
            Sampler::Sequential
        },
        drop_last: false,
        seed: cfg.seed,
        prefetch: 2,
        workers: cfg.workers,
    }
}
