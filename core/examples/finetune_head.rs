//! Feature extraction in a few lines: load a torchvision checkpoint into a backbone with a new
//! 2-class head, freeze everything before the head, and train the head with the core engine.
//!
//! ```sh
//! cargo run -p ferrovis-core --example finetune_head -- mobilenet_v2 ../shared/weights/mobilenet_v2-b0353104.pth
//! ```
//! Without a checkpoint the backbone keeps its random initialisation. The "data set" here is
//! synthetic (bright-left vs bright-right images) so the example runs anywhere; the classify task
//! does the same on real folders. The run folder (`runs/finetune_head`, then `…2`, …) gets `results.csv` and
//! `weights/best.safetensors` with torchvision's names.

use ferrovis_core::backbone::{self, Backbone, BackboneOptions};
use ferrovis_core::checkpoint::{self, LoadOptions};
use ferrovis_core::engine::{fit, new_run_dir, RunControl, TrainConfig, TrainTask};
use ferrovis_core::freeze;
use ferrovis_core::optim::{param_groups, GroupConfig, Optimizer, OptimizerKind};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

/// The head trained on pooled backbone features computed once (the backbone is frozen).
struct Head<'a> {
    model: &'a dyn Backbone,
    features: Tensor,
    labels: Tensor,
}

impl TrainTask for Head<'_> {
    fn steps_per_epoch(&self) -> usize {
        1
    }
    fn train_step(&mut self, _epoch: usize, _step: usize) -> ferrovis_core::Result<Tensor> {
        let logits = self.model.forward_head(&self.features, true);
        Ok(logits.cross_entropy_for_logits(&self.labels))
    }
    fn validate(&mut self, _epoch: usize) -> ferrovis_core::Result<Vec<(String, f64)>> {
        let logits = tch::no_grad(|| self.model.forward_head(&self.features, false));
        let accuracy = logits
            .argmax(-1, false)
            .eq_tensor(&self.labels)
            .to_kind(Kind::Float)
            .mean(Kind::Float);
        Ok(vec![("accuracy".into(), accuracy.double_value(&[]))])
    }
}

/// `n` images of `size`²: class 0 bright on the left half, class 1 on the right half.
fn synthetic(n: i64, size: i64, device: Device) -> (Tensor, Tensor) {
    let labels = Tensor::arange(n, (Kind::Int64, device)).remainder(2);
    let x = Tensor::randn([n, 3, size, size], (Kind::Float, device)) * 0.1;
    let left = labels.eq(0).to_kind(Kind::Float).view([n, 1, 1, 1]);
    let _ = x.narrow(3, 0, size / 2).g_add_(&left);
    let _ = x.narrow(3, size / 2, size / 2).g_add_(&(1.0 - &left));
    (x, labels)
}

fn main() -> ferrovis_core::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arch = args.first().map_or("resnet18", String::as_str);
    let device = ferrovis_core::device::parse_device("auto")?;

    // 1. A backbone with a new 2-class head. The load is strict except for the head, which starts
    //    fresh: "120 of 122 tensors loaded; 2 start fresh (fc.bias, fc.weight)".
    let vs = VarStore::new(device);
    let model = backbone::create(arch, &vs.root(), &BackboneOptions::classes(2))?;
    if let Some(path) = args.get(1) {
        let opts = LoadOptions::default()
            .strict(true)
            .reinit(&model.head_pattern())?;
        println!("{}", checkpoint::load_file(&vs, path, &opts)?.summary());
    }

    // 2. Freeze every stage before the head; the optimiser gets what still trains.
    let stages = model.stages();
    let head = stages.last().map(|s| s.name.clone()).unwrap_or_default();
    freeze::freeze_before_stage(&vs, &stages, &head, Default::default())?;
    let groups = param_groups(&vs, &stages, &GroupConfig::default());
    let mut opt = Optimizer::new(OptimizerKind::from_name("adam", 0.0)?, groups, 1e-3);

    // 3. The frozen backbone runs once; the engine trains the head on its features.
    let (x, labels) = synthetic(16, 96, device);
    let features = tch::no_grad(|| model.pooled_features(&x, false));
    let mut task = Head {
        model: model.as_ref(),
        features,
        labels,
    };
    let cfg = TrainConfig {
        epochs: 30,
        monitor: "accuracy".into(),
        maximize: true,
        ..TrainConfig::default()
    };
    let run = new_run_dir(std::path::Path::new("runs"), "finetune_head");
    let outcome = fit(&vs, &mut task, &mut opt, &cfg, &run, &RunControl::default())?;
    println!("{outcome:?}; run folder {}", run.display());
    Ok(())
}
