//! `detect export`: a traced TorchScript module for `torch.jit.load`.
//!
//! Input: RGB in [0, 1], `(N, 3, imgsz, imgsz)` (letterboxed as `detect predict` does). Output:
//! `(N, 4 + classes, anchors)`, each anchor's box centre x, y, width and height in input pixels
//! followed by its class probabilities: what Ultralytics' exported models return. Non-maximum
//! suppression is not in the graph (which boxes survive depends on the data, which a trace cannot
//! record): run it on this output, as `detect predict` does with [`crate::yolo::postprocess`].

use std::path::Path;

use anyhow::{bail, Result};
use tch::{Device, Kind, Tensor};

use crate::yolo::predict::{load_model, LoadedModel};

/// Traces the model in `weights` (a run folder, or any checkpoint `detect predict` takes) for
/// `imgsz`×`imgsz` inputs (default: the size it was trained at) and writes it to `out`. Returns
/// the loaded model and the size traced.
pub fn export(weights: &Path, out: &Path, imgsz: Option<usize>) -> Result<(LoadedModel, usize)> {
    let mut m = load_model(weights, Device::Cpu, false)?;
    m.vs.freeze();
    let size = imgsz.unwrap_or(m.imgsz);
    if size == 0 || !size.is_multiple_of(32) {
        bail!("imgsz={size} must be a positive multiple of 32 (the largest stride)");
    }
    let example = Tensor::rand([1, 3, size as i64, size as i64], (Kind::Float, Device::Cpu));
    let name = m.model.config().name();
    ferrovis_core::export::trace_to_file(&name, &[example], out, &mut |x| {
        vec![m.model.predict(&x[0])]
    })?;
    Ok((m, size))
}
