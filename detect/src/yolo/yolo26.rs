//! YOLO26 (Ultralytics, 2025): YOLO11's layer table with an end-to-end head. The head regresses
//! each box side directly (`reg_max` 1, no DFL) and carries a second, one-to-one pair of branches
//! (`model.23.one2one_cv2`, `model.23.one2one_cv3`) trained to give one box per object, so its
//! output needs no NMS ([`Detect::decode_end2end`](crate::yolo::head::Detect::decode_end2end)).
//! The one-to-many pair (`cv2`, `cv3`) trains beside it, and is what Ultralytics 8.4 predicts and
//! validates with by default, through NMS; `nms=false` selects the one-to-one path.
//!
//! The layers are YOLO11's ([`crate::yolo::yolo11`]), every index kept, with these changes from
//! `yolo26.yaml`:
//!
//! | i  | YOLO11                     | YOLO26                                                  |
//! |----|----------------------------|---------------------------------------------------------|
//! | 9  | SPPF k5                    | SPPF k5, 3 pools, `cv1` without activation, residual     |
//! | 13, 16, 19 | C3k2 of Bottlenecks (n/s) | C3k2 of C3k blocks                               |
//! | 22 | C3k2 ×2 of C3k             | C3k2 ×1 of (Bottleneck, PSA block)                       |
//! | 23 | Detect (DFL, 16 bins)      | end-to-end Detect (4 distances; one-to-many + one-to-one) |
//!
//! Parameter counts (80 classes): n 2,572,280; s 10,009,784; m 21,896,248; l 26,299,704;
//! x 58,993,368 (checked against Ultralytics in the test suite).

use crate::yolo::yolo11::Table;

/// `yolo26.yaml` as a [`Table`] of YOLO11's topology.
pub const TABLE: Table = Table {
    c3k_neck: true,
    attn_last: true,
    sppf_shortcut: true,
    end2end: true,
};

/// Detections the one-to-one head keeps per image (Ultralytics' `max_det` default).
pub const MAX_DET: i64 = 300;
