//! What every task's `export` does once it has its model: trace the forward on an example and
//! write it in the format asked for, TorchScript (`core::export`) or ONNX (`core::onnx`).

use std::path::Path;

use ferrovis_core::onnx::{Dynamic, OnnxOptions};
use ferrovis_core::{Error, Result};
use tch::nn::VarStore;
use tch::Tensor;

use crate::args::{ExportFormat, ExportTarget};

/// Writes `forward`, traced on `example`, to `out` as `target` says: a TorchScript module named
/// `name`, or an ONNX model with `onnx` (names, metadata) whose initialisers take `vs`'s names,
/// with the target's free dimensions. `vs` must be frozen.
pub fn write(
    target: ExportTarget,
    name: &str,
    vs: &VarStore,
    example: Tensor,
    onnx: &OnnxOptions,
    out: &Path,
    forward: &dyn Fn(&Tensor) -> Vec<Tensor>,
) -> Result<()> {
    match target.format {
        ExportFormat::Torchscript if target.dynamic != Dynamic::None => Err(Error::Invalid(
            "--dynamic applies to ONNX exports (--format onnx); a traced TorchScript module keeps \
             the traced sizes"
                .into(),
        )),
        ExportFormat::Torchscript => {
            ferrovis_core::export::trace_to_file(name, &[example], out, &mut |x| forward(&x[0]))
        }
        ExportFormat::Onnx => {
            let options = OnnxOptions {
                dynamic: target.dynamic,
                ..onnx.clone()
            };
            ferrovis_core::onnx::export(vs, &[example], |x| Ok(forward(&x[0])), &options, out)
                .map(|_| ())
        }
    }
}
