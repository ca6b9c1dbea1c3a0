//! # ferrovis-data
//!
//! Files on disk to tensors: OpenCV decoding (RGB, whatever the source), classification resizing
//! and cropping, image-to-tensor normalisation; dataset formats and parallel batch loading as the
//! data issue lands.

pub mod decode;
pub mod error;
pub mod image;
pub mod tensor;
pub mod transform;

pub use error::{Error, Result};
pub use image::RgbImage;
