//! A listing of a checkpoint's tensors: what `<task> weights inspect` prints.

use std::fmt;

use serde::Serialize;

use super::Checkpoint;

/// One tensor of a checkpoint.
#[derive(Debug, Clone, Serialize)]
pub struct TensorInfo {
    /// PyTorch state_dict name.
    pub name: String,
    /// Element type as PyTorch spells it (`float32`, `float16`, …).
    pub dtype: String,
    /// Shape.
    pub shape: Vec<i64>,
    /// Number of elements.
    pub numel: u64,
}

/// A checkpoint's tensors and totals.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The file.
    pub path: String,
    /// Its format, in words.
    pub format: String,
    /// Every tensor, in file order.
    pub tensors: Vec<TensorInfo>,
    /// Elements of floating-point tensors that are not BatchNorm statistics: the number
    /// torchvision and Ultralytics quote as "parameters".
    pub parameters: u64,
    /// Elements of all tensors, buffers included.
    pub total_elements: u64,
}

/// PyTorch's name for a tch kind.
pub fn dtype_name(k: tch::Kind) -> String {
    use tch::Kind::*;
    match k {
        Float => "float32".into(),
        Double => "float64".into(),
        Half => "float16".into(),
        BFloat16 => "bfloat16".into(),
        Int64 => "int64".into(),
        Int => "int32".into(),
        Int16 => "int16".into(),
        Int8 => "int8".into(),
        Uint8 => "uint8".into(),
        Bool => "bool".into(),
        other => format!("{other:?}"),
    }
}

/// True for the names `state_dict()` gives BatchNorm buffers, which are not parameters.
pub fn is_buffer_name(name: &str) -> bool {
    name.ends_with(".running_mean")
        || name.ends_with(".running_var")
        || name.ends_with(".num_batches_tracked")
}

impl Summary {
    /// Summarises a checkpoint read with [`super::open`].
    pub fn of(ckpt: &Checkpoint) -> Self {
        Self::of_tensors(
            &ckpt.path.display().to_string(),
            &ckpt.format.to_string(),
            ckpt.state_dict.iter(),
        )
    }

    /// Summarises any named tensors (a model's variables, say), labelled `path` and `format`.
    pub fn of_tensors<'a>(
        path: &str,
        format: &str,
        tensors: impl IntoIterator<Item = (&'a str, &'a tch::Tensor)>,
    ) -> Self {
        let tensors: Vec<TensorInfo> = tensors
            .into_iter()
            .map(|(name, t)| TensorInfo {
                name: name.to_string(),
                dtype: dtype_name(t.kind()),
                shape: t.size(),
                numel: t.numel() as u64,
            })
            .collect();
        let parameters = tensors
            .iter()
            .filter(|t| t.dtype.starts_with("float") || t.dtype == "bfloat16")
            .filter(|t| !is_buffer_name(&t.name))
            .map(|t| t.numel)
            .sum();
        Summary {
            path: path.to_string(),
            format: format.to_string(),
            total_elements: tensors.iter().map(|t| t.numel).sum(),
            tensors,
            parameters,
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} ({})", self.path, self.format)?;
        let width = self
            .tensors
            .iter()
            .map(|t| t.name.len())
            .max()
            .unwrap_or(4)
            .max(4);
        writeln!(f, "{:<width$}  {:<8}  shape", "name", "dtype")?;
        for t in &self.tensors {
            writeln!(f, "{:<width$}  {:<8}  {:?}", t.name, t.dtype, t.shape)?;
        }
        write!(
            f,
            "{} tensors, {} parameters ({} elements with buffers)",
            self.tensors.len(),
            group_thousands(self.parameters),
            group_thousands(self.total_elements)
        )
    }
}

/// `3157200` → `3,157,200`, as parameter counts are usually quoted.
pub fn group_thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
