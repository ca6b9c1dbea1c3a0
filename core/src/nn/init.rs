//! Initialisations PyTorch has and tch's `nn::Init` lacks, applied in place to a variable after
//! it is created (layers built by tch's own constructors included).

use tch::Tensor;

/// `torch.nn.init.trunc_normal_`: fills `t` with a normal distribution of mean `mean` and
/// standard deviation `std` truncated to `[a, b]` (absolute bounds, as PyTorch's, which default
/// to ±2 whatever `std` is), by PyTorch's inverse-CDF method. Runs without autograd, so it may
/// be applied to a trainable variable.
pub fn trunc_normal_(t: &Tensor, mean: f64, std: f64, a: f64, b: f64) {
    // The standard normal CDF at the bounds, via libtorch's erf (Rust's is not stable).
    let cdf = |x: f64| {
        (1.0 + Tensor::from((x - mean) / std / 2f64.sqrt())
            .erf()
            .double_value(&[]))
            / 2.0
    };
    let (l, u) = (cdf(a), cdf(b));
    tch::no_grad(|| {
        let mut t = t.shallow_clone();
        let _ = t.uniform_(2.0 * l - 1.0, 2.0 * u - 1.0);
        let _ = t.erfinv_();
        let _ = t.g_mul_scalar_(std * 2f64.sqrt());
        let _ = t.g_add_scalar_(mean);
        let _ = t.clamp_(a, b);
    });
}
