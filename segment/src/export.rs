//! `segment export`: a traced TorchScript module for `torch.jit.load`, or an ONNX model for ONNX
//! Runtime (traced at batch 1).
//!
//! Input: an image normalised with the run's mean and std, `(N, 3, size, size)`. Output: the main
//! head's logits `(N, classes, size, size)` (DeepLabV3's and FCN's auxiliary heads, a training
//! aid, are left out); the class of a pixel is their argmax. The padding to a multiple of 32 that
//! U-Net needs is traced for `size`: export at the size the module will be given.

use std::path::Path;

use anyhow::{bail, Result};
use tch::{Device, Kind, Tensor};

use ferrovis_app::args::ExportTarget;
use ferrovis_core::onnx::OnnxOptions;

use crate::predict::{load_model, LoadedModel};

/// Traces the model in `weights` (a run folder, or a weights file inside one) for `size`×`size`
/// inputs (default: the run's inference size) and writes it to `out`. Returns the loaded model
/// and the size traced.
pub fn export(
    weights: &Path,
    out: &Path,
    target: impl Into<ExportTarget>,
    size: Option<usize>,
) -> Result<(LoadedModel, usize)> {
    let mut loaded = load_model(weights, None, None, Device::Cpu)?;
    loaded.model.vs.freeze();
    let size = size.unwrap_or(loaded.meta.infer_size);
    if size == 0 {
        bail!("the export size must be positive");
    }
    let example = Tensor::randn([1, 3, size as i64, size as i64], (Kind::Float, Device::Cpu));
    let options = OnnxOptions {
        metadata: vec![
            ("task".into(), "segment".into()),
            ("imgsz".into(), format!("[{size}, {size}]")),
            (
                "names".into(),
                ferrovis_core::onnx::names_property(&loaded.meta.names),
            ),
            ("mean".into(), format!("{:?}", loaded.meta.mean)),
            ("std".into(), format!("{:?}", loaded.meta.std)),
        ],
        ..OnnxOptions::default()
    };
    let model = &loaded.model;
    ferrovis_app::export::write(
        target.into(),
        "SegmentationModel",
        &model.vs,
        example,
        &options,
        out,
        &|x| vec![model.forward_t(x, false).out],
    )?;
    Ok((loaded, size))
}
