//! Image transforms. Geometry follows torchvision's definitions (sizes, rounding of crop offsets)
//! so that a model sees the pixels it saw in PyTorch.

pub mod classify;

pub use classify::{center_crop, resize_shorter, Filter};
