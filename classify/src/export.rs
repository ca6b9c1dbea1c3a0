//! `classify export`: a traced TorchScript module that Python's `torch.jit.load` runs, or an
//! ONNX model ONNX Runtime runs, with the same outputs (logits for a normalised
//! `(N, 3, size, size)` batch; the ONNX graph is traced at batch 1).

use std::path::Path;

use anyhow::Result;
use tch::{Device, Kind, Tensor};

use ferrovis_app::args::ExportTarget;
use ferrovis_core::onnx::OnnxOptions;

use crate::predict::{self, ModelSource};

/// Traces a run's model (a run folder's best weights, or a weights file inside one) in
/// evaluation mode and writes it to `out` as `target` says (format, free dimensions); returns the input side.
pub fn export(weights: &Path, out: &Path, target: impl Into<ExportTarget>) -> Result<i64> {
    let source = ModelSource::resolve(weights, None)?;
    let (clf, classes, transform) = predict::load(&source, Device::Cpu)?;
    if clf.knn.is_some() {
        anyhow::bail!(
            "{} is a k-NN run (train.mode = \"knn\"): its classifier is the stored features in \
             knn.safetensors, not a traceable head; export a linear-probe or fine-tuned run",
            weights.display()
        );
    }
    let mut vs = clf.vs;
    vs.freeze();
    let size = transform.size as i64;
    let example = Tensor::randn([1, 3, size, size], (Kind::Float, Device::Cpu));
    let model = &clf.model;
    let options = OnnxOptions {
        metadata: vec![
            ("task".into(), "classify".into()),
            ("imgsz".into(), format!("[{size}, {size}]")),
            (
                "names".into(),
                ferrovis_core::onnx::names_property(&classes),
            ),
        ],
        ..OnnxOptions::default()
    };
    ferrovis_app::export::write(
        target.into(),
        "Classifier",
        &vs,
        example,
        &options,
        out,
        &|x| vec![model.forward_t(x, false)],
    )?;
    Ok(size)
}
