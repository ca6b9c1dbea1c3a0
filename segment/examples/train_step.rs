//! Times training steps of a segmentation model on random data, for `bench/segment_train.py`:
//! forward in training mode, cross-entropy (+ 0.5 × the auxiliary loss for DeepLabV3 and FCN),
//! backward, an SGD step (momentum 0.9, weight decay 1e-4). Prints one JSON line with the median
//! and every timed step.
//!
//!     cargo run --release -p ferrovis-segment --example train_step -- unet resnet34 2 256 4 10
//!
//! Arguments: arch, encoder, classes, size, batch, steps, channels-last (1/0), mode. Mode `eval`
//! times inference instead (`bench/lraspp.py`): an eval-mode forward under no_grad, as `segment
//! predict` runs the model.
//!
//! With `FERROVIS_PROFILE=<rows>` it then records three more steps with libtorch's profiler and
//! prints the operators (by name, then by input shapes) to stderr, as `torch.profiler`'s
//! `key_averages().table()` prints PyTorch's.

use std::time::Instant;

use anyhow::{Context, Result};
use ferrovis_core::optim::{param_groups, GroupConfig, Optimizer, OptimizerKind};
use ferrovis_core::{memory_format, profiler};
use ferrovis_segment::loss::SegmentationLoss;
use ferrovis_segment::model::{Architecture, ModelSpec, SegmentationModel};
use tch::{Device, Kind, Tensor};

fn main() -> Result<()> {
    // As the `segment` binary does first thing: large blocks reused, not page-faulted every step.
    ferrovis_app::allocator::reuse_large_blocks();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or_else(|| default.into());
    let arch: Architecture = serde_json::from_value(serde_json::Value::String(arg(0, "unet")))
        .context("architecture: unet, deeplabv3, deeplabv3plus, fcn or lraspp")?;
    let encoder = arg(1, "resnet34");
    let classes: i64 = arg(2, "2").parse()?;
    let size: i64 = arg(3, "256").parse()?;
    let batch: i64 = arg(4, "4").parse()?;
    let steps: usize = arg(5, "10").parse()?;
    let channels_last = arg(6, "1") == "1";
    let eval = match arg(7, "train").as_str() {
        "train" => false,
        "eval" => true,
        other => anyhow::bail!("mode `{other}`: train or eval"),
    };
    tch::manual_seed(0);
    let spec = ModelSpec {
        arch,
        encoder: encoder.clone(),
        num_classes: classes,
        aux: true,
        ..Default::default()
    };
    let model = SegmentationModel::new(&spec, Device::Cpu)?;
    if channels_last {
        model.to_channels_last()?;
    }
    let groups = param_groups(
        &model.vs,
        &model.stages(),
        &GroupConfig {
            weight_decay: 1e-4,
            no_decay_bias_norm: false,
            ..Default::default()
        },
    );
    let kind = OptimizerKind::Sgd {
        momentum: 0.9,
        dampening: 0.0,
        nesterov: false,
    };
    let mut opt = Optimizer::new(kind, groups, 0.01);
    let loss: SegmentationLoss = "ce".parse().map_err(anyhow::Error::msg)?;
    let mut x = Tensor::randn([batch, 3, size, size], (Kind::Float, Device::Cpu));
    if channels_last {
        x = memory_format::channels_last(&x)?;
    }
    let y = Tensor::randint(classes, [batch, size, size], (Kind::Int64, Device::Cpu));
    let mut step = || -> Result<()> {
        if eval {
            let _guard = tch::no_grad_guard();
            let _ = model.forward_t(&x, false);
            return Ok(());
        }
        let out = model.forward_t(&x, true);
        let mut l = loss.compute(&out.out, &y);
        if let Some(aux) = &out.aux {
            l += loss.compute(aux, &y) * 0.5;
        }
        opt.zero_grad()?;
        l.backward();
        opt.step()?;
        Ok(())
    };
    let mut times = Vec::new();
    for _ in 0..steps + 2 {
        let t = Instant::now();
        step()?;
        times.push(t.elapsed().as_secs_f64());
    }
    if let Some(rows) = std::env::var("FERROVIS_PROFILE")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        let recording = profiler::Recording::start(true)?;
        for _ in 0..3 {
            step()?;
        }
        let profile = recording.stop()?;
        eprintln!("{}", profile.table(false, rows));
        eprintln!("{}", profile.table(true, rows));
    }
    let timed = times.split_off(2); // two warm-up steps
    let mut sorted = timed.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    println!(
        "{}",
        serde_json::json!({"arch": arg(0, "unet"), "encoder": encoder, "median_s": median,
                           "times_s": timed, "steps": steps, "channels_last": channels_last,
                           "mode": arg(7, "train")})
    );
    Ok(())
}
