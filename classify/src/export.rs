//! `classify export`: a traced TorchScript module that Python's `torch.jit.load` runs with the
//! same outputs (logits for a normalised `(N, 3, size, size)` batch).

use std::path::Path;

use anyhow::{Context, Result};
use tch::{CModule, Device, Kind, Tensor};

use crate::predict::{self, ModelSource};

/// Traces the run's best model in evaluation mode and writes it to `out`; returns the input side.
pub fn export(run: &Path, out: &Path) -> Result<i64> {
    let (clf, _, transform) = predict::load(ModelSource::Run(run), Device::Cpu)?;
    let mut vs = clf.vs;
    vs.freeze();
    let size = transform.size as i64;
    let example = Tensor::randn([1, 3, size, size], (Kind::Float, Device::Cpu));
    let model = &clf.model;
    let module = CModule::create_by_tracing("Classifier", "forward", &[example], &mut |inputs| {
        vec![model.forward_t(&inputs[0], false)]
    })
    .context("tracing the model")?;
    module
        .save(out)
        .with_context(|| format!("writing {}", out.display()))?;
    Ok(size)
}
