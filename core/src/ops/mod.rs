//! Operations detectors and detection metrics share, kept apart from both.
//!
//! - [`boxes`]: box area, intersection, IoU, greedy and batched non-maximum suppression on
//!   slices of `[x1, y1, x2, y2]` (what the metrics and YOLO's post-processing use);
//! - [`detection`]: torchvision's box operations on tensors, with its semantics (conversions,
//!   area, pairwise IoU, clipping, small-box removal, `nms`, `batched_nms`);
//! - [`box_coder`]: torchvision's `BoxCoder` (offsets from reference boxes and back) and
//!   `BoxLinearCoder` (FCOS: distances from a reference centre to the sides);
//! - [`matcher`]: torchvision's `Matcher` (with low-quality matches) and `SSDMatcher`;
//! - [`anchors`]: torchvision's `AnchorGenerator`;
//! - [`default_boxes`]: torchvision's `DefaultBoxGenerator` (SSD);
//! - [`sampler`]: torchvision's `BalancedPositiveNegativeSampler`;
//! - [`roi_align`]: torchvision's `roi_align` and `MultiScaleRoIAlign`, differentiable;
//! - [`losses`]: torchvision's `sigmoid_focal_loss` and `generalized_box_iou_loss`.

pub mod anchors;
pub mod box_coder;
pub mod boxes;
pub mod default_boxes;
pub mod detection;
pub mod losses;
pub mod matcher;
pub mod roi_align;
pub mod sampler;
