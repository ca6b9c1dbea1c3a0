//! The class names a PyTorch checkpoint may carry beside its tensors: Ultralytics keeps them on
//! the pickled model (`model.names = {0: "person", …}` under `ema` or `model`), other trainers at
//! the top level (`names`, `classes`). Read from the pickle as inert data, like everything else.

use std::path::Path;

use super::pickle::{Object, Pickle, Value};
use super::{detect_format, torch_format, Format};
use crate::error::{Error, Result};

/// The class names stored in the checkpoint at `path`, in class-index order, or `None` when it
/// stores none (safetensors and TorchScript files never do).
pub fn class_names(path: impl AsRef<Path>) -> Result<Option<Vec<String>>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let file = match detect_format(&bytes) {
        Some(Format::TorchLegacy) => torch_format::read_legacy(&bytes),
        Some(Format::TorchZip) => torch_format::read_zip(&bytes),
        _ => return Ok(None),
    };
    // A zip that is not a torch.save archive (a TorchScript file) has no names for us either.
    let Ok(file) = file else { return Ok(None) };
    Ok(find(&file.pickle))
}

fn find(p: &Pickle) -> Option<Vec<String>> {
    let root = p.root.as_ref()?;
    for key in ["names", "classes"] {
        if let Some(names) = p.dict_get(root, key).and_then(|v| as_names(p, v)) {
            return Some(names);
        }
    }
    ["ema", "model"].into_iter().find_map(|key| {
        let model = p.dict_get(root, key)?;
        let Some(Object::Instance {
            state: Some(state), ..
        }) = p.object(model)
        else {
            return None;
        };
        p.dict_get(state, "names").and_then(|v| as_names(p, v))
    })
}

/// `{0: "a", 1: "b"}` (any order, indices 0..n) or `["a", "b"]`.
fn as_names(p: &Pickle, v: &Value) -> Option<Vec<String>> {
    match p.object(v)? {
        Object::List(items) | Object::Tuple(items) => items
            .iter()
            .map(|s| s.as_str().map(str::to_string))
            .collect(),
        Object::Dict(items) => {
            let mut names = vec![None; items.len()];
            for (k, v) in items {
                let Value::Int(i) = k else { return None };
                let slot = names.get_mut(usize::try_from(*i).ok()?)?;
                *slot = Some(v.as_str()?.to_string());
            }
            names.into_iter().collect()
        }
        _ => None,
    }
}
