//! Building blocks that several architectures share, each a struct with a constructor taking the
//! `VarStore` path (so variable names equal PyTorch's state_dict keys) and a forward.

mod activation;
mod attention;
mod batch_norm;
mod conv;
mod conv_norm_act;
mod frozen_batch_norm;
mod init;
mod layer_norm;
mod linear;
mod live_taps;
mod same_padding;
mod squeeze_excite;
mod stochastic_depth;

pub use activation::Activation;
pub use attention::packed_self_attention;
pub use batch_norm::BatchNorm2d;
pub use conv::{conv2d, Conv2dSpec};
pub use conv_norm_act::ConvNormAct;
pub use frozen_batch_norm::{FrozenBatchNorm2d, Norm2d, NormLayer};
pub use init::trunc_normal_;
pub use layer_norm::LayerNorm2d;
pub use linear::linear;
pub use live_taps::conv2d_live_taps;
pub use same_padding::pad_same;
pub use squeeze_excite::SqueezeExcitation;
pub use stochastic_depth::stochastic_depth;
