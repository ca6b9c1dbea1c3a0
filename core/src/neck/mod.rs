//! Necks: what sits between a backbone and a detection head.
//!
//! - [`fpn`]: torchvision's `FeaturePyramidNetwork` with its extra blocks.

pub mod fpn;

pub use fpn::{ExtraBlock, Fpn, FpnConfig};
