//! The C interface of `csrc/optim.cpp`: ATen's fused optimiser kernels and gradient reset.

use std::os::raw::{c_char, c_double, c_int};

use tch::Tensor;

use crate::shim::{status, CTensor};
use crate::{Error, Result};

extern "C" {
    fn fv_fused_sgd(
        params: *mut *mut CTensor,
        grads: *mut *mut CTensor,
        bufs: *mut *mut CTensor,
        n: c_int,
        weight_decay: c_double,
        momentum: c_double,
        lr: c_double,
        dampening: c_double,
        nesterov: c_int,
        first_step: c_int,
        err: *mut *mut c_char,
    ) -> c_int;
    fn fv_fused_adam(
        params: *mut *mut CTensor,
        grads: *mut *mut CTensor,
        exp_avgs: *mut *mut CTensor,
        exp_avg_sqs: *mut *mut CTensor,
        steps: *mut *mut CTensor,
        n: c_int,
        lr: c_double,
        beta1: c_double,
        beta2: c_double,
        weight_decay: c_double,
        eps: c_double,
        decoupled: c_int,
        err: *mut *mut c_char,
    ) -> c_int;
    fn fv_clear_grads(tensors: *mut *mut CTensor, n: c_int, err: *mut *mut c_char) -> c_int;
    fn fv_muon_momentum(
        grads: *mut *mut CTensor,
        bufs: *mut *mut CTensor,
        out: *mut *mut CTensor,
        n: c_int,
        beta: c_double,
        nesterov: c_int,
        err: *mut *mut c_char,
    ) -> c_int;
    fn fv_foreach_add(
        params: *mut *mut CTensor,
        updates: *mut *mut CTensor,
        n: c_int,
        alpha: c_double,
        err: *mut *mut c_char,
    ) -> c_int;
    fn fv_musgd_sgd(
        params: *mut *mut CTensor,
        grads: *mut *mut CTensor,
        bufs: *mut *mut CTensor,
        n: c_int,
        lr: c_double,
        momentum: c_double,
        weight_decay: c_double,
        nesterov: c_int,
        err: *mut *mut c_char,
    ) -> c_int;
}

/// MuSGD's Muon momentum (see `csrc/optim.cpp`): updates `bufs` in place and writes each
/// parameter's pre-orthogonalisation update into `out`.
pub fn muon_momentum(
    grads: &[Tensor],
    bufs: &[Tensor],
    out: &[Tensor],
    beta: f64,
    nesterov: bool,
) -> Result<()> {
    let (mut g, mut b, mut o) = (handles(grads), handles(bufs), handles(out));
    let mut err = std::ptr::null_mut();
    // SAFETY: the handles point to live tensors owned by the slices for the whole call; the shim
    // reads `n` of each and fills `err` only on failure.
    let rc = unsafe {
        fv_muon_momentum(
            g.as_mut_ptr(),
            b.as_mut_ptr(),
            o.as_mut_ptr(),
            grads.len() as c_int,
            beta,
            c_int::from(nesterov),
            &mut err,
        )
    };
    status(rc, err, "MuSGD momentum")
}

/// `params += alpha · updates` (ATen's foreach add).
pub fn foreach_add(params: &[Tensor], updates: &[Tensor], alpha: f64) -> Result<()> {
    let (mut p, mut u) = (handles(params), handles(updates));
    let mut err = std::ptr::null_mut();
    // SAFETY: as for `muon_momentum`.
    let rc = unsafe {
        fv_foreach_add(
            p.as_mut_ptr(),
            u.as_mut_ptr(),
            params.len() as c_int,
            alpha,
            &mut err,
        )
    };
    status(rc, err, "MuSGD Muon step")
}

/// MuSGD's SGD part (see `csrc/optim.cpp`).
pub fn musgd_sgd(
    params: &[Tensor],
    grads: &[Tensor],
    bufs: &[Tensor],
    lr: f64,
    momentum: f64,
    weight_decay: f64,
    nesterov: bool,
) -> Result<()> {
    let (mut p, mut g, mut b) = (handles(params), handles(grads), handles(bufs));
    let mut err = std::ptr::null_mut();
    // SAFETY: as for `muon_momentum`.
    let rc = unsafe {
        fv_musgd_sgd(
            p.as_mut_ptr(),
            g.as_mut_ptr(),
            b.as_mut_ptr(),
            params.len() as c_int,
            lr,
            momentum,
            weight_decay,
            c_int::from(nesterov),
            &mut err,
        )
    };
    status(rc, err, "MuSGD SGD step")
}

fn handles(tensors: &[Tensor]) -> Vec<*mut CTensor> {
    tensors.iter().map(|t| t.as_ptr() as *mut CTensor).collect()
}

/// SGD's hyper-parameters for one call.
#[derive(Debug, Clone, Copy)]
pub struct SgdStep {
    pub lr: f64,
    pub weight_decay: f64,
    pub momentum: f64,
    pub dampening: f64,
    pub nesterov: bool,
    /// The buffers are new: written with the (decayed) gradient, not read.
    pub first_step: bool,
}

/// One fused SGD update of `params` (each tensor of the three lists with the same strides).
pub fn sgd(params: &[Tensor], grads: &[Tensor], bufs: &[Tensor], s: SgdStep) -> Result<()> {
    let (mut p, mut g, mut b) = (handles(params), handles(grads), handles(bufs));
    if s.momentum != 0.0 && b.len() != p.len() {
        return Err(Error::Invalid(
            "fused SGD: one momentum buffer per parameter".into(),
        ));
    }
    let mut err = std::ptr::null_mut();
    // SAFETY: the handles point to live tensors owned by the slices for the whole call; the shim
    // reads `n` of each (buffers only with momentum) and fills `err` only on failure.
    let rc = unsafe {
        fv_fused_sgd(
            p.as_mut_ptr(),
            g.as_mut_ptr(),
            b.as_mut_ptr(),
            p.len() as c_int,
            s.weight_decay,
            s.momentum,
            s.lr,
            s.dampening,
            c_int::from(s.nesterov),
            c_int::from(s.first_step),
            &mut err,
        )
    };
    status(rc, err, "fused SGD step")
}

/// Adam's (or, `decoupled`, AdamW's) hyper-parameters for one call.
#[derive(Debug, Clone, Copy)]
pub struct AdamStep {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub weight_decay: f64,
    pub eps: f64,
    pub decoupled: bool,
}

/// One fused Adam(W) update; `steps` hold each parameter's step count after this update.
pub fn adam(
    params: &[Tensor],
    grads: &[Tensor],
    exp_avgs: &[Tensor],
    exp_avg_sqs: &[Tensor],
    steps: &[Tensor],
    s: AdamStep,
) -> Result<()> {
    let n = params.len();
    if [grads.len(), exp_avgs.len(), exp_avg_sqs.len(), steps.len()] != [n; 4] {
        return Err(Error::Invalid("fused Adam: lists of unequal length".into()));
    }
    let (mut p, mut g) = (handles(params), handles(grads));
    let (mut m, mut v, mut t) = (handles(exp_avgs), handles(exp_avg_sqs), handles(steps));
    let mut err = std::ptr::null_mut();
    // SAFETY: as in `sgd`; all five lists hold `n` live tensors.
    let rc = unsafe {
        fv_fused_adam(
            p.as_mut_ptr(),
            g.as_mut_ptr(),
            m.as_mut_ptr(),
            v.as_mut_ptr(),
            t.as_mut_ptr(),
            n as c_int,
            s.lr,
            s.beta1,
            s.beta2,
            s.weight_decay,
            s.eps,
            c_int::from(s.decoupled),
            &mut err,
        )
    };
    status(rc, err, "fused Adam step")
}

/// Leaves `tensors` without gradients (PyTorch's `zero_grad(set_to_none=True)`).
pub fn clear_grads(tensors: &[Tensor]) -> Result<()> {
    let mut h = handles(tensors);
    let mut err = std::ptr::null_mut();
    // SAFETY: the handles point to live tensors for the whole call.
    let rc = unsafe { fv_clear_grads(h.as_mut_ptr(), h.len() as c_int, &mut err) };
    status(rc, err, "clearing gradients")
}
