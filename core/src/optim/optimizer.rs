//! SGD (momentum, Nesterov), Adam and AdamW with `torch.optim`'s update rules, their state
//! (momentum buffers, moments, step counts) held here as tensors so it can be saved in a
//! checkpoint and a run resumed exactly — which tch's C++-side optimisers do not allow. The
//! updates themselves run in ATen's fused kernels (`csrc/optim.cpp`).

use tch::Tensor;

use super::fused;
use super::groups::ParamGroup;
use crate::checkpoint::StateDict;
use crate::error::{Error, Result};
use crate::memory_format::is_channels_last;

/// Which update rule, with its hyper-parameters (learning rate and weight decay live in groups).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OptimizerKind {
    /// `torch.optim.SGD`: L2 weight decay added to the gradient, then (Nesterov) momentum.
    Sgd {
        /// Momentum factor (0 for plain SGD).
        momentum: f64,
        /// Dampening of the momentum update.
        dampening: f64,
        /// Nesterov momentum.
        nesterov: bool,
    },
    /// `torch.optim.Adam` (L2 weight decay added to the gradient).
    Adam {
        /// β₁.
        beta1: f64,
        /// β₂.
        beta2: f64,
        /// ε.
        eps: f64,
    },
    /// `torch.optim.AdamW` (decoupled weight decay).
    AdamW {
        /// β₁.
        beta1: f64,
        /// β₂.
        beta2: f64,
        /// ε.
        eps: f64,
    },
    /// Ultralytics' MuSGD (YOLO26): every matrix or convolution weight (2-D or 4-D) gets a Muon
    /// step, its momentum orthogonalised ([`crate::optim::muon`]) and applied at `lr · muon`,
    /// then an SGD step at `lr · sgd` with its own momentum buffer and the weight decay; other
    /// parameters get the SGD step alone. The Muon momentum is an average
    /// (`b ← βb + (1 − β)g`), SGD's a sum; both Nesterov when `nesterov`.
    MuSgd {
        /// β of both momenta.
        momentum: f64,
        /// Nesterov momentum.
        nesterov: bool,
        /// Scale of the Muon step (Ultralytics: 0.2).
        muon: f64,
        /// Scale of the SGD step (Ultralytics: 1.0).
        sgd: f64,
    },
}

impl OptimizerKind {
    /// `sgd` (with `momentum`, no dampening, no Nesterov), `adam` or `adamw` with PyTorch's
    /// default betas (0.9, 0.999) and ε 1e-8; another name is an error listing these.
    pub fn from_name(name: &str, momentum: f64) -> Result<Self> {
        Ok(match name {
            "sgd" => OptimizerKind::Sgd {
                momentum,
                dampening: 0.0,
                nesterov: false,
            },
            "adam" => OptimizerKind::Adam {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            },
            "adamw" => OptimizerKind::AdamW {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            },
            "musgd" => OptimizerKind::MuSgd {
                momentum,
                nesterov: true,
                muon: 0.2,
                sgd: 1.0,
            },
            other => {
                return Err(Error::Invalid(format!(
                    "unknown optimiser {other:?} (sgd, adam, adamw, musgd)"
                )))
            }
        })
    }
}

#[derive(Debug)]
struct ParamState {
    step: i64,
    /// SGD momentum buffer, or Adam's first moment.
    first: Option<Tensor>,
    /// Adam's second moment.
    second: Option<Tensor>,
}

/// An optimiser over parameter groups, each with its own learning rate and weight decay.
#[derive(Debug)]
pub struct Optimizer {
    kind: OptimizerKind,
    groups: Vec<ParamGroup>,
    /// Current learning rate of each group (base lr × group scale, set by [`Optimizer::set_lr`]).
    lrs: Vec<f64>,
    state: Vec<Vec<ParamState>>,
    /// `zero_grad` fills with zeros rather than dropping gradients.
    zero_fill: bool,
}

impl Optimizer {
    /// An optimiser over `groups`, starting at base learning rate `lr`.
    pub fn new(kind: OptimizerKind, groups: Vec<ParamGroup>, lr: f64) -> Self {
        let state = groups
            .iter()
            .map(|g| {
                g.params
                    .iter()
                    .map(|_| ParamState {
                        step: 0,
                        first: None,
                        second: None,
                    })
                    .collect()
            })
            .collect();
        let mut opt = Optimizer {
            kind,
            lrs: vec![0.0; groups.len()],
            groups,
            state,
            zero_fill: false,
        };
        opt.set_lr(lr);
        opt
    }

    /// Sets the base learning rate; each group gets it times its `lr_scale`.
    pub fn set_lr(&mut self, lr: f64) {
        for (l, g) in self.lrs.iter_mut().zip(&self.groups) {
            *l = lr * g.lr_scale;
        }
    }

    /// Sets one group's learning rate directly (e.g. YOLO's bias warmup).
    pub fn set_group_lr(&mut self, group: usize, lr: f64) {
        self.lrs[group] = lr;
    }

    /// Changes SGD momentum / Adam β₁ (YOLO warms momentum up from 0.8).
    pub fn set_momentum(&mut self, m: f64) {
        match &mut self.kind {
            OptimizerKind::Sgd { momentum, .. } | OptimizerKind::MuSgd { momentum, .. } => {
                *momentum = m
            }
            OptimizerKind::Adam { beta1, .. } | OptimizerKind::AdamW { beta1, .. } => *beta1 = m,
        }
    }

    /// The groups, for logging.
    pub fn groups(&self) -> &[ParamGroup] {
        &self.groups
    }

    /// The current learning rate of each group.
    pub fn lrs(&self) -> &[f64] {
        &self.lrs
    }

    /// The gradients of the parameters that have one (after a backward pass).
    pub fn gradients(&self) -> Vec<Tensor> {
        self.groups
            .iter()
            .flat_map(|g| g.params.iter().map(|(_, p)| p.grad()))
            .filter(|g| g.defined())
            .collect()
    }

    /// Clears the gradients before the next backward pass: drops them (PyTorch's
    /// `zero_grad(set_to_none=True)`, its default), so the backward pass stores each gradient
    /// rather than adding it to zeros; or, after [`Optimizer::keep_zeroed_gradients`], fills them
    /// with zeros.
    pub fn zero_grad(&mut self) -> Result<()> {
        let params: Vec<Tensor> = self
            .groups
            .iter()
            .flat_map(|g| g.params.iter().map(|(_, p)| p.shallow_clone()))
            .collect();
        if self.zero_fill {
            for mut p in params {
                p.zero_grad();
            }
            return Ok(());
        }
        fused::clear_grads(&params)
    }

    /// Makes [`Optimizer::zero_grad`] fill gradients with zeros instead of dropping them: every
    /// parameter then has a gradient after its first backward pass, even where a later step does
    /// not reach it (data-parallel training averages the same list of gradients on every rank).
    pub fn keep_zeroed_gradients(&mut self) {
        self.zero_fill = true;
    }

    /// One update of every parameter that has a gradient, by ATen's fused kernels (those of
    /// `torch.optim.SGD/Adam/AdamW(..., fused=True)`: the same rules, one pass per parameter).
    pub fn step(&mut self) -> Result<()> {
        tch::no_grad(|| {
            for gi in 0..self.groups.len() {
                self.step_group(gi)?;
            }
            Ok(())
        })
    }

    fn step_group(&mut self, gi: usize) -> Result<()> {
        if let OptimizerKind::MuSgd {
            momentum,
            nesterov,
            muon,
            sgd,
        } = self.kind
        {
            return self.step_musgd(gi, momentum, nesterov, muon, sgd);
        }
        let (lr, wd) = (self.lrs[gi], self.groups[gi].weight_decay);
        // SGD calls the kernel once for parameters whose momentum buffer is new, once for the rest.
        let (mut fresh, mut going) = (Batch::default(), Batch::default());
        for (pi, (name, p)) in self.groups[gi].params.iter().enumerate() {
            let grad = p.grad();
            if !grad.defined() {
                continue;
            }
            if !(p.is_contiguous() || is_channels_last(p)) {
                return Err(Error::Invalid(format!(
                    "{name}: the optimiser needs a contiguous or channels-last parameter \
                     (strides {:?})",
                    p.stride()
                )));
            }
            let st = &mut self.state[gi][pi];
            st.step += 1;
            let batch = match self.kind {
                OptimizerKind::Sgd { momentum, .. } => {
                    let batch = if momentum != 0.0 && st.first.is_none() {
                        &mut fresh
                    } else {
                        &mut going
                    };
                    if momentum != 0.0 {
                        let buf = like(&st.first.take().unwrap_or_else(|| p.empty_like()), p);
                        batch.bufs.push(dense_view(&buf));
                        st.first = Some(buf);
                    }
                    batch
                }
                OptimizerKind::MuSgd { .. } => unreachable!("MuSGD steps in step_musgd"),
                OptimizerKind::Adam { .. } | OptimizerKind::AdamW { .. } => {
                    let m = like(&st.first.take().unwrap_or_else(|| p.zeros_like()), p);
                    let v = like(&st.second.take().unwrap_or_else(|| p.zeros_like()), p);
                    going.bufs.push(dense_view(&m));
                    going.second.push(dense_view(&v));
                    going
                        .steps
                        .push(Tensor::from(st.step as f32).to_device(p.device()));
                    (st.first, st.second) = (Some(m), Some(v));
                    &mut going
                }
            };
            batch.params.push(dense_view(p));
            batch.grads.push(dense_view(&like(&grad, p)));
        }
        match self.kind {
            OptimizerKind::Sgd {
                momentum,
                dampening,
                nesterov,
            } => {
                for (batch, first_step) in [(&fresh, true), (&going, false)] {
                    if batch.params.is_empty() {
                        continue;
                    }
                    let step = fused::SgdStep {
                        lr,
                        weight_decay: wd,
                        momentum,
                        dampening,
                        nesterov,
                        first_step,
                    };
                    fused::sgd(&batch.params, &batch.grads, &batch.bufs, step)?;
                }
                Ok(())
            }
            OptimizerKind::MuSgd { .. } => Ok(()),
            OptimizerKind::Adam { beta1, beta2, eps }
            | OptimizerKind::AdamW { beta1, beta2, eps } => {
                if going.params.is_empty() {
                    return Ok(());
                }
                let step = fused::AdamStep {
                    lr,
                    beta1,
                    beta2,
                    weight_decay: wd,
                    eps,
                    decoupled: matches!(self.kind, OptimizerKind::AdamW { .. }),
                };
                fused::adam(
                    &going.params,
                    &going.grads,
                    &going.bufs,
                    &going.second,
                    &going.steps,
                    step,
                )
            }
        }
    }

    /// One MuSGD step of group `gi` (see [`OptimizerKind::MuSgd`]): the Muon step of its
    /// matrices and convolution weights, batched as Ultralytics batches them (per group), then
    /// the SGD step of all.
    fn step_musgd(
        &mut self,
        gi: usize,
        momentum: f64,
        nesterov: bool,
        muon_scale: f64,
        sgd_scale: f64,
    ) -> Result<()> {
        let (lr, wd) = (self.lrs[gi], self.groups[gi].weight_decay);
        let (mut muon, mut plain) = (Batch::default(), Batch::default());
        for (pi, (_, p)) in self.groups[gi].params.iter().enumerate() {
            let grad = p.grad();
            if !grad.defined() {
                continue;
            }
            let st = &mut self.state[gi][pi];
            st.step += 1;
            let first = st.first.take().unwrap_or_else(|| p.zeros_like());
            let batch = if matches!(p.dim(), 2 | 4) {
                let second = st.second.take().unwrap_or_else(|| p.zeros_like());
                muon.second.push(second.shallow_clone());
                st.second = Some(second);
                &mut muon
            } else {
                &mut plain
            };
            batch.bufs.push(first.shallow_clone());
            st.first = Some(first);
            batch.params.push(p.shallow_clone());
            batch.grads.push(grad);
        }
        if !muon.params.is_empty() {
            let updates: Vec<Tensor> = muon.grads.iter().map(Tensor::zeros_like).collect();
            fused::muon_momentum(&muon.grads, &muon.bufs, &updates, momentum, nesterov)?;
            let orthogonal = crate::optim::muon::orthogonalise(&updates);
            fused::foreach_add(&muon.params, &orthogonal, -(lr * muon_scale))?;
            let step = lr * sgd_scale;
            fused::musgd_sgd(
                &muon.params,
                &muon.grads,
                &muon.second,
                step,
                momentum,
                wd,
                nesterov,
            )?;
        }
        if !plain.params.is_empty() {
            fused::musgd_sgd(
                &plain.params,
                &plain.grads,
                &plain.bufs,
                lr,
                momentum,
                wd,
                nesterov,
            )?;
        }
        Ok(())
    }

    /// The optimiser state as named tensors (`<param>.momentum_buffer`, `.exp_avg`,
    /// `.exp_avg_sq`, `.step`), for checkpoints.
    pub fn state_dict(&self) -> StateDict {
        let mut sd = StateDict::new();
        for (g, states) in self.groups.iter().zip(&self.state) {
            for ((name, _), st) in g.params.iter().zip(states) {
                sd.insert(format!("{name}.step"), Tensor::from(st.step));
                let (a, b) = match self.kind {
                    OptimizerKind::Sgd { .. } => ("momentum_buffer", ""),
                    OptimizerKind::MuSgd { .. } => ("momentum_buffer", "momentum_buffer_SGD"),
                    _ => ("exp_avg", "exp_avg_sq"),
                };
                if let Some(t) = &st.first {
                    sd.insert(format!("{name}.{a}"), t.shallow_clone());
                }
                if let Some(t) = &st.second {
                    sd.insert(format!("{name}.{b}"), t.shallow_clone());
                }
            }
        }
        sd
    }

    /// Restores what [`Optimizer::state_dict`] saved; a parameter missing from it is an error.
    pub fn load_state_dict(&mut self, sd: &StateDict) -> Result<()> {
        for (g, states) in self.groups.iter().zip(self.state.iter_mut()) {
            for ((name, p), st) in g.params.iter().zip(states.iter_mut()) {
                let step = sd.get(&format!("{name}.step")).ok_or_else(|| {
                    Error::Load(format!("optimizer state has no step for {name}"))
                })?;
                st.step = step.int64_value(&[]);
                let get = |suffix: &str| {
                    sd.get(&format!("{name}.{suffix}"))
                        .map(|t| t.to_device(p.device()).copy())
                };
                match self.kind {
                    OptimizerKind::Sgd { .. } => st.first = get("momentum_buffer"),
                    OptimizerKind::MuSgd { .. } => {
                        st.first = get("momentum_buffer");
                        st.second = get("momentum_buffer_SGD");
                    }
                    _ => {
                        st.first = get("exp_avg");
                        st.second = get("exp_avg_sq");
                    }
                }
            }
        }
        Ok(())
    }
}

/// The parameters of one fused call with their gradients and state.
#[derive(Default)]
struct Batch {
    params: Vec<Tensor>,
    grads: Vec<Tensor>,
    /// SGD's momentum buffers, or Adam's first moments.
    bufs: Vec<Tensor>,
    /// Adam's second moments.
    second: Vec<Tensor>,
    /// Adam's step counts (float tensors, after this step).
    steps: Vec<Tensor>,
}

/// `t`, or a copy of it laid out as `p`: the fused kernels walk the parameter, its gradient and
/// its state as flat memory, so their strides must agree (a state loaded from a contiguous
/// checkpoint into a channels-last model does not).
fn like(t: &Tensor, p: &Tensor) -> Tensor {
    if t.stride() == p.stride() {
        t.shallow_clone()
    } else {
        let mut out = p.empty_like();
        out.copy_(t);
        out
    }
}

/// A contiguous view of the memory of `t` (contiguous or channels-last): the kernels are
/// element-wise, and given a channels-last tensor they would update a contiguous copy and copy it
/// back.
fn dense_view(t: &Tensor) -> Tensor {
    if t.dim() == 4 && !t.is_contiguous() && is_channels_last(t) {
        t.permute([0, 2, 3, 1])
    } else {
        t.shallow_clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory_format::channels_last;
    use tch::{Device, Kind};

    fn group(w: &Tensor) -> Vec<ParamGroup> {
        vec![ParamGroup {
            name: "all".into(),
            params: vec![("w".into(), w.shallow_clone())],
            lr_scale: 1.0,
            weight_decay: 1e-2,
        }]
    }

    fn steps(opt: &mut Optimizer, w: &Tensor, target: &Tensor, n: usize) {
        for _ in 0..n {
            opt.zero_grad().expect("zero_grad");
            (w * target).square().sum(Kind::Float).backward();
            opt.step().expect("step");
        }
    }

    /// A channels-last parameter moves as its contiguous twin (to rounding: the kernels' vector
    /// and scalar tails see the elements in another order), also after resuming from a state
    /// saved by the contiguous one (whose buffers are contiguous).
    #[test]
    fn channels_last_parameters_update_as_contiguous_ones() {
        let kinds = [
            OptimizerKind::Sgd {
                momentum: 0.9,
                dampening: 0.1,
                nesterov: false,
            },
            OptimizerKind::Sgd {
                momentum: 0.9,
                dampening: 0.0,
                nesterov: true,
            },
            OptimizerKind::AdamW {
                beta1: 0.9,
                beta2: 0.99,
                eps: 1e-8,
            },
        ];
        for kind in kinds {
            tch::manual_seed(3);
            let init = Tensor::randn([4, 3, 5, 5], (Kind::Float, Device::Cpu));
            let target = Tensor::randn([4, 3, 5, 5], (Kind::Float, Device::Cpu));
            let dense = init.copy().set_requires_grad(true);
            let nhwc = channels_last(&init)
                .expect("layout")
                .set_requires_grad(true);
            assert!(is_channels_last(&nhwc) && !nhwc.is_contiguous());
            let mut a = Optimizer::new(kind, group(&dense), 0.05);
            let mut b = Optimizer::new(kind, group(&nhwc), 0.05);
            steps(&mut a, &dense, &target, 3);
            steps(&mut b, &nhwc, &target, 3);
            assert!(is_channels_last(&nhwc), "{kind:?}: layout kept");
            let d = f64::try_from((&dense - &nhwc).abs().max()).unwrap();
            assert!(d < 1e-6, "{kind:?}: {d:e}");
            // Resume the channels-last twin from the contiguous one's state.
            let mut c = Optimizer::new(kind, group(&nhwc), 0.05);
            c.load_state_dict(&a.state_dict()).expect("load");
            steps(&mut a, &dense, &target, 2);
            steps(&mut c, &nhwc, &target, 2);
            let d = f64::try_from((&dense - &nhwc).abs().max()).unwrap();
            assert!(d < 1e-6, "{kind:?}: resumed, {d:e}");
            // The steps did move the weights (so the comparison means something).
            assert!(f64::try_from((&dense - &init).abs().max()).unwrap() > 1e-2);
        }
    }

    /// zero_grad drops gradients by default and fills them with zeros when asked to keep them.
    #[test]
    fn zero_grad_drops_or_zeroes() {
        let w = Tensor::ones([3], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let kind = OptimizerKind::from_name("sgd", 0.0).expect("sgd");
        let mut opt = Optimizer::new(kind, group(&w), 0.1);
        w.sum(Kind::Float).backward();
        opt.zero_grad().expect("zero_grad");
        assert!(!w.grad().defined());
        w.sum(Kind::Float).backward();
        opt.keep_zeroed_gradients();
        opt.zero_grad().expect("zero_grad");
        assert_eq!(Vec::<f32>::try_from(w.grad()).unwrap(), vec![0.0; 3]);
    }
}
