//! Evaluation metrics with the definitions of the reference implementations users compare
//! against: scikit-learn for classification, Ultralytics and pycocotools for detection, the
//! standard confusion-matrix definitions for segmentation. [`render`] prints them as tables,
//! `charts` (feature `plot`) draws the pictures.

#[cfg(feature = "plot")]
pub mod charts;
pub mod classification;
pub mod detection;
pub mod render;
pub mod segmentation;

pub use classification::{ClassificationReport, ConfusionMatrix};
pub use detection::{DetectionAccumulator, DetectionReport};
pub use segmentation::{SegmentationConfusion, SegmentationReport};
