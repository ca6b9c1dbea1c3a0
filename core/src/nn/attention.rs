//! Multi-head self-attention over a packed query/key/value projection, as ViT-style blocks
//! (torchvision's `nn.MultiheadAttention`, timm's and DINOv2's `Attention`) compute it.

use tch::Tensor;

/// Scaled dot-product attention of `qkv` `(N, L, 3E)` (queries, keys and values side by side,
/// each split into `num_heads` heads), no mask, no dropout; the heads joined back `(N, L, E)`.
pub fn packed_self_attention(qkv: &Tensor, num_heads: i64) -> Tensor {
    let size = qkv.size();
    let (n, l, e) = (size[0], size[1], size[2] / 3);
    let qkv = qkv
        .view([n, l, 3, num_heads, e / num_heads])
        .permute([2, 0, 3, 1, 4]);
    let y = Tensor::scaled_dot_product_attention(
        &qkv.get(0),
        &qkv.get(1),
        &qkv.get(2),
        None::<Tensor>,
        0.0,
        false,
        None,
        false,
    );
    y.transpose(1, 2).reshape([n, l, e])
}
