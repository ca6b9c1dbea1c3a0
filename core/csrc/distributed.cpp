// A small C interface over libtorch's c10d (the engine of torch.distributed and
// DistributedDataParallel): a TCPStore rendezvous and a Gloo process group (NCCL when built with
// FERROVIS_NCCL), with all-reduce, broadcast, all-gather and barrier on at::Tensor. Rust calls it
// through core/src/distributed/ffi.rs. Every function catches C++ exceptions and returns their
// message in *err (ffi_boundary.h; the caller frees it with fv_free_error).

#include "ffi_boundary.h"

#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#ifndef FERROVIS_NO_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef FERROVIS_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>


struct fv_group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> backend;
  std::chrono::milliseconds timeout;
};

extern "C" {

void fv_free_error(char *err) { std::free(err); }

// Connects to (or, with is_server, serves) the TCPStore at host:port, then builds the process
// group of `world` ranks under `prefix`. backend: 0 Gloo, 1 NCCL.
fv_group *fv_group_new(const char *host, int port, int is_server, int rank, int world,
                       int backend, const char *prefix, double timeout_s, char **err) {
  fv_group *group = nullptr;
  fv::guarded(err, "c10d", [&] {
    auto timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000.0));
    c10d::TCPStoreOptions opts;
    opts.port = static_cast<std::uint16_t>(port);
    opts.isServer = is_server != 0;
    opts.numWorkers = static_cast<std::size_t>(world);
    // torchrun's agent store is served already; by hand, rank 0 serves and waits for nobody
    // (the first collective waits for everyone instead).
    opts.waitWorkers = false;
    opts.timeout = timeout;
    auto tcp = c10::make_intrusive<c10d::TCPStore>(std::string(host), opts);
    c10::intrusive_ptr<c10d::Store> store =
        c10::make_intrusive<c10d::PrefixStore>(std::string(prefix), tcp);
    c10::intrusive_ptr<c10d::Backend> pg;
    if (backend == 1) {
#ifdef FERROVIS_NCCL
      auto nccl_opts = c10d::ProcessGroupNCCL::Options::create();
      nccl_opts->timeout = timeout;
      pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, world, nccl_opts);
#else
      throw std::runtime_error("this build of ferrovis has no NCCL (libtorch_cuda.so and "
                               "nccl.h were not found when it was compiled); use Gloo");
#endif
    } else {
#ifdef FERROVIS_NO_GLOO
      throw std::runtime_error("this build of ferrovis has no Gloo (its headers, from Debian's "
                               "libgloo-dev, were not found when it was compiled)");
#else
      auto gloo_opts = c10d::ProcessGroupGloo::Options::create_default(timeout);
      pg = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world, gloo_opts);
#endif
    }
    group = new fv_group{store, pg, timeout};
  });
  return group;
}

void fv_group_free(fv_group *group) { delete group; }

// op: 0 sum, 1 max, 2 min. Averages are a sum divided by the world size (Gloo has no AVG).
int fv_all_reduce(fv_group *group, at::Tensor **tensors, int n, int op, char **err) {
  return fv::guarded(err, "c10d", [&] {
    auto v = fv::tensors(tensors, n);
    c10d::AllreduceOptions opts;
    opts.reduceOp = op == 1   ? c10d::ReduceOp(c10d::ReduceOp::MAX)
                    : op == 2 ? c10d::ReduceOp(c10d::ReduceOp::MIN)
                              : c10d::ReduceOp(c10d::ReduceOp::SUM);
    opts.timeout = group->timeout;
    group->backend->allreduce(v, opts)->wait(group->timeout);
  });
}

int fv_broadcast(fv_group *group, at::Tensor **tensors, int n, int root, char **err) {
  return fv::guarded(err, "c10d", [&] {
    auto v = fv::tensors(tensors, n);
    c10d::BroadcastOptions opts;
    opts.rootRank = root;
    opts.timeout = group->timeout;
    group->backend->broadcast(v, opts)->wait(group->timeout);
  });
}

// outputs: `world` tensors shaped like input, filled with each rank's input in rank order.
int fv_all_gather(fv_group *group, at::Tensor **outputs, int world, at::Tensor *input,
                  char **err) {
  return fv::guarded(err, "c10d", [&] {
    std::vector<std::vector<at::Tensor>> out{fv::tensors(outputs, world)};
    std::vector<at::Tensor> in{*input};
    c10d::AllgatherOptions opts;
    opts.timeout = group->timeout;
    group->backend->allgather(out, in, opts)->wait(group->timeout);
  });
}

int fv_barrier(fv_group *group, char **err) {
  return fv::guarded(err, "c10d", [&] {
    c10d::BarrierOptions opts;
    opts.timeout = group->timeout;
    group->backend->barrier(opts)->wait(group->timeout);
  });
}

} // extern "C"
