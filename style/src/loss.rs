//! The perceptual losses of Gatys et al.: Gram matrices normalised by the feature size, content
//! and style mean-squared errors, and total variation.

use anyhow::Result;
use tch::{Kind, Reduction, Tensor};

use crate::features::{DefaultLayers, FeatureNet};

/// Which layers the perceptual loss compares and how its terms are weighted; Gatys'
/// optimisation and the fast network's training share it, so one setting means the same in
/// both.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PerceptualLoss {
    /// Layers whose activations carry the content (empty: the method's default, see
    /// [`FeatureNet::default_layers`]).
    pub content_layers: Vec<String>,
    /// Layers whose Gram matrices carry the style (empty: the method's default).
    pub style_layers: Vec<String>,
    /// Weight of the content term.
    pub content_weight: f64,
    /// Weight of the style term (summed over the style layers).
    pub style_weight: f64,
    /// Weight of the total-variation term.
    pub tv_weight: f64,
}

impl Default for PerceptualLoss {
    /// The method's default layers, content 1, style 10⁵, no total variation. 10⁵ is the PyTorch
    /// examples' fast-style ratio (style 10¹⁰ to content 10⁵, Gram matrices normalised as ours
    /// are). The neural-transfer tutorial uses 10⁶ but starts from the content image; from noise
    /// (as a feed-forward network effectively starts), with Gatys' layers on the relu3_1
    /// encoder, 10⁶ loses the content while 10⁵ keeps it, and from the content both give the
    /// same strongly stylised image.
    fn default() -> Self {
        PerceptualLoss {
            content_layers: Vec::new(),
            style_layers: Vec::new(),
            content_weight: 1.0,
            style_weight: 1e5,
            tv_weight: 0.0,
        }
    }
}

/// The weighted terms of one evaluation of a [`PerceptualLoss`].
pub struct WeightedTerms {
    /// Content weight × content loss.
    pub content: Tensor,
    /// Style weight × style loss.
    pub style: Tensor,
    /// TV weight × total variation.
    pub tv: Tensor,
}

impl WeightedTerms {
    /// Their sum, the quantity optimised.
    pub fn total(&self) -> Tensor {
        &self.content + &self.style + &self.tv
    }
}

impl PerceptualLoss {
    /// These settings with empty layer lists replaced by `net`'s defaults for a method; every
    /// layer is checked to exist in `net`.
    pub fn resolved(&self, net: &FeatureNet, defaults: DefaultLayers) -> Result<Self> {
        let (content, style) = net.default_layers(defaults);
        let mut out = self.clone();
        if out.content_layers.is_empty() {
            out.content_layers = content;
        }
        if out.style_layers.is_empty() {
            out.style_layers = style;
        }
        net.check_layers(&out.content_layers)?;
        net.check_layers(&out.style_layers)?;
        Ok(out)
    }

    /// The loss of `images` `(N, 3, H, W)` in [0, 1] against the content layers' target
    /// activations (one per content layer, batch N) and the style layers' target Gram matrices
    /// (one per style layer, batch 1 or N). Call on [`resolved`](Self::resolved) settings.
    pub fn terms(
        &self,
        net: &FeatureNet,
        images: &Tensor,
        content_targets: &[Tensor],
        style_grams: &[Tensor],
    ) -> Result<WeightedTerms> {
        let mut wanted = self.content_layers.clone();
        wanted.extend(self.style_layers.iter().cloned());
        let feats = net.activations(images, &wanted)?;
        let (content_feats, style_feats) = feats.split_at(self.content_layers.len());
        let zero = || Tensor::zeros([], (Kind::Float, images.device()));
        let mut c = zero();
        for (f, t) in content_feats.iter().zip(content_targets) {
            c += content_loss(f, t);
        }
        let mut s = zero();
        for (f, g) in style_feats.iter().zip(style_grams) {
            s += style_loss(f, &g.expand([f.size()[0], -1, -1], false));
        }
        let tv = if self.tv_weight > 0.0 {
            tv_loss(images) * self.tv_weight
        } else {
            zero()
        };
        Ok(WeightedTerms {
            content: c * self.content_weight,
            style: s * self.style_weight,
            tv,
        })
    }
}

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
