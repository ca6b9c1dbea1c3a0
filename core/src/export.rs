//! TorchScript export: a model traced in evaluation mode and saved for `torch.jit.load` (Python)
//! or `torch::jit::load` (C++), as every task's `export` command writes it.
//!
//! Tracing records the operations run on the example inputs, so what depends on the data (a
//! detector's NMS, a loop whose length is the input's) must stay outside the traced function:
//! export the tensors before it and run it in the caller. Sizes computed from the input are
//! recorded as constants: trace with the size the module will be given.

use std::path::Path;

use tch::{CModule, Tensor};

use crate::error::{Error, Result};

/// Traces `forward` on `inputs` (without autograd) as the module `name` and writes it to `out`
/// through a temporary file, so a failed export leaves no partial file under the final name. The
/// model's variables must not require gradients (`VarStore::freeze`): the trace stores them as
/// constants.
pub fn trace_to_file<F>(name: &str, inputs: &[Tensor], out: &Path, forward: &mut F) -> Result<()>
where
    F: FnMut(&[Tensor]) -> Vec<Tensor>,
{
    let module = tch::no_grad(|| CModule::create_by_tracing(name, "forward", inputs, forward))
        // libtorch's message goes on to print whole tensors: its first line says what is wrong.
        .map_err(|e| {
            let first = e.to_string().lines().next().unwrap_or_default().to_string();
            Error::Invalid(format!("tracing {name}: {first}"))
        })?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let tmp = out.with_extension("pt.partial");
    module
        .save(&tmp)
        .map_err(|e| Error::Invalid(format!("writing {}: {e}", tmp.display())))?;
    std::fs::rename(&tmp, out).map_err(|e| Error::io(out, e))?;
    Ok(())
}
