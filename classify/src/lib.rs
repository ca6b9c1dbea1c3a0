//! The `classify` task: transfer learning for image classification (ResNet, VGG, EfficientNet,
//! MobileNetV2, MobileNetV3) by feature extraction or fine-tuning. `main.rs` only runs
//! [`cli::run`]; the commands live in [`cli`], one function each, so other programs can call them.
//!
//! | file | what it holds |
//! |---|---|
//! | `cli.rs` | the command line and one function per command |
//! | `config.rs` | every setting and its default |
//! | `data.rs` | train/val splits and transforms |
//! | `model.rs` | backbone + new head, the transfer load, freezing by mode |
//! | `train.rs` | the training task on the core engine's session |
//! | `eval.rs` | `val`: the report, confusion matrix, `val.json` |
//! | `predict.rs` | `predict`: a run's or a checkpoint's classes for images |
//! | `export.rs` | `export`: TorchScript |
//! | `mix.rs` | Mixup / CutMix |
//! | `run.rs` | a run folder's record (`classify.json`) |
//! | `demo.rs` | transfer against scratch on synthetic shapes |

pub mod cli;
pub mod config;
pub mod data;
pub mod demo;
pub mod eval;
pub mod export;
pub mod mix;
pub mod model;
pub mod predict;
pub mod run;
pub mod train;

pub use cli::{run, Cli};
