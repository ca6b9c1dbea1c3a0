//! ATen operators to ONNX nodes: each traced operator emits its nodes once, here, whatever model
//! it comes from. An operator without a translation is an error that names it, never a graph
//! that computes something else.
//!
//! Two rewrites happen on the way. A BatchNorm reading a convolution's only output is folded
//! into that convolution's weights (as Ultralytics' and torch.onnx's exports of evaluation-mode
//! models do), and operators that only change a tensor's layout in memory (`contiguous`,
//! `dropout` in evaluation, `detach`, …) emit nothing.

use std::collections::HashMap;

use tch::{Kind, Tensor};

use super::graph::{attr_float, attr_int, attr_ints, attr_str, attr_tensor, Builder};
use super::trace::{Constant, Trace, TraceNode, ValueType};
use crate::{Error, Result};

/// What a traced value is, once converted.
enum Value {
    /// A tensor in the graph, by its ONNX name.
    Tensor(String),
    /// A list of tensors in the graph (a `cat`'s input, a `chunk`'s output).
    Tensors(Vec<String>),
}

/// The state of one conversion.
pub(crate) struct Converter<'a> {
    pub builder: Builder,
    trace: &'a mut Trace,
    values: HashMap<usize, Value>,
    /// Every traced value's type (inputs, outputs, constants).
    types: HashMap<usize, ValueType>,
    /// The model's parameters and buffers by data pointer: their state-dict names and shapes.
    names: &'a HashMap<usize, (String, Vec<i64>)>,
    /// How many nodes read each value.
    uses: HashMap<usize, usize>,
    /// The convolutions emitted, by output name: node index, weight and bias initialisers.
    convolutions: HashMap<String, (usize, String, Option<String>)>,
    /// The opset written: operators newer than it are emitted as older ones.
    opset: i64,
    /// With dynamic axes: the same forward traced at other input sizes, node for node.
    twin: Option<Twin<'a>>,
    /// The index of the node being converted (its twin's too).
    at: usize,
    /// The first graph input's name and batch size in this trace and in the twin.
    batch: Option<(String, i64, i64)>,
    /// The batch size read from the first input (`Shape` → `Slice`), once made.
    batch_tensor: Option<String>,
    /// Tensor values in the order they were made (graph inputs first).
    produced: Vec<usize>,
}

/// The other trace of a dynamic export and its values' types.
struct Twin<'a> {
    trace: &'a Trace,
    types: HashMap<usize, ValueType>,
    /// This trace's values to the twin's same values (inputs by position, outputs by node).
    same: HashMap<usize, usize>,
}

/// One entry of a shape written for dynamic axes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Dim {
    /// The same in every trace.
    Fixed(i64),
    /// The input's size along the same axis (Reshape's `0`, Expand's `1`).
    Same,
    /// What the other sizes leave (Reshape's `-1`).
    Rest,
    /// The first graph input's batch size.
    Batch,
}

/// Lists of constant numbers (`prim::ListConstruct` of constants) become constants themselves,
/// so that an operator reads its sizes as one list. Run on every trace before it is converted.
pub(crate) fn fold_constant_lists(trace: &mut Trace) {
    for node in &trace.nodes {
        if node.kind != "prim::ListConstruct" || node.inputs.is_empty() {
            continue;
        }
        let items: Vec<Option<&Constant>> =
            node.inputs.iter().map(|v| trace.constants.get(v)).collect();
        let folded = if items.iter().all(|c| matches!(c, Some(Constant::Int(_)))) {
            Constant::Ints(
                items
                    .iter()
                    .map(|c| match c {
                        Some(Constant::Int(x)) => *x,
                        _ => 0,
                    })
                    .collect(),
            )
        } else if items
            .iter()
            .all(|c| matches!(c, Some(Constant::Float(_) | Constant::Int(_))))
        {
            Constant::Floats(
                items
                    .iter()
                    .map(|c| match c {
                        Some(Constant::Float(x)) => *x,
                        Some(Constant::Int(x)) => *x as f64,
                        _ => 0.0,
                    })
                    .collect(),
            )
        } else {
            continue;
        };
        trace.constants.insert(node.outputs[0].0, folded);
    }
}

impl<'a> Converter<'a> {
    pub fn new(
        trace: &'a mut Trace,
        twin: Option<&'a Trace>,
        names: &'a HashMap<usize, (String, Vec<i64>)>,
        opset: i64,
    ) -> Self {
        let mut types = HashMap::new();
        let mut uses = HashMap::new();
        for (v, ty) in &trace.inputs {
            types.insert(*v, ty.clone());
        }
        for node in &trace.nodes {
            for (v, ty) in &node.outputs {
                types.insert(*v, ty.clone());
            }
            for v in &node.inputs {
                *uses.entry(*v).or_insert(0) += 1;
            }
        }
        for v in &trace.outputs {
            *uses.entry(*v).or_insert(0) += 1;
        }
        let twin = twin.map(|other| Twin {
            same: trace
                .inputs
                .iter()
                .zip(&other.inputs)
                .map(|((a, _), (b, _))| (*a, *b))
                .chain(trace.nodes.iter().zip(&other.nodes).flat_map(|(x, y)| {
                    x.outputs
                        .iter()
                        .zip(&y.outputs)
                        .map(|((a, _), (b, _))| (*a, *b))
                }))
                .collect(),
            types: other
                .inputs
                .iter()
                .cloned()
                .chain(other.nodes.iter().flat_map(|n| n.outputs.iter().cloned()))
                .collect(),
            trace: other,
        });
        let produced = trace.inputs.iter().map(|(v, _)| *v).collect();
        Self {
            builder: Builder::default(),
            trace,
            values: HashMap::new(),
            types,
            names,
            uses,
            convolutions: HashMap::new(),
            opset,
            twin,
            at: 0,
            batch: None,
            batch_tensor: None,
            produced,
        }
    }

    /// Names the graph input `v`, the `k`-th.
    pub fn bind_input(&mut self, k: usize, v: usize, name: &str) {
        self.values.insert(v, Value::Tensor(name.to_string()));
        if k == 0 {
            let twin = self.twin.as_ref().and_then(|t| t.trace.inputs.first());
            if let (Some(ValueType::Tensor(_, a)), Some((_, ValueType::Tensor(_, b)))) =
                (self.types.get(&v), twin)
            {
                if let (Some(&x), Some(&y)) = (a.first(), b.first()) {
                    self.batch = Some((name.to_string(), x, y));
                }
            }
        }
    }

    /// Converts every node in order.
    pub fn run(&mut self) -> Result<()> {
        let nodes = std::mem::take(&mut self.trace.nodes);
        for (at, node) in nodes.iter().enumerate() {
            self.at = at;
            self.convert(node).map_err(|e| match e {
                Error::Invalid(m) => Error::Invalid(format!("ONNX export of {}: {m}", node.kind)),
                other => other,
            })?;
            self.produced.extend(node.outputs.iter().map(|(v, _)| *v));
        }
        self.trace.nodes = nodes;
        Ok(())
    }

    /// The ONNX name of the tensor value `v` (a constant becomes an initialiser, under its
    /// state-dict name when it is one of the model's tensors).
    pub fn tensor(&mut self, v: usize) -> Result<String> {
        if let Some(Value::Tensor(name)) = self.values.get(&v) {
            return Ok(name.clone());
        }
        let name = match self.trace.constants.get(&v) {
            Some(Constant::Tensor(t)) => {
                let t = t.shallow_clone();
                let name = match self.names.get(&(t.data_ptr() as usize)) {
                    Some((name, shape)) if *shape == t.size() => name.clone(),
                    // Numbered in conversion order, not by the trace's value numbers, so that
                    // two traces of one forward name their constants alike.
                    _ => return Ok(self.remember(v, "constant", t)),
                };
                self.builder.initialiser(&name, t)
            }
            Some(Constant::Int(i)) => self.builder.scalar(*i as f64, Kind::Int64),
            Some(Constant::Float(f)) => self.builder.scalar(*f, Kind::Float),
            _ => {
                return Err(Error::Invalid(format!(
                    "value %{v} is not a tensor the graph holds"
                )))
            }
        };
        self.values.insert(v, Value::Tensor(name.clone()));
        Ok(name)
    }

    fn remember(&mut self, v: usize, hint: &str, t: Tensor) -> String {
        let name = self.builder.constant(hint, t);
        self.values.insert(v, Value::Tensor(name.clone()));
        name
    }

    /// The node being converted, in the other trace of a dynamic export.
    fn twin_node(&self) -> Option<&TraceNode> {
        self.twin.as_ref().and_then(|t| t.trace.nodes.get(self.at))
    }

    /// The constant integers of the twin node's `j`-th input.
    fn twin_ints(&self, j: usize) -> Option<Vec<i64>> {
        let twin = self.twin.as_ref()?;
        let v = *self.twin_node()?.inputs.get(j)?;
        match twin.trace.constants.get(&v)? {
            Constant::Ints(list) => Some(list.clone()),
            Constant::Int(i) => Some(vec![*i]),
            _ => None,
        }
    }

    /// The traced shape of the twin node's `j`-th input.
    fn twin_shape(&self, j: usize) -> Option<Vec<i64>> {
        let twin = self.twin.as_ref()?;
        let v = *self.twin_node()?.inputs.get(j)?;
        if let Some(Constant::Tensor(t)) = twin.trace.constants.get(&v) {
            return Some(t.size());
        }
        match twin.types.get(&v)? {
            ValueType::Tensor(_, shape) => Some(shape.clone()),
            _ => None,
        }
    }

    /// The traced shape of the twin node's first output.
    fn twin_out_shape(&self) -> Option<Vec<i64>> {
        match &self.twin_node()?.outputs.first()?.1 {
            ValueType::Tensor(_, shape) => Some(shape.clone()),
            _ => None,
        }
    }

    /// A shape argument whose entries may follow the input: `traced` and `twin` are its values in
    /// the two traces, `input` and `twin_input` the shapes of the tensor it applies to (aligned
    /// at the right, as Expand broadcasts). An entry the traces agree on is fixed; one that
    /// equals the input's own size there in both is `Same`; one that equals the first graph
    /// input's batch in both is `Batch`; the last one left is `Rest` when `rest` allows it.
    fn dims(
        &self,
        traced: &[i64],
        twin: Option<&[i64]>,
        input: &[i64],
        twin_input: Option<&[i64]>,
        rest: bool,
    ) -> Result<Vec<Dim>> {
        let Some(twin) = twin else {
            return Ok(traced.iter().map(|&d| Dim::Fixed(d)).collect());
        };
        if twin.len() != traced.len() {
            return Err(Error::Invalid(format!(
                "its shape has {} entries at one input size and {} at another",
                traced.len(),
                twin.len()
            )));
        }
        let twin_input = twin_input.unwrap_or(input);
        let n = traced.len();
        // Sizes aligned at the right: entry p of an n-entry shape against the input's.
        let at = |shape: &[i64], p: usize| -> Option<i64> {
            (shape.len() + p)
                .checked_sub(n)
                .and_then(|q| shape.get(q).copied())
        };
        let mut dims = Vec::with_capacity(n);
        let mut open = 0;
        for p in 0..n {
            let (a, b) = (traced[p], twin[p]);
            let dim = if a == b {
                Dim::Fixed(a)
            } else if at(input, p) == Some(a) && at(twin_input, p) == Some(b) {
                Dim::Same
            } else if self
                .batch
                .as_ref()
                .is_some_and(|(_, x, y)| (*x, *y) == (a, b))
            {
                Dim::Batch
            } else {
                open += 1;
                Dim::Rest
            };
            dims.push(dim);
        }
        let explicit_rest = dims.contains(&Dim::Fixed(-1));
        if open > 0 && (!rest || open > 1 || explicit_rest) {
            return Err(Error::Invalid(format!(
                "its shape {traced:?} (at another input size {twin:?}) has sizes that follow the \
                 input in a way the graph cannot read from it"
            )));
        }
        Ok(dims)
    }

    /// A shape input for `dims`: one constant when every entry is known now, else the constant
    /// parts concatenated with the batch size read from the first graph input. `same` is what
    /// the operator reads as "the input's size" (Reshape's 0, Expand's 1).
    fn shape_input(&mut self, dims: &[Dim], same: i64, scope: &str) -> Result<String> {
        let number = |d: &Dim| match d {
            Dim::Fixed(v) => Some(*v),
            Dim::Same => Some(same),
            Dim::Rest => Some(-1),
            Dim::Batch => None,
        };
        if dims.iter().all(|d| number(d).is_some()) {
            let values: Vec<i64> = dims.iter().filter_map(number).collect();
            return Ok(self.builder.ints(&values));
        }
        let batch = self.batch_size(scope)?;
        let mut parts = Vec::new();
        let mut run = Vec::new();
        for d in dims {
            match number(d) {
                Some(v) => run.push(v),
                None => {
                    if !run.is_empty() {
                        parts.push(self.builder.ints(&std::mem::take(&mut run)));
                    }
                    parts.push(batch.clone());
                }
            }
        }
        if !run.is_empty() {
            parts.push(self.builder.ints(&run));
        }
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        Ok(self
            .builder
            .node1("Concat", &refs, vec![attr_int("axis", 0)], scope))
    }

    /// The latest tensor made before this node whose last two sizes are `out`'s in this trace
    /// and `twin_out`'s in the other, by its ONNX name.
    fn spatial_like(&self, out: &[i64], twin_out: &[i64]) -> Option<String> {
        let twin = self.twin.as_ref()?;
        let last2 = |s: &[i64]| s.get(s.len().checked_sub(2)?..).map(<[i64]>::to_vec);
        let (want, twin_want) = (last2(out)?, last2(twin_out)?);
        self.produced.iter().rev().find_map(|v| {
            let Some(ValueType::Tensor(_, a)) = self.types.get(v) else {
                return None;
            };
            let Some(ValueType::Tensor(_, b)) = twin.types.get(twin.same.get(v)?) else {
                return None;
            };
            if a.len() < 2 || last2(a)? != want || last2(b)? != twin_want {
                return None;
            }
            match self.values.get(v) {
                Some(Value::Tensor(name)) => Some(name.clone()),
                _ => None,
            }
        })
    }

    /// Resize's `sizes` for `x` resized to `like`'s height and width: `x`'s first two sizes and
    /// `like`'s last two, read at run time.
    fn sizes_like(&mut self, x: &str, like: &str, scope: &str) -> String {
        let shape_x = self.builder.node1("Shape", &[x], vec![], scope);
        let shape_like = self.builder.node1("Shape", &[like], vec![], scope);
        let (zero, two, minus_two, end) = (
            self.builder.ints(&[0]),
            self.builder.ints(&[2]),
            self.builder.ints(&[-2]),
            self.builder.ints(&[i64::MAX]),
        );
        let head = self
            .builder
            .node1("Slice", &[&shape_x, &zero, &two], vec![], scope);
        let tail = self
            .builder
            .node1("Slice", &[&shape_like, &minus_two, &end], vec![], scope);
        self.builder
            .node1("Concat", &[&head, &tail], vec![attr_int("axis", 0)], scope)
    }

    /// The first graph input's batch size as a 1-D int64 tensor.
    fn batch_size(&mut self, scope: &str) -> Result<String> {
        if let Some(t) = &self.batch_tensor {
            return Ok(t.clone());
        }
        let (input, _, _) = self
            .batch
            .clone()
            .ok_or_else(|| Error::Invalid("the graph's first input has no batch size".into()))?;
        let shape = self.builder.node1("Shape", &[&input], vec![], scope);
        let (s, e) = (self.builder.ints(&[0]), self.builder.ints(&[1]));
        let batch = self
            .builder
            .node1("Slice", &[&shape, &s, &e], vec![], scope);
        self.batch_tensor = Some(batch.clone());
        Ok(batch)
    }

    /// The tensor value `v`, or, where the model passed none (an affine-less norm), a constant of
    /// `shape` filled with `fill`.
    fn tensor_or(&mut self, v: usize, shape: &[i64], fill: f64, kind: Kind) -> Result<String> {
        if self.is_none(v) {
            let t = Tensor::full(shape, fill, (kind, tch::Device::Cpu));
            Ok(self.builder.constant("affine", t))
        } else {
            self.tensor(v)
        }
    }

    fn constant(&self, v: usize) -> Option<&Constant> {
        self.trace.constants.get(&v)
    }

    fn is_none(&self, v: usize) -> bool {
        matches!(self.constant(v), Some(Constant::None))
    }

    fn int(&self, v: usize) -> Result<i64> {
        match self.constant(v) {
            Some(Constant::Int(i)) => Ok(*i),
            Some(Constant::Bool(b)) => Ok(*b as i64),
            _ => Err(Error::Invalid(format!(
                "argument %{v} must be a constant integer (a size computed from the input \
                 cannot be exported)"
            ))),
        }
    }

    fn float(&self, v: usize) -> Result<f64> {
        match self.constant(v) {
            Some(Constant::Float(f)) => Ok(*f),
            Some(Constant::Int(i)) => Ok(*i as f64),
            _ => Err(Error::Invalid(format!(
                "argument %{v} must be a constant number"
            ))),
        }
    }

    fn bool(&self, v: usize) -> Result<bool> {
        match self.constant(v) {
            Some(Constant::Bool(b)) => Ok(*b),
            Some(Constant::Int(i)) => Ok(*i != 0),
            _ => Err(Error::Invalid(format!(
                "argument %{v} must be a constant boolean"
            ))),
        }
    }

    fn ints(&self, v: usize) -> Result<Vec<i64>> {
        match self.constant(v) {
            Some(Constant::Ints(list)) => Ok(list.clone()),
            Some(Constant::Int(i)) => Ok(vec![*i]),
            _ => Err(Error::Invalid(format!(
                "argument %{v} must be a constant integer list"
            ))),
        }
    }

    fn string(&self, v: usize) -> Result<String> {
        match self.constant(v) {
            Some(Constant::Str(s)) => Ok(s.clone()),
            _ => Err(Error::Invalid(format!("argument %{v} must be a string"))),
        }
    }

    fn tensors(&mut self, v: usize) -> Result<Vec<String>> {
        match self.values.get(&v) {
            Some(Value::Tensors(list)) => Ok(list.clone()),
            _ => Err(Error::Invalid(format!(
                "argument %{v} must be a tensor list"
            ))),
        }
    }

    /// The traced shape of tensor value `v`.
    fn shape(&self, v: usize) -> Result<Vec<i64>> {
        if let Some(Constant::Tensor(t)) = self.constant(v) {
            return Ok(t.size());
        }
        match self.types.get(&v) {
            Some(ValueType::Tensor(_, shape)) => Ok(shape.clone()),
            _ => Err(Error::Invalid(format!("the shape of %{v} was not traced"))),
        }
    }

    fn kind(&self, v: usize) -> Kind {
        if let Some(Constant::Tensor(t)) = self.constant(v) {
            return t.kind();
        }
        match self.types.get(&v) {
            Some(ValueType::Tensor(kind, _)) => *kind,
            _ => Kind::Float,
        }
    }

    fn rank(&self, v: usize) -> Result<i64> {
        Ok(self.shape(v)?.len() as i64)
    }

    /// A tensor operand, or a number turned into a scalar of `kind` (type promotion keeps the
    /// tensor's floating type).
    fn operand(&mut self, v: usize, kind: Kind) -> Result<String> {
        match self.constant(v) {
            Some(Constant::Int(i)) => Ok(self.builder.scalar(*i as f64, kind)),
            Some(Constant::Float(f)) => Ok(self.builder.scalar(*f, kind)),
            Some(Constant::Bool(b)) => Ok(self.builder.scalar(*b as i64 as f64, kind)),
            _ => self.tensor(v),
        }
    }

    /// The module a node belongs to, from the first state-dict name among its inputs.
    fn scope(&self, node: &TraceNode) -> String {
        node.inputs
            .iter()
            .find_map(|v| match self.constant(*v) {
                Some(Constant::Tensor(t)) => self
                    .names
                    .get(&(t.data_ptr() as usize))
                    .map(|(n, _)| n.rsplit_once('.').map_or(n.as_str(), |p| p.0).to_string()),
                _ => None,
            })
            .unwrap_or_default()
    }

    fn set(&mut self, node: &TraceNode, name: String) {
        self.values.insert(node.outputs[0].0, Value::Tensor(name));
    }

    fn out_shape(&self, node: &TraceNode) -> Result<Vec<i64>> {
        match &node.outputs[0].1 {
            ValueType::Tensor(_, shape) => Ok(shape.clone()),
            _ => Err(Error::Invalid("its output's shape was not traced".into())),
        }
    }

    fn convert(&mut self, node: &TraceNode) -> Result<()> {
        let kind = node.kind.as_str();
        let i = &node.inputs;
        let scope = self.scope(node);
        match kind {
            "prim::ListConstruct" | "prim::TupleConstruct" => {
                // Lists of numbers are constants already (`fold_constant_lists`); any other list
                // holds tensors.
                if self.constant(node.outputs[0].0).is_none() {
                    let names = i.iter().map(|v| self.tensor(*v)).collect::<Result<_>>()?;
                    self.values.insert(node.outputs[0].0, Value::Tensors(names));
                }
            }
            "prim::ListUnpack" | "prim::TupleUnpack" => {
                let names = self.tensors(i[0])?;
                if names.len() != node.outputs.len() {
                    return Err(Error::Invalid(format!(
                        "unpacks {} values from a list of {}",
                        node.outputs.len(),
                        names.len()
                    )));
                }
                for ((v, _), name) in node.outputs.iter().zip(names) {
                    self.values.insert(*v, Value::Tensor(name));
                }
            }
            // Layout, autograd and evaluation-mode no-ops.
            "aten::contiguous"
            | "aten::clone"
            | "aten::detach"
            | "aten::alias"
            | "aten::lift_fresh"
            | "aten::dropout"
            | "aten::feature_dropout"
            | "aten::alpha_dropout"
            | "aten::type_as" => {
                if kind.ends_with("dropout") && self.bool(i[2])? {
                    return Err(Error::Invalid(
                        "dropout in training mode (export in evaluation mode)".into(),
                    ));
                }
                if kind == "aten::type_as" && self.kind(i[0]) != self.kind(i[1]) {
                    let to = super::graph::data_type(self.kind(i[1]))? as i64;
                    let x = self.tensor(i[0])?;
                    let y = self
                        .builder
                        .node1("Cast", &[&x], vec![attr_int("to", to)], &scope);
                    self.set(node, y);
                } else {
                    let x = self.tensor(i[0])?;
                    self.set(node, x);
                }
            }
            "aten::to" => {
                let from = self.kind(i[0]);
                let to = match &node.outputs[0].1 {
                    ValueType::Tensor(k, _) => *k,
                    _ => from,
                };
                let x = self.tensor(i[0])?;
                let y = if to == from {
                    x
                } else {
                    let to = super::graph::data_type(to)? as i64;
                    self.builder
                        .node1("Cast", &[&x], vec![attr_int("to", to)], &scope)
                };
                self.set(node, y);
            }
            "aten::_convolution" | "aten::convolution" | "aten::conv2d" | "aten::conv1d" => {
                self.convolution(node, &scope)?
            }
            "aten::batch_norm" => self.batch_norm(node, &scope)?,
            "aten::relu" | "aten::sigmoid" | "aten::tanh" | "aten::exp" | "aten::sqrt"
            | "aten::neg" | "aten::abs" | "aten::erf" | "aten::log" | "aten::floor"
            | "aten::ceil" | "aten::reciprocal" | "aten::hardswish" | "aten::sin" | "aten::cos" => {
                let op = match kind {
                    "aten::relu" => "Relu",
                    "aten::sigmoid" => "Sigmoid",
                    "aten::tanh" => "Tanh",
                    "aten::exp" => "Exp",
                    "aten::sqrt" => "Sqrt",
                    "aten::neg" => "Neg",
                    "aten::abs" => "Abs",
                    "aten::erf" => "Erf",
                    "aten::log" => "Log",
                    "aten::floor" => "Floor",
                    "aten::ceil" => "Ceil",
                    "aten::reciprocal" => "Reciprocal",
                    "aten::sin" => "Sin",
                    "aten::cos" => "Cos",
                    _ => "HardSwish",
                };
                let x = self.tensor(i[0])?;
                let y = self.builder.node1(op, &[&x], vec![], &scope);
                self.set(node, y);
            }
            "aten::rsqrt" => {
                let x = self.tensor(i[0])?;
                let s = self.builder.node1("Sqrt", &[&x], vec![], &scope);
                let y = self.builder.node1("Reciprocal", &[&s], vec![], &scope);
                self.set(node, y);
            }
            "aten::silu" => {
                let x = self.tensor(i[0])?;
                let s = self.builder.node1("Sigmoid", &[&x], vec![], &scope);
                let y = self.builder.node1("Mul", &[&x, &s], vec![], &scope);
                self.set(node, y);
            }
            "aten::hardsigmoid" => {
                let x = self.tensor(i[0])?;
                let attrs = vec![attr_float("alpha", 1.0 / 6.0), attr_float("beta", 0.5)];
                let y = self.builder.node1("HardSigmoid", &[&x], attrs, &scope);
                self.set(node, y);
            }
            "aten::gelu" => {
                let approximate = if i.len() > 1 {
                    self.string(i[1])?
                } else {
                    "none".into()
                };
                let k = self.kind(i[0]);
                let x = self.tensor(i[0])?;
                let y = if self.opset >= 20 {
                    let attrs = vec![attr_str("approximate", &approximate)];
                    self.builder.node1("Gelu", &[&x], attrs, &scope)
                } else {
                    self.gelu(&x, &approximate, k, &scope)
                };
                self.set(node, y);
            }
            "aten::leaky_relu" => {
                let slope = self.float(i[1])?;
                let x = self.tensor(i[0])?;
                let y = self.builder.node1(
                    "LeakyRelu",
                    &[&x],
                    vec![attr_float("alpha", slope)],
                    &scope,
                );
                self.set(node, y);
            }
            "aten::hardtanh" | "aten::clamp" | "aten::relu6" | "aten::clamp_min"
            | "aten::clamp_max" => {
                let k = self.kind(i[0]);
                let (lo, hi) = match kind {
                    "aten::relu6" => (Some(0.0), Some(6.0)),
                    "aten::clamp_min" => (Some(self.float(i[1])?), None),
                    "aten::clamp_max" => (None, Some(self.float(i[1])?)),
                    _ => (
                        (!self.is_none(i[1]))
                            .then(|| self.float(i[1]))
                            .transpose()?,
                        (!self.is_none(i[2]))
                            .then(|| self.float(i[2]))
                            .transpose()?,
                    ),
                };
                let x = self.tensor(i[0])?;
                let lo = lo.map(|v| self.builder.scalar(v, k)).unwrap_or_default();
                let hi = hi.map(|v| self.builder.scalar(v, k)).unwrap_or_default();
                let y = self.builder.node1("Clip", &[&x, &lo, &hi], vec![], &scope);
                self.set(node, y);
            }
            "aten::softmax" | "aten::log_softmax" => {
                let axis = self.int(i[1])?;
                let x = self.tensor(i[0])?;
                let op = if kind == "aten::softmax" {
                    "Softmax"
                } else {
                    "LogSoftmax"
                };
                let y = self
                    .builder
                    .node1(op, &[&x], vec![attr_int("axis", axis)], &scope);
                self.set(node, y);
            }
            "aten::add" | "aten::sub" | "aten::rsub" | "aten::mul" | "aten::div" | "aten::pow"
            | "aten::maximum" | "aten::minimum" => self.binary(node, &scope)?,
            "aten::cat" | "aten::concat" => {
                let list = self.tensors(i[0])?;
                let axis = self.int(i[1])?;
                let refs: Vec<&str> = list.iter().map(String::as_str).collect();
                let y = self
                    .builder
                    .node1("Concat", &refs, vec![attr_int("axis", axis)], &scope);
                self.set(node, y);
            }
            "aten::stack" => {
                let list = self.tensors(i[0])?;
                let axis = self.int(i[1])?;
                let axes = self.builder.ints(&[axis]);
                let parts: Vec<String> = list
                    .iter()
                    .map(|t| self.builder.node1("Unsqueeze", &[t, &axes], vec![], &scope))
                    .collect();
                let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
                let y = self
                    .builder
                    .node1("Concat", &refs, vec![attr_int("axis", axis)], &scope);
                self.set(node, y);
            }
            "aten::max_pool2d" | "aten::max_pool2d_with_indices" => {
                let kernel = self.ints(i[1])?;
                let stride = self.ints(i[2])?;
                let stride = if stride.is_empty() {
                    kernel.clone()
                } else {
                    stride
                };
                let padding = self.ints(i[3])?;
                let dilation = self.ints(i[4])?;
                let ceil = self.bool(i[5])?;
                let x = self.tensor(i[0])?;
                let attrs = vec![
                    attr_ints("kernel_shape", &kernel),
                    attr_ints("strides", &stride),
                    attr_ints("pads", &pads(&padding, kernel.len())),
                    attr_ints("dilations", &expand(&dilation, kernel.len())),
                    attr_int("ceil_mode", ceil as i64),
                ];
                let y = self.builder.node1("MaxPool", &[&x], attrs, &scope);
                self.set(node, y);
            }
            "aten::avg_pool2d" => {
                let kernel = self.ints(i[1])?;
                let stride = self.ints(i[2])?;
                let stride = if stride.is_empty() {
                    kernel.clone()
                } else {
                    stride
                };
                let padding = self.ints(i[3])?;
                let ceil = self.bool(i[4])?;
                let include_pad = self.bool(i[5])?;
                if i.len() > 6 && !self.is_none(i[6]) {
                    return Err(Error::Invalid("a divisor_override has no ONNX form".into()));
                }
                let x = self.tensor(i[0])?;
                let attrs = vec![
                    attr_ints("kernel_shape", &kernel),
                    attr_ints("strides", &stride),
                    attr_ints("pads", &pads(&padding, kernel.len())),
                    attr_int("ceil_mode", ceil as i64),
                    attr_int("count_include_pad", include_pad as i64),
                ];
                let y = self.builder.node1("AveragePool", &[&x], attrs, &scope);
                self.set(node, y);
            }
            "aten::adaptive_avg_pool2d" | "aten::adaptive_max_pool2d" => {
                let out = self.ints(i[1])?;
                let shape = self.shape(i[0])?;
                let x = self.tensor(i[0])?;
                let avg = kind == "aten::adaptive_avg_pool2d";
                let y = if out.iter().all(|&o| o == 1) {
                    let op = if avg {
                        "GlobalAveragePool"
                    } else {
                        "GlobalMaxPool"
                    };
                    self.builder.node1(op, &[&x], vec![], &scope)
                } else {
                    let spatial = &shape[shape.len() - 2..];
                    if spatial.iter().zip(&out).any(|(s, o)| *o == 0 || s % o != 0) {
                        return Err(Error::Invalid(format!(
                            "adaptive pooling of {spatial:?} to {out:?} has no ONNX form (the \
                             input size must be a multiple of the output size)"
                        )));
                    }
                    let k: Vec<i64> = spatial.iter().zip(&out).map(|(s, o)| s / o).collect();
                    let op = if avg { "AveragePool" } else { "MaxPool" };
                    let attrs = vec![attr_ints("kernel_shape", &k), attr_ints("strides", &k)];
                    self.builder.node1(op, &[&x], attrs, &scope)
                };
                self.set(node, y);
            }
            "aten::linear" => {
                let rank = self.rank(i[0])?;
                let x = self.tensor(i[0])?;
                let w = self.tensor(i[1])?;
                let has_bias = !self.is_none(i[2]);
                let y = if rank == 2 {
                    let mut inputs = vec![x.clone(), w.clone()];
                    if has_bias {
                        inputs.push(self.tensor(i[2])?);
                    }
                    let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
                    self.builder
                        .node1("Gemm", &refs, vec![attr_int("transB", 1)], &scope)
                } else {
                    let wt = self.builder.node1(
                        "Transpose",
                        &[&w],
                        vec![attr_ints("perm", &[1, 0])],
                        &scope,
                    );
                    let m = self.builder.node1("MatMul", &[&x, &wt], vec![], &scope);
                    if has_bias {
                        let b = self.tensor(i[2])?;
                        self.builder.node1("Add", &[&m, &b], vec![], &scope)
                    } else {
                        m
                    }
                };
                self.set(node, y);
            }
            "aten::matmul" | "aten::bmm" | "aten::mm" => {
                let a = self.tensor(i[0])?;
                let b = self.tensor(i[1])?;
                let y = self.builder.node1("MatMul", &[&a, &b], vec![], &scope);
                self.set(node, y);
            }
            "aten::addmm" => {
                let c = self.tensor(i[0])?;
                let a = self.tensor(i[1])?;
                let b = self.tensor(i[2])?;
                let beta = self.float(i[3])?;
                let alpha = self.float(i[4])?;
                let attrs = vec![attr_float("alpha", alpha), attr_float("beta", beta)];
                let y = self.builder.node1("Gemm", &[&a, &b, &c], attrs, &scope);
                self.set(node, y);
            }
            "aten::t" | "aten::transpose" | "aten::permute" | "aten::numpy_T" => {
                let rank = self.rank(i[0])?;
                let perm: Vec<i64> = match kind {
                    "aten::permute" => self
                        .ints(i[1])?
                        .iter()
                        .map(|d| d.rem_euclid(rank.max(1)))
                        .collect(),
                    "aten::transpose" => {
                        let (a, b) = (
                            self.int(i[1])?.rem_euclid(rank),
                            self.int(i[2])?.rem_euclid(rank),
                        );
                        let mut p: Vec<i64> = (0..rank).collect();
                        p.swap(a as usize, b as usize);
                        p
                    }
                    _ => (0..rank).rev().collect(),
                };
                let x = self.tensor(i[0])?;
                let y =
                    self.builder
                        .node1("Transpose", &[&x], vec![attr_ints("perm", &perm)], &scope);
                self.set(node, y);
            }
            "aten::flatten" => {
                let rank = self.rank(i[0])?;
                let start = self.int(i[1])?.rem_euclid(rank.max(1));
                let end = self.int(i[2])?.rem_euclid(rank.max(1));
                let x = self.tensor(i[0])?;
                let y = if end == rank - 1 && start <= 1 && rank > 0 {
                    self.builder
                        .node1("Flatten", &[&x], vec![attr_int("axis", start)], &scope)
                } else {
                    // Dimensions before `start` are kept as they are (0 in Reshape's shape).
                    let s = self.reshape_target(node, start as usize, &scope)?;
                    self.builder.node1("Reshape", &[&x, &s], vec![], &scope)
                };
                self.set(node, y);
            }
            "aten::unflatten" => {
                // The dimensions before the one split keep their sizes (0 in Reshape's shape).
                let rank = self.rank(i[0])?;
                let dim = self.int(i[1])?.rem_euclid(rank.max(1));
                let x = self.tensor(i[0])?;
                let s = self.reshape_target(node, dim as usize, &scope)?;
                let y = self.builder.node1("Reshape", &[&x, &s], vec![], &scope);
                self.set(node, y);
            }
            "aten::view" | "aten::reshape" | "aten::_unsafe_view" => {
                let shape = self.ints(i[1])?;
                let dims = self.dims(
                    &shape,
                    self.twin_ints(1).as_deref(),
                    &self.shape(i[0])?,
                    self.twin_shape(0).as_deref(),
                    true,
                )?;
                let x = self.tensor(i[0])?;
                let s = self.shape_input(&dims, 0, &scope)?;
                let y = self.builder.node1("Reshape", &[&x, &s], vec![], &scope);
                self.set(node, y);
            }
            "aten::unsqueeze" | "aten::squeeze" => {
                let x = self.tensor(i[0])?;
                let y = if i.len() > 1 {
                    let axes = self.ints(i[1])?;
                    let a = self.builder.ints(&axes);
                    let op = if kind == "aten::unsqueeze" {
                        "Unsqueeze"
                    } else {
                        "Squeeze"
                    };
                    self.builder.node1(op, &[&x, &a], vec![], &scope)
                } else {
                    self.builder.node1("Squeeze", &[&x], vec![], &scope)
                };
                self.set(node, y);
            }
            "aten::slice" => {
                let dim = self.int(i[1])?;
                let start = if self.is_none(i[2]) {
                    0
                } else {
                    self.int(i[2])?
                };
                let end = if self.is_none(i[3]) {
                    i64::MAX
                } else {
                    self.int(i[3])?
                };
                let step = self.int(i[4])?;
                let x = self.tensor(i[0])?;
                let y = self.slice(&x, dim, start, end, step, &scope);
                self.set(node, y);
            }
            "aten::narrow" => {
                let dim = self.int(i[1])?;
                let start = self.int(i[2])?;
                let length = self.int(i[3])?;
                let x = self.tensor(i[0])?;
                let y = self.slice(&x, dim, start, start + length, 1, &scope);
                self.set(node, y);
            }
            "aten::select" => {
                let dim = self.int(i[1])?;
                let index = self.int(i[2])?;
                let x = self.tensor(i[0])?;
                let idx = self.builder.scalar(index as f64, Kind::Int64);
                let y =
                    self.builder
                        .node1("Gather", &[&x, &idx], vec![attr_int("axis", dim)], &scope);
                self.set(node, y);
            }
            "aten::chunk"
            | "aten::unsafe_chunk"
            | "aten::split"
            | "aten::unsafe_split"
            | "aten::split_with_sizes"
            | "aten::unbind" => self.split(node, &scope)?,
            "aten::mean" | "aten::sum" | "aten::amax" | "aten::amin" => {
                let rank = self.rank(i[0])?;
                let (axes, keep) = if i.len() >= 3 && !self.is_none(i[1]) {
                    (self.ints(i[1])?, self.bool(i[2])?)
                } else {
                    ((0..rank).collect(), false)
                };
                let op = match kind {
                    "aten::mean" => "ReduceMean",
                    "aten::sum" => "ReduceSum",
                    "aten::amax" => "ReduceMax",
                    _ => "ReduceMin",
                };
                let x = self.tensor(i[0])?;
                let a = self.builder.ints(&axes);
                let y = self.builder.node1(
                    op,
                    &[&x, &a],
                    vec![attr_int("keepdims", keep as i64)],
                    &scope,
                );
                self.set(node, y);
            }
            "aten::layer_norm" => {
                let normalized = self.ints(i[1])?;
                let eps = self.float(i[4])?;
                let x = self.tensor(i[0])?;
                let k = self.kind(i[0]);
                let w = self.tensor_or(i[2], &normalized, 1.0, k)?;
                let b = self.tensor_or(i[3], &normalized, 0.0, k)?;
                let attrs = vec![
                    attr_int("axis", -(normalized.len() as i64)),
                    attr_float("epsilon", eps),
                ];
                let y = self
                    .builder
                    .node1("LayerNormalization", &[&x, &w, &b], attrs, &scope);
                self.set(node, y);
            }
            "aten::group_norm" => {
                let groups = self.int(i[1])?;
                let eps = self.float(i[4])?;
                let channels = self.shape(i[0])?[1];
                let k = self.kind(i[0]);
                let x = self.tensor(i[0])?;
                let w = self.tensor_or(i[2], &[channels], 1.0, k)?;
                let b = self.tensor_or(i[3], &[channels], 0.0, k)?;
                let y = if self.opset >= 21 {
                    let attrs = vec![attr_int("num_groups", groups), attr_float("epsilon", eps)];
                    self.builder
                        .node1("GroupNormalization", &[&x, &w, &b], attrs, &scope)
                } else {
                    // Before opset 21 GroupNormalization's scale is per group: each group is
                    // normalised as one InstanceNormalization channel, then the per-channel
                    // affine applies.
                    let shape = self.shape(i[0])?;
                    let grouped = self.builder.ints(&[0, groups, -1]);
                    let g = self
                        .builder
                        .node1("Reshape", &[&x, &grouped], vec![], &scope);
                    let ones = self
                        .builder
                        .constant("ones", Tensor::ones([groups], (k, tch::Device::Cpu)));
                    let zeros = self
                        .builder
                        .constant("zeros", Tensor::zeros([groups], (k, tch::Device::Cpu)));
                    let n = self.builder.node1(
                        "InstanceNormalization",
                        &[&g, &ones, &zeros],
                        vec![attr_float("epsilon", eps)],
                        &scope,
                    );
                    let back = self.builder.node1("Shape", &[&x], vec![], &scope);
                    let n = self.builder.node1("Reshape", &[&n, &back], vec![], &scope);
                    let axes: Vec<i64> = (1..shape.len() as i64 - 1).collect();
                    let axes = self.builder.ints(&axes);
                    let w = self
                        .builder
                        .node1("Unsqueeze", &[&w, &axes], vec![], &scope);
                    let b = self
                        .builder
                        .node1("Unsqueeze", &[&b, &axes], vec![], &scope);
                    let m = self.builder.node1("Mul", &[&n, &w], vec![], &scope);
                    self.builder.node1("Add", &[&m, &b], vec![], &scope)
                };
                self.set(node, y);
            }
            "aten::instance_norm" => {
                // (input, weight, bias, running_mean, running_var, use_input_stats, momentum,
                // eps, cudnn_enabled)
                if !self.bool(i[5])? {
                    return Err(Error::Invalid(
                        "instance norm with running statistics has no ONNX form here".into(),
                    ));
                }
                let eps = self.float(i[7])?;
                let channels = self.shape(i[0])?[1];
                let k = self.kind(i[0]);
                let x = self.tensor(i[0])?;
                let w = self.tensor_or(i[1], &[channels], 1.0, k)?;
                let b = self.tensor_or(i[2], &[channels], 0.0, k)?;
                let y = self.builder.node1(
                    "InstanceNormalization",
                    &[&x, &w, &b],
                    vec![attr_float("epsilon", eps)],
                    &scope,
                );
                self.set(node, y);
            }
            "aten::constant_pad_nd"
            | "aten::pad"
            | "aten::reflection_pad2d"
            | "aten::replication_pad2d"
            | "aten::reflection_pad1d" => {
                let rank = self.rank(i[0])?;
                let torch_pads = self.ints(i[1])?;
                let (mode, value) = match kind {
                    "aten::constant_pad_nd" => (
                        "constant".to_string(),
                        if i.len() > 2 { self.float(i[2])? } else { 0.0 },
                    ),
                    "aten::pad" => {
                        let mode = self.string(i[2])?;
                        let value = if i.len() > 3 && !self.is_none(i[3]) {
                            self.float(i[3])?
                        } else {
                            0.0
                        };
                        (mode, value)
                    }
                    "aten::replication_pad2d" => ("replicate".to_string(), 0.0),
                    _ => ("reflect".to_string(), 0.0),
                };
                let onnx_mode = match mode.as_str() {
                    "constant" => "constant",
                    "reflect" => "reflect",
                    "replicate" => "edge",
                    "circular" => "wrap",
                    other => {
                        return Err(Error::Invalid(format!("padding mode '{other}'")));
                    }
                };
                // torch lists (begin, end) pairs from the last dimension backwards; ONNX lists
                // every dimension's begin, then every dimension's end.
                let mut begins = vec![0i64; rank as usize];
                let mut ends = vec![0i64; rank as usize];
                for (k, pair) in torch_pads.chunks(2).enumerate() {
                    let d = rank as usize - 1 - k;
                    begins[d] = pair[0];
                    ends[d] = *pair.get(1).unwrap_or(&0);
                }
                begins.extend(ends);
                let k = self.kind(i[0]);
                let x = self.tensor(i[0])?;
                let p = self.builder.ints(&begins);
                let v = self.builder.scalar(value, k);
                let y = self.builder.node1(
                    "Pad",
                    &[&x, &p, &v],
                    vec![attr_str("mode", onnx_mode)],
                    &scope,
                );
                self.set(node, y);
            }
            "aten::upsample_nearest2d" | "aten::upsample_bilinear2d" => {
                let out = self.out_shape(node)?;
                let bilinear = kind == "aten::upsample_bilinear2d";
                let align = bilinear && self.bool(i[2])?;
                let x = self.tensor(i[0])?;
                let input = self.shape(i[0])?;
                let twin = self.twin_out_shape().zip(self.twin_shape(0));
                let (scales, sizes) = match twin {
                    // Sizes that follow the input are written as the scale they share.
                    Some((twin_out, twin_in)) if twin_out != out || twin_in != input => {
                        let ratio = |o: &[i64], i: &[i64]| -> Vec<f64> {
                            o.iter()
                                .zip(i)
                                .map(|(&o, &i)| o as f64 / i as f64)
                                .collect()
                        };
                        let scales = ratio(&out, &input);
                        if scales == ratio(&twin_out, &twin_in) {
                            let t = Tensor::from_slice(&scales).to_kind(Kind::Float);
                            (self.builder.constant("scales", t), String::new())
                        } else {
                            // Resized to another tensor's size (ASPP's pooled branch, a
                            // decoder matching its skip connection): read it from that tensor.
                            let like = self.spatial_like(&out, &twin_out).ok_or_else(|| {
                                Error::Invalid(format!(
                                    "resizes {input:?} to {out:?} and {twin_in:?} to \
                                     {twin_out:?}: neither one scale nor the size of a tensor \
                                     before it, so not a size the graph can compute"
                                ))
                            })?;
                            (String::new(), self.sizes_like(&x, &like, &scope))
                        }
                    }
                    _ => (String::new(), self.builder.ints(&out)),
                };
                let attrs = if bilinear {
                    vec![
                        attr_str("mode", "linear"),
                        attr_str(
                            "coordinate_transformation_mode",
                            if align {
                                "align_corners"
                            } else {
                                "pytorch_half_pixel"
                            },
                        ),
                    ]
                } else {
                    vec![
                        attr_str("mode", "nearest"),
                        attr_str("coordinate_transformation_mode", "asymmetric"),
                        attr_str("nearest_mode", "floor"),
                    ]
                };
                let y = self
                    .builder
                    .node1("Resize", &[&x, "", &scales, &sizes], attrs, &scope);
                self.set(node, y);
            }
            "aten::expand" | "aten::expand_as" | "aten::repeat" => {
                let out = self.out_shape(node)?;
                let x = self.tensor(i[0])?;
                let y = if kind == "aten::repeat" {
                    let r = self.ints(i[1])?;
                    let r = self.builder.ints(&r);
                    self.builder.node1("Tile", &[&x, &r], vec![], &scope)
                } else {
                    let dims = self.dims(
                        &out,
                        self.twin_out_shape().as_deref(),
                        &self.shape(i[0])?,
                        self.twin_shape(0).as_deref(),
                        false,
                    )?;
                    let s = self.shape_input(&dims, 1, &scope)?;
                    self.builder.node1("Expand", &[&x, &s], vec![], &scope)
                };
                self.set(node, y);
            }
            "aten::scaled_dot_product_attention" => self.attention(node, &scope)?,
            "aten::max" | "aten::min" if i.len() == 3 => {
                // (values, indices) along a dimension.
                let dim = self.int(i[1])?;
                let keep = self.bool(i[2])? as i64;
                let x = self.tensor(i[0])?;
                let (reduce, arg) = if kind == "aten::max" {
                    ("ReduceMax", "ArgMax")
                } else {
                    ("ReduceMin", "ArgMin")
                };
                let axes = self.builder.ints(&[dim]);
                let values = self.builder.node1(
                    reduce,
                    &[&x, &axes],
                    vec![attr_int("keepdims", keep)],
                    &scope,
                );
                let indices = self.builder.node1(
                    arg,
                    &[&x],
                    vec![attr_int("axis", dim), attr_int("keepdims", keep)],
                    &scope,
                );
                self.values.insert(node.outputs[0].0, Value::Tensor(values));
                self.values
                    .insert(node.outputs[1].0, Value::Tensor(indices));
            }
            "aten::topk" => {
                let k = self.int(i[1])?;
                let dim = self.int(i[2])?;
                let largest = self.bool(i[3])? as i64;
                let sorted = self.bool(i[4])? as i64;
                let x = self.tensor(i[0])?;
                let k = self.builder.ints(&[k]);
                let attrs = vec![
                    attr_int("axis", dim),
                    attr_int("largest", largest),
                    attr_int("sorted", sorted),
                ];
                let outs = self.builder.node("TopK", &[&x, &k], 2, attrs, &scope);
                for ((v, _), name) in node.outputs.iter().zip(outs) {
                    self.values.insert(*v, Value::Tensor(name));
                }
            }
            "aten::gather" => {
                let dim = self.int(i[1])?;
                let x = self.tensor(i[0])?;
                let index = self.tensor(i[2])?;
                let y = self.builder.node1(
                    "GatherElements",
                    &[&x, &index],
                    vec![attr_int("axis", dim)],
                    &scope,
                );
                self.set(node, y);
            }
            "aten::remainder" | "aten::floor_divide" => {
                let k = self.kind(i[0]);
                if !matches!(k, Kind::Int64 | Kind::Int) {
                    return Err(Error::Invalid(format!("{kind} of {k:?} tensors")));
                }
                // Integer operands as a model's indices are: non-negative, where floor and
                // truncation agree.
                let x = self.tensor(i[0])?;
                let y = self.operand(i[1], k)?;
                let out = if kind == "aten::remainder" {
                    self.builder
                        .node1("Mod", &[&x, &y], vec![attr_int("fmod", 0)], &scope)
                } else {
                    self.builder.node1("Div", &[&x, &y], vec![], &scope)
                };
                self.set(node, out);
            }
            "aten::ones_like" | "aten::zeros_like" => {
                // Read the shape from the tensor, so that it follows the input's size.
                let fill = if kind == "aten::ones_like" { 1.0 } else { 0.0 };
                let out_kind = match &node.outputs[0].1 {
                    ValueType::Tensor(k, _) => *k,
                    _ => self.kind(i[0]),
                };
                let x = self.tensor(i[0])?;
                let shape = self.builder.node1("Shape", &[&x], vec![], &scope);
                let value = Tensor::from_slice(&[fill]).to_kind(out_kind);
                let y = self.builder.node1(
                    "ConstantOfShape",
                    &[&shape],
                    vec![attr_tensor("value", &value)?],
                    &scope,
                );
                self.set(node, y);
            }
            "aten::cumsum" => {
                let dim = self.int(i[1])?;
                let mut x = self.tensor(i[0])?;
                if let ValueType::Tensor(k, _) = &node.outputs[0].1 {
                    if *k != self.kind(i[0]) {
                        let to = super::graph::data_type(*k)? as i64;
                        x = self
                            .builder
                            .node1("Cast", &[&x], vec![attr_int("to", to)], &scope);
                    }
                }
                let axis = self.builder.scalar(dim as f64, Kind::Int64);
                let y = self.builder.node1("CumSum", &[&x, &axis], vec![], &scope);
                self.set(node, y);
            }
            "aten::roll" => {
                let shifts = self.ints(i[1])?;
                let dims = self.ints(i[2])?;
                let shape = self.shape(i[0])?;
                let mut y = self.tensor(i[0])?;
                for (s, d) in shifts.iter().zip(&dims) {
                    let d = d.rem_euclid(shape.len() as i64);
                    let n = shape[d as usize];
                    let s = s.rem_euclid(n);
                    if s == 0 {
                        continue;
                    }
                    // roll by s: the last s entries first.
                    let tail = self.slice(&y, d, n - s, n, 1, &scope);
                    let head = self.slice(&y, d, 0, n - s, 1, &scope);
                    y = self.builder.node1(
                        "Concat",
                        &[&tail, &head],
                        vec![attr_int("axis", d)],
                        &scope,
                    );
                }
                self.set(node, y);
            }
            other => {
                return Err(Error::Invalid(format!(
                    "the operator {other} has no ONNX translation yet"
                )))
            }
        }
        Ok(())
    }

    /// GELU from opset-18 operators: `0.5 x (1 + erf(x / √2))`, or with `approximate="tanh"`
    /// `0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))`.
    fn gelu(&mut self, x: &str, approximate: &str, k: Kind, scope: &str) -> String {
        let half = self.builder.scalar(0.5, k);
        let one = self.builder.scalar(1.0, k);
        let inner = if approximate == "tanh" {
            let three = self.builder.scalar(3.0, k);
            let c = self.builder.scalar(0.044715, k);
            let s = self.builder.scalar((2.0 / std::f64::consts::PI).sqrt(), k);
            let cube = self.builder.node1("Pow", &[x, &three], vec![], scope);
            let cube = self.builder.node1("Mul", &[&cube, &c], vec![], scope);
            let sum = self.builder.node1("Add", &[x, &cube], vec![], scope);
            let arg = self.builder.node1("Mul", &[&sum, &s], vec![], scope);
            self.builder.node1("Tanh", &[&arg], vec![], scope)
        } else {
            let root2 = self.builder.scalar(std::f64::consts::SQRT_2, k);
            let arg = self.builder.node1("Div", &[x, &root2], vec![], scope);
            self.builder.node1("Erf", &[&arg], vec![], scope)
        };
        let plus = self.builder.node1("Add", &[&inner, &one], vec![], scope);
        let y = self.builder.node1("Mul", &[x, &plus], vec![], scope);
        self.builder.node1("Mul", &[&y, &half], vec![], scope)
    }

    /// Reshape's shape for `node`'s output, the first `kept` dimensions copied from the input.
    fn reshape_target(&mut self, node: &TraceNode, kept: usize, scope: &str) -> Result<String> {
        let out = self.out_shape(node)?;
        let mut dims = self.dims(
            &out,
            self.twin_out_shape().as_deref(),
            &out,
            self.twin_out_shape().as_deref(),
            true,
        )?;
        // Compared with itself, a size that follows the input reads as `Same`: only the kept
        // ones are the input's; of the others, the one left is what Reshape infers.
        for (p, d) in dims.iter_mut().enumerate() {
            if p < kept {
                *d = Dim::Same;
            } else if *d == Dim::Same {
                *d = Dim::Rest;
            }
        }
        if dims.iter().filter(|d| **d == Dim::Rest).count() > 1 {
            return Err(Error::Invalid(format!(
                "its output {out:?} has more than one size that follows the input after the \
                 dimensions it keeps"
            )));
        }
        self.shape_input(&dims, 0, scope)
    }

    fn slice(&mut self, x: &str, dim: i64, start: i64, end: i64, step: i64, scope: &str) -> String {
        let s = self.builder.ints(&[start]);
        let e = self.builder.ints(&[end]);
        let a = self.builder.ints(&[dim]);
        let st = self.builder.ints(&[step]);
        self.builder
            .node1("Slice", &[x, &s, &e, &a, &st], vec![], scope)
    }

    fn convolution(&mut self, node: &TraceNode, scope: &str) -> Result<()> {
        let i = &node.inputs;
        let (stride, padding, dilation, transposed, output_padding, groups) =
            match node.kind.as_str() {
                "aten::_convolution" | "aten::convolution" => (
                    self.ints(i[3])?,
                    self.ints(i[4])?,
                    self.ints(i[5])?,
                    self.bool(i[6])?,
                    self.ints(i[7])?,
                    self.int(i[8])?,
                ),
                _ => {
                    if matches!(self.constant(i[4]), Some(Constant::Str(_))) {
                        return Err(Error::Invalid(
                            "padding given as a string (\"same\"/\"valid\")".into(),
                        ));
                    }
                    (
                        self.ints(i[3])?,
                        self.ints(i[4])?,
                        self.ints(i[5])?,
                        false,
                        vec![],
                        self.int(i[6])?,
                    )
                }
            };
        let kernel: Vec<i64> = self.shape(i[1])?[2..].to_vec();
        let n = kernel.len();
        let x = self.tensor(i[0])?;
        let w = self.tensor(i[1])?;
        let b = if self.is_none(i[2]) {
            None
        } else {
            Some(self.tensor(i[2])?)
        };
        let mut attrs = vec![
            attr_ints("kernel_shape", &kernel),
            attr_ints("strides", &expand(&stride, n)),
            attr_ints("pads", &pads(&padding, n)),
            attr_ints("dilations", &expand(&dilation, n)),
            attr_int("group", groups),
        ];
        let op = if transposed {
            if output_padding.iter().any(|&p| p != 0) {
                attrs.push(attr_ints("output_padding", &expand(&output_padding, n)));
            }
            "ConvTranspose"
        } else {
            "Conv"
        };
        let mut inputs = vec![x.as_str(), w.as_str()];
        if let Some(b) = &b {
            inputs.push(b);
        }
        let y = self.builder.node1(op, &inputs, attrs, scope);
        if !transposed {
            self.convolutions.insert(
                y.clone(),
                (self.builder.nodes.len() - 1, w.clone(), b.clone()),
            );
        }
        self.set(node, y);
        Ok(())
    }

    /// Evaluation-mode BatchNorm: folded into the convolution before it when that convolution's
    /// output feeds nothing else, a `BatchNormalization` node otherwise.
    fn batch_norm(&mut self, node: &TraceNode, scope: &str) -> Result<()> {
        let i = &node.inputs;
        if self.bool(i[5])? {
            return Err(Error::Invalid(
                "BatchNorm in training mode (export in evaluation mode)".into(),
            ));
        }
        let eps = self.float(i[7])?;
        let tensor_of = |c: &Self, v: usize| -> Option<Tensor> {
            match c.constant(v) {
                Some(Constant::Tensor(t)) => Some(t.shallow_clone()),
                _ => None,
            }
        };
        let (mean, var) = match (tensor_of(self, i[3]), tensor_of(self, i[4])) {
            (Some(m), Some(v)) => (m, v),
            _ => {
                return Err(Error::Invalid(
                    "BatchNorm without running statistics".into(),
                ))
            }
        };
        let channels = mean.size()[0];
        let k = mean.kind();
        let gamma = if self.is_none(i[1]) {
            Some(Tensor::ones([channels], (k, tch::Device::Cpu)))
        } else {
            tensor_of(self, i[1])
        };
        let beta = if self.is_none(i[2]) {
            Some(Tensor::zeros([channels], (k, tch::Device::Cpu)))
        } else {
            tensor_of(self, i[2])
        };
        let input = self.tensor(i[0])?;
        let foldable = self.uses.get(&i[0]).copied() == Some(1);
        let conv = self.convolutions.get(&input).cloned().filter(|(_, w, b)| {
            // Folding rewrites the convolution's weight and bias: both must be initialisers.
            self.builder.initialisers.contains_key(w)
                && b.as_ref()
                    .is_none_or(|b| self.builder.initialisers.contains_key(b))
        });
        if let (Some(gamma), Some(beta), true, Some((index, w, b))) =
            (&gamma, &beta, foldable, conv)
        {
            let weight = self.builder.initialisers[&w].shallow_clone();
            let scale = gamma / (&var + eps).sqrt();
            let shape: Vec<i64> = std::iter::once(-1)
                .chain(std::iter::repeat_n(1, weight.dim() - 1))
                .collect();
            let folded_w = &weight * scale.reshape(shape.as_slice());
            let bias = match &b {
                Some(b) => self.builder.initialisers[b].shallow_clone(),
                None => Tensor::zeros([channels], (k, tch::Device::Cpu)),
            };
            let folded_b = (bias - &mean) * &scale + beta;
            // The folded tensors keep the convolution's names: the weight is still that
            // module's, with the normalisation multiplied in.
            let w_name = self.replace_initialiser(&w, folded_w);
            let b_name = match &b {
                Some(b) => self.replace_initialiser(b, folded_b),
                None => {
                    let base = w.strip_suffix(".weight").unwrap_or(&w);
                    self.builder.initialiser(&format!("{base}.bias"), folded_b)
                }
            };
            let conv = &mut self.builder.nodes[index];
            conv.input.truncate(1);
            conv.input.push(w_name);
            conv.input.push(b_name);
            self.set(node, input);
            return Ok(());
        }
        let inputs = [
            self.operand_tensor(i[1], gamma)?,
            self.operand_tensor(i[2], beta)?,
            self.tensor(i[3])?,
            self.tensor(i[4])?,
        ];
        let y = self.builder.node1(
            "BatchNormalization",
            &[&input, &inputs[0], &inputs[1], &inputs[2], &inputs[3]],
            vec![attr_float("epsilon", eps)],
            scope,
        );
        self.set(node, y);
        Ok(())
    }

    /// The initialiser `name` replaced by `value`; when another node also reads it, the new
    /// value gets a name of its own.
    fn replace_initialiser(&mut self, name: &str, value: Tensor) -> String {
        let shared = self
            .builder
            .nodes
            .iter()
            .filter(|n| n.input.iter().any(|x| x == name))
            .count()
            > 1;
        if shared {
            self.builder.initialiser(&format!("{name}.folded"), value)
        } else {
            self.builder.initialisers.insert(name.to_string(), value);
            name.to_string()
        }
    }

    fn operand_tensor(&mut self, v: usize, made: Option<Tensor>) -> Result<String> {
        if self.is_none(v) {
            let t = made.ok_or_else(|| Error::Invalid("a missing BatchNorm affine".into()))?;
            Ok(self.builder.constant("batch_norm_affine", t))
        } else {
            self.tensor(v)
        }
    }

    fn binary(&mut self, node: &TraceNode, scope: &str) -> Result<()> {
        let i = &node.inputs;
        let kind = node.kind.as_str();
        let out_kind = match &node.outputs[0].1 {
            ValueType::Tensor(k, _) => *k,
            _ => self.kind(i[0]),
        };
        let a = self.operand(i[0], out_kind)?;
        let mut b = self.operand(i[1], out_kind)?;
        // add/sub take an `alpha` multiplying the second operand.
        if matches!(kind, "aten::add" | "aten::sub" | "aten::rsub") && i.len() > 2 {
            let alpha = self.float(i[2])?;
            if alpha != 1.0 {
                let s = self.builder.scalar(alpha, out_kind);
                let target = if kind == "aten::rsub" { &a } else { &b };
                let scaled = self.builder.node1("Mul", &[target, &s], vec![], scope);
                if kind == "aten::rsub" {
                    let y = self.builder.node1("Sub", &[&b, &scaled], vec![], scope);
                    self.set(node, y);
                    return Ok(());
                }
                b = scaled;
            }
        }
        if kind == "aten::div" && i.len() > 2 && !self.is_none(i[2]) {
            let mode = self.string(i[2])?;
            let q = self.builder.node1("Div", &[&a, &b], vec![], scope);
            let op = match mode.as_str() {
                "floor" => "Floor",
                "trunc"
                    if matches!(
                        out_kind,
                        Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16
                    ) =>
                {
                    return Err(Error::Invalid("truncating float division".into()))
                }
                _ => {
                    self.set(node, q);
                    return Ok(());
                }
            };
            let y = self.builder.node1(op, &[&q], vec![], scope);
            self.set(node, y);
            return Ok(());
        }
        let (op, x, y) = match kind {
            "aten::add" => ("Add", a, b),
            "aten::sub" => ("Sub", a, b),
            "aten::rsub" => ("Sub", b, a),
            "aten::mul" => ("Mul", a, b),
            "aten::div" => ("Div", a, b),
            "aten::pow" => ("Pow", a, b),
            "aten::maximum" => ("Max", a, b),
            _ => ("Min", a, b),
        };
        let out = self.builder.node1(op, &[&x, &y], vec![], scope);
        self.set(node, out);
        Ok(())
    }

    fn split(&mut self, node: &TraceNode, scope: &str) -> Result<()> {
        let i = &node.inputs;
        let kind = node.kind.as_str();
        let shape = self.shape(i[0])?;
        let rank = shape.len() as i64;
        let (sizes, dim) = match kind {
            "aten::chunk" | "aten::unsafe_chunk" => {
                let chunks = self.int(i[1])?;
                let dim = self.int(i[2])?.rem_euclid(rank);
                let n = shape[dim as usize];
                let each = (n + chunks - 1) / chunks;
                let mut sizes = Vec::new();
                let mut left = n;
                while left > 0 {
                    sizes.push(each.min(left));
                    left -= each.min(left);
                }
                (sizes, dim)
            }
            "aten::unbind" => {
                let dim = self.int(i[1])?.rem_euclid(rank);
                (vec![1; shape[dim as usize] as usize], dim)
            }
            _ => {
                let dim = self.int(i[2])?.rem_euclid(rank);
                let n = shape[dim as usize];
                let sizes = match self.constant(i[1]) {
                    Some(Constant::Int(each)) => {
                        let each = *each;
                        let mut sizes = Vec::new();
                        let mut left = n;
                        while left > 0 {
                            sizes.push(each.min(left));
                            left -= each.min(left);
                        }
                        sizes
                    }
                    _ => self.ints(i[1])?,
                };
                (sizes, dim)
            }
        };
        let x = self.tensor(i[0])?;
        let s = self.builder.ints(&sizes);
        let mut parts = self.builder.node(
            "Split",
            &[&x, &s],
            sizes.len(),
            vec![attr_int("axis", dim)],
            scope,
        );
        if kind == "aten::unbind" {
            let axes = self.builder.ints(&[dim]);
            parts = parts
                .iter()
                .map(|p| self.builder.node1("Squeeze", &[p, &axes], vec![], scope))
                .collect();
        }
        if node.outputs.len() == 1 {
            self.values.insert(node.outputs[0].0, Value::Tensors(parts));
        } else {
            for ((v, _), p) in node.outputs.iter().zip(parts) {
                self.values.insert(*v, Value::Tensor(p));
            }
        }
        Ok(())
    }

    /// `scaled_dot_product_attention(q, k, v, mask, dropout, is_causal, scale)`: softmax(q kᵀ ·
    /// scale + mask) v, as opset 22 has no attention operator.
    fn attention(&mut self, node: &TraceNode, scope: &str) -> Result<()> {
        let i = &node.inputs;
        if i.len() > 5 && self.bool(i[5])? {
            return Err(Error::Invalid("causal attention".into()));
        }
        if i.len() > 4 && self.float(i[4]).unwrap_or(0.0) != 0.0 {
            return Err(Error::Invalid("attention dropout".into()));
        }
        let q_shape = self.shape(i[0])?;
        let rank = q_shape.len() as i64;
        let scale = if i.len() > 6 && !self.is_none(i[6]) {
            self.float(i[6])?
        } else {
            1.0 / (*q_shape.last().unwrap_or(&1) as f64).sqrt()
        };
        let k_kind = self.kind(i[0]);
        let q = self.tensor(i[0])?;
        let k = self.tensor(i[1])?;
        let v = self.tensor(i[2])?;
        let mut perm: Vec<i64> = (0..rank).collect();
        perm.swap(rank as usize - 1, rank as usize - 2);
        let kt = self
            .builder
            .node1("Transpose", &[&k], vec![attr_ints("perm", &perm)], scope);
        let s = self.builder.scalar(scale, k_kind);
        let qs = self.builder.node1("Mul", &[&q, &s], vec![], scope);
        let mut logits = self.builder.node1("MatMul", &[&qs, &kt], vec![], scope);
        if !self.is_none(i[3]) {
            let mask = self.tensor(i[3])?;
            logits = self.builder.node1("Add", &[&logits, &mask], vec![], scope);
        }
        let p = self
            .builder
            .node1("Softmax", &[&logits], vec![attr_int("axis", -1)], scope);
        let y = self.builder.node1("MatMul", &[&p, &v], vec![], scope);
        self.set(node, y);
        Ok(())
    }
}

/// torch's symmetric padding per spatial dimension as ONNX's begins then ends.
fn pads(padding: &[i64], n: usize) -> Vec<i64> {
    let p = expand(padding, n);
    p.iter().chain(p.iter()).copied().collect()
}

/// A one-element list repeated for `n` dimensions (torch accepts `[k]` for `[k, k]`).
fn expand(values: &[i64], n: usize) -> Vec<i64> {
    if values.len() == 1 && n > 1 {
        vec![values[0]; n]
    } else {
        values.to_vec()
    }
}
