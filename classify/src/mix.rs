//! Mixup and CutMix: batch-level augmentations that blend two images and their labels.

use tch::{Device, Kind, Tensor};

/// Mixup or CutMix of a batch (when configured): the mixed images, the permutation whose images
/// (and labels) were mixed in, and the weight λ of the original labels. Draws from libtorch's generator, which the engine
/// seeds per epoch, so it resumes exactly.
pub fn mix_batch(x: &Tensor, mixup: f64, cutmix: f64) -> Option<(Tensor, Tensor, f64)> {
    if mixup <= 0.0 && cutmix <= 0.0 {
        return None;
    }
    let use_cutmix = if mixup > 0.0 && cutmix > 0.0 {
        Tensor::rand([1], (Kind::Float, Device::Cpu)).double_value(&[0]) < 0.5
    } else {
        cutmix > 0.0
    };
    let alpha = if use_cutmix { cutmix } else { mixup };
    // The first component of Dirichlet(α, α) is Beta(α, α).
    let lam: f64 = Tensor::from_slice(&[alpha, alpha])
        .internal_sample_dirichlet()
        .double_value(&[0]);
    let n = x.size()[0];
    let perm = Tensor::randperm(n, (Kind::Int64, Device::Cpu)).to_device(x.device());
    let shuffled = x.index_select(0, &perm);
    if !use_cutmix {
        return Some((x * lam + shuffled * (1.0 - lam), perm, lam));
    }
    let (h, w) = (x.size()[2], x.size()[3]);
    let cut = (1.0 - lam).sqrt();
    let (ch, cw) = ((h as f64 * cut) as i64, (w as f64 * cut) as i64);
    let centre = Tensor::rand([2], (Kind::Float, Device::Cpu));
    let (cy, cx) = (
        (centre.double_value(&[0]) * h as f64) as i64,
        (centre.double_value(&[1]) * w as f64) as i64,
    );
    let (y0, y1) = ((cy - ch / 2).clamp(0, h), (cy + ch / 2).clamp(0, h));
    let (x0, x1) = ((cx - cw / 2).clamp(0, w), (cx + cw / 2).clamp(0, w));
    let mixed = x.copy();
    if y1 > y0 && x1 > x0 {
        mixed
            .narrow(2, y0, y1 - y0)
            .narrow(3, x0, x1 - x0)
            .copy_(&shuffled.narrow(2, y0, y1 - y0).narrow(3, x0, x1 - x0));
    }
    // λ is what is left of each original image after the (clipped) box.
    let lam = 1.0 - ((y1 - y0) * (x1 - x0)) as f64 / (h * w) as f64;
    Some((mixed, perm, lam))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixup_blends_with_the_shuffled_batch() {
        tch::manual_seed(3);
        let x = Tensor::randn([4, 3, 8, 8], (Kind::Float, Device::Cpu));
        assert!(mix_batch(&x, 0.0, 0.0).is_none());
        let (mixed, perm, lam) = mix_batch(&x, 0.4, 0.0).unwrap();
        assert!((0.0..=1.0).contains(&lam));
        let want = &x * lam + x.index_select(0, &perm) * (1.0 - lam);
        assert!(f64::try_from((mixed - want).abs().max()).unwrap() < 1e-6);
    }

    #[test]
    fn cutmix_lambda_is_the_share_of_original_pixels() {
        tch::manual_seed(5);
        // Image i is filled with the value i: every pixel tells where it came from.
        let x = Tensor::arange(4, (Kind::Float, Device::Cpu))
            .view([4, 1, 1, 1])
            .expand([4, 3, 10, 12], true)
            .copy();
        for _ in 0..20 {
            let (mixed, perm, lam) = mix_batch(&x, 0.0, 1.0).unwrap();
            for i in 0..4 {
                let own = mixed
                    .get(i)
                    .eq(i as f64)
                    .to_kind(Kind::Float)
                    .mean(Kind::Float)
                    .double_value(&[]);
                let j = perm.int64_value(&[i]);
                if j != i {
                    assert!(
                        (own - lam).abs() < 1e-6,
                        "image {i}: {own} of its pixels kept, λ = {lam}"
                    );
                }
            }
        }
    }
}
