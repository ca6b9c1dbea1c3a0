//! SGD (momentum, Nesterov), Adam and AdamW with `torch.optim`'s update rules, written on tensors
//! so their state (momentum buffers, moments, step counts) can be saved in a checkpoint and a run
//! resumed exactly — which tch's C++-side optimisers do not allow.

use tch::Tensor;

use super::groups::ParamGroup;
use crate::checkpoint::StateDict;
use crate::error::{Error, Result};

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
            other => {
                return Err(Error::Invalid(format!(
                    "unknown optimiser {other:?} (sgd, adam, adamw)"
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
            OptimizerKind::Sgd { momentum, .. } => *momentum = m,
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

    /// Sets every gradient to zero.
    pub fn zero_grad(&mut self) {
        for g in &mut self.groups {
            for (_, p) in &mut g.params {
                p.zero_grad();
            }
        }
    }

    /// One update of every parameter that has a gradient.
    pub fn step(&mut self) {
        tch::no_grad(|| {
            for (gi, group) in self.groups.iter().enumerate() {
                let (lr, wd) = (self.lrs[gi], group.weight_decay);
                for (pi, (_, p)) in group.params.iter().enumerate() {
                    let grad = p.grad();
                    if !grad.defined() {
                        continue;
                    }
                    let st = &mut self.state[gi][pi];
                    st.step += 1;
                    let mut p = p.shallow_clone();
                    update(self.kind, &mut p, &grad, st, lr, wd);
                }
            }
        });
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

fn update(
    kind: OptimizerKind,
    p: &mut Tensor,
    grad: &Tensor,
    st: &mut ParamState,
    lr: f64,
    wd: f64,
) {
    match kind {
        OptimizerKind::Sgd {
            momentum,
            dampening,
            nesterov,
        } => {
            let mut d = if wd != 0.0 {
                grad + &*p * wd
            } else {
                grad.shallow_clone()
            };
            if momentum != 0.0 {
                let buf = match st.first.take() {
                    None => d.copy(),
                    Some(b) => b * momentum + &d * (1.0 - dampening),
                };
                d = if nesterov {
                    d + &buf * momentum
                } else {
                    buf.shallow_clone()
                };
                st.first = Some(buf);
            }
            let _ = p.g_sub_(&(d * lr));
        }
        OptimizerKind::Adam { beta1, beta2, eps } | OptimizerKind::AdamW { beta1, beta2, eps } => {
            let decoupled = matches!(kind, OptimizerKind::AdamW { .. });
            let g = if wd != 0.0 && !decoupled {
                grad + &*p * wd
            } else {
                grad.shallow_clone()
            };
            if wd != 0.0 && decoupled {
                let _ = p.g_mul_scalar_(1.0 - lr * wd);
            }
            let m = match st.first.take() {
                None => &g * (1.0 - beta1),
                Some(m) => m * beta1 + &g * (1.0 - beta1),
            };
            let v = match st.second.take() {
                None => g.square() * (1.0 - beta2),
                Some(v) => v * beta2 + g.square() * (1.0 - beta2),
            };
            let t = st.step as i32;
            let bc1 = 1.0 - beta1.powi(t);
            let bc2 = 1.0 - beta2.powi(t);
            let denom = v.sqrt() / bc2.sqrt() + eps;
            let _ = p.g_sub_(&(&m / denom * (lr / bc1)));
            st.first = Some(m);
            st.second = Some(v);
        }
    }
}
