//! Your own task on the core engine: implement [`TrainTask`] (a loss per step, metrics per epoch)
//! and `fit` does the rest — schedule, checkpoints, `results.csv`, best/last weights, resume.
//!
//! ```sh
//! cargo run -p ferrovis-core --example custom_task -- runs/line
//! ```
//! Fits y = 3x − 1 with one linear layer; run it twice and the second run resumes where the
//! first stopped (here: it is already complete).

use ferrovis_core::engine::{fit, RunControl, TrainConfig, TrainTask};
use ferrovis_core::optim::{param_groups, GroupConfig, Optimizer, OptimizerKind};
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

struct Line {
    layer: nn::Linear,
    x: Tensor,
}

impl Line {
    fn loss(&self) -> Tensor {
        let target = &self.x * 3.0 - 1.0;
        self.layer
            .forward(&self.x)
            .mse_loss(&target, tch::Reduction::Mean)
    }
}

impl TrainTask for Line {
    fn steps_per_epoch(&self) -> usize {
        20
    }
    fn train_step(&mut self, _epoch: usize, _step: usize) -> ferrovis_core::Result<Tensor> {
        Ok(self.loss())
    }
    fn validate(&mut self, _epoch: usize) -> ferrovis_core::Result<Vec<(String, f64)>> {
        let loss = tch::no_grad(|| self.loss()).double_value(&[]);
        Ok(vec![("val_loss".into(), loss)])
    }
}

fn main() -> ferrovis_core::Result<()> {
    let run = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "runs/line".into());
    let vs = nn::VarStore::new(tch::Device::Cpu);
    let layer = nn::linear(vs.root() / "fc", 1, 1, Default::default());
    let mut task = Line {
        layer,
        x: Tensor::linspace(-1.0, 1.0, 64, (Kind::Float, tch::Device::Cpu)).unsqueeze(1),
    };
    let groups = param_groups(&vs, &[], &GroupConfig::default());
    let mut opt = Optimizer::new(OptimizerKind::from_name("adam", 0.0)?, groups, 0.05);
    let cfg = TrainConfig {
        lr: 0.05,
        ..TrainConfig::default()
    };
    let resume = std::path::Path::new(&run)
        .join("checkpoint.safetensors")
        .is_file();
    let control = RunControl {
        resume,
        ..Default::default()
    };
    let outcome = fit(&vs, &mut task, &mut opt, &cfg, run.as_ref(), &control)?;
    println!("{outcome:?}; weights in {run}/weights/best.safetensors");
    Ok(())
}
