//! What torchvision's detectors take and give per image: the ground truth ([`Target`]), the
//! detections ([`Detections`]), and the two-stage detectors' four losses ([`RcnnLosses`]).

use tch::Tensor;

/// One image's ground truth, in its own pixel coordinates.
#[derive(Debug)]
pub struct Target {
    /// `(K, 4)` float boxes `[x1, y1, x2, y2]`.
    pub boxes: Tensor,
    /// `(K,)` Int64 class indices, 1-based (0 is the background).
    pub labels: Tensor,
}

impl Target {
    /// A copy sharing the tensors' storage.
    pub fn shallow_clone(&self) -> Self {
        Target {
            boxes: self.boxes.shallow_clone(),
            labels: self.labels.shallow_clone(),
        }
    }
}

/// One image's detections, best first.
#[derive(Debug)]
pub struct Detections {
    /// `(D, 4)` boxes `[x1, y1, x2, y2]`.
    pub boxes: Tensor,
    /// `(D,)` scores.
    pub scores: Tensor,
    /// `(D,)` Int64 class indices (1-based; 0, the background, never appears).
    pub labels: Tensor,
}

/// The four losses of a two-stage detector, under torchvision's names.
#[derive(Debug)]
pub struct RcnnLosses {
    /// RoI heads: cross-entropy over the sampled proposals.
    pub loss_classifier: Tensor,
    /// RoI heads: smooth L1 (β = 1/9) of the positives' class-specific offsets.
    pub loss_box_reg: Tensor,
    /// RPN: binary cross-entropy over the sampled anchors.
    pub loss_objectness: Tensor,
    /// RPN: smooth L1 (β = 1/9) of the positive anchors' offsets.
    pub loss_rpn_box_reg: Tensor,
}

impl RcnnLosses {
    /// Their sum, what torchvision's references back-propagate.
    pub fn total(&self) -> Tensor {
        &self.loss_classifier + &self.loss_box_reg + &self.loss_objectness + &self.loss_rpn_box_reg
    }

    /// `(name, value)` pairs in torchvision's order.
    pub fn named(&self) -> [(&'static str, &Tensor); 4] {
        [
            ("loss_classifier", &self.loss_classifier),
            ("loss_box_reg", &self.loss_box_reg),
            ("loss_objectness", &self.loss_objectness),
            ("loss_rpn_box_reg", &self.loss_rpn_box_reg),
        ]
    }
}
