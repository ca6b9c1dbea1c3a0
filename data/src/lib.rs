//! # ferrovis-data
//!
//! Files on disk to tensors: OpenCV decoding (RGB, whatever the source), and, as the data issues
//! land, transforms, dataset formats and parallel batch loading.

pub mod decode;
pub mod error;
pub mod image;

pub use error::{Error, Result};
pub use image::RgbImage;
