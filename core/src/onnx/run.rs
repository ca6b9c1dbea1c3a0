//! Runs an ONNX model, node by node, with libtorch's operators: the check `export` makes on the
//! file it wrote (its outputs against the traced forward's), written from ONNX's operator
//! specification rather than from the ATen translations, so that a translation that computes
//! something else shows up as a difference.
//!
//! It reads what this crate writes: initialisers in `raw_data`, the operators
//! [`aten`](super::aten) and [`nms`](super::nms) emit, at the opsets [`super::MIN_OPSET`] to
//! [`super::MAX_OPSET`]. Anything else is an error that names the node.

use std::collections::HashMap;

use tch::{Kind, Tensor};

use super::proto::{AttributeProto, DataType, ModelProto, NodeProto, TensorProto};
use crate::{Error, Result};

/// The graph's outputs, by name, for `inputs` (the graph inputs in order).
pub fn run(model: &ModelProto, inputs: &[Tensor]) -> Result<HashMap<String, Tensor>> {
    let outputs: Vec<String> = model
        .graph
        .iter()
        .flat_map(|g| g.output.iter().map(|o| o.name.clone()))
        .collect();
    run_values(model, inputs, &outputs)
}

/// The values named `wanted` (graph outputs or any node's output), for `inputs`.
pub fn run_values(
    model: &ModelProto,
    inputs: &[Tensor],
    wanted: &[String],
) -> Result<HashMap<String, Tensor>> {
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| Error::Invalid("ONNX model without a graph".into()))?;
    if graph.input.len() != inputs.len() {
        return Err(Error::Invalid(format!(
            "the ONNX graph takes {} inputs, {} given",
            graph.input.len(),
            inputs.len()
        )));
    }
    let mut values: HashMap<String, Tensor> = HashMap::new();
    for t in &graph.initializer {
        values.insert(t.name.clone(), tensor(t)?);
    }
    for (info, x) in graph.input.iter().zip(inputs) {
        values.insert(info.name.clone(), x.shallow_clone());
    }
    tch::no_grad(|| -> Result<()> {
        for node in &graph.node {
            let outputs = {
                let read = |i: usize| -> Result<Option<&Tensor>> {
                    match node.input.get(i).map(String::as_str) {
                        None | Some("") => Ok(None),
                        Some(name) => values.get(name).map(Some).ok_or_else(|| {
                            Error::Invalid(format!("'{name}' is read before it is written"))
                        }),
                    }
                };
                execute(node, &read).map_err(|e| {
                    Error::Invalid(format!(
                        "running ONNX node '{}' ({}): {e}",
                        node.name, node.op_type
                    ))
                })?
            };
            for (name, t) in node.output.iter().zip(outputs) {
                values.insert(name.clone(), t);
            }
        }
        Ok(())
    })?;
    wanted
        .iter()
        .map(|name| {
            values
                .get(name)
                .map(|t| (name.clone(), t.shallow_clone()))
                .ok_or_else(|| Error::Invalid(format!("'{name}' is never computed")))
        })
        .collect()
}

/// An initialiser as a tensor (raw little-endian data, as this crate writes them).
fn tensor(t: &TensorProto) -> Result<Tensor> {
    let kind = kind_of(t.data_type)?;
    let numel: i64 = t.dims.iter().product();
    if t.raw_data.len() != numel as usize * kind.elt_size_in_bytes() {
        return Err(Error::Invalid(format!(
            "initialiser '{}': {} bytes for {:?} of {kind:?} (only raw_data is read)",
            t.name,
            t.raw_data.len(),
            t.dims
        )));
    }
    Ok(Tensor::from_data_size(&t.raw_data, &t.dims, kind))
}

fn kind_of(data_type: i32) -> Result<Kind> {
    Ok(match DataType::try_from(data_type) {
        Ok(DataType::Float) => Kind::Float,
        Ok(DataType::Double) => Kind::Double,
        Ok(DataType::Float16) => Kind::Half,
        Ok(DataType::Bfloat16) => Kind::BFloat16,
        Ok(DataType::Int64) => Kind::Int64,
        Ok(DataType::Int32) => Kind::Int,
        Ok(DataType::Int8) => Kind::Int8,
        Ok(DataType::Uint8) => Kind::Uint8,
        Ok(DataType::Bool) => Kind::Bool,
        _ => {
            return Err(Error::Invalid(format!(
                "ONNX element type {data_type} is not read"
            )))
        }
    })
}

/// A node's attributes by name.
struct Attrs<'a>(&'a [AttributeProto]);

impl Attrs<'_> {
    fn get(&self, name: &str) -> Option<&AttributeProto> {
        self.0.iter().find(|a| a.name == name)
    }
    fn int(&self, name: &str, default: i64) -> i64 {
        self.get(name).and_then(|a| a.i).unwrap_or(default)
    }
    fn float(&self, name: &str, default: f64) -> f64 {
        self.get(name)
            .and_then(|a| a.f)
            .map_or(default, |f| f as f64)
    }
    fn ints(&self, name: &str) -> Option<Vec<i64>> {
        self.get(name).map(|a| a.ints.clone())
    }
    fn string(&self, name: &str, default: &str) -> String {
        self.get(name)
            .and_then(|a| a.s.as_ref())
            .map_or(default.to_string(), |s| {
                String::from_utf8_lossy(s).into_owned()
            })
    }
}

/// A 1-D int64 tensor's values.
fn int_list(t: &Tensor) -> Result<Vec<i64>> {
    Vec::<i64>::try_from(t.to_kind(Kind::Int64).flatten(0, -1)).map_err(Error::from)
}

fn axis(a: i64, rank: usize) -> i64 {
    if a < 0 {
        a + rank as i64
    } else {
        a
    }
}

/// ONNX's `pads` (all begins, then all ends) as symmetric padding, or `None` when a begin and
/// its end differ.
fn symmetric(pads: &[i64], n: usize) -> Option<Vec<i64>> {
    if pads.is_empty() {
        return Some(vec![0; n]);
    }
    let (begin, end) = pads.split_at(n);
    (begin == end).then(|| begin.to_vec())
}

/// libtorch's `pad` list (last dimension first) for ONNX `pads` over the last `n` of `rank`
/// dimensions.
fn torch_pads(pads: &[i64], n: usize) -> Vec<i64> {
    (0..n).rev().flat_map(|d| [pads[d], pads[d + n]]).collect()
}

fn execute<'t>(
    node: &NodeProto,
    read: &dyn Fn(usize) -> Result<Option<&'t Tensor>>,
) -> Result<Vec<Tensor>> {
    let a = Attrs(&node.attribute);
    let need = |i: usize| -> Result<&Tensor> {
        read(i)?.ok_or_else(|| Error::Invalid(format!("input {i} is missing")))
    };
    let x = || need(0);
    let one = |t: Tensor| Ok(vec![t]);
    match node.op_type.as_str() {
        "Identity" => one(x()?.shallow_clone()),
        "Relu" => one(x()?.relu()),
        "Sigmoid" => one(x()?.sigmoid()),
        "Tanh" => one(x()?.tanh()),
        "Exp" => one(x()?.exp()),
        "Log" => one(x()?.log()),
        "Sqrt" => one(x()?.sqrt()),
        "Neg" => one(x()?.neg()),
        "Abs" => one(x()?.abs()),
        "Erf" => one(x()?.erf()),
        "Floor" => one(x()?.floor()),
        "Ceil" => one(x()?.ceil()),
        "Reciprocal" => one(x()?.reciprocal()),
        "Sin" => one(x()?.sin()),
        "Cos" => one(x()?.cos()),
        "HardSwish" => one(x()?.hardswish()),
        "HardSigmoid" => {
            let (alpha, beta) = (a.float("alpha", 0.2), a.float("beta", 0.5));
            one((x()? * alpha + beta).clamp(0.0, 1.0))
        }
        "LeakyRelu" => {
            let alpha = a.float("alpha", 0.01);
            let x = x()?;
            one(x.where_self(&x.ge(0.0), &(x * alpha)))
        }
        "Gelu" => one(x()?.gelu(&a.string("approximate", "none"))),
        "Clip" => {
            let mut y = x()?.shallow_clone();
            if let Some(lo) = read(1)? {
                y = y.maximum(lo);
            }
            if let Some(hi) = read(2)? {
                y = y.minimum(hi);
            }
            one(y)
        }
        "Add" => one(need(0)? + need(1)?),
        "Sub" => one(need(0)? - need(1)?),
        "Mul" => one(need(0)? * need(1)?),
        "Div" => {
            let (p, q) = (need(0)?, need(1)?);
            one(if p.is_floating_point() {
                p / q
            } else {
                p.divide_tensor_mode(q, "trunc")
            })
        }
        "Pow" => one(need(0)?.pow(need(1)?)),
        "Mod" => {
            let (p, q) = (need(0)?, need(1)?);
            one(if a.int("fmod", 0) == 1 {
                p.fmod_tensor(q)
            } else {
                p.remainder_tensor(q)
            })
        }
        "Max" | "Min" => {
            let mut y = need(0)?.shallow_clone();
            for i in 1..node.input.len() {
                let z = need(i)?;
                y = if node.op_type == "Max" {
                    y.maximum(z)
                } else {
                    y.minimum(z)
                };
            }
            one(y)
        }
        "Equal" => one(need(0)?.eq_tensor(need(1)?)),
        "GreaterOrEqual" => one(need(0)?.ge_tensor(need(1)?)),
        "Where" => one(need(1)?.where_self(need(0)?, need(2)?)),
        "Cast" => one(x()?.to_kind(kind_of(a.int("to", 1) as i32)?)),
        "MatMul" => one(need(0)?.matmul(need(1)?)),
        "Gemm" => {
            let mut p = need(0)?.shallow_clone();
            let mut q = need(1)?.shallow_clone();
            if a.int("transA", 0) == 1 {
                p = p.tr();
            }
            if a.int("transB", 0) == 1 {
                q = q.tr();
            }
            let mut y = p.matmul(&q) * a.float("alpha", 1.0);
            if let Some(c) = read(2)? {
                y += c * a.float("beta", 1.0);
            }
            one(y)
        }
        "Conv" | "ConvTranspose" => {
            let (x, w) = (need(0)?, need(1)?);
            let n = w.dim() - 2;
            let strides = a.ints("strides").unwrap_or(vec![1; n]);
            let dilations = a.ints("dilations").unwrap_or(vec![1; n]);
            let pads = a.ints("pads").unwrap_or_default();
            let group = a.int("group", 1);
            let transposed = node.op_type == "ConvTranspose";
            let (x, padding) = match symmetric(&pads, n) {
                Some(p) => (x.shallow_clone(), p),
                None if !transposed => (
                    x.constant_pad_nd(torch_pads(&pads, n).as_slice()),
                    vec![0; n],
                ),
                None => return Err(Error::Invalid("uneven transposed padding".into())),
            };
            let output_padding = a.ints("output_padding").unwrap_or(vec![0; n]);
            one(Tensor::convolution(
                &x,
                w,
                read(2)?,
                &strides,
                &padding,
                &dilations,
                transposed,
                &output_padding,
                group,
            ))
        }
        "BatchNormalization" => one(Tensor::batch_norm(
            x()?,
            Some(need(1)?),
            Some(need(2)?),
            Some(need(3)?),
            Some(need(4)?),
            false,
            0.0,
            a.float("epsilon", 1e-5),
            false,
        )),
        "InstanceNormalization" => one(Tensor::instance_norm(
            x()?,
            Some(need(1)?),
            Some(need(2)?),
            None::<&Tensor>,
            None::<&Tensor>,
            true,
            0.0,
            a.float("epsilon", 1e-5),
            false,
        )),
        "LayerNormalization" => {
            let x = x()?;
            let ax = axis(a.int("axis", -1), x.dim()) as usize;
            let shape = x.size()[ax..].to_vec();
            one(x.layer_norm(
                &shape,
                Some(need(1)?),
                read(2)?,
                a.float("epsilon", 1e-5),
                false,
            ))
        }
        "GroupNormalization" => one(x()?.group_norm(
            a.int("num_groups", 1),
            Some(need(1)?),
            Some(need(2)?),
            a.float("epsilon", 1e-5),
            false,
        )),
        "MaxPool" | "AveragePool" => {
            let x = x()?;
            let kernel = a
                .ints("kernel_shape")
                .ok_or_else(|| Error::Invalid("no kernel_shape".into()))?;
            let n = kernel.len();
            let strides = a.ints("strides").unwrap_or(vec![1; n]);
            let pads = a.ints("pads").unwrap_or_default();
            let ceil = a.int("ceil_mode", 0) == 1;
            let padding = symmetric(&pads, n)
                .ok_or_else(|| Error::Invalid("uneven pooling padding".into()))?;
            one(if node.op_type == "MaxPool" {
                let dilations = a.ints("dilations").unwrap_or(vec![1; n]);
                x.max_pool2d(&kernel, &strides, &padding, &dilations, ceil)
            } else {
                let count_pad = a.int("count_include_pad", 0) == 1;
                x.avg_pool2d(&kernel, &strides, &padding, ceil, count_pad, None)
            })
        }
        "GlobalAveragePool" | "GlobalMaxPool" => {
            let x = x()?;
            let dims: Vec<i64> = (2..x.dim() as i64).collect();
            one(if node.op_type == "GlobalAveragePool" {
                x.mean_dim(dims.as_slice(), true, x.kind())
            } else {
                x.amax(dims.as_slice(), true)
            })
        }
        "Softmax" | "LogSoftmax" => {
            let x = x()?;
            let ax = a.int("axis", -1);
            one(if node.op_type == "Softmax" {
                x.softmax(ax, x.kind())
            } else {
                x.log_softmax(ax, x.kind())
            })
        }
        "ReduceMean" | "ReduceSum" | "ReduceMax" | "ReduceMin" => {
            let x = x()?;
            let keep = a.int("keepdims", 1) == 1;
            let axes = match read(1)? {
                Some(t) => int_list(t)?,
                None => (0..x.dim() as i64).collect(),
            };
            let axes: Vec<i64> = axes.iter().map(|&d| axis(d, x.dim())).collect();
            let axes = axes.as_slice();
            one(match node.op_type.as_str() {
                "ReduceMean" => x.mean_dim(axes, keep, x.kind()),
                "ReduceSum" => x.sum_dim_intlist(axes, keep, x.kind()),
                "ReduceMax" => x.amax(axes, keep),
                _ => x.amin(axes, keep),
            })
        }
        "ArgMax" | "ArgMin" => {
            let x = x()?;
            let (ax, keep) = (a.int("axis", 0), a.int("keepdims", 1) == 1);
            one(if node.op_type == "ArgMax" {
                x.argmax(ax, keep)
            } else {
                x.argmin(ax, keep)
            })
        }
        "TopK" => {
            let k = int_list(need(1)?)?[0];
            let (values, indices) = x()?.topk(
                k,
                a.int("axis", -1),
                a.int("largest", 1) == 1,
                a.int("sorted", 1) == 1,
            );
            Ok(vec![values, indices])
        }
        "CumSum" => {
            let x = x()?;
            let ax = int_list(need(1)?)?[0];
            if a.int("exclusive", 0) != 0 || a.int("reverse", 0) != 0 {
                return Err(Error::Invalid("exclusive or reverse CumSum".into()));
            }
            one(x.cumsum(ax, x.kind()))
        }
        "Concat" => {
            let parts = (0..node.input.len())
                .map(need)
                .collect::<Result<Vec<_>>>()?;
            one(Tensor::cat(&parts, a.int("axis", 0)))
        }
        "Split" => {
            let x = x()?;
            let ax = a.int("axis", 0);
            let sizes = match read(1)? {
                Some(s) => int_list(s)?,
                None => {
                    let n = node.output.len() as i64;
                    vec![x.size()[axis(ax, x.dim()) as usize] / n; n as usize]
                }
            };
            Ok(x.split_with_sizes(&sizes, ax))
        }
        "Slice" => {
            let mut y = x()?.shallow_clone();
            let starts = int_list(need(1)?)?;
            let ends = int_list(need(2)?)?;
            let axes = match read(3)? {
                Some(t) => int_list(t)?,
                None => (0..starts.len() as i64).collect(),
            };
            let steps = match read(4)? {
                Some(t) => int_list(t)?,
                None => vec![1; starts.len()],
            };
            for k in 0..starts.len() {
                let d = axis(axes[k], y.dim());
                let size = y.size()[d as usize];
                let clamp = |v: i64| if v < 0 { v + size } else { v }.clamp(0, size);
                let (s, e) = (clamp(starts[k]), clamp(ends[k]));
                if steps[k] != 1 {
                    return Err(Error::Invalid(format!("Slice step {}", steps[k])));
                }
                y = y.narrow(d, s, (e - s).max(0));
            }
            one(y)
        }
        "Gather" => {
            let (x, idx) = (x()?, need(1)?);
            let ax = axis(a.int("axis", 0), x.dim());
            let size = x.size()[ax as usize];
            let idx = idx.where_self(&idx.ge(0), &(idx + size));
            if idx.dim() == 0 {
                one(x.select(ax, idx.int64_value(&[])))
            } else {
                let flat = x.index_select(ax, &idx.flatten(0, -1));
                let mut shape = x.size()[..ax as usize].to_vec();
                shape.extend(idx.size());
                shape.extend_from_slice(&x.size()[ax as usize + 1..]);
                one(flat.reshape(shape.as_slice()))
            }
        }
        "GatherElements" => {
            let (x, idx) = (x()?, need(1)?);
            let ax = axis(a.int("axis", 0), x.dim());
            let size = x.size()[ax as usize];
            let idx = idx.where_self(&idx.ge(0), &(idx + size));
            one(x.gather(ax, &idx, false))
        }
        "GatherND" => {
            let (x, idx) = (x()?, need(1)?);
            let q = *idx.size().last().unwrap_or(&0) as usize;
            let dims = x.size();
            let mut linear = Tensor::zeros(&idx.size()[..idx.dim() - 1], (Kind::Int64, x.device()));
            for (d, size) in dims.iter().take(q).enumerate() {
                linear = linear * *size + idx.select(-1, d as i64);
            }
            let mut rest: Vec<i64> = vec![-1];
            rest.extend_from_slice(&dims[q..]);
            let rows = x
                .reshape(rest.as_slice())
                .index_select(0, &linear.flatten(0, -1));
            let mut shape = idx.size()[..idx.dim() - 1].to_vec();
            shape.extend_from_slice(&dims[q..]);
            one(rows.reshape(shape.as_slice()))
        }
        "Transpose" => {
            let x = x()?;
            let perm = a
                .ints("perm")
                .unwrap_or_else(|| (0..x.dim() as i64).rev().collect());
            one(x.permute(perm.as_slice()))
        }
        "Reshape" => {
            let x = x()?;
            let mut shape = int_list(need(1)?)?;
            for (i, d) in shape.iter_mut().enumerate() {
                if *d == 0 {
                    *d = x.size()[i];
                }
            }
            one(x.reshape(shape.as_slice()))
        }
        "Flatten" => {
            let x = x()?;
            let ax = axis(a.int("axis", 1), x.dim()) as usize;
            let outer: i64 = x.size()[..ax].iter().product();
            one(x.reshape([outer, -1]))
        }
        "Squeeze" => {
            let x = x()?;
            one(match read(1)? {
                Some(axes) => {
                    let mut axes: Vec<i64> =
                        int_list(axes)?.iter().map(|&d| axis(d, x.dim())).collect();
                    axes.sort_unstable();
                    axes.iter()
                        .rev()
                        .fold(x.shallow_clone(), |y, &d| y.squeeze_dim(d))
                }
                None => x.squeeze(),
            })
        }
        "Unsqueeze" => {
            let x = x()?;
            let rank = x.dim() + int_list(need(1)?)?.len();
            let mut axes: Vec<i64> = int_list(need(1)?)?.iter().map(|&d| axis(d, rank)).collect();
            axes.sort_unstable();
            one(axes.iter().fold(x.shallow_clone(), |y, &d| y.unsqueeze(d)))
        }
        "Expand" => {
            let x = x()?;
            let shape = int_list(need(1)?)?;
            // Bidirectional broadcasting: the result has the larger of each pair of sizes.
            let rank = shape.len().max(x.dim());
            let size = x.size();
            let at = |s: &[i64], p: usize| (s.len() + p).checked_sub(rank).map_or(1, |q| s[q]);
            let out: Vec<i64> = (0..rank).map(|p| at(&size, p).max(at(&shape, p))).collect();
            one(x.expand(out.as_slice(), false).contiguous())
        }
        "Tile" => one(x()?.repeat(int_list(need(1)?)?.as_slice())),
        "Shape" => {
            let size = x()?.size();
            one(Tensor::from_slice(&size))
        }
        "ConstantOfShape" => {
            let shape = int_list(x()?)?;
            let value = match a.get("value").and_then(|v| v.t.as_ref()) {
                Some(t) => tensor(t)?,
                None => Tensor::from_slice(&[0f32]),
            };
            one(value
                .reshape([1])
                .expand(shape.as_slice(), false)
                .contiguous())
        }
        "Range" => {
            let (start, limit, delta) = (need(0)?, need(1)?, need(2)?);
            let opts = (start.kind(), start.device());
            one(Tensor::arange_start_step(
                start.double_value(&[]),
                limit.double_value(&[]),
                delta.double_value(&[]),
                opts,
            ))
        }
        "Pad" => {
            let x = x()?;
            let pads = int_list(need(1)?)?;
            let value = read(2)?.map(|v| v.double_value(&[]));
            let rank = x.dim();
            let n = pads.len() / 2;
            if read(3)?.is_some() || n != rank {
                return Err(Error::Invalid("Pad with axes".into()));
            }
            // libtorch pads the trailing dimensions: the leading ones must have no padding.
            let lead = (0..n)
                .find(|&d| pads[d] != 0 || pads[d + n] != 0)
                .unwrap_or(n);
            let kept: Vec<i64> = pads[lead..n]
                .iter()
                .chain(&pads[n + lead..])
                .copied()
                .collect();
            let torch = torch_pads(&kept, n - lead);
            let mode = match a.string("mode", "constant").as_str() {
                "constant" => "constant",
                "reflect" => "reflect",
                "edge" => "replicate",
                other => return Err(Error::Invalid(format!("Pad mode {other}"))),
            };
            one(x.pad(torch.as_slice(), mode, value))
        }
        "Resize" => {
            let x = x()?;
            if x.dim() != 4 {
                return Err(Error::Invalid("Resize of a tensor that is not 4-D".into()));
            }
            let (scales, sizes) = (read(2)?, read(3)?);
            let (out, factors) = match (sizes, scales) {
                (Some(s), _) if s.numel() > 0 => (int_list(s)?[2..].to_vec(), [None, None]),
                (_, Some(s)) => {
                    let f = Vec::<f64>::try_from(s.to_kind(Kind::Double))?;
                    let size = x.size();
                    (
                        vec![
                            (size[2] as f64 * f[2]).floor() as i64,
                            (size[3] as f64 * f[3]).floor() as i64,
                        ],
                        [Some(f[2]), Some(f[3])],
                    )
                }
                _ => return Err(Error::Invalid("Resize without scales or sizes".into())),
            };
            let mode = a.string("mode", "nearest");
            let transform = a.string("coordinate_transformation_mode", "half_pixel");
            one(match (mode.as_str(), transform.as_str()) {
                ("nearest", "asymmetric") if a.string("nearest_mode", "") == "floor" => {
                    x.upsample_nearest2d(&out, factors[0], factors[1])
                }
                ("linear", "pytorch_half_pixel") => {
                    x.upsample_bilinear2d(&out, false, factors[0], factors[1])
                }
                ("linear", "align_corners") => x.upsample_bilinear2d(&out, true, None, None),
                _ => {
                    return Err(Error::Invalid(format!(
                        "Resize mode {mode} with {transform} coordinates"
                    )))
                }
            })
        }
        "NonMaxSuppression" => {
            let (boxes, scores) = (need(0)?, need(1)?);
            if a.int("center_point_box", 0) != 0 {
                return Err(Error::Invalid("centre-point boxes".into()));
            }
            let max_boxes = read(2)?.map_or(0, |t| t.int64_value(&[0]));
            let iou = read(3)?.map_or(0.0, |t| t.double_value(&[0]));
            let threshold = read(4)?.map(|t| t.double_value(&[0]));
            // Any corner order: the smaller coordinate is the first corner.
            let (p, q) = (boxes.narrow(2, 0, 2), boxes.narrow(2, 2, 2));
            let boxes = Tensor::cat(&[p.minimum(&q), p.maximum(&q)], 2);
            let mut rows = Vec::new();
            for n in 0..scores.size()[0] {
                for c in 0..scores.size()[1] {
                    let s = scores.get(n).get(c);
                    let candidates = match threshold {
                        Some(t) => s.gt(t).nonzero().flatten(0, -1),
                        None => Tensor::arange(s.size()[0], (Kind::Int64, s.device())),
                    };
                    if candidates.numel() == 0 || max_boxes == 0 {
                        continue;
                    }
                    let b = boxes.get(n).index_select(0, &candidates);
                    let keep =
                        crate::ops::detection::nms(&b, &s.index_select(0, &candidates), iou)?;
                    let kept = Vec::<i64>::try_from(candidates.index_select(0, &keep))?;
                    rows.extend(
                        kept.into_iter()
                            .take(max_boxes as usize)
                            .flat_map(|i| [n, c, i]),
                    );
                }
            }
            one(Tensor::from_slice(&rows).reshape([-1, 3]))
        }
        other => Err(Error::Invalid(format!(
            "the operator {other} is not run here"
        ))),
    }
}
