// A C interface over libtorch's tracer for the ONNX writer (core/src/onnx): a Rust forward is
// traced on example inputs and the recorded graph comes back as text, one line per value or
// node, with the tensor constants (the model's weights, which the trace holds by reference, so
// their data pointers are the VarStore's) handed back as tch tensor handles. Exceptions come
// back as messages in *err (ffi_boundary.h), never across the FFI boundary.
//
// The text (every value is a number; a node lists its inputs, then its outputs with their
// traced type):
//   input ID TYPE
//   const ID tensor K          K indexes fv_trace_tensor
//   const ID int V | float V | bool V | none | ints V,V,… | floats V,V,… | str TEXT | device TEXT
//   node KIND in ID… out ID:TYPE…
//   output ID
// TYPE is `t:DTYPE:D0xD1x…` for a tensor of complete type, `t:?` for one without, `int`,
// `float`, `bool`, `list`, `tuple` or `other`.

#include "ffi_boundary.h"

#include <torch/csrc/jit/frontend/tracer.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/constant_propagation.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/passes/inliner.h>

#include <iomanip>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct Trace {
  std::string text;
  std::vector<at::Tensor> tensors;
};

void write_type(std::ostream &out, const torch::jit::Value *v) {
  auto type = v->type();
  if (auto t = type->cast<c10::TensorType>()) {
    auto sizes = t->sizes().concrete_sizes();
    auto dtype = t->scalarType();
    if (!sizes || !dtype) {
      out << "t:?";
      return;
    }
    out << "t:" << c10::toString(*dtype) << ':';
    for (size_t i = 0; i < sizes->size(); ++i) {
      out << (i ? "x" : "") << (*sizes)[i];
    }
  } else if (type->kind() == c10::TypeKind::IntType) {
    out << "int";
  } else if (type->kind() == c10::TypeKind::FloatType) {
    out << "float";
  } else if (type->kind() == c10::TypeKind::BoolType) {
    out << "bool";
  } else if (type->kind() == c10::TypeKind::ListType) {
    out << "list";
  } else if (type->kind() == c10::TypeKind::TupleType) {
    out << "tuple";
  } else {
    out << "other";
  }
}

void write_constant(std::ostream &out, const torch::jit::Node *node, Trace &trace) {
  const torch::jit::Value *v = node->output();
  out << "const " << v->unique() << ' ';
  auto value = torch::jit::toIValue(v);
  if (!value || value->isNone()) {
    out << "none";
  } else if (value->isTensor()) {
    out << "tensor " << trace.tensors.size();
    trace.tensors.push_back(value->toTensor());
  } else if (value->isInt()) {
    out << "int " << value->toInt();
  } else if (value->isDouble()) {
    out << "float " << value->toDouble();
  } else if (value->isBool()) {
    out << "bool " << (value->toBool() ? 1 : 0);
  } else if (value->isIntList()) {
    out << "ints ";
    auto list = value->toIntVector();
    for (size_t i = 0; i < list.size(); ++i) {
      out << (i ? "," : "") << list[i];
    }
  } else if (value->isDoubleList()) {
    out << "floats ";
    auto list = value->toDoubleVector();
    for (size_t i = 0; i < list.size(); ++i) {
      out << (i ? "," : "") << list[i];
    }
  } else if (value->isString()) {
    out << "str " << value->toStringRef();
  } else if (value->isDevice()) {
    out << "device " << value->toDevice().str();
  } else {
    out << "other " << value->tagKind();
  }
  out << '\n';
}

}  // namespace

extern "C" {

// The Rust forward: reads the n input handles (borrowed) and hands each output to
// fv_trace_push_output (also borrowed: copied there). Non-zero when it failed.
typedef int (*fv_forward_fn)(void *ctx, at::Tensor **inputs, int n, void *sink);

void fv_trace_push_output(void *sink, at::Tensor *t) {
  static_cast<torch::jit::Stack *>(sink)->push_back(*t);
}

// Traces forward on the n inputs; *out receives the trace (free with fv_trace_free).
int fv_trace(at::Tensor **inputs, int n, fv_forward_fn forward, void *ctx, void **out,
             char **err) {
  return fv::guarded(err, "tracing", [&] {
    torch::jit::Stack stack;
    for (int i = 0; i < n; ++i) {
      stack.push_back(*inputs[i]);
    }
    auto fn = [&](torch::jit::Stack in) {
      std::vector<at::Tensor> traced;
      std::vector<at::Tensor *> handles;
      traced.reserve(in.size());
      for (auto &v : in) {
        traced.push_back(v.toTensor());
      }
      for (auto &t : traced) {
        handles.push_back(&t);
      }
      torch::jit::Stack outputs;
      if (forward(ctx, handles.data(), static_cast<int>(handles.size()), &outputs) != 0) {
        throw std::runtime_error("the forward failed while it was traced");
      }
      return outputs;
    };
    auto result = torch::jit::tracer::trace(
        stack, fn, [](const torch::autograd::Variable &) { return std::string(); },
        /*strict=*/false, /*force_outplace=*/true);
    auto graph = result.first->graph;
    torch::jit::Inline(*graph);
    // What depends on constants only (a detector's anchor grid, a window mask) becomes a
    // constant: the ONNX graph holds its value, not the arithmetic that made it.
    torch::jit::ConstantPropagation(graph);
    torch::jit::EliminateDeadCode(graph);

    auto trace = std::make_unique<Trace>();
    std::ostringstream text;
    text << std::setprecision(std::numeric_limits<double>::max_digits10);
    for (const auto *v : graph->inputs()) {
      text << "input " << v->unique() << ' ';
      write_type(text, v);
      text << '\n';
    }
    for (const auto *node : graph->nodes()) {
      if (node->kind() == c10::prim::Constant) {
        write_constant(text, node, *trace);
        continue;
      }
      text << "node " << node->kind().toQualString() << " in";
      for (const auto *v : node->inputs()) {
        text << ' ' << v->unique();
      }
      text << " out";
      for (const auto *v : node->outputs()) {
        text << ' ' << v->unique() << ':';
        write_type(text, v);
      }
      text << '\n';
    }
    for (const auto *v : graph->outputs()) {
      text << "output " << v->unique() << '\n';
    }
    trace->text = text.str();
    *out = trace.release();
  });
}

// The trace's text (owned by the trace).
const char *fv_trace_text(void *trace) { return static_cast<Trace *>(trace)->text.c_str(); }

// The number of tensor constants.
int fv_trace_tensor_count(void *trace) {
  return static_cast<int>(static_cast<Trace *>(trace)->tensors.size());
}

// Tensor constant k as a new tch handle (the caller owns it; it shares the constant's storage).
at::Tensor *fv_trace_tensor(void *trace, int k) {
  auto &tensors = static_cast<Trace *>(trace)->tensors;
  if (k < 0 || static_cast<size_t>(k) >= tensors.size()) {
    return nullptr;
  }
  return new at::Tensor(tensors[k]);
}

void fv_trace_free(void *trace) { delete static_cast<Trace *>(trace); }
}
