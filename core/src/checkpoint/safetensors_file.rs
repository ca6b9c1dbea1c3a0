//! safetensors: the format we write, because PyTorch (`safetensors.torch.load_file`) and every hub
//! read it, it cannot carry code, and its names are the state_dict names.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, View};
use tch::{Kind, Tensor};

use super::StateDict;
use crate::atomic_file::write_atomic;
use crate::error::{Error, Result};

fn kind_from(d: Dtype) -> Option<Kind> {
    Some(match d {
        Dtype::F64 => Kind::Double,
        Dtype::F32 => Kind::Float,
        Dtype::F16 => Kind::Half,
        Dtype::BF16 => Kind::BFloat16,
        Dtype::I64 => Kind::Int64,
        Dtype::I32 => Kind::Int,
        Dtype::I16 => Kind::Int16,
        Dtype::I8 => Kind::Int8,
        Dtype::U8 => Kind::Uint8,
        Dtype::BOOL => Kind::Bool,
        _ => return None,
    })
}

fn dtype_from(k: Kind) -> Option<Dtype> {
    Some(match k {
        Kind::Double => Dtype::F64,
        Kind::Float => Dtype::F32,
        Kind::Half => Dtype::F16,
        Kind::BFloat16 => Dtype::BF16,
        Kind::Int64 => Dtype::I64,
        Kind::Int => Dtype::I32,
        Kind::Int16 => Dtype::I16,
        Kind::Int8 => Dtype::I8,
        Kind::Uint8 => Dtype::U8,
        Kind::Bool => Dtype::BOOL,
        _ => return None,
    })
}

/// Parses a safetensors file held in memory.
pub(super) fn read(bytes: &[u8]) -> std::result::Result<StateDict, String> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| format!("safetensors: {e}"))?;
    let mut entries: Vec<_> = st.tensors();
    // Header order is not preserved by the format; data offset order is how the file was written.
    entries.sort_by_key(|(_, v)| v.data().as_ptr() as usize);
    let mut sd = StateDict::new();
    for (name, view) in entries {
        let kind = kind_from(view.dtype())
            .ok_or_else(|| format!("{name}: unsupported dtype {:?}", view.dtype()))?;
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        let t = Tensor::f_from_data_size(view.data(), &shape, kind)
            .map_err(|e| format!("{name}: {e}"))?;
        sd.insert(name, t);
    }
    Ok(sd)
}

/// A tensor's bytes ready for serialisation.
struct Raw {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl View for &Raw {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

fn raw(name: &str, t: &Tensor) -> Result<Raw> {
    let dtype = dtype_from(t.kind())
        .ok_or_else(|| Error::Load(format!("{name}: cannot save dtype {:?}", t.kind())))?;
    let t = t.f_to_device(tch::Device::Cpu)?.f_contiguous()?;
    let numel = t.numel();
    let mut data = vec![0u8; numel * t.kind().elt_size_in_bytes()];
    t.f_copy_data_u8(&mut data, numel)?;
    Ok(Raw {
        dtype,
        shape: t.size().iter().map(|&d| d as usize).collect(),
        data,
    })
}

/// Writes named tensors to a `.safetensors` file atomically. Names are kept exactly, so
/// `model.load_state_dict(safetensors.torch.load_file(path))` works in Python.
pub fn save_safetensors<'a>(
    path: impl AsRef<Path>,
    tensors: impl IntoIterator<Item = (&'a str, &'a Tensor)>,
) -> Result<()> {
    save_safetensors_with_metadata(path, tensors, None)
}

/// Like [`save_safetensors`], with string metadata in the header's `__metadata__`.
pub fn save_safetensors_with_metadata<'a>(
    path: impl AsRef<Path>,
    tensors: impl IntoIterator<Item = (&'a str, &'a Tensor)>,
    metadata: Option<HashMap<String, String>>,
) -> Result<()> {
    let path = path.as_ref();
    let raws: Vec<(String, Raw)> = tensors
        .into_iter()
        .map(|(n, t)| Ok((n.to_string(), raw(n, t)?)))
        .collect::<Result<_>>()?;
    let views = raws.iter().map(|(n, r)| (n.as_str(), r));
    let bytes = safetensors::tensor::serialize(views, &metadata)
        .map_err(|e| Error::checkpoint(path, format!("safetensors: {e}")))?;
    write_atomic(path, &bytes)
}

/// The `__metadata__` of a `.safetensors` file (empty when there is none).
pub fn read_safetensors_metadata(path: impl AsRef<Path>) -> Result<HashMap<String, String>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let (_, meta) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| Error::checkpoint(path, format!("safetensors: {e}")))?;
    Ok(meta.metadata().clone().unwrap_or_default())
}

/// Writes every variable of a `VarStore` (its paths are the PyTorch names) to `.safetensors`.
pub fn save_varstore(vs: &tch::nn::VarStore, path: impl AsRef<Path>) -> Result<()> {
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    save_safetensors(path, vars.iter().map(|(n, t)| (n.as_str(), t)))
}
