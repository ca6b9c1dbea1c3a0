//! The ONNX graph under construction: nodes in execution order, initialisers (the weights, under
//! their state-dict names) and the helpers that make attributes and tensors.

use std::collections::HashMap;

use indexmap::IndexMap;
use tch::{Kind, Tensor};

use super::proto::{AttributeProto, AttributeType, DataType, NodeProto, TensorProto};
use crate::{Error, Result};

/// Nodes and initialisers, with unique names for both.
#[derive(Default)]
pub(crate) struct Builder {
    pub nodes: Vec<NodeProto>,
    pub initialisers: IndexMap<String, Tensor>,
    taken: HashMap<String, usize>,
    constants: usize,
}

impl Builder {
    /// A name not used before, from `hint` (`hint`, then `hint.1`, `hint.2`, …).
    pub fn unique(&mut self, hint: &str) -> String {
        let seen = self.taken.entry(hint.to_string()).or_insert(0);
        *seen += 1;
        if *seen == 1 {
            hint.to_string()
        } else {
            format!("{hint}.{}", *seen - 1)
        }
    }

    /// Appends an `op` node reading `inputs` (an empty name is an absent optional input) and
    /// returns its `outputs` fresh output names. `scope` names the module it comes from (a
    /// weight's prefix) so that a reader can map nodes back to modules.
    pub fn node(
        &mut self,
        op: &str,
        inputs: &[&str],
        outputs: usize,
        attributes: Vec<AttributeProto>,
        scope: &str,
    ) -> Vec<String> {
        let name = self.unique(&if scope.is_empty() {
            format!("/{op}")
        } else {
            format!("/{scope}/{op}")
        });
        let outs: Vec<String> = (0..outputs)
            .map(|i| {
                if outputs == 1 {
                    format!("{name}_output")
                } else {
                    format!("{name}_output_{i}")
                }
            })
            .collect();
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outs.clone(),
            name,
            op_type: op.to_string(),
            attribute: attributes,
            ..Default::default()
        });
        outs
    }

    /// [`Builder::node`] with one output.
    pub fn node1(
        &mut self,
        op: &str,
        inputs: &[&str],
        attributes: Vec<AttributeProto>,
        scope: &str,
    ) -> String {
        self.node(op, inputs, 1, attributes, scope).remove(0)
    }

    /// Adds `tensor` as an initialiser named `name` (made unique) and returns the name.
    pub fn initialiser(&mut self, name: &str, tensor: Tensor) -> String {
        let name = self.unique(name);
        self.initialisers.insert(name.clone(), tensor);
        name
    }

    /// A constant initialiser for `tensor`, named `hint` and a number.
    pub fn constant(&mut self, hint: &str, tensor: Tensor) -> String {
        self.constants += 1;
        let name = format!("onnx::{hint}_{}", self.constants);
        self.initialiser(&name, tensor)
    }

    /// A 1-D int64 constant (shapes, axes, pads).
    pub fn ints(&mut self, values: &[i64]) -> String {
        self.constant("ints", Tensor::from_slice(values))
    }

    /// A scalar constant of element type `kind`.
    pub fn scalar(&mut self, value: f64, kind: Kind) -> String {
        self.constant("scalar", Tensor::from(value).to_kind(kind))
    }
}

/// An integer attribute.
pub(crate) fn attr_int(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Int as i32,
        i: Some(i),
        ..Default::default()
    }
}

/// An integer-list attribute.
pub(crate) fn attr_ints(name: &str, ints: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: ints.to_vec(),
        ..Default::default()
    }
}

/// A float attribute.
pub(crate) fn attr_float(name: &str, f: f64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Float as i32,
        f: Some(f as f32),
        ..Default::default()
    }
}

/// A tensor attribute (ConstantOfShape's value).
pub(crate) fn attr_tensor(name: &str, tensor: &Tensor) -> Result<AttributeProto> {
    Ok(AttributeProto {
        name: name.into(),
        r#type: AttributeType::Tensor as i32,
        t: Some(tensor_proto("", tensor)?),
        ..Default::default()
    })
}

/// A string attribute.
pub(crate) fn attr_str(name: &str, s: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::String as i32,
        s: Some(s.as_bytes().to_vec()),
        ..Default::default()
    }
}

/// ONNX's element type for a libtorch kind.
pub(crate) fn data_type(kind: Kind) -> Result<DataType> {
    Ok(match kind {
        Kind::Float => DataType::Float,
        Kind::Double => DataType::Double,
        Kind::Half => DataType::Float16,
        Kind::BFloat16 => DataType::Bfloat16,
        Kind::Int64 => DataType::Int64,
        Kind::Int => DataType::Int32,
        Kind::Int8 => DataType::Int8,
        Kind::Uint8 => DataType::Uint8,
        Kind::Bool => DataType::Bool,
        other => {
            return Err(Error::Invalid(format!(
                "ONNX export: tensors of {other:?} have no ONNX element type here"
            )))
        }
    })
}

/// `tensor` as a `TensorProto` named `name`, its values little-endian in `raw_data`.
pub(crate) fn tensor_proto(name: &str, tensor: &Tensor) -> Result<TensorProto> {
    let t = tensor.to_device(tch::Device::Cpu).contiguous();
    let kind = t.kind();
    let numel = t.numel();
    let mut raw = vec![0u8; numel * kind.elt_size_in_bytes()];
    t.copy_data_u8(&mut raw, numel);
    Ok(TensorProto {
        dims: t.size(),
        data_type: data_type(kind)? as i32,
        name: name.to_string(),
        raw_data: raw,
        ..Default::default()
    })
}
