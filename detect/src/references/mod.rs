//! The torchvision detectors' workflow in the `detect` binary, after torchvision's detection
//! references (`references/detection` in pytorch/vision) and its fine-tuning tutorial: the same
//! data sets, run folders, `results.csv` columns and outputs as YOLOv8, with torchvision's
//! recipe and losses.
//!
//! - [`data`]: images at their own size (0–1) with pixel boxes and 1-based labels, flipped
//!   left-right at random in training;
//! - [`model`]: building an architecture by name, loading pretrained or run weights, inference
//!   on decoded images;
//! - [`train`]: the training task on the core engine (SGD, warm-up, StepLR), validation with
//!   COCO's and Ultralytics' metrics, `val` and `predict`.

pub mod data;
pub mod model;
pub mod train;
