//! The `segment` task: semantic segmentation with U-Net, DeepLabV3, DeepLabV3+, FCN, LR-ASPP and
//! DINOv2's linear probe on pretrained encoders. `main.rs` only runs [`cli::run`]; the commands live in [`cli`], one
//! function each, so other programs can call them.
//!
//! | file | what it holds |
//! |---|---|
//! | `cli.rs` | the command line and one function per command |
//! | `unet.rs`, `deeplab.rs`, `deeplabv3plus.rs`, `fcn.rs`, `lraspp.rs` | the architectures, one file each |
//! | `linear_probe.rs` | DINOv2's linear segmentation probe on frozen patch tokens |
//! | `aspp.rs` | ASPP and conv-BN-ReLU, shared by the DeepLabs (FCN's head is `fcn.rs`'s, DeepLabV3's aux too) |
//! | `model.rs` | one type over the five, encoder freezing, weight loading |
//! | `loss.rs` | cross-entropy, Dice, focal |
//! | `config.rs`, `data.rs` | settings; splits and class names |
//! | `train.rs` | the training task on the core engine's session |
//! | `val.rs`, `infer.rs` | `val`: mIoU and the rest; whole / resize / sliding-window inference |
//! | `predict.rs` | `predict`: masks, colour masks, overlays |
//! | `export.rs` | `export`: TorchScript |
//! | `run.rs` | a run folder's record (`segment.json`) |
//! | `demo.rs` | transfer against scratch on synthetic shapes' masks |

pub mod aspp;
pub mod cli;
pub mod config;
pub mod data;
pub mod deeplab;
pub mod deeplabv3plus;
pub mod demo;
pub mod export;
pub mod fcn;
pub mod infer;
pub mod linear_probe;
pub mod logits;
pub mod loss;
pub mod lraspp;
pub mod model;
pub mod predict;
pub mod run;
pub mod train;
pub mod unet;
pub mod val;

pub use cli::{run, Cli};
