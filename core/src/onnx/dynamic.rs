//! Dynamic axes: the second trace that shows which sizes follow the input, and the checks that
//! the graph written from it is the same whichever trace it came from.

use tch::{Kind, Tensor};

use super::proto::{ModelProto, NodeProto};
use super::trace::{Trace, ValueType};
use super::Dynamic;
use crate::{Error, Result};

/// How much larger the second trace's height and width are: a multiple of every stride in use
/// (YOLO's 32), so that a model that needs divisible sizes runs there too.
const SIZE_STEP: i64 = 32;

/// The inputs of the second trace: one more image in the batch and, for `(N, C, H, W)` inputs
/// with [`Dynamic::BatchAndSize`], `SIZE_STEP` more rows and columns (the example resized, so
/// that what the model computes stays like what it computed on the example).
pub(crate) fn second_probe(inputs: &[Tensor], dynamic: Dynamic) -> Result<Vec<Tensor>> {
    inputs
        .iter()
        .map(|x| {
            let size = x.size();
            if size.is_empty() {
                return Err(Error::Invalid(
                    "ONNX export with dynamic axes: a scalar input has no batch dimension".into(),
                ));
            }
            let mut y = Tensor::cat(&[x, &x.narrow(0, 0, 1)], 0);
            if dynamic == Dynamic::BatchAndSize && size.len() == 4 {
                let floating = y.is_floating_point();
                let resized = if floating { y } else { y.to_kind(Kind::Float) }.upsample_nearest2d(
                    [size[2] + SIZE_STEP, size[3] + SIZE_STEP],
                    None,
                    None,
                );
                y = if floating {
                    resized
                } else {
                    resized.to_kind(x.kind())
                };
            }
            Ok(y)
        })
        .collect()
}

/// Both traces ran the same operators in the same order (a model whose control flow depends on
/// the input's size cannot have one graph for every size).
pub(crate) fn same_operators(a: &Trace, b: &Trace) -> Result<()> {
    let differs = a
        .nodes
        .iter()
        .zip(&b.nodes)
        .position(|(x, y)| x.kind != y.kind || x.inputs.len() != y.inputs.len());
    if let Some(k) = differs {
        return Err(Error::Invalid(format!(
            "ONNX export with dynamic axes: the model runs other operators at another input size \
             (operator {k}: {} at the traced size, {} at the other)",
            a.nodes[k].kind, b.nodes[k].kind
        )));
    }
    if a.nodes.len() != b.nodes.len() {
        return Err(Error::Invalid(format!(
            "ONNX export with dynamic axes: the model runs {} operators at the traced size and {} \
             at another",
            a.nodes.len(),
            b.nodes.len()
        )));
    }
    Ok(())
}

/// The graphs converted from the two traces are the same (names, operators, attributes,
/// constants): every size that followed the input became one the graph reads from it.
pub(crate) fn same_graphs(a: &ModelProto, b: &ModelProto) -> Result<()> {
    let (Some(ga), Some(gb)) = (&a.graph, &b.graph) else {
        return Err(Error::Invalid("ONNX model without a graph".into()));
    };
    let described = |n: &NodeProto| format!("node '{}' ({})", n.name, n.op_type);
    for (x, y) in ga.node.iter().zip(&gb.node) {
        if x != y {
            let mut reason = "its attributes depend on the input size".to_string();
            if x.input != y.input {
                reason = format!("it reads {:?} here, {:?} there", x.input, y.input);
            }
            return Err(Error::Invalid(format!(
                "ONNX export with dynamic axes: {} differs between two input sizes ({reason}): \
                 the model computes a size from its input in a way that is not written yet",
                described(x)
            )));
        }
    }
    if ga.node.len() != gb.node.len() {
        return Err(Error::Invalid(format!(
            "ONNX export with dynamic axes: {} nodes at the traced size, {} at another",
            ga.node.len(),
            gb.node.len()
        )));
    }
    for (x, y) in ga.initializer.iter().zip(&gb.initializer) {
        if x != y {
            let readers: Vec<String> = ga
                .node
                .iter()
                .filter(|n| n.input.contains(&x.name))
                .map(described)
                .collect();
            return Err(Error::Invalid(format!(
                "ONNX export with dynamic axes: the constant '{}' (read by {}) depends on the \
                 input size: the model builds it from sizes it read, which the graph cannot \
                 recompute",
                x.name,
                readers.join(", ")
            )));
        }
    }
    if ga.initializer.len() != gb.initializer.len() {
        return Err(Error::Invalid(
            "ONNX export with dynamic axes: the constants differ between two input sizes".into(),
        ));
    }
    Ok(())
}

/// The axes of a value whose sizes differ between the two traces.
pub(crate) fn free_axes(ty: &ValueType, twin: Option<&ValueType>) -> Vec<usize> {
    match (ty, twin) {
        (ValueType::Tensor(_, a), Some(ValueType::Tensor(_, b))) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .filter(|(_, (x, y))| x != y)
            .map(|(axis, _)| axis)
            .collect(),
        _ => Vec::new(),
    }
}

/// The name of an input's free axis: `batch`, `height`, `width` (torch.onnx's and Ultralytics'
/// names), else `<input>_dim<axis>`.
pub(crate) fn input_axis_name(input: &str, axis: usize, ty: &ValueType) -> String {
    let rank = match ty {
        ValueType::Tensor(_, s) => s.len(),
        _ => 0,
    };
    match (axis, rank) {
        (0, _) => "batch".into(),
        (2, 4) => "height".into(),
        (3, 4) => "width".into(),
        _ => format!("{input}_dim{axis}"),
    }
}

/// The name of an output's free `axis` when, in both traces, its size is the first input's batch,
/// height or width.
pub(crate) fn follows_input(
    ty: &ValueType,
    twin: &ValueType,
    axis: usize,
    inputs: &[ValueType],
    twin_inputs: &[ValueType],
) -> Option<String> {
    let (ValueType::Tensor(_, a), ValueType::Tensor(_, b)) = (ty, twin) else {
        return None;
    };
    let (ValueType::Tensor(_, ia), ValueType::Tensor(_, ib)) =
        (inputs.first()?, twin_inputs.first()?)
    else {
        return None;
    };
    let (x, y) = (*a.get(axis)?, *b.get(axis)?);
    let same = |k: usize| ia.get(k) == Some(&x) && ib.get(k) == Some(&y);
    // A square input's height equals its width: the axis of the same number is the one meant.
    if ia.len() == 4 && (axis == 2 || axis == 3) && same(axis) {
        Some(if axis == 2 { "height" } else { "width" }.into())
    } else if same(0) {
        Some("batch".into())
    } else if ia.len() == 4 && same(2) {
        Some("height".into())
    } else if ia.len() == 4 && same(3) {
        Some("width".into())
    } else {
        None
    }
}
