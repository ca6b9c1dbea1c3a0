//! Operations detectors and detection metrics share, kept apart from both.
//!
//! - [`boxes`]: box area, intersection, IoU, greedy and batched non-maximum suppression.

pub mod boxes;
