//! `detect export`: a traced TorchScript module for `torch.jit.load`, or an ONNX model in
//! Ultralytics' layout (`images` → `output0`, BatchNorm folded, its metadata properties) for
//! ONNX Runtime and the tools that read Ultralytics' exports.
//!
//! Input: RGB in [0, 1], `(N, 3, imgsz, imgsz)` (letterboxed as `detect predict` does). Output:
//! `(N, 4 + classes, anchors)`, each anchor's box centre x, y, width and height in input pixels
//! followed by its class probabilities: what Ultralytics' exported models return. Non-maximum
//! suppression is not in the graph (which boxes survive depends on the data, which a trace cannot
//! record): run it on this output, as `detect predict` does with [`crate::yolo::postprocess`].

use std::path::Path;

use anyhow::{bail, Result};
use tch::{Device, Kind, Tensor};

use ferrovis_app::args::{ExportFormat, ExportTarget};
use ferrovis_core::onnx::{Nms, OnnxOptions};

use crate::yolo::predict::{load_model, LoadedModel};

/// Traces the model in `weights` (a run folder, or any checkpoint `detect predict` takes) for
/// `imgsz`×`imgsz` inputs (default: the size it was trained at) and writes it to `out` in
/// `format`. Returns the loaded model and the size traced.
pub fn export(
    weights: &Path,
    out: &Path,
    target: impl Into<ExportTarget>,
    imgsz: Option<usize>,
) -> Result<(LoadedModel, usize)> {
    export_with(weights, out, target.into(), imgsz, None)
}

/// [`export`] with non-maximum suppression in the ONNX graph (Ultralytics' `nms=True`): the
/// output is `(N, max_det, 6)` rows `x1, y1, x2, y2, score, class` in input pixels, by
/// decreasing score, zeros after the last detection; each box keeps its best class, as
/// `detect predict` does.
pub fn export_with_nms(
    weights: &Path,
    out: &Path,
    target: impl Into<ExportTarget>,
    imgsz: Option<usize>,
    nms: Nms,
) -> Result<(LoadedModel, usize)> {
    let target: ExportTarget = target.into();
    if target.format != ExportFormat::Onnx {
        bail!("--nms writes the suppression into an ONNX graph: export with --format onnx");
    }
    export_with(weights, out, target, imgsz, Some(nms))
}

fn export_with(
    weights: &Path,
    out: &Path,
    target: ExportTarget,
    imgsz: Option<usize>,
    nms: Option<Nms>,
) -> Result<(LoadedModel, usize)> {
    let (mut m, size) = prepare(weights, imgsz)?;
    m.vs.freeze();
    let example = Tensor::rand([1, 3, size as i64, size as i64], (Kind::Float, Device::Cpu));
    let name = m.model.config().name();
    let options = OnnxOptions {
        nms,
        ..onnx_options(&m, size, &["output0"])
    };
    ferrovis_app::export::write(target, &name, &m.vs, example, &options, out, &|x| {
        vec![m.model.predict(x)]
    })?;
    Ok((m, size))
}

/// YOLO26's NMS-free export: the one-to-one head's [`Detect::decode_end2end`] rows, `(N, 300, 6)`
/// (`x1, y1, x2, y2, score, class` in input pixels, by decreasing score), as Ultralytics exports
/// with `nms=False`. A model without a one-to-one head is an error naming what it is.
///
/// [`Detect::decode_end2end`]: crate::yolo::head::Detect::decode_end2end
pub fn export_end2end(
    weights: &Path,
    out: &Path,
    target: impl Into<ExportTarget>,
    imgsz: Option<usize>,
) -> Result<(LoadedModel, usize)> {
    let target: ExportTarget = target.into();
    let (mut m, size) = prepare(weights, imgsz)?;
    if !m.model.detect().is_end2end() {
        bail!(
            "{}: a {} has no one-to-one head to export without NMS (only YOLO26 has one)",
            weights.display(),
            m.model.config().version
        );
    }
    m.vs.freeze();
    let example = Tensor::rand([1, 3, size as i64, size as i64], (Kind::Float, Device::Cpu));
    let name = m.model.config().name();
    let max_det = crate::yolo::yolo26::MAX_DET;
    let options = onnx_options(&m, size, &["output0"]);
    ferrovis_app::export::write(target, &name, &m.vs, example, &options, out, &|x| {
        m.model.predict_end2end(x, max_det).into_iter().collect()
    })?;
    Ok((m, size))
}

/// Ultralytics' input and output names and metadata properties (`names`, `stride`, `imgsz`,
/// `task`, `batch`, `channels`, …), so that tools reading its ONNX exports read ours.
fn onnx_options(m: &LoadedModel, size: usize, outputs: &[&str]) -> OnnxOptions {
    let names: Vec<String> = m.names.iter().map(|n| n.to_string()).collect();
    let config = m.model.config();
    OnnxOptions {
        input_names: vec!["images".into()],
        output_names: outputs.iter().map(|s| s.to_string()).collect(),
        metadata: vec![
            (
                "description".into(),
                format!("{} exported by ferrovis", config.name()),
            ),
            ("author".into(), "ferrovis".into()),
            ("version".into(), env!("CARGO_PKG_VERSION").into()),
            ("stride".into(), "32".into()),
            ("task".into(), "detect".into()),
            ("batch".into(), "1".into()),
            ("imgsz".into(), format!("[{size}, {size}]")),
            ("names".into(), ferrovis_core::onnx::names_property(&names)),
            ("channels".into(), "3".into()),
        ],
        // Ultralytics' name for the free anchor count of a dynamic export.
        dim_names: vec![("output0".into(), 2, "anchors".into())],
        ..OnnxOptions::default()
    }
}

/// The model in `weights` and the size to trace it at (`imgsz`, default the training size).
fn prepare(weights: &Path, imgsz: Option<usize>) -> Result<(LoadedModel, usize)> {
    let m = load_model(weights, Device::Cpu, false)?;
    let size = imgsz.unwrap_or(m.imgsz);
    if size == 0 || !size.is_multiple_of(32) {
        bail!("imgsz={size} must be a positive multiple of 32 (the largest stride)");
    }
    Ok((m, size))
}
