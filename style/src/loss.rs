//! The perceptual losses of Gatys et al.: Gram matrices normalised by the feature size, content
//! and style mean-squared errors, and total variation.

use tch::{Kind, Reduction, Tensor};

/// Gram matrices `(N, C, C)` of features `(N, C, H, W)`: `F·Fᵀ / (C·H·W)`.
pub fn gram(f: &Tensor) -> Tensor {
    let s = f.size();
    let (n, c, hw) = (s[0], s[1], s[2] * s[3]);
    let flat = f.reshape([n, c, hw]);
    flat.bmm(&flat.transpose(1, 2)) / (c * hw) as f64
}

/// Mean squared error between features and their target.
pub fn content_loss(f: &Tensor, target: &Tensor) -> Tensor {
    f.mse_loss(target, Reduction::Mean)
}

/// Mean squared error between the Gram matrix of `f` and a target Gram matrix.
pub fn style_loss(f: &Tensor, target_gram: &Tensor) -> Tensor {
    gram(f).mse_loss(target_gram, Reduction::Mean)
}

/// Total variation: mean absolute difference of vertically and horizontally adjacent pixels.
pub fn tv_loss(x: &Tensor) -> Tensor {
    let (h, w) = (x.size()[2], x.size()[3]);
    let dy = (x.narrow(2, 1, h - 1) - x.narrow(2, 0, h - 1))
        .abs()
        .mean(Kind::Float);
    let dx = (x.narrow(3, 1, w - 1) - x.narrow(3, 0, w - 1))
        .abs()
        .mean(Kind::Float);
    dy + dx
}
