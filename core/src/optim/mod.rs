//! How trainable parameters move: parameter groups, optimisers with saveable state, learning-rate
//! schedules with warmup, the weight EMA, and L-BFGS (closure-driven, as `torch.optim.LBFGS`).

mod ema;
mod fused;
mod groups;
mod lbfgs;
pub mod muon;
mod optimizer;
mod schedule;

pub use ema::ModelEma;
pub use groups::{param_groups, GroupConfig, ParamGroup};
pub use lbfgs::{Lbfgs, LbfgsConfig};
pub use optimizer::{Optimizer, OptimizerKind};
pub use schedule::{Decay, Schedule};
