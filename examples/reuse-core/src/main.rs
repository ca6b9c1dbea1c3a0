//! Transfer learning with `ferrovis-core` alone, from a project of one's own: a torchvision
//! checkpoint loads into a backbone by its PyTorch names, a new 2-class head replaces
//! ImageNet's, everything before the head is frozen, and the core training engine trains the
//! head on features computed once.
//!
//! ```sh
//! cargo run -- resnet18 resnet18.pth      # any torchvision classification checkpoint
//! ```
//!
//! The task is synthetic (images bright on their left half against their right half) so the
//! example runs anywhere; it exits with an error unless the head learns it (validation
//! accuracy 1.0) and every backbone tensor came from the checkpoint.

use std::path::Path;

use ferrovis_core::optim::{param_groups, GroupConfig, OptimizerKind};
use ferrovis_core::{
    create_backbone, fit, freeze_before_stage, load_weights, parse_device, Backbone,
    BackboneOptions, Error, LoadOptions, Optimizer, Result, RunControl, TrainConfig, TrainTask,
};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

/// The new head, trained on pooled features of the frozen backbone.
struct Head<'a> {
    model: &'a dyn Backbone,
    features: Tensor,
    labels: Tensor,
}

impl TrainTask for Head<'_> {
    fn steps_per_epoch(&self) -> usize {
        1
    }

    fn train_step(&mut self, _epoch: usize, _step: usize) -> Result<Tensor> {
        let logits = self.model.forward_head(&self.features, true);
        Ok(logits.cross_entropy_for_logits(&self.labels))
    }

    fn validate(&mut self, _epoch: usize) -> Result<Vec<(String, f64)>> {
        Ok(vec![("accuracy".into(), accuracy(self))])
    }
}

fn accuracy(head: &Head) -> f64 {
    let logits = tch::no_grad(|| head.model.forward_head(&head.features, false));
    logits
        .argmax(-1, false)
        .eq_tensor(&head.labels)
        .to_kind(Kind::Float)
        .mean(Kind::Float)
        .double_value(&[])
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

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(arch), Some(checkpoint)) = (args.first(), args.get(1)) else {
        return Err(Error::Invalid(
            "usage: reuse-core ARCH CHECKPOINT (e.g. resnet18 resnet18.pth)".into(),
        ));
    };
    let device = parse_device("auto")?;
    tch::manual_seed(0);

    // A backbone with a new 2-class head; the checkpoint loads strictly except for the head.
    let vs = VarStore::new(device);
    let model = create_backbone(arch, &vs.root(), &BackboneOptions::classes(2))?;
    let opts = LoadOptions::default()
        .strict(true)
        .reinit(&model.head_pattern())?;
    let report = load_weights(&vs, Path::new(checkpoint), &opts)?;
    println!("{}", report.summary());

    // Feature extraction: every stage before the head frozen.
    let stages = model.stages();
    let head = stages.last().map(|s| s.name.clone()).unwrap_or_default();
    let frozen = freeze_before_stage(&vs, &stages, &head, Default::default())?;
    println!("{frozen} tensors frozen before {head}");
    let groups = param_groups(&vs, &stages, &GroupConfig::default());
    let mut opt = Optimizer::new(OptimizerKind::from_name("adam", 0.0)?, groups, 1e-2);

    let (x, labels) = synthetic(16, 64, device);
    let features = tch::no_grad(|| model.pooled_features(&x, false));
    let mut task = Head {
        model: model.as_ref(),
        features,
        labels,
    };
    let cfg = TrainConfig {
        epochs: 20,
        monitor: "accuracy".into(),
        maximize: true,
        ..TrainConfig::default()
    };
    let run = std::env::temp_dir().join(format!("reuse-core-{}", std::process::id()));
    let outcome = fit(&vs, &mut task, &mut opt, &cfg, &run, &RunControl::quiet())?;
    let acc = accuracy(&task);
    println!(
        "{} epochs, validation accuracy {acc:.3}; run folder {}",
        outcome.epochs_completed,
        run.display()
    );
    let _ = std::fs::remove_dir_all(&run);
    if acc < 1.0 {
        return Err(Error::Invalid(format!(
            "the head reached accuracy {acc}, not 1.0"
        )));
    }
    Ok(())
}
