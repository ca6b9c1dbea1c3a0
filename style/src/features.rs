//! The frozen feature extractor of the perceptual losses: a torchvision VGG (any depth, from its
//! ImageNet checkpoint, e.g. `vgg19-dcbb9e9d.pth`) or the partial VGG19 encoder `vgg_r31.pth`
//! (conv1_1 … relu3_1). Both take RGB images in [0, 1] and name their activations as the
//! literature does: `conv4_2` is the convolution's output (what the PyTorch tutorial taps),
//! `relu4_2` after the ReLU, `pool4` after the pool.

use std::path::Path;

use anyhow::{bail, Context, Result};
use ferrovis_core::backbone::{BackboneOptions, Vgg, VggConfig, IMAGENET_MEAN, IMAGENET_STD};
use ferrovis_core::checkpoint::{self, LoadOptions, StateDict};
use ferrovis_core::memory_format;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use crate::r31::{EncoderR31, ENCODER_LAYERS};

/// Where torchvision's VGG19 weights come from, for the message when none are given.
pub const VGG19_HINT: &str = "torchvision's VGG19 ImageNet weights are \
    https://download.pytorch.org/models/vgg19-dcbb9e9d.pth (they load as they are); a partial \
    VGG19 such as LinearStyleTransfer's vgg_r31.pth (conv1_1 … relu3_1) works too, with layers up \
    to relu3_1";

#[derive(Debug)]
enum Net {
    Vgg(Vgg),
    R31(Box<EncoderR31>),
}

/// A frozen VGG feature extractor and its variables.
#[derive(Debug)]
pub struct FeatureNet {
    /// The variables (frozen).
    pub vs: VarStore,
    net: Net,
    /// Which network: `vgg19`, `vgg16`, … or `vgg_r31`.
    pub name: String,
}

/// The VGG depth of a torchvision checkpoint, from its last `features.N.weight`.
fn vgg_name(sd: &StateDict) -> Option<&'static str> {
    let last = sd
        .iter()
        .filter_map(|(n, _)| {
            n.strip_prefix("features.")?
                .strip_suffix(".weight")?
                .parse::<usize>()
                .ok()
        })
        .max()?;
    Some(match last {
        18 => "vgg11",
        22 => "vgg13",
        28 => "vgg16",
        34 => "vgg19",
        25 => "vgg11_bn",
        31 => "vgg13_bn",
        40 => "vgg16_bn",
        49 => "vgg19_bn",
        _ => return None,
    })
}

impl FeatureNet {
    /// Loads `path`: a torchvision VGG checkpoint or `vgg_r31.pth`, told apart by their names.
    pub fn load(path: &Path, device: Device) -> Result<Self> {
        // A weights name (`vgg19`) is its cached file.
        let named = ferrovis_core::hub::local_or_named(path)?;
        let path = named.as_path();
        if !path.is_file() {
            bail!("{}: no such weights file; {VGG19_HINT}", path.display());
        }
        let sd = checkpoint::read(path).with_context(|| format!("reading {}", path.display()))?;
        let vs = VarStore::new(device);
        let (net, name) = if sd.get("conv6.weight").is_some() {
            (
                Net::R31(Box::new(EncoderR31::new(&vs.root()))),
                "vgg_r31".to_string(),
            )
        } else if let Some(name) = vgg_name(&sd) {
            let cfg = VggConfig::by_name(name).expect("a known VGG");
            let vgg = Vgg::new(&vs.root(), &cfg, &BackboneOptions::classes(0));
            (Net::Vgg(vgg), name.to_string())
        } else {
            bail!(
                "{} is neither a torchvision VGG checkpoint (features.N.weight) nor vgg_r31 \
                 (conv1 … conv6); {VGG19_HINT}",
                path.display()
            );
        };
        let opts = LoadOptions::default().skip("^classifier\\.")?;
        let report = checkpoint::load_into(&vs, &sd, &opts)
            .with_context(|| format!("loading {}", path.display()))?;
        if !report.missing.is_empty() || !report.mismatched.is_empty() {
            bail!("{} does not fit {name}\n{report}", path.display());
        }
        let mut fnet = FeatureNet { vs, net, name };
        fnet.vs.freeze();
        if matches!(fnet.net, Net::Vgg(_)) {
            // oneDNN's CPU convolutions are faster on NHWC; the input follows in `activations`.
            memory_format::vars_to_channels_last(&fnet.vs)?;
        }
        Ok(fnet)
    }

    /// A torchvision-layout VGG built from `vs` as it is (tests, random weights).
    pub fn from_vgg(vs: VarStore, vgg: Vgg, name: &str) -> Self {
        FeatureNet {
            vs,
            net: Net::Vgg(vgg),
            name: name.into(),
        }
    }

    /// Every activation name, shallow to deep.
    pub fn layer_names(&self) -> Vec<String> {
        match &self.net {
            Net::Vgg(v) => v.layer_names(),
            Net::R31(_) => ENCODER_LAYERS.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Checks that every name exists, naming the first that does not.
    pub fn check_layers(&self, wanted: &[String]) -> Result<()> {
        let names = self.layer_names();
        if let Some(bad) = wanted.iter().find(|w| !names.contains(w)) {
            bail!(
                "{} has no layer {bad:?}; its layers are {}",
                self.name,
                names.join(", ")
            );
        }
        Ok(())
    }

    /// The named activations of RGB images in [0, 1] `(N, 3, H, W)`, in the order asked.
    pub fn activations(&self, x: &Tensor, wanted: &[String]) -> Result<Vec<Tensor>> {
        self.check_layers(wanted)?;
        Ok(match &self.net {
            Net::Vgg(v) => {
                let dev = x.device();
                let mean = Tensor::from_slice(&IMAGENET_MEAN)
                    .to_kind(Kind::Float)
                    .view([1, 3, 1, 1])
                    .to_device(dev);
                let std = Tensor::from_slice(&IMAGENET_STD)
                    .to_kind(Kind::Float)
                    .view([1, 3, 1, 1])
                    .to_device(dev);
                let normalised = memory_format::channels_last(&((x - mean) / std))?;
                v.activations(&normalised, wanted, false)?
            }
            Net::R31(e) => e.activations(x, wanted),
        })
    }

    /// The layers a method uses unless told otherwise, `(content, style)`.
    ///
    /// [`DefaultLayers::Gatys`]: content conv4_2 and style conv1_1 … conv5_1 on a full VGG (the
    /// paper's and the PyTorch tutorial's choice); content conv3_1 and style conv1_1, conv2_1,
    /// conv3_1 on the relu3_1 encoder.
    ///
    /// [`DefaultLayers::Johnson`]: content at the last ReLU of block 2 and style at the last ReLU
    /// of blocks 1–4 (VGG16: relu2_2; relu1_2, relu2_2, relu3_3, relu4_3, as in the paper;
    /// VGG19: relu3_4, relu4_4; the relu3_1 encoder stops at relu3_1). The shallow content
    /// layer keeps the picture a network must reproduce from every photo.
    pub fn default_layers(&self, which: DefaultLayers) -> (Vec<String>, Vec<String>) {
        let v = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        match (which, &self.net) {
            (DefaultLayers::Gatys, Net::Vgg(_)) => (
                v(&["conv4_2"]),
                v(&["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"]),
            ),
            (DefaultLayers::Gatys, Net::R31(_)) => {
                (v(&["conv3_1"]), v(&["conv1_1", "conv2_1", "conv3_1"]))
            }
            (DefaultLayers::Johnson, _) => {
                let names = self.layer_names();
                let last_relu = |block: usize| {
                    let prefix = format!("relu{block}_");
                    names.iter().rev().find(|n| n.starts_with(&prefix)).cloned()
                };
                (
                    last_relu(2).into_iter().collect(),
                    (1..=4).filter_map(last_relu).collect(),
                )
            }
        }
    }
}

/// Which method's layer choice [`FeatureNet::default_layers`] gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultLayers {
    /// Optimisation (Gatys et al.).
    Gatys,
    /// Feed-forward training (Johnson et al.).
    Johnson,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random(name: &str) -> FeatureNet {
        let vs = VarStore::new(Device::Cpu);
        let cfg = VggConfig::by_name(name).expect("a torchvision VGG");
        let vgg = Vgg::new(&vs.root(), &cfg, &BackboneOptions::classes(0));
        FeatureNet::from_vgg(vs, vgg, name)
    }

    #[test]
    fn johnson_layers_are_the_last_relu_of_each_block() {
        let v = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // The paper's VGG16 choice.
        assert_eq!(
            random("vgg16").default_layers(DefaultLayers::Johnson),
            (
                v(&["relu2_2"]),
                v(&["relu1_2", "relu2_2", "relu3_3", "relu4_3"])
            )
        );
        assert_eq!(
            random("vgg19").default_layers(DefaultLayers::Johnson).1,
            v(&["relu1_2", "relu2_2", "relu3_4", "relu4_4"])
        );
        assert_eq!(
            random("vgg11").default_layers(DefaultLayers::Johnson).1,
            v(&["relu1_1", "relu2_1", "relu3_2", "relu4_2"])
        );
        assert_eq!(
            random("vgg19").default_layers(DefaultLayers::Gatys).0,
            v(&["conv4_2"])
        );
    }
}
