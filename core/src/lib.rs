//! # ferrovis-core
//!
//! The reusable core of ferrovis, transfer learning for computer vision on libtorch (`tch`).
//! Everything here is task-agnostic: the `classify`, `detect`, `segment` and `style` crates build
//! on it, and so can your own project (`examples/reuse-core/` in the repository is such a
//! project, outside the workspace). What the binaries alone need (command-line arguments, the
//! demo report, their `main`) lives in `ferrovis-app`.
//!
//! The names a user calls first are re-exported here: [`parse_device`]; [`create_backbone`],
//! [`Backbone`] and [`BackboneOptions`]; [`load_weights`] with [`LoadOptions`];
//! [`freeze_before_stage`]; [`Optimizer`]; [`fit`] of a [`TrainTask`] with [`TrainConfig`] and
//! [`RunControl`]; [`Error`] and [`Result`].
//!
//! Features (both on by default): `hub` downloads weights by name (HTTP, TLS, hashes; without it
//! names resolve to cached files only), `plot` draws PNG charts (without it the text tables
//! stay).
//!
//! | module | what it holds |
//! |---|---|
//! | [`backbone`] | torchvision's 80 classification architectures, EfficientNet-Lite and DINOv2 with the reference state_dict names, behind the [`backbone::Backbone`] trait (features per stride, stages, preprocessing), built by name |
//! | [`hub`] | pretrained weights by name (torchvision, Ultralytics, `hf-hub:`), cached where PyTorch and the Hugging Face hub cache them, downloaded with resume and hash check |
//! | [`timm`] | timm checkpoints from the Hugging Face Hub (`hf-hub:timm/<arch>.<tag>`): `config.json` (classes, labels, preprocessing) and the weights renamed into torchvision's modules |
//! | [`knn`] | DINOv2's k-nearest-neighbour classifier on frozen features (cosine similarity, temperature-weighted votes) |
//! | [`transformers`] | transformers' DINOv2 checkpoints (`hf-hub:facebook/dinov2-small`, …) in the reference's names |
//! | [`nn`] | the blocks they share: BatchNorm with PyTorch's buffers, conv-norm-act, SAME padding, squeeze-excite, stochastic depth, packed self-attention |
//! | [`checkpoint`] | read PyTorch checkpoints (zip, legacy, safetensors, tch `.ot`) without Python, load them by name with a report ([`checkpoint::LoadOptions::reinit`] for new heads), write `.safetensors` |
//! | [`freeze`] | freeze by glob, stage or layer index (frozen BatchNorm keeps its statistics); parameter counts |
//! | [`optim`] | parameter groups, SGD/Adam/AdamW/L-BFGS with torch.optim's rules and saveable state, schedules, EMA |
//! | [`engine`] | [`engine::fit`]: the epoch loop every task shares (accumulation, clipping, AMP, EMA, validation, best/last weights, exact resume, early stopping) for any [`engine::TrainTask`] |
//! | [`distributed`] | data-parallel training on libtorch's c10d (Gloo, NCCL on GPUs) under `torchrun`: process groups, collectives, sharding |
//! | [`profiler`] | per-operator profiles from libtorch's own profiler (what `torch.profiler` shows) |
//! | [`run`] | run folders: paths, the task's metadata, `--weights FILE\|RUN_DIR`, `--resume` |
//! | [`config`] | TOML configuration over serde defaults with typed `key=value` overrides |
//! | [`metrics`] | classification, detection (Ultralytics AP, COCO) and segmentation metrics, tables and (feature `plot`) PNG charts |
//! | [`neck`] | torchvision's feature pyramid network (FPN) and its extra levels |
//! | [`ops`] | the detection operators: box IoU and NMS, box coding, anchors and SSD's default boxes, proposal matching and sampling, RoIAlign |
//! | [`export`] | TorchScript export by tracing |
//! | [`onnx`] | ONNX export written from Rust: the traced forward's operators as ONNX nodes, weights under their state-dict names, BatchNorm folded |
//! | [`memory_format`] | channels-last layout for faster CPU convolutions |
//! | [`device`] | CUDA when present, CPU otherwise; `cuda:N` |
//! | [`atomic_file`] | writes that leave the previous file whole if interrupted |
//! | [`error`] | [`Error`]: every message names the file, key or layer concerned |
//!
//! Every fallible function returns [`Result`]. `examples/finetune_head.rs` loads a torchvision
//! checkpoint and trains a new head in a few lines; `examples/custom_task.rs` runs a task of your
//! own through [`engine::fit`].

pub mod atomic_file;
pub mod backbone;
pub mod checkpoint;
pub mod config;
pub mod device;
pub mod distributed;
pub mod engine;
pub mod error;
pub mod export;
pub mod freeze;
pub mod hub;
pub mod knn;
pub mod memory_format;
pub mod metrics;
pub mod neck;
pub mod nn;
pub mod onnx;
pub mod ops;
pub mod optim;
pub mod profiler;
pub mod run;
mod shim;
pub mod tensorboard;
pub mod timm;
pub mod transformers;

pub use backbone::{create as create_backbone, Backbone, BackboneOptions};
pub use checkpoint::{load_file as load_weights, LoadOptions};
pub use device::parse_device;
pub use engine::{fit, RunControl, TrainConfig, TrainTask};
pub use error::{Error, Result};
pub use freeze::freeze_before_stage;
pub use optim::Optimizer;
