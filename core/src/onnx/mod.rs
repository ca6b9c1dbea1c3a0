//! ONNX export written from Rust: a model's forward is traced by libtorch's tracer, each ATen
//! operator it ran becomes ONNX nodes ([`aten`]), the weights become initialisers under their
//! state-dict names, and the file is parsed back and checked before it replaces anything.
//!
//! PyTorch's own exporter (`torch.onnx`) lives in Python; libtorch records the graph but cannot
//! write ONNX. Tracing the real forward means there is no second copy of any model: a new
//! architecture exports as soon as the operators it uses have translations, and one that uses
//! an operator without one is refused by name.
//!
//! ```no_run
//! # fn main() -> ferrovis_core::Result<()> {
//! use ferrovis_core::onnx::{export, OnnxOptions};
//! use ferrovis_core::{create_backbone, BackboneOptions};
//! let vs = tch::nn::VarStore::new(tch::Device::Cpu);
//! let net = create_backbone("resnet18", &vs.root(), &BackboneOptions::default())?;
//! let probe = tch::Tensor::zeros([1, 3, 224, 224], (tch::Kind::Float, tch::Device::Cpu));
//! let summary = export(
//!     &vs,
//!     &[probe],
//!     |x| Ok(vec![net.forward_t(&x[0], false)]),
//!     &OnnxOptions::default(),
//!     std::path::Path::new("resnet18.onnx"),
//! )?;
//! println!("{} nodes", summary.nodes);
//! # Ok(())
//! # }
//! ```

mod aten;
mod dynamic;
mod graph;
mod nms;
pub mod proto;
pub mod run;
pub mod trace;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use prost::Message;
use tch::nn::VarStore;
use tch::Tensor;

use crate::atomic_file;
use crate::{Error, Result};
use proto::{
    Dimension, GraphProto, ModelProto, OperatorSetIdProto, StringStringEntryProto,
    TensorShapeProto, TensorTypeProto, TypeProto, ValueInfoProto,
};
use trace::ValueType;

pub use nms::Nms;

/// The opset Ultralytics exports with (8.4's `best_onnx_opset` for torch ≥ 2.4: 18, because
/// ONNX Runtime's CUDA provider has no Resize-19 or ReduceMax-20 kernel and its static INT8
/// quantisation refuses opset 21 and later). Newer operators (GELU, per-channel
/// GroupNormalization) are written as opset-18 ones; [`OnnxOptions::opset`] up to
/// [`MAX_OPSET`] writes them as themselves.
pub const DEFAULT_OPSET: i64 = 18;

/// The lowest opset written (LayerNormalization, and reductions taking their axes as inputs,
/// need 18).
pub const MIN_OPSET: i64 = 18;

/// The highest opset written.
pub const MAX_OPSET: i64 = 22;

/// The IR version written: 10, the highest ONNX Runtime releases before 1.20 read, as
/// Ultralytics caps it.
pub const IR_VERSION: i64 = 10;

/// What to write besides the graph.
#[derive(Debug, Clone)]
pub struct OnnxOptions {
    /// The default opset's version.
    pub opset: i64,
    /// The graph inputs' names, in the order of the traced inputs (missing ones are `input{i}`).
    pub input_names: Vec<String>,
    /// The graph outputs' names (missing ones are `output{i}`).
    pub output_names: Vec<String>,
    /// The model's metadata properties (`metadata_props`), in order.
    pub metadata: Vec<(String, String)>,
    /// The graph's name.
    pub graph_name: String,
    /// Which input dimensions the written graph leaves free (ONNX's dynamic axes).
    pub dynamic: Dynamic,
    /// Names for free output dimensions, `(output, axis, name)` (Ultralytics calls `output0`'s
    /// axis 2 `anchors`); a free axis not listed is `batch`, `height` or `width` when it follows
    /// the input's, else `<output>_dim<axis>`.
    pub dim_names: Vec<(String, usize, String)>,
    /// Non-maximum suppression written after the first output, which must be a detector's
    /// `(N, 4 + classes, anchors)`: that output becomes `(N, max_det, 6)` rows (see [`Nms`]).
    pub nms: Option<Nms>,
}

/// The input dimensions a graph leaves free.
///
/// A trace records one input's sizes, so a free dimension is found by tracing twice: at the
/// example's size and at a larger batch (and, for [`Dynamic::BatchAndSize`], 32 more rows and
/// columns). Each size the two traces disagree on is written as one read from the input (a
/// Reshape's `0` or `-1`, the input's batch, a Resize's scale), both traces are converted, and
/// the two graphs must come out identical: a size the model computed in a way no rule covers is
/// an error naming its operator, never a graph that only works at the traced size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dynamic {
    /// Every dimension as traced.
    #[default]
    None,
    /// The batch (dimension 0 of every input).
    Batch,
    /// The batch and, for `(N, C, H, W)` inputs, the height and width.
    BatchAndSize,
}

impl Default for OnnxOptions {
    fn default() -> Self {
        Self {
            opset: DEFAULT_OPSET,
            input_names: vec!["images".into()],
            output_names: vec!["output0".into()],
            metadata: Vec::new(),
            graph_name: "main_graph".into(),
            dynamic: Dynamic::None,
            dim_names: Vec::new(),
            nms: None,
        }
    }
}

/// What was written.
#[derive(Debug, Clone)]
pub struct OnnxSummary {
    /// Nodes in the graph.
    pub nodes: usize,
    /// Node count per operator type.
    pub operators: BTreeMap<String, usize>,
    /// Initialisers (weights and constants).
    pub initialisers: usize,
    /// Initialisers named after a state-dict entry.
    pub named_initialisers: usize,
    /// The file's size in bytes.
    pub bytes: u64,
}

/// Traces `forward` on `inputs`, converts it and writes the model to `out` (through a
/// temporary file: an export that fails leaves no file, and never a partial one). The model's
/// variables in `vs` name the initialisers; they must not require gradients (freeze `vs` first).
pub fn export<F>(
    vs: &VarStore,
    inputs: &[Tensor],
    mut forward: F,
    options: &OnnxOptions,
    out: &Path,
) -> Result<OnnxSummary>
where
    F: FnMut(&[Tensor]) -> Result<Vec<Tensor>>,
{
    let model = to_model(vs, inputs, &mut forward, options)?;
    let bytes = model.encode_to_vec();
    if bytes.len() as u64 >= 2 << 30 {
        return Err(Error::Invalid(format!(
            "{}: the model takes {} MB, over protobuf's 2 GB limit (ONNX's external-data form \
             is not written)",
            out.display(),
            bytes.len() >> 20
        )));
    }
    check_model(&ModelProto::decode(bytes.as_slice()).map_err(|e| {
        Error::Invalid(format!(
            "{}: the written model does not parse back: {e}",
            out.display()
        ))
    })?)?;
    verify(&model, inputs, &mut forward, options)
        .map_err(|e| Error::Invalid(format!("{}: not written: {e}", out.display())))?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    atomic_file::write_atomic(out, &bytes)?;
    let graph = model.graph.as_ref();
    let mut operators = BTreeMap::new();
    for n in graph.map(|g| g.node.as_slice()).unwrap_or_default() {
        *operators.entry(n.op_type.clone()).or_insert(0) += 1;
    }
    let initialisers = graph.map_or(0, |g| g.initializer.len());
    let named_initialisers = graph.map_or(0, |g| {
        g.initializer
            .iter()
            .filter(|t| !t.name.starts_with("onnx::"))
            .count()
    });
    Ok(OnnxSummary {
        nodes: graph.map_or(0, |g| g.node.len()),
        operators,
        initialisers,
        named_initialisers,
        bytes: bytes.len() as u64,
    })
}

/// The largest difference [`verify`] accepts between the graph's outputs and the forward's,
/// relative to the output's largest magnitude: ten times what ONNX Runtime's own differences
/// reach on the tested models (BatchNorm folding and summation order), far below a wrong
/// translation's.
pub const VERIFY_TOLERANCE: f64 = 1e-4;

/// Runs `model` ([`run::run`], libtorch's operators read from ONNX's specification) on
/// `inputs`, and for dynamic axes on the second trace's inputs too, and compares each output
/// with `forward`'s: a difference over [`VERIFY_TOLERANCE`] is an error naming the output.
/// With NMS in the graph, what is compared is the suppression's input (the forward's output);
/// the rows after it are checked for their shape.
pub fn verify<F>(
    model: &ModelProto,
    inputs: &[Tensor],
    mut forward: F,
    options: &OnnxOptions,
) -> Result<()>
where
    F: FnMut(&[Tensor]) -> Result<Vec<Tensor>>,
{
    let mut probes = vec![inputs.iter().map(Tensor::shallow_clone).collect::<Vec<_>>()];
    if options.dynamic != Dynamic::None {
        probes.push(dynamic::second_probe(inputs, options.dynamic)?);
    }
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| Error::Invalid("ONNX model without a graph".into()))?;
    let before_nms = graph
        .node
        .iter()
        .find(|n| n.name.starts_with("/nms/"))
        .and_then(|n| n.input.first().cloned());
    for probe in probes {
        let expected = tch::no_grad(|| forward(&probe))?;
        let mut wanted: Vec<String> = graph.output.iter().map(|o| o.name.clone()).collect();
        if let Some(name) = &before_nms {
            wanted.push(name.clone());
        }
        let got = run::run_values(model, &probe, &wanted)?;
        for (k, want) in expected.iter().enumerate() {
            let name = match (k, &before_nms) {
                (0, Some(decoded)) => decoded,
                _ => &wanted[k],
            };
            let ours = &got[name];
            if ours.size() != want.size() {
                return Err(Error::Invalid(format!(
                    "the graph's '{name}' is {:?} at input {:?}, the forward's {:?}",
                    ours.size(),
                    probe[0].size(),
                    want.size()
                )));
            }
            let want = want.to_kind(tch::Kind::Double);
            let scale = want.abs().max().double_value(&[]).max(1e-12);
            let d = (ours.to_kind(tch::Kind::Double) - &want)
                .abs()
                .max()
                .double_value(&[])
                / scale;
            // NaN fails too.
            if d.is_nan() || d > VERIFY_TOLERANCE {
                return Err(Error::Invalid(format!(
                    "running the written graph (input {:?}) gives '{name}' {d:.2e} away from \
                     the libtorch forward, over the {VERIFY_TOLERANCE:.0e} allowed: a \
                     translation computes something else",
                    probe[0].size()
                )));
            }
        }
        if let (Some(nms), Some(rows)) = (&options.nms, got.get(&wanted[0])) {
            let batch = probe[0].size()[0];
            if before_nms.is_some() && rows.size() != [batch, nms.max_det, 6] {
                return Err(Error::Invalid(format!(
                    "the NMS rows are {:?}, not [{batch}, {}, 6]",
                    rows.size(),
                    nms.max_det
                )));
            }
        }
    }
    Ok(())
}

/// Traces and converts, without writing: the model as it would be written.
pub fn to_model<F>(
    vs: &VarStore,
    inputs: &[Tensor],
    mut forward: F,
    options: &OnnxOptions,
) -> Result<ModelProto>
where
    F: FnMut(&[Tensor]) -> Result<Vec<Tensor>>,
{
    if !(MIN_OPSET..=MAX_OPSET).contains(&options.opset) {
        return Err(Error::Invalid(format!(
            "ONNX opset {} is not written: choose {MIN_OPSET} to {MAX_OPSET}",
            options.opset
        )));
    }
    let mut traced = trace::trace(inputs, &mut forward)?;
    let names: HashMap<usize, (String, Vec<i64>)> = vs
        .variables()
        .into_iter()
        .map(|(name, t)| (t.data_ptr() as usize, (name, t.size())))
        .collect();
    aten::fold_constant_lists(&mut traced);
    if options.dynamic == Dynamic::None {
        return convert(&mut traced, None, &names, options);
    }
    let probes = dynamic::second_probe(inputs, options.dynamic)?;
    let mut twin = trace::trace(&probes, &mut forward).map_err(|e| {
        let shapes: Vec<String> = probes.iter().map(|t| format!("{:?}", t.size())).collect();
        Error::Invalid(format!(
            "ONNX export with dynamic axes: the model does not run at {} ({e}); export \
             without them{}",
            shapes.join(", "),
            if options.dynamic == Dynamic::BatchAndSize {
                ", or with a dynamic batch only"
            } else {
                ""
            }
        ))
    })?;
    dynamic::same_operators(&traced, &twin)?;
    aten::fold_constant_lists(&mut twin);
    let model = convert(&mut traced, Some(&twin), &names, options)?;
    let other = convert(&mut twin, Some(&traced), &names, options)?;
    dynamic::same_graphs(&model, &other)?;
    Ok(model)
}

/// Converts `traced` (with `twin`, its trace at other sizes, when dimensions are free).
fn convert(
    traced: &mut trace::Trace,
    twin: Option<&trace::Trace>,
    names: &HashMap<usize, (String, Vec<i64>)>,
    options: &OnnxOptions,
) -> Result<ModelProto> {
    let graph_inputs = traced.inputs.clone();
    let graph_outputs = traced.outputs.clone();
    let output_types = |t: &trace::Trace| -> Vec<ValueType> {
        let types: HashMap<usize, ValueType> = t
            .nodes
            .iter()
            .flat_map(|n| n.outputs.iter().cloned())
            .chain(t.inputs.iter().cloned())
            .collect();
        let mut out: Vec<ValueType> = t
            .outputs
            .iter()
            .map(|v| types.get(v).cloned().unwrap_or(ValueType::UnknownTensor))
            .collect();
        // With NMS the first output is the rows written after it.
        if let (Some(nms), Some(ValueType::Tensor(kind, shape))) = (&options.nms, out.first()) {
            let batch = shape.first().copied().unwrap_or(1);
            let rows = ValueType::Tensor(*kind, vec![batch, nms.max_det, 6]);
            out[0] = rows;
        }
        out
    };
    let out_types = output_types(traced);
    let first_output = traced
        .nodes
        .iter()
        .flat_map(|n| n.outputs.iter())
        .chain(traced.inputs.iter())
        .find(|(v, _)| Some(v) == graph_outputs.first())
        .map(|(_, ty)| ty.clone());
    let mut converter = aten::Converter::new(traced, twin, names, options.opset);
    let input_names: Vec<String> = (0..graph_inputs.len())
        .map(|k| {
            options
                .input_names
                .get(k)
                .cloned()
                .unwrap_or_else(|| format!("input{k}"))
        })
        .collect();
    for (k, ((v, _), name)) in graph_inputs.iter().zip(&input_names).enumerate() {
        converter.bind_input(k, *v, name);
    }
    converter.run()?;
    let mut output_names = Vec::new();
    for (k, v) in graph_outputs.iter().enumerate() {
        let wanted = options
            .output_names
            .get(k)
            .cloned()
            .unwrap_or_else(|| format!("output{k}"));
        let mut current = converter.tensor(*v)?;
        if let (0, Some(nms)) = (k, &options.nms) {
            let classes = match &first_output {
                Some(ValueType::Tensor(_, s)) if s.len() == 3 && s[1] > 4 => s[1] - 4,
                other => {
                    return Err(Error::Invalid(format!(
                        "ONNX export with NMS: the first output must be (N, 4 + classes, \
                         anchors), not {other:?}"
                    )))
                }
            };
            current = nms::append(&mut converter.builder, &current, classes, nms)?;
        }
        rename_output(&mut converter.builder, &current, &wanted, &input_names);
        output_names.push(wanted);
    }
    let mut builder = converter.builder;
    let read: HashSet<&str> = builder
        .nodes
        .iter()
        .flat_map(|n| n.input.iter().map(String::as_str))
        .chain(output_names.iter().map(String::as_str))
        .collect();
    let mut initializer = Vec::new();
    for (name, t) in &builder.initialisers {
        if read.contains(name.as_str()) {
            initializer.push(graph::tensor_proto(name, t)?);
        }
    }
    let in_types: Vec<ValueType> = graph_inputs.iter().map(|(_, ty)| ty.clone()).collect();
    let twin_in: Option<Vec<ValueType>> =
        twin.map(|t| t.inputs.iter().map(|(_, ty)| ty.clone()).collect());
    let input = in_types
        .iter()
        .zip(&input_names)
        .enumerate()
        .map(|(k, (ty, name))| {
            let free = dynamic::free_axes(ty, twin_in.as_ref().and_then(|t| t.get(k)));
            let dims = free
                .iter()
                .map(|&a| (a, dynamic::input_axis_name(name, a, ty)))
                .collect();
            value_info(name, ty, &dims)
        })
        .collect::<Result<_>>()?;
    let twin_out = twin.map(output_types);
    let output = out_types
        .iter()
        .zip(&output_names)
        .enumerate()
        .map(|(k, (ty, name))| {
            let free = dynamic::free_axes(ty, twin_out.as_ref().and_then(|t| t.get(k)));
            let dims = free
                .iter()
                .map(|&a| {
                    let named = options
                        .dim_names
                        .iter()
                        .find(|(o, axis, _)| o == name && *axis == a)
                        .map(|(_, _, n)| n.clone());
                    let follows = twin_in.as_ref().and_then(|tin| {
                        dynamic::follows_input(ty, twin_out.as_ref()?.get(k)?, a, &in_types, tin)
                    });
                    (
                        a,
                        named
                            .or(follows)
                            .unwrap_or_else(|| format!("{name}_dim{a}")),
                    )
                })
                .collect();
            value_info(name, ty, &dims)
        })
        .collect::<Result<_>>()?;
    let graph = GraphProto {
        node: std::mem::take(&mut builder.nodes),
        name: options.graph_name.clone(),
        initializer,
        input,
        output,
        ..Default::default()
    };
    Ok(ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: options.opset,
        }],
        producer_name: "ferrovis".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(graph),
        metadata_props: options
            .metadata
            .iter()
            .map(|(k, v)| StringStringEntryProto {
                key: k.clone(),
                value: v.clone(),
            })
            .collect(),
        ..Default::default()
    })
}

/// Class names as Ultralytics' ONNX metadata writes them (`names`): `{0: 'person', 1: 'car'}`.
pub fn names_property(names: &[String]) -> String {
    let entries: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{i}: '{n}'"))
        .collect();
    format!("{{{}}}", entries.join(", "))
}

/// Gives the graph output `current` the name `wanted`: the node writing it is renamed (and its
/// readers), or an `Identity` is added when the output is an input or an initialiser.
fn rename_output(b: &mut graph::Builder, current: &str, wanted: &str, inputs: &[String]) {
    if current == wanted {
        return;
    }
    let produced = b
        .nodes
        .iter()
        .any(|n| n.output.iter().any(|o| o == current));
    let is_input = inputs.iter().any(|i| i == current);
    let already_output = b.nodes.iter().any(|n| n.output.iter().any(|o| o == wanted));
    if !produced || is_input || already_output {
        b.node1("Identity", &[current], vec![], "");
        if let Some(last) = b.nodes.last_mut() {
            last.output = vec![wanted.to_string()];
        }
        return;
    }
    for n in &mut b.nodes {
        for name in n.input.iter_mut().chain(n.output.iter_mut()) {
            if name == current {
                *name = wanted.to_string();
            }
        }
    }
}

/// `name`'s type; the axes in `free` are written by name (`dim_param`) instead of size.
fn value_info(
    name: &str,
    ty: &ValueType,
    free: &BTreeMap<usize, String>,
) -> Result<ValueInfoProto> {
    let (elem, dims) = match ty {
        ValueType::Tensor(kind, dims) => (graph::data_type(*kind)? as i32, Some(dims)),
        _ => (proto::DataType::Float as i32, None),
    };
    Ok(ValueInfoProto {
        name: name.to_string(),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorTypeProto {
                elem_type: elem,
                shape: dims.map(|d| TensorShapeProto {
                    dim: d
                        .iter()
                        .enumerate()
                        .map(|(axis, &v)| match free.get(&axis) {
                            Some(param) => Dimension {
                                dim_value: None,
                                dim_param: Some(param.clone()),
                            },
                            None => Dimension {
                                dim_value: Some(v),
                                dim_param: None,
                            },
                        })
                        .collect(),
                }),
            }),
        }),
        ..Default::default()
    })
}

/// The structural checks a reader relies on: every node input is a graph input, an
/// initialiser or an earlier node's output (the nodes are in execution order), no name is
/// written twice, and every graph output is produced.
pub fn check_model(model: &ModelProto) -> Result<()> {
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| Error::Invalid("ONNX model without a graph".into()))?;
    let mut known: HashSet<&str> = graph.input.iter().map(|v| v.name.as_str()).collect();
    for t in &graph.initializer {
        if !known.insert(t.name.as_str()) {
            return Err(Error::Invalid(format!(
                "ONNX graph: the name '{}' is defined twice",
                t.name
            )));
        }
    }
    for n in &graph.node {
        for i in n.input.iter().filter(|i| !i.is_empty()) {
            if !known.contains(i.as_str()) {
                return Err(Error::Invalid(format!(
                    "ONNX graph: node '{}' ({}) reads '{i}', which nothing before it defines",
                    n.name, n.op_type
                )));
            }
        }
        for o in &n.output {
            if !known.insert(o.as_str()) {
                return Err(Error::Invalid(format!(
                    "ONNX graph: node '{}' writes '{o}', which is already defined",
                    n.name
                )));
            }
        }
    }
    for o in &graph.output {
        if !known.contains(o.name.as_str()) {
            return Err(Error::Invalid(format!(
                "ONNX graph: the output '{}' is never computed",
                o.name
            )));
        }
    }
    Ok(())
}
