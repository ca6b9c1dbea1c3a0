//! # ferrovis-core
//!
//! The reusable core of ferrovis, transfer learning for computer vision on libtorch:
//!
//! - [`checkpoint`]: read PyTorch checkpoints (zip, legacy, safetensors, tch `.ot`) with no Python,
//!   load them into a `VarStore` by PyTorch name with a report, and write `.safetensors`;
//! - [`backbone`]: ResNet, VGG, EfficientNet, EfficientNet-Lite and MobileNetV2 with PyTorch's
//!   state_dict names, behind the [`backbone::Backbone`] trait, built by name;
//! - [`nn`]: the blocks they share (BatchNorm with PyTorch's buffers, conv-norm-act, SAME padding,
//!   squeeze-excite, stochastic depth);
//! - [`device`]: pick CUDA when present, CPU otherwise;
//! - [`memory_format`]: channels-last layout for faster CPU convolutions;
//! - [`cli`]: the `weights inspect|convert` subcommands shared by the task binaries.
//!
//! Every fallible function returns [`Result`], whose [`Error`] names the file, key or layer concerned.

pub mod atomic_file;
pub mod backbone;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod device;
pub mod engine;
pub mod error;
pub mod export;
pub mod freeze;
pub mod memory_format;
pub mod metrics;
pub mod nn;
pub mod optim;
pub mod run;

pub use error::{Error, Result};
