//! What every segmentation network returns.

use tch::Tensor;

/// Main logits and, for DeepLabV3 and FCN with their auxiliary head, the auxiliary logits; both
/// `(N, classes, H, W)` at the input size.
#[derive(Debug)]
pub struct SegmentationLogits {
    /// The model's prediction.
    pub out: Tensor,
    /// The auxiliary head's (DeepLabV3's and FCN's on `layer3`), trained with a smaller weight.
    pub aux: Option<Tensor>,
}
