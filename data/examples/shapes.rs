//! Writes the synthetic "shapes" data set in all three layouts and prints what a scan finds.
//!
//! `cargo run -p ferrovis-data --example shapes -- OUT_DIR`

use std::path::PathBuf;

use ferrovis_data::dataset::{image_folder, DatasetYaml, ScanOptions};
use ferrovis_data::synthetic::{self, ShapesConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "shapes".into()));
    let config = ShapesConfig::default();
    synthetic::write_classification(&out.join("classify"), &config)?;
    let yaml = synthetic::write_detection(&out.join("detect"), &config)?;
    synthetic::write_segmentation(&out.join("segment"), &config)?;
    let train = image_folder(&out.join("classify/train"), ScanOptions::default())?;
    println!(
        "classification: {} classes, {} training images",
        train.classes.len(),
        train.items.len()
    );
    let det = DatasetYaml::read(&yaml)?.scan("train", ScanOptions::default())?;
    println!(
        "detection: {} images, {} boxes",
        det.items.len(),
        det.num_boxes()
    );
    println!("written under {}", out.display());
    Ok(())
}
