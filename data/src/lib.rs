//! # ferrovis-data
//!
//! Files on disk to batches of tensors, for every task:
//! - [`decode`]: OpenCV decoding to 8-bit RGB whatever the source, masks read unchanged (palette
//!   PNGs keep their indices), truncated files caught;
//! - [`transform`]: seeded classification, detection and segmentation transforms;
//! - [`dataset`]: ImageFolder, CSV lists, Ultralytics YOLO, Pascal VOC and image+mask folders,
//!   with a scan report of every bad file and line;
//! - [`loader`]: rayon-parallel, deterministic batch loading with a bounded prefetch queue;
//! - [`synthetic`]: the "shapes" data set generator behind the demos.

pub mod cache;
pub mod dataset;
pub mod decode;
pub mod draw;
pub mod error;
pub mod image;
pub mod jpeg;
pub mod loader;
pub mod rng;
pub mod sources;
pub mod synthetic;
pub mod tensor;
pub mod transform;
pub mod video;

pub use error::{Error, Result};
pub use image::{Mask, RgbImage};
