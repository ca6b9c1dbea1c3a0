//! `style val`: a trained network scored with its run's perceptual loss.

use std::path::Path;

use anyhow::{Context, Result};
use ferrovis_core::run::resolve_weights;
use tch::Device;

use super::predict::load_transformer;
use super::train::{content_batch, FastConfig, FastTask};
use crate::features::FeatureNet;

/// What `style val` measures: the weighted perceptual-loss terms of a trained network's outputs,
/// averaged over content images (the quantity training minimised, on images it may not have
/// seen).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Validation {
    /// Content images scored.
    pub images: usize,
    /// Total loss.
    pub loss: f64,
    /// Weighted content term.
    pub content: f64,
    /// Weighted style term.
    pub style: f64,
    /// Weighted total-variation term.
    pub tv: f64,
}

/// Scores the network in `weights` (a `style train` run folder, or a weights file inside one)
/// with its run's loss, style image and VGG, on the images of `content_dir` (default: the
/// run's content folder), `max_images` at most (0: all).
pub fn validate(
    weights: &Path,
    content_dir: Option<&Path>,
    max_images: usize,
    device: Device,
) -> Result<Validation> {
    let resolved = resolve_weights(weights)?;
    let cfg: FastConfig = resolved.meta()?.with_context(|| {
        format!(
            "{} is not in a style run folder (no style.json): val needs the run's style image, \
             VGG and loss",
            weights.display()
        )
    })?;
    let (_vs, net) = load_transformer(&resolved.file, device)?;
    let fnet = FeatureNet::load(&cfg.vgg, device)?;
    let dir = content_dir.unwrap_or(&cfg.content_dir);
    let images = content_batch(dir, cfg.size, max_images)?;
    let task = FastTask::new(&net, &fnet, &cfg, images.shallow_clone(), device)?;
    let n = images.size()[0];
    let mut sums = [0.0f64; 4];
    for start in (0..n).step_by(task.batch_size) {
        let k = (task.batch_size as i64).min(n - start);
        let x = images.narrow(0, start, k).to_device(device);
        let t = tch::no_grad(|| task.terms(&x))?;
        // Each term is a batch mean: weight it by the batch's size for the mean over images.
        for (sum, term) in sums
            .iter_mut()
            .zip([&t.total(), &t.content, &t.style, &t.tv])
        {
            *sum += term.double_value(&[]) * k as f64;
        }
    }
    let mean = |i: usize| sums[i] / n as f64;
    Ok(Validation {
        images: n as usize,
        loss: mean(0),
        content: mean(1),
        style: mean(2),
        tv: mean(3),
    })
}
