//! Named tensors, and how to find them inside whatever object a checkpoint pickled.

use indexmap::IndexMap;
use tch::{Kind, Tensor};

use super::pickle::{DType, ObjId, Object, Pickle, TensorMeta, Value};

/// Ordered map from PyTorch state_dict names (`layer1.0.conv1.weight`) to tensors, in file order.
#[derive(Debug, Default)]
pub struct StateDict {
    tensors: IndexMap<String, Tensor>,
}

impl StateDict {
    /// An empty state dict.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a tensor.
    pub fn insert(&mut self, name: impl Into<String>, t: Tensor) {
        self.tensors.insert(name.into(), t);
    }

    /// The tensor called `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.get(name)
    }

    /// Removes and returns the tensor called `name`, keeping the order of the others.
    pub fn remove(&mut self, name: &str) -> Option<Tensor> {
        self.tensors.shift_remove(name)
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// True when there are no tensors.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// Tensor names in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// `(name, tensor)` pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.tensors.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Total number of elements over all tensors (buffers included, as `sum(t.numel())` would).
    pub fn numel(&self) -> u64 {
        self.tensors.values().map(|t| t.numel() as u64).sum()
    }

    /// Renames every tensor with `f`; names mapped to `None` are dropped.
    pub fn rename(self, mut f: impl FnMut(&str) -> Option<String>) -> Self {
        let tensors = self
            .tensors
            .into_iter()
            .filter_map(|(k, v)| f(&k).map(|k| (k, v)))
            .collect();
        Self { tensors }
    }
}

impl FromIterator<(String, Tensor)> for StateDict {
    fn from_iter<I: IntoIterator<Item = (String, Tensor)>>(iter: I) -> Self {
        Self {
            tensors: iter.into_iter().collect(),
        }
    }
}

/// Keys under which training scripts commonly nest the weights, tried in this order. `ema` comes
/// before `model` because Ultralytics keeps its better (averaged) weights there while training;
/// its final `best.pt` sets `ema` to None, and None is skipped.
pub const NESTED_KEYS: [&str; 8] = [
    "state_dict",
    "ema",
    "model",
    "model_state",
    "model_state_dict",
    "net",
    "params",
    "module",
];

/// Finds the named tensors in a pickled object: a flat state dict, a checkpoint dict that nests one
/// (see [`NESTED_KEYS`], or `key`, a dotted path such as `"model"` or `"checkpoint.weights"`),
/// or a pickled `nn.Module`, which is walked through `_parameters`, `_buffers` and `_modules`.
pub fn find_tensors(p: &Pickle, key: Option<&str>) -> Result<Vec<(String, ObjId)>, String> {
    let root = p.root.clone().ok_or("empty pickle")?;
    let start = match key {
        Some(path) => {
            let mut v = root;
            for part in path.split('.') {
                v = lookup(p, &v, part)
                    .ok_or_else(|| {
                        format!(
                            "no key {part:?} (of {path:?}); keys here: {}",
                            keys_of(p, &v)
                        )
                    })?
                    .clone();
            }
            v
        }
        None => root,
    };
    let mut out = Vec::new();
    if collect(p, &start, "", &mut out, 0) && !out.is_empty() {
        return Ok(out);
    }
    if key.is_none() {
        for k in NESTED_KEYS {
            if let Some(v) = p.dict_get(&start, k).filter(|v| **v != Value::None) {
                out.clear();
                if collect(p, v, "", &mut out, 0) && !out.is_empty() {
                    return Ok(out);
                }
            }
        }
    }
    if let Some(reason) = refused_entry(p, &start) {
        return Err(reason);
    }
    Err(format!(
        "found no tensors to load{}; top-level keys: {}",
        key.map(|k| format!(" under {k:?}")).unwrap_or_default(),
        keys_of(p, &start)
    ))
}

/// For a dict that holds tensors beside something else (so it is not a state dict), names the
/// first entry that is not a tensor and what it holds.
fn refused_entry(p: &Pickle, v: &Value) -> Option<String> {
    let Some(Object::Dict(items)) = p.object(v) else {
        return None;
    };
    let is_tensor = |v: &Value| {
        matches!(
            p.object(v),
            Some(Object::Tensor(_)) | Some(Object::UnsupportedTensor { .. })
        )
    };
    let tensors = items.iter().filter(|(_, v)| is_tensor(v)).count();
    if tensors == 0 {
        return None;
    }
    let (k, bad) = items
        .iter()
        .find(|(k, v)| !matches!(k, Value::Str(_)) || !(is_tensor(v) || *v == Value::None))?;
    let name = match k {
        Value::Str(s) => format!("{s:?}"),
        other => format!("{other:?} (not a string)"),
    };
    Some(format!(
        "key {name} holds {}, not a tensor, beside {tensors} tensors: a state dict holds only \
         tensors, so none was loaded (nothing in a checkpoint is executed; save the model's \
         state_dict(), or pass --key for a nested one)",
        describe(p, bad)
    ))
}

/// What a pickled value is, in a user's words.
fn describe(p: &Pickle, v: &Value) -> String {
    match v {
        Value::None => "None".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Int(i) => format!("the integer {i}"),
        Value::BigInt(_) => "a large integer".into(),
        Value::Float(f) => format!("the number {f}"),
        Value::Str(s) => format!("the string {s:?}"),
        Value::Bytes(b) => format!("{} bytes", b.len()),
        Value::Ref(_) => match p.object(v) {
            Some(Object::Tuple(_)) => "a tuple".into(),
            Some(Object::List(_)) => "a list".into(),
            Some(Object::Dict(_)) => "a dict".into(),
            Some(Object::Set(_)) => "a set".into(),
            Some(Object::Global { module, name }) => format!("the class {module}.{name}"),
            Some(Object::Instance { module, name, .. }) => {
                format!("an object of class {module}.{name}")
            }
            Some(Object::Storage(_)) => "a bare storage".into(),
            Some(Object::Tensor(_)) | Some(Object::UnsupportedTensor { .. }) => "a tensor".into(),
            None => "an unknown object".into(),
        },
    }
}

fn lookup<'a>(p: &'a Pickle, v: &Value, key: &str) -> Option<&'a Value> {
    match p.object(v)? {
        Object::Dict(_) => p.dict_get(v, key),
        Object::Instance { state: Some(s), .. } => p.dict_get(s, key),
        _ => None,
    }
}

fn keys_of(p: &Pickle, v: &Value) -> String {
    let dict = match p.object(v) {
        Some(Object::Instance { state: Some(s), .. }) => s,
        _ => v,
    };
    match p.object(dict) {
        Some(Object::Dict(items)) => {
            let mut ks: Vec<String> = items
                .iter()
                .take(20)
                .map(|(k, _)| match k {
                    Value::Str(s) => s.clone(),
                    other => format!("{other:?}"),
                })
                .collect();
            if items.len() > 20 {
                ks.push(format!("… ({} in all)", items.len()));
            }
            format!("[{}]", ks.join(", "))
        }
        _ => "(not a dict)".into(),
    }
}

/// Collects tensors below `v` with dotted names. Returns false when `v` is not something that holds
/// tensors as a state dict would (so the caller can try nested keys instead).
fn collect(
    p: &Pickle,
    v: &Value,
    prefix: &str,
    out: &mut Vec<(String, ObjId)>,
    depth: usize,
) -> bool {
    // Real modules nest a few dozen levels; the limit guards against cycles in crafted files.
    if depth > 200 {
        return false;
    }
    let Value::Ref(id) = v else { return false };
    match p.objects.get(*id) {
        Some(Object::Tensor(_)) | Some(Object::UnsupportedTensor { .. }) => {
            out.push((prefix.to_string(), *id));
            true
        }
        Some(Object::Dict(items)) => {
            // A state dict: string keys, tensor values (None allowed for absent optional buffers).
            let is_tensor = |v: &Value| {
                matches!(
                    p.object(v),
                    Some(Object::Tensor(_)) | Some(Object::UnsupportedTensor { .. })
                )
            };
            let flat = items
                .iter()
                .all(|(k, v)| matches!(k, Value::Str(_)) && (is_tensor(v) || *v == Value::None));
            if !flat {
                return false;
            }
            for (k, v) in items {
                if let (Value::Str(k), Value::Ref(id)) = (k, v) {
                    out.push((join(prefix, k), *id));
                }
            }
            true
        }
        Some(Object::Instance {
            state: Some(state), ..
        }) => collect_module(p, state, prefix, out, depth),
        _ => false,
    }
}

/// Walks a pickled `nn.Module`'s `__dict__` in `state_dict()` order: parameters, persistent
/// buffers, then submodules.
fn collect_module(
    p: &Pickle,
    state: &Value,
    prefix: &str,
    out: &mut Vec<(String, ObjId)>,
    depth: usize,
) -> bool {
    let Some(modules) = p.dict_get(state, "_modules") else {
        return false;
    };
    if depth > 200 {
        return false;
    }
    let non_persistent: Vec<&str> = match p.dict_get(state, "_non_persistent_buffers_set") {
        Some(v) => match p.object(v) {
            Some(Object::Set(items)) => items.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        },
        None => Vec::new(),
    };
    for field in ["_parameters", "_buffers"] {
        if let Some(Object::Dict(items)) = p.dict_get(state, field).and_then(|v| p.object(v)) {
            for (k, v) in items {
                let (Value::Str(k), Value::Ref(id)) = (k, v) else {
                    continue;
                };
                if field == "_buffers" && non_persistent.contains(&k.as_str()) {
                    continue;
                }
                if matches!(
                    p.objects.get(*id),
                    Some(Object::Tensor(_)) | Some(Object::UnsupportedTensor { .. })
                ) {
                    out.push((join(prefix, k), *id));
                }
            }
        }
    }
    if let Some(Object::Dict(children)) = p.object(modules) {
        for (k, child) in children {
            let Value::Str(k) = k else { continue };
            if let Some(Object::Instance { state: Some(s), .. }) = p.object(child) {
                collect_module(p, s, &join(prefix, k), out, depth + 1);
            }
        }
    }
    true
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// The tch kind of a storage element type.
pub fn kind_of(d: DType) -> Kind {
    match d {
        DType::F64 => Kind::Double,
        DType::F32 => Kind::Float,
        DType::F16 => Kind::Half,
        DType::BF16 => Kind::BFloat16,
        DType::I64 => Kind::Int64,
        DType::I32 => Kind::Int,
        DType::I16 => Kind::Int16,
        DType::I8 => Kind::Int8,
        DType::U8 => Kind::Uint8,
        DType::Bool => Kind::Bool,
    }
}

/// Builds a contiguous tensor from a view (offset, size, stride) of raw storage bytes, checking
/// every bound first so that a crafted header cannot make us read out of range or allocate more
/// than the file holds.
pub fn materialize(meta: &TensorMeta, storage: &[u8]) -> Result<Tensor, String> {
    let esize = meta.storage.dtype.size();
    let kind = kind_of(meta.storage.dtype);
    let available = (storage.len() / esize) as u64;
    let base = meta.storage.view_offset;
    if meta.offset < 0 || meta.size.iter().chain(&meta.stride).any(|&v| v < 0) {
        return Err(format!(
            "negative offset, size or stride (offset {}, size {:?}, stride {:?})",
            meta.offset, meta.size, meta.stride
        ));
    }
    let mut numel: u64 = 1;
    for &s in &meta.size {
        numel = numel
            .checked_mul(s as u64)
            .ok_or_else(|| format!("size {:?} overflows", meta.size))?;
    }
    if numel == 0 {
        return Tensor::f_zeros(&meta.size, (kind, tch::Device::Cpu)).map_err(|e| e.to_string());
    }
    // Largest element index the view touches, relative to the tensor's first element.
    let mut span: u64 = 0;
    for (&s, &st) in meta.size.iter().zip(&meta.stride) {
        let reach = ((s - 1) as u64)
            .checked_mul(st as u64)
            .ok_or_else(|| format!("stride {:?} overflows", meta.stride))?;
        span = span
            .checked_add(reach)
            .ok_or_else(|| format!("stride {:?} overflows", meta.stride))?;
    }
    let first = base
        .checked_add(meta.offset as u64)
        .ok_or("offset overflows")?;
    let end = first.checked_add(span + 1).ok_or("offset overflows")?;
    if end > available {
        return Err(format!(
            "tensor of size {:?} (stride {:?}, offset {}) needs {} elements but its storage {} has {}",
            meta.size, meta.stride, meta.offset, end, meta.storage.key, available
        ));
    }
    // Overlapping strides (an `expand`ed tensor) multiply the data; bound what we materialise.
    const MAX_EXPANDED_BYTES: u64 = 4 << 30;
    if numel > end - first && numel.saturating_mul(esize as u64) > MAX_EXPANDED_BYTES {
        return Err(format!(
            "tensor of size {:?} would expand {} stored elements to {numel}: refusing",
            meta.size,
            end - first
        ));
    }
    let bytes = &storage[first as usize * esize..end as usize * esize];
    let flat = Tensor::f_from_data_size(bytes, &[(end - first) as i64], kind)
        .map_err(|e| e.to_string())?;
    let contiguous_strides = contiguous_strides(&meta.size);
    if meta.stride == contiguous_strides {
        return flat.f_reshape(&meta.size).map_err(|e| e.to_string());
    }
    flat.f_as_strided(&meta.size, &meta.stride, 0)
        .and_then(|t| t.f_contiguous())
        .map_err(|e| e.to_string())
}

fn contiguous_strides(size: &[i64]) -> Vec<i64> {
    let mut strides = vec![1i64; size.len()];
    for i in (0..size.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * size[i + 1].max(1);
    }
    strides
}
