//! `style export`: a trained network traced to TorchScript.

use std::path::Path;

use anyhow::Result;
use tch::{Device, Kind, Tensor};

use super::predict::load_transformer;

/// Traces the network in `weights` (a run folder or a weights file) for `size`×`size` RGB inputs
/// in [0, 1] and writes TorchScript to `out`.
pub fn export(weights: &Path, out: &Path, size: i64) -> Result<()> {
    let (_vs, net) = load_transformer(weights, Device::Cpu)?;
    let example = Tensor::rand([1, 3, size, size], (Kind::Float, Device::Cpu));
    ferrovis_core::export::trace_to_file("TransformerNet", &[example], out, &mut |x| {
        vec![net.forward(&x[0])]
    })?;
    Ok(())
}
