//! `torch.nn.Linear` as PyTorch initialises it: weights and bias uniform in ±1/√fan_in (Kaiming
//! uniform with a = √5). tch's own default draws the weights with the ReLU gain, √6 times wider,
//! which makes a freshly initialised head (a detector's, a classifier's) start far from where a
//! PyTorch user's does.

use tch::nn::init::{FanInOut, NonLinearity, NormalOrUniform};
use tch::nn::{self, Init, Path};

/// A linear layer under `p` (`p.weight`, `p.bias`) with PyTorch's default initialisation.
pub fn linear(p: &Path, in_features: i64, out_features: i64) -> nn::Linear {
    let cfg = nn::LinearConfig {
        // gain · √(3 / fan_in) with gain √(1/3) is 1/√fan_in.
        ws_init: Init::Kaiming {
            dist: NormalOrUniform::Uniform,
            fan: FanInOut::FanIn,
            non_linearity: NonLinearity::ExplicitGain(1.0 / 3f64.sqrt()),
        },
        // tch's default bias is PyTorch's: uniform in ±1/√fan_in.
        bs_init: None,
        bias: true,
    };
    nn::linear(p, in_features, out_features, cfg)
}
