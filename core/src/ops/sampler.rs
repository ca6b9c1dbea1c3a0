//! torchvision's `BalancedPositiveNegativeSampler`: per image, at most `batch_size_per_image`
//! labelled anchors or proposals for the loss, a `positive_fraction` of them positive when there
//! are enough, the rest negatives, both drawn at random.
//!
//! The draws are libtorch's `randperm` on its global generator, exactly as torchvision makes
//! them, so the same seed (`tch::manual_seed`, which the engine sets at every epoch) gives the
//! same samples as PyTorch.

use tch::{Kind, Tensor};

use crate::error::{Error, Result};

/// Samples positives and negatives for the detection losses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BalancedPositiveNegativeSampler {
    /// Elements sampled per image (Faster R-CNN: 256 anchors for the RPN, 512 proposals for the
    /// RoI heads).
    pub batch_size_per_image: i64,
    /// The share of positives at most (RPN 0.5, RoI heads 0.25).
    pub positive_fraction: f64,
}

impl BalancedPositiveNegativeSampler {
    /// For each image's labels (`1` or more positive, `0` negative, `-1` ignored), the masks
    /// `(positive, negative)` of the sampled elements, Uint8 like the labels' length.
    pub fn sample(&self, labels: &[Tensor]) -> Result<Vec<(Tensor, Tensor)>> {
        if !(0.0..=1.0).contains(&self.positive_fraction) || self.batch_size_per_image < 0 {
            return Err(Error::Invalid(format!(
                "sampler: batch_size_per_image {} and positive_fraction {} (0 to 1) expected",
                self.batch_size_per_image, self.positive_fraction
            )));
        }
        labels
            .iter()
            .enumerate()
            .map(|(i, l)| {
                if l.dim() != 1 {
                    return Err(Error::Invalid(format!(
                        "sampler: labels of image {i}: expected one dimension, got {:?}",
                        l.size()
                    )));
                }
                let positive = l.ge(1).nonzero().squeeze_dim(1);
                let negative = l.eq(0).nonzero().squeeze_dim(1);
                // Python's int(): truncation.
                let wanted = (self.batch_size_per_image as f64 * self.positive_fraction) as i64;
                let num_pos = positive.size()[0].min(wanted);
                let num_neg = negative.size()[0].min(self.batch_size_per_image - num_pos);
                let opts = (Kind::Int64, l.device());
                let perm1 = Tensor::randperm(positive.size()[0], opts).narrow(0, 0, num_pos);
                let perm2 = Tensor::randperm(negative.size()[0], opts).narrow(0, 0, num_neg);
                let mask = |chosen: &Tensor| {
                    let m = Tensor::zeros([l.size()[0]], (Kind::Uint8, l.device()));
                    let ones = Tensor::ones([chosen.size()[0]], (Kind::Uint8, l.device()));
                    m.index_put(&[Some(chosen)], &ones, false)
                };
                Ok((
                    mask(&positive.index_select(0, &perm1)),
                    mask(&negative.index_select(0, &perm2)),
                ))
            })
            .collect()
    }
}
