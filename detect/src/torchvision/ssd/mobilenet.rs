//! SSDlite's MobileNet backbones (Sandler et al., "MobileNetV2", 2018, section 6.2; Howard et
//! al., "Searching for MobileNetV3", 2019, section 6.2): the first map is the expansion inside
//! the last stride-2 block ("C4", stride 16), the second the network's last 1×1 convolution
//! (stride 32), and four extra blocks (1×1 → depthwise 3×3 stride 2 → 1×1, ReLU6) halve the
//! resolution down to 1×1 at 320 pixels.
//!
//! MobileNetV3-Large is torchvision's `SSDLiteFeatureExtractorMobileNet` with its split
//! layout (`features.0.*`, `features.1.*`, see [`MobileNetV3::ssdlite_features`]). MobileNetV2
//! is the paper's original pairing, which torchvision does not build; it keeps MobileNetV2's own
//! names (`features.N.conv.*`) so an ImageNet checkpoint loads under `backbone.` unchanged.

use tch::nn::Path;
use tch::Tensor;

use ferrovis_core::backbone::{BackboneOptions, MobileNetV2, MobileNetV3, MobileNetV3Config};
use ferrovis_core::nn::{Activation, Conv2dSpec, ConvNormAct, NormLayer};

use super::head::reinit_normal;

/// Widths of the four extra blocks.
const EXTRA_WIDTHS: [i64; 4] = [512, 256, 256, 128];

/// The MobileNet under `backbone.features`.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum LiteBody {
    /// torchvision's SSDlite320 layout.
    V3(MobileNetV3),
    /// MobileNetV2 with its own names.
    V2(MobileNetV2),
}

/// torchvision's `_extra_block`: 1×1 to half the width, depthwise 3×3 stride 2, 1×1 to the width.
#[derive(Debug)]
struct ExtraBlock([ConvNormAct; 3]);

impl ExtraBlock {
    fn new(p: &Path, c_in: i64, c_out: i64, norm: NormLayer) -> Self {
        let mid = c_out / 2;
        let cna = |i: &str, a, b, spec| {
            let block = ConvNormAct::with_norm(
                &(p / i),
                a,
                b,
                spec,
                Activation::ReLU6,
                norm,
                (0.001, 0.03),
            );
            reinit_normal(&block.conv);
            block
        };
        ExtraBlock([
            cna("0", c_in, mid, Conv2dSpec::new(1)),
            cna("1", mid, mid, Conv2dSpec::new(3).stride(2).groups(mid)),
            cna("2", mid, c_out, Conv2dSpec::new(1)),
        ])
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.0
            .iter()
            .fold(x.shallow_clone(), |y, b| b.forward_t(&y, train))
    }
}

/// SSDlite's backbone: a MobileNet and four extra blocks.
#[derive(Debug)]
pub struct SsdLiteBackbone {
    /// The MobileNet.
    pub body: LiteBody,
    extra: Vec<ExtraBlock>,
}

impl SsdLiteBackbone {
    /// MobileNetV3-Large under `p` (`p.features.*`, `p.extra.*`), with `reduced_tail` (what
    /// torchvision builds unless an ImageNet backbone is loaded) and BatchNorm eps 0.001,
    /// momentum 0.03. Every convolution starts from N(0, 0.03), as torchvision initialises it
    /// when no ImageNet backbone is given (loaded weights replace it).
    pub fn mobilenet_v3_large(p: &Path, reduced_tail: bool, norm: NormLayer) -> Self {
        let config = MobileNetV3Config {
            reduced_tail,
            ..MobileNetV3Config::by_name("mobilenet_v3_large").expect("a known name")
        };
        let opts = BackboneOptions {
            num_classes: 0,
            norm,
            ..Default::default()
        };
        let net = MobileNetV3::ssdlite_features(&(p / "features"), &config, &opts);
        let extra = Self::extra(p, net.ssdlite_channels()[1], norm);
        SsdLiteBackbone {
            body: LiteBody::V3(net),
            extra,
        }
    }

    /// MobileNetV2 under `p` (`p.features.N.conv.*`, `p.extra.*`).
    pub fn mobilenet_v2(p: &Path, norm: NormLayer) -> Self {
        let opts = BackboneOptions {
            num_classes: 0,
            norm,
            ..Default::default()
        };
        let net = MobileNetV2::new(p, &opts);
        let extra = Self::extra(p, net.ssdlite_channels()[1], norm);
        SsdLiteBackbone {
            body: LiteBody::V2(net),
            extra,
        }
    }

    fn extra(p: &Path, c_in: i64, norm: NormLayer) -> Vec<ExtraBlock> {
        let mut c = c_in;
        EXTRA_WIDTHS
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                let block = ExtraBlock::new(&(p / "extra" / i.to_string()), c, w, norm);
                c = w;
                block
            })
            .collect()
    }

    /// The six maps.
    pub fn forward_t(&self, x: &Tensor, body_train: bool, train: bool) -> Vec<Tensor> {
        let [c4, last] = match &self.body {
            LiteBody::V3(net) => net.ssdlite_maps(x, body_train),
            LiteBody::V2(net) => net.ssdlite_maps(x, body_train),
        };
        let mut out = vec![c4, last.shallow_clone()];
        let mut y = last;
        for block in &self.extra {
            y = block.forward_t(&y, train);
            out.push(y.shallow_clone());
        }
        out
    }

    /// Channels of the six maps.
    pub fn out_channels(&self) -> Vec<i64> {
        let [a, b] = match &self.body {
            LiteBody::V3(net) => net.ssdlite_channels(),
            LiteBody::V2(net) => net.ssdlite_channels(),
        };
        let mut c = vec![a, b];
        c.extend(EXTRA_WIDTHS);
        c
    }

    /// torchvision's `stage_indices` for the MobileNet's `features` (the stem, every stride-2
    /// block, the last module): `trainable_backbone_layers` counts on them.
    pub fn stage_indices(&self) -> Vec<usize> {
        match &self.body {
            LiteBody::V3(net) => net.stage_indices(),
            LiteBody::V2(_) => MobileNetV2::STAGE_INDICES.to_vec(),
        }
    }

    /// The index in the MobileNet's own `features` of a backbone variable's module, for
    /// `trainable_backbone_layers`; `None` for the extra blocks.
    pub fn module_index(&self, name: &str) -> Option<usize> {
        let rest = name.strip_prefix("backbone.features.")?;
        let mut parts = rest.split('.').map(|s| s.parse::<usize>().ok());
        let first = parts.next()??;
        match &self.body {
            LiteBody::V2(_) => Some(first),
            LiteBody::V3(net) => {
                // `features.0.i` is module i (i = C4 is its expansion); `features.1.j` is
                // module C4 + j (j = 0 the rest of C4).
                let second = parts.next()??;
                let c4 = net.stage_indices()[4];
                Some(if first == 0 { second } else { c4 + second })
            }
        }
    }
}
