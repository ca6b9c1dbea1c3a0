//! `style export`: a trained network traced to TorchScript or written as ONNX.

use std::path::Path;

use anyhow::Result;
use tch::{Device, Kind, Tensor};

use ferrovis_app::args::ExportTarget;
use ferrovis_core::onnx::OnnxOptions;

use super::predict::load_transformer;

/// Traces the network in `weights` (a run folder or a weights file) for `size`×`size` RGB inputs
/// in [0, 1] and writes it to `out` as `target` says.
pub fn export(
    weights: &Path,
    out: &Path,
    target: impl Into<ExportTarget>,
    size: i64,
) -> Result<()> {
    let (vs, net) = load_transformer(weights, Device::Cpu)?;
    let example = Tensor::rand([1, 3, size, size], (Kind::Float, Device::Cpu));
    let options = OnnxOptions {
        metadata: vec![
            ("task".into(), "style".into()),
            ("imgsz".into(), format!("[{size}, {size}]")),
        ],
        ..OnnxOptions::default()
    };
    ferrovis_app::export::write(
        target.into(),
        "TransformerNet",
        &vs,
        example,
        &options,
        out,
        &|x| vec![net.forward(x)],
    )?;
    Ok(())
}
