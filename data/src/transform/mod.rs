//! Image transforms. Geometry follows torchvision's and Ultralytics' definitions (sizes, rounding
//! of crop offsets, box handling) so that a model sees the pixels it saw in PyTorch. Every random
//! transform takes its randomness from an explicit [`Rng`](crate::rng::Rng).

pub mod classify;
pub mod color;
pub mod detect;
pub mod geometry;
pub mod pillow_resize;
pub mod segment;
pub mod ssd;

pub use classify::{
    center_crop, resize, resize_shorter, ClassifyTransform, Filter, RandomResizedCrop,
};
pub use color::{ColorJitter, HsvGain};
pub use geometry::Rect;
