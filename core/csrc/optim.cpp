// A C interface over ATen's fused optimiser kernels (what `torch.optim.SGD/Adam/AdamW(...,
// fused=True)` run): one pass over each parameter reads its gradient and state and writes the
// parameter and state, instead of the five to eight tensor operations (and temporaries) of the
// per-tensor update. Also gradient reset to "none", as `zero_grad()` does by default in PyTorch.
// Exceptions come back as messages in *err (ffi_boundary.h).

#include "ffi_boundary.h"

#include <ATen/ATen.h>

#include <vector>


extern "C" {

// torch.optim.SGD's fused update of n parameters. `bufs` are the momentum buffers (ignored when
// momentum is 0); with first_step they are written, not read (PyTorch's first momentum step).
int fv_fused_sgd(at::Tensor **params, at::Tensor **grads, at::Tensor **bufs, int n,
                 double weight_decay, double momentum, double lr, double dampening, int nesterov,
                 int first_step, char **err) {
  return fv::guarded(err, "the optimiser", [&] {
    std::vector<at::Tensor> no_buffers;
    auto momentum_buffers = momentum != 0.0 ? fv::tensors(bufs, n) : no_buffers;
    at::_fused_sgd_(fv::tensors(params, n), fv::tensors(grads, n), momentum_buffers, weight_decay,
                    momentum, lr, dampening, nesterov != 0, /*maximize=*/false, first_step != 0);
  });
}

// torch.optim.Adam (decoupled == 0) or AdamW's fused update; `steps` are float tensors holding
// each parameter's step count after this step (1 on the first).
int fv_fused_adam(at::Tensor **params, at::Tensor **grads, at::Tensor **exp_avgs,
                  at::Tensor **exp_avg_sqs, at::Tensor **steps, int n, double lr, double beta1,
                  double beta2, double weight_decay, double eps, int decoupled, char **err) {
  return fv::guarded(err, "the optimiser", [&] {
    std::vector<at::Tensor> no_max;
    auto p = fv::tensors(params, n);
    auto g = fv::tensors(grads, n);
    auto m = fv::tensors(exp_avgs, n);
    auto v = fv::tensors(exp_avg_sqs, n);
    auto t = fv::tensors(steps, n);
    if (decoupled != 0) {
      at::_fused_adamw_(p, g, m, v, no_max, t, lr, beta1, beta2, weight_decay, eps,
                        /*amsgrad=*/false, /*maximize=*/false);
    } else {
      at::_fused_adam_(p, g, m, v, no_max, t, lr, beta1, beta2, weight_decay, eps,
                       /*amsgrad=*/false, /*maximize=*/false);
    }
  });
}

// MuSGD's momentum step for its Muon part, as Ultralytics' muon_update runs it, operation for
// operation (so the orthogonalised update sees the same bits): bufs = beta·bufs + (1 − beta)·grads;
// the update is beta·bufs + (1 − beta)·grads with Nesterov, else bufs; copied into `out`.
int fv_muon_momentum(at::Tensor **grads, at::Tensor **bufs, at::Tensor **out, int n, double beta,
                     int nesterov, char **err) {
  return fv::guarded(err, "the optimiser", [&] {
    auto g = fv::tensors(grads, n);
    auto b = fv::tensors(bufs, n);
    at::_foreach_mul_(b, beta);
    at::_foreach_add_(b, g, 1.0 - beta);
    std::vector<at::Tensor> updates = b;
    if (nesterov != 0) {
      updates = at::_foreach_mul(b, beta);
      at::_foreach_add_(updates, g, 1.0 - beta);
    }
    auto o = fv::tensors(out, n);
    for (int i = 0; i < n; ++i) {
      o[i].copy_(updates[i]);
    }
  });
}

// params += alpha · updates, elementwise over n pairs (MuSGD's Muon step).
int fv_foreach_add(at::Tensor **params, at::Tensor **updates, int n, double alpha, char **err) {
  return fv::guarded(err, "the optimiser", [&] {
    auto p = fv::tensors(params, n);
    at::_foreach_add_(p, fv::tensors(updates, n), alpha);
  });
}

// MuSGD's SGD part, as Ultralytics writes it with foreach operations (no dampening; momentum
// buffers start at zero, so the first step's buffer is the gradient): g' = grads + wd·params,
// bufs = momentum·bufs + g', params −= lr·(g' + momentum·bufs with Nesterov, else bufs).
int fv_musgd_sgd(at::Tensor **params, at::Tensor **grads, at::Tensor **bufs, int n, double lr,
                 double momentum, double weight_decay, int nesterov, char **err) {
  return fv::guarded(err, "the optimiser", [&] {
    auto p = fv::tensors(params, n);
    auto g = fv::tensors(grads, n);
    auto b = fv::tensors(bufs, n);
    if (weight_decay != 0.0) {
      g = at::_foreach_add(g, p, weight_decay);
    }
    at::_foreach_mul_(b, momentum);
    at::_foreach_add_(b, g);
    auto updates = nesterov != 0 ? at::_foreach_add(g, b, momentum) : b;
    at::_foreach_add_(p, updates, -lr);
  });
}

// Drops the gradients of n tensors (their .grad becomes undefined), so the next backward pass
// stores its gradient instead of adding it to zeros.
int fv_clear_grads(at::Tensor **tensors, int n, char **err) {
  return fv::guarded(err, "the optimiser", [&] {
    for (int i = 0; i < n; ++i) {
      tensors[i]->mutable_grad().reset();
    }
  });
}
}
