//! How trainable parameters move: parameter groups, optimisers with saveable state, learning-rate
//! schedules with warmup, and the weight EMA.

mod ema;
mod groups;
mod optimizer;
mod schedule;

pub use ema::ModelEma;
pub use groups::{param_groups, GroupConfig, ParamGroup};
pub use optimizer::{Optimizer, OptimizerKind};
pub use schedule::{Decay, Schedule};
