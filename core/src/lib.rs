//! # ferrovis-core
//!
//! The reusable core of ferrovis, transfer learning for computer vision on libtorch:
//!
//! - [`checkpoint`]: read PyTorch checkpoints (zip, legacy, safetensors, tch `.ot`) with no Python,
//!   load them into a `VarStore` by PyTorch name with a report, and write `.safetensors`;
//! - [`device`]: pick CUDA when present, CPU otherwise;
//! - [`cli`]: the `weights inspect|convert` subcommands shared by the task binaries.
//!
//! Every fallible function returns [`Result`], whose [`Error`] names the file, key or layer concerned.

pub mod atomic_file;
pub mod checkpoint;
pub mod cli;
pub mod device;
pub mod error;

pub use error::{Error, Result};
