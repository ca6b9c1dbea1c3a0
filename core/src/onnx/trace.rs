//! A forward traced by libtorch's tracer (`csrc/trace_graph.cpp`): the ATen operators it ran, in
//! order, with the constants they read. The model's weights are constants held by reference, so
//! a constant's data pointer finds its variable in the `VarStore`.

use std::collections::HashMap;
use std::os::raw::{c_char, c_int, c_void};

use tch::{Kind, Tensor};

use crate::shim::{status, CTensor};
use crate::{Error, Result};

extern "C" {
    fn fv_trace(
        inputs: *const *mut CTensor,
        n: c_int,
        forward: ForwardFn,
        ctx: *mut c_void,
        out: *mut *mut c_void,
        err: *mut *mut c_char,
    ) -> c_int;
    fn fv_trace_push_output(sink: *mut c_void, t: *mut CTensor);
    fn fv_trace_text(trace: *mut c_void) -> *const c_char;
    fn fv_trace_tensor_count(trace: *mut c_void) -> c_int;
    fn fv_trace_tensor(trace: *mut c_void, k: c_int) -> *mut CTensor;
    fn fv_trace_free(trace: *mut c_void);
}

type ForwardFn = extern "C" fn(*mut c_void, *const *mut CTensor, c_int, *mut c_void) -> c_int;

/// A value's traced type.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueType {
    /// A tensor of known element type and shape.
    Tensor(Kind, Vec<i64>),
    /// A tensor whose type the tracer did not record.
    UnknownTensor,
    /// Anything else (an integer, a list, a tuple, …), by its TorchScript kind.
    Other(String),
}

/// A constant the trace reads.
#[derive(Debug)]
pub enum Constant {
    /// A tensor (a weight, a buffer, or one the forward made from numbers).
    Tensor(Tensor),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// An integer list.
    Ints(Vec<i64>),
    /// A float list.
    Floats(Vec<f64>),
    /// A string (an approximation mode, a padding mode).
    Str(String),
    /// `None` (an absent bias, a default).
    None,
    /// A device or another value the writer never needs to read.
    Opaque(String),
}

/// One operator call.
#[derive(Debug, Clone)]
pub struct TraceNode {
    /// Its qualified name, e.g. `aten::_convolution`, `prim::ListConstruct`.
    pub kind: String,
    /// Its input values.
    pub inputs: Vec<usize>,
    /// Its output values with their types.
    pub outputs: Vec<(usize, ValueType)>,
}

/// A traced forward.
#[derive(Debug)]
pub struct Trace {
    /// The graph's inputs (the example inputs, in order) with their types.
    pub inputs: Vec<(usize, ValueType)>,
    /// Constants by value.
    pub constants: HashMap<usize, Constant>,
    /// The operator calls in execution order.
    pub nodes: Vec<TraceNode>,
    /// The graph's outputs.
    pub outputs: Vec<usize>,
}

struct Context<'a> {
    forward: &'a mut dyn FnMut(&[Tensor]) -> Result<Vec<Tensor>>,
    error: Option<Error>,
}

extern "C" fn call_forward(
    ctx: *mut c_void,
    inputs: *const *mut CTensor,
    n: c_int,
    sink: *mut c_void,
) -> c_int {
    // SAFETY: ctx is the `Context` `trace` passed, alive for the whole fv_trace call.
    let ctx = unsafe { &mut *(ctx as *mut Context) };
    let inputs: Vec<Tensor> = (0..n as usize)
        .map(|i| {
            // SAFETY: the shim passes n valid handles it keeps alive during the call; each is
            // borrowed, so a shallow clone is made and the borrowed handle is never freed.
            let borrowed = unsafe { Tensor::from_ptr(*inputs.add(i) as *mut _) };
            let owned = borrowed.shallow_clone();
            std::mem::forget(borrowed);
            owned
        })
        .collect();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (ctx.forward)(&inputs)));
    match result {
        Ok(Ok(outputs)) => {
            for t in &outputs {
                // SAFETY: the shim copies the tensor (a reference count) before we drop ours.
                unsafe { fv_trace_push_output(sink, t.as_ptr() as *mut CTensor) };
            }
            0
        }
        Ok(Err(e)) => {
            ctx.error = Some(e);
            1
        }
        Err(_) => {
            ctx.error = Some(Error::Invalid(
                "the forward panicked while it was traced".into(),
            ));
            1
        }
    }
}

/// Traces `forward` on `inputs`. Every tensor the forward reads besides its inputs becomes a
/// constant: the model's variables must not require gradients (`VarStore::freeze`).
pub fn trace<F>(inputs: &[Tensor], mut forward: F) -> Result<Trace>
where
    F: FnMut(&[Tensor]) -> Result<Vec<Tensor>>,
{
    let handles: Vec<*mut CTensor> = inputs.iter().map(|t| t.as_ptr() as *mut CTensor).collect();
    let mut ctx = Context {
        forward: &mut forward,
        error: None,
    };
    let mut raw: *mut c_void = std::ptr::null_mut();
    let mut err: *mut c_char = std::ptr::null_mut();
    // SAFETY: the handles outlive the call; ctx is only used by call_forward during it.
    let rc = unsafe {
        fv_trace(
            handles.as_ptr(),
            handles.len() as c_int,
            call_forward,
            &mut ctx as *mut Context as *mut c_void,
            &mut raw,
            &mut err,
        )
    };
    if let Some(e) = ctx.error.take() {
        // The forward's own error says more than the shim's "the forward failed".
        let _ = status(rc, err, "tracing");
        return Err(e);
    }
    status(rc, err, "tracing")?;
    let guard = TraceHandle(raw);
    // SAFETY: a valid trace; the text lives as long as it.
    let text = unsafe { std::ffi::CStr::from_ptr(fv_trace_text(guard.0)) }
        .to_string_lossy()
        .into_owned();
    // SAFETY: a valid trace.
    let count = unsafe { fv_trace_tensor_count(guard.0) };
    let mut tensors = Vec::with_capacity(count as usize);
    for k in 0..count {
        // SAFETY: 0 <= k < count; the handle returned is new and ours to free.
        let ptr = unsafe { fv_trace_tensor(guard.0, k) };
        if ptr.is_null() {
            return Err(Error::Invalid(format!(
                "tracing: tensor constant {k} missing"
            )));
        }
        // SAFETY: a fresh at::Tensor* that tch now owns.
        tensors.push(Some(unsafe { Tensor::from_ptr(ptr as *mut _) }));
    }
    parse(&text, tensors)
}

struct TraceHandle(*mut c_void);

impl Drop for TraceHandle {
    fn drop(&mut self) {
        // SAFETY: allocated by fv_trace, freed once.
        unsafe { fv_trace_free(self.0) }
    }
}

fn bad(line: &str) -> Error {
    Error::Invalid(format!("tracing: unreadable graph line '{line}'"))
}

fn parse_type(text: &str) -> Result<ValueType> {
    let Some(rest) = text.strip_prefix("t:") else {
        return Ok(ValueType::Other(text.to_string()));
    };
    if rest == "?" {
        return Ok(ValueType::UnknownTensor);
    }
    let (dtype, dims) = rest.split_once(':').ok_or_else(|| bad(text))?;
    let kind = match dtype {
        "Float" => Kind::Float,
        "Double" => Kind::Double,
        "Half" => Kind::Half,
        "BFloat16" => Kind::BFloat16,
        "Long" => Kind::Int64,
        "Int" => Kind::Int,
        "Bool" => Kind::Bool,
        "Byte" => Kind::Uint8,
        "Char" => Kind::Int8,
        _ => return Ok(ValueType::UnknownTensor),
    };
    let dims = if dims.is_empty() {
        Vec::new()
    } else {
        dims.split('x')
            .map(|d| d.parse::<i64>().map_err(|_| bad(text)))
            .collect::<Result<_>>()?
    };
    Ok(ValueType::Tensor(kind, dims))
}

fn parse(text: &str, mut tensors: Vec<Option<Tensor>>) -> Result<Trace> {
    let mut trace = Trace {
        inputs: Vec::new(),
        constants: HashMap::new(),
        nodes: Vec::new(),
        outputs: Vec::new(),
    };
    let id = |s: &str, line: &str| s.parse::<usize>().map_err(|_| bad(line));
    for line in text.lines() {
        let mut words = line.splitn(2, ' ');
        let (head, rest) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        match head {
            "input" => {
                let (v, ty) = rest.split_once(' ').ok_or_else(|| bad(line))?;
                trace.inputs.push((id(v, line)?, parse_type(ty)?));
            }
            "output" => trace.outputs.push(id(rest, line)?),
            "const" => {
                let mut parts = rest.splitn(3, ' ');
                let v = id(parts.next().unwrap_or(""), line)?;
                let what = parts.next().unwrap_or("");
                let value = parts.next().unwrap_or("");
                let floats = |s: &str| -> Result<Vec<f64>> {
                    s.split(',')
                        .filter(|x| !x.is_empty())
                        .map(|x| x.parse::<f64>().map_err(|_| bad(line)))
                        .collect()
                };
                let constant = match what {
                    "none" => Constant::None,
                    "tensor" => {
                        let k = id(value, line)?;
                        let t = tensors.get_mut(k).and_then(Option::take);
                        Constant::Tensor(t.ok_or_else(|| bad(line))?)
                    }
                    "int" => Constant::Int(value.parse().map_err(|_| bad(line))?),
                    "float" => Constant::Float(value.parse().map_err(|_| bad(line))?),
                    "bool" => Constant::Bool(value == "1"),
                    "ints" => Constant::Ints(
                        value
                            .split(',')
                            .filter(|x| !x.is_empty())
                            .map(|x| x.parse::<i64>().map_err(|_| bad(line)))
                            .collect::<Result<_>>()?,
                    ),
                    "floats" => Constant::Floats(floats(value)?),
                    "str" => Constant::Str(value.to_string()),
                    _ => Constant::Opaque(format!("{what} {value}")),
                };
                trace.constants.insert(v, constant);
            }
            "node" => {
                let (kind, rest) = rest.split_once(" in").ok_or_else(|| bad(line))?;
                let (ins, outs) = rest.split_once(" out").ok_or_else(|| bad(line))?;
                let inputs = ins
                    .split_whitespace()
                    .map(|s| id(s, line))
                    .collect::<Result<_>>()?;
                let outputs = outs
                    .split_whitespace()
                    .map(|s| {
                        let (v, ty) = s.split_once(':').ok_or_else(|| bad(line))?;
                        Ok((id(v, line)?, parse_type(ty)?))
                    })
                    .collect::<Result<_>>()?;
                trace.nodes.push(TraceNode {
                    kind: kind.to_string(),
                    inputs,
                    outputs,
                });
            }
            "" => {}
            _ => return Err(bad(line)),
        }
    }
    Ok(trace)
}
