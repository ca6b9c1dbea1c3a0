//! # ferrovis-core
//!
//! The reusable core of ferrovis, transfer learning for computer vision on libtorch:
//!
//! - [`device`]: pick CUDA when present, CPU otherwise;
//! - [`atomic_file`]: crash-safe writes.
//!
//! Every fallible function returns [`Result`], whose [`Error`] names the file, key or layer concerned.

pub mod atomic_file;
pub mod device;
pub mod error;

pub use error::{Error, Result};
