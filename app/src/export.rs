//! What every task's `export` does once it has its model: trace the forward on an example and
//! write it in the format asked for, TorchScript (`core::export`) or ONNX (`core::onnx`).

use std::path::Path;

use ferrovis_core::onnx::OnnxOptions;
use ferrovis_core::Result;
use tch::nn::VarStore;
use tch::Tensor;

use crate::args::ExportFormat;

/// Writes `forward`, traced on `example`, to `out` as `format`: a TorchScript module named
/// `name`, or an ONNX model with `onnx` (names, metadata) whose initialisers take `vs`'s names.
/// `vs` must be frozen.
pub fn write(
    format: ExportFormat,
    name: &str,
    vs: &VarStore,
    example: Tensor,
    onnx: &OnnxOptions,
    out: &Path,
    forward: &dyn Fn(&Tensor) -> Vec<Tensor>,
) -> Result<()> {
    match format {
        ExportFormat::Torchscript => {
            ferrovis_core::export::trace_to_file(name, &[example], out, &mut |x| forward(&x[0]))
        }
        ExportFormat::Onnx => {
            ferrovis_core::onnx::export(vs, &[example], |x| Ok(forward(&x[0])), onnx, out)
                .map(|_| ())
        }
    }
}
