//! What the workflow asks of a torchvision detector, whichever it is: the [`Detector`] trait
//! Faster R-CNN, SSD, FCOS and RetinaNet implement, so training, validation and prediction hold a
//! `Box<dyn Detector>` and never ask which architecture it is.

use anyhow::{Context, Result};
use ferrovis_core::checkpoint::{self, LoadOptions, LoadReport, StateDict};
use tch::nn::VarStore;
use tch::Tensor;

use super::targets::{Detections, Target};

/// A torchvision detector built with its variables in a [`VarStore`].
pub trait Detector: std::fmt::Debug {
    /// The architecture's name (`fasterrcnn_resnet50_fpn`, `ssdlite320_mobilenet_v3_large`).
    fn arch(&self) -> &str;

    /// The input size `results` and `detect.json` report: the (last) short side, or SSD's fixed
    /// height.
    fn input_size(&self) -> usize;

    /// How many backbone layers `trainable_backbone_layers` counts in.
    fn backbone_layers(&self) -> usize;

    /// torchvision's `trainable_backbone_layers` default when starting from pretrained weights.
    fn default_trainable_layers(&self) -> usize;

    /// Freezes all but the last `n` backbone layers; returns how many tensors were frozen.
    fn set_trainable_backbone_layers(&self, vs: &VarStore, n: usize) -> Result<usize>;

    /// Lays the variables out as this detector runs fastest on `vs`'s device.
    fn prefer_layout(&self, _vs: &VarStore) -> Result<()> {
        Ok(())
    }

    /// Initialises what torchvision initialises itself when no weights are loaded.
    fn init_fresh(&self, _vs: &VarStore) {}

    /// Loads a torchvision detection checkpoint, or an ImageNet classification one into the
    /// backbone (`file` names it in messages).
    fn load_state_dict(
        &self,
        vs: &VarStore,
        sd: &StateDict,
        file: &std::path::Path,
    ) -> Result<LoadReport>;

    /// The training losses' names, torchvision's, in the order [`Detector::losses`] returns
    /// them.
    fn loss_names(&self) -> &'static [&'static str];

    /// The training losses of a batch (images `(3, H, W)` 0–1, targets in their pixels).
    fn losses(&self, images: &[Tensor], targets: &[Target]) -> Result<Vec<Tensor>>;

    /// Each image's detections, best first, in its own pixels.
    fn detect(&self, images: &[Tensor]) -> Result<Vec<Detections>>;
}

/// Whether `sd` is a whole torchvision detector's checkpoint (its names under `backbone.`)
/// rather than a classification checkpoint for the backbone alone.
pub fn is_detection_checkpoint(sd: &StateDict) -> bool {
    sd.iter().any(|(name, _)| name.starts_with("backbone."))
}

/// Loads `sd`, read from `path`, into `vs` with `opts`; an error names the file and `arch`.
pub fn load_checkpoint(
    vs: &VarStore,
    sd: &StateDict,
    opts: &LoadOptions,
    path: &std::path::Path,
    arch: &str,
) -> Result<LoadReport> {
    checkpoint::load_into(vs, sd, opts)
        .with_context(|| format!("loading {} into {arch}", path.display()))
}
