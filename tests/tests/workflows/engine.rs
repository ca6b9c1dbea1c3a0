//! The engine: a run killed after epoch k and resumed ends with weights bit-identical to an
//! uninterrupted run; a NaN loss stops with a clear message and keeps the last good checkpoint;
//! early stopping honours patience; results.csv has one row per epoch.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ferrovis_core::checkpoint;
use ferrovis_core::engine::{
    fit, FitOutcome, LossScaler, RunControl, RunDir, StopReason, TrainConfig, TrainTask,
};
use ferrovis_core::optim::{param_groups, Decay, GroupConfig, Optimizer, OptimizerKind, Schedule};
use ferrovis_core::Result;
use ferrovis_tests::tensor_sha256;
use tch::nn::{self, Module, VarStore};
use tch::{Device, Kind, Tensor};

/// Regression with an MLP and dropout; every batch is drawn from libtorch's generator, which the
/// engine seeds per epoch.
struct Regression {
    l1: nn::Linear,
    l2: nn::Linear,
    val_x: Tensor,
    val_y: Tensor,
    nan_at_epoch: Option<usize>,
    constant_metric: bool,
    /// Reports one more metric (as a task changed between a run and its resume would).
    extra_metric: bool,

    /// Simulates Ctrl-C: sets `stop` when this (epoch, step) runs.
    interrupt_at: Option<(usize, usize)>,
    stop: Option<Arc<AtomicBool>>,
}

impl Regression {
    fn new(vs: &VarStore) -> Self {
        let p = vs.root();
        let val_x = Tensor::linspace(-1.0, 1.0, 32, (Kind::Float, Device::Cpu)).view([8, 4]);
        Regression {
            l1: nn::linear(&p / "l1", 4, 16, Default::default()),
            l2: nn::linear(&p / "l2", 16, 1, Default::default()),
            val_y: val_x.sum_dim_intlist(1, true, Kind::Float).sin(),
            val_x,
            nan_at_epoch: None,
            constant_metric: false,
            extra_metric: false,

            interrupt_at: None,
            stop: Some(Arc::new(AtomicBool::new(false))),
        }
    }

    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        self.l2
            .forward(&self.l1.forward(x).relu().dropout(0.2, train))
    }
}

impl TrainTask for Regression {
    fn steps_per_epoch(&self) -> usize {
        5
    }

    fn train_step(&mut self, epoch: usize, step: usize) -> Result<Tensor> {
        if self.interrupt_at == Some((epoch, step)) {
            if let Some(flag) = &self.stop {
                flag.store(true, Ordering::SeqCst);
            }
        }
        let x = Tensor::randn([16, 4], (Kind::Float, Device::Cpu));
        let y = x.sum_dim_intlist(1, true, Kind::Float).sin();
        let loss = (self.forward(&x, true) - y).square().mean(Kind::Float);
        Ok(if self.nan_at_epoch == Some(epoch) {
            loss * f64::NAN
        } else {
            loss
        })
    }

    fn validate(&mut self, _epoch: usize) -> Result<Vec<(String, f64)>> {
        let loss = tch::no_grad(|| {
            (self.forward(&self.val_x, false) - &self.val_y)
                .square()
                .mean(Kind::Float)
        });
        let v = if self.constant_metric {
            1.0
        } else {
            loss.double_value(&[])
        };
        let mut metrics = vec![("val_loss".into(), v)];
        if self.extra_metric {
            metrics.push(("val_extra".into(), 2.0 * v));
        }
        Ok(metrics)
    }
}

fn config(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        lr: 0.05,
        schedule: Schedule {
            decay: Decay::Cosine { min_factor: 0.1 },
            warmup_iters: 4,
            warmup_start: 0.1,
        },
        accumulate: 2,
        accumulate_mean: true,
        grad_clip: Some(1.0),
        ema: Some((0.99, 10.0)),
        monitor: "val_loss".into(),
        maximize: false,
        patience: None,
        seed: 42,
        amp: false,
        tensorboard: true,
    }
}

/// Builds model + optimiser with initialisation seed `init_seed` and runs `fit`.
fn run(
    dir: &Path,
    init_seed: i64,
    cfg: &TrainConfig,
    resume: bool,
    stop_after: Option<usize>,
    setup: impl Fn(&mut Regression),
) -> (VarStore, Result<FitOutcome>) {
    tch::manual_seed(init_seed);
    let vs = VarStore::new(Device::Cpu);
    let mut task = Regression::new(&vs);
    setup(&mut task);
    let groups = param_groups(
        &vs,
        &[],
        &GroupConfig {
            weight_decay: 1e-3,
            ..Default::default()
        },
    );
    let mut opt = Optimizer::new(
        OptimizerKind::Sgd {
            momentum: 0.9,
            dampening: 0.0,
            nesterov: true,
        },
        groups,
        cfg.lr,
    );
    let control = RunControl {
        resume,
        stop_after,
        stop: task.stop.clone(),
        quiet: true,
        config_toml: Some("[train]\nepochs = 4\n".into()),
    };
    let outcome = fit(&vs, &mut task, &mut opt, cfg, dir, &control);
    (vs, outcome)
}

fn fingerprint(vs: &VarStore) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = vs
        .variables()
        .iter()
        .map(|(n, t)| (n.clone(), tensor_sha256(t)))
        .collect();
    v.sort();
    v
}

#[test]
fn resume_after_a_kill_is_bit_identical() {
    let _serial = crate::serial();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (vs_a, out) = run(a.path(), 1, &config(4), false, None, |_| {});
    assert_eq!(out.unwrap().reason, StopReason::Completed);

    let (_, out) = run(b.path(), 1, &config(4), false, Some(2), |_| {});
    assert_eq!(out.unwrap().reason, StopReason::Interrupted);
    // A new process: different initialisation, everything must come from the checkpoint.
    let (vs_b, out) = run(b.path(), 999, &config(4), true, None, |_| {});
    let out = out.unwrap();
    assert_eq!(
        (out.reason, out.epochs_completed),
        (StopReason::Completed, 4)
    );
    assert_eq!(fingerprint(&vs_a), fingerprint(&vs_b));

    for dir in [a.path(), b.path()] {
        let run = RunDir(dir.to_path_buf());
        let csv = std::fs::read_to_string(run.results()).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], "epoch,train_loss,val_loss,lr,seconds");
        assert_eq!(lines.len(), 5, "{csv}");
        assert!(lines[4].starts_with("4,"));
        // best and last are loadable PyTorch-named weights.
        let best = checkpoint::read(run.best()).unwrap();
        assert_eq!(
            best.names().collect::<Vec<_>>(),
            ["l1.bias", "l1.weight", "l2.bias", "l2.weight"]
        );
        assert!(run.last().exists());
    }
    let png = a.path().join("results.png");
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));
    std::fs::copy(
        &png,
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("results.png"),
    )
    .unwrap();
    // The two runs logged the same losses (timings aside).
    let strip = |p: &Path| -> Vec<String> {
        std::fs::read_to_string(RunDir(p.to_path_buf()).results())
            .unwrap()
            .lines()
            .map(|l| l.rsplit_once(',').unwrap().0.to_string())
            .collect()
    };
    assert_eq!(strip(a.path()), strip(b.path()));
}

#[test]
fn resuming_with_other_metrics_is_refused_before_results_csv_misaligns() {
    let _serial = crate::serial();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(2);
    let (_, first) = run(tmp.path(), 0, &cfg, false, Some(1), |_| {});
    first.unwrap();
    let before = std::fs::read_to_string(tmp.path().join("results.csv")).unwrap();
    let (_, again) = run(tmp.path(), 0, &cfg, true, None, |t| t.extra_metric = true);
    let err = again.unwrap_err().to_string();
    assert!(
        err.contains("results.csv") && err.contains("val_extra"),
        "{err}"
    );
    let after = std::fs::read_to_string(tmp.path().join("results.csv")).unwrap();
    assert_eq!(before, after);
}

#[test]
fn nan_loss_stops_and_keeps_the_last_good_checkpoint() {
    let _serial = crate::serial();
    let dir = tempfile::tempdir().unwrap();
    let (_, out) = run(dir.path(), 1, &config(5), false, None, |t| {
        t.nan_at_epoch = Some(2)
    });
    let err = out.unwrap_err().to_string();
    assert!(err.contains("loss became NaN at epoch 3 step 1"), "{err}");
    assert!(err.contains("checkpoint of epoch 2 is kept"), "{err}");
    let meta = checkpoint::read_safetensors_metadata(RunDir(dir.path().to_path_buf()).checkpoint())
        .unwrap();
    assert_eq!(meta["epoch"], "2");
    assert_eq!(
        meta["config"], "[train]\nepochs = 4\n",
        "the checkpoint carries the config"
    );
    // And it resumes from there.
    let (_, out) = run(dir.path(), 7, &config(3), true, None, |_| {});
    assert_eq!(out.unwrap().epochs_completed, 3);
}

#[test]
fn early_stopping_honours_patience() {
    let _serial = crate::serial();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(10);
    cfg.patience = Some(2);
    let (_, out) = run(dir.path(), 1, &cfg, false, None, |t| {
        t.constant_metric = true
    });
    let out = out.unwrap();
    // Epoch 1 sets the best; epochs 2 and 3 do not improve.
    assert_eq!(
        (out.reason, out.epochs_completed, out.best),
        (StopReason::EarlyStopped, 3, Some((1.0, 1)))
    );
    // The chart was redrawn for the epoch that stopped the run, not left one epoch behind.
    let modified = |name: &str| {
        std::fs::metadata(dir.path().join(name))
            .and_then(|m| m.modified())
            .unwrap()
    };
    assert!(modified("results.png") >= modified("results.csv"));

    let mut cfg = config(1);
    cfg.monitor = "mAP".into();
    let (_, out) = run(
        tempfile::tempdir().unwrap().path(),
        1,
        &cfg,
        false,
        None,
        |_| {},
    );
    assert!(out
        .unwrap_err()
        .to_string()
        .contains("monitored metric \"mAP\""));
}

#[test]
fn ctrl_c_mid_epoch_keeps_the_last_epoch_and_resumes_exactly() {
    let _serial = crate::serial();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (vs_a, _) = run(a.path(), 1, &config(4), false, None, |_| {});
    // Ctrl-C during step 4 of epoch 3: the stop is noticed before step 5.
    let (_, out) = run(b.path(), 1, &config(4), false, None, |t| {
        t.interrupt_at = Some((2, 3))
    });
    let out = out.unwrap();
    assert_eq!(
        (out.reason, out.epochs_completed),
        (StopReason::Interrupted, 2)
    );
    let meta =
        checkpoint::read_safetensors_metadata(RunDir(b.path().to_path_buf()).checkpoint()).unwrap();
    assert_eq!(meta["epoch"], "2");
    let (vs_b, out) = run(b.path(), 5, &config(4), true, None, |_| {});
    assert_eq!(out.unwrap().epochs_completed, 4);
    assert_eq!(fingerprint(&vs_a), fingerprint(&vs_b));
}

#[test]
fn loss_scaling_is_exact_and_skips_overflowing_steps() {
    let _serial = crate::serial();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (plain, _) = run(a.path(), 1, &config(2), false, None, |_| {});
    let mut amp = config(2);
    amp.amp = true;
    // On the CPU only the scaler runs; scaling by powers of two is exact.
    let (scaled, out) = run(b.path(), 1, &amp, false, None, |_| {});
    out.unwrap();
    assert_eq!(fingerprint(&plain), fingerprint(&scaled));

    // The scaler's rule: inf gradients → skip and halve; finite → unscale exactly, keep the scale.
    let vs = VarStore::new(Device::Cpu);
    let w = vs.root().var("w", &[2], nn::Init::Const(1.0));
    let groups = param_groups(&vs, &[], &GroupConfig::default());
    let opt = Optimizer::new(
        OptimizerKind::Sgd {
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
        },
        groups,
        0.1,
    );
    let mut scaler = LossScaler::default();
    (&w * f64::INFINITY).sum(Kind::Float).backward();
    assert!(!scaler.unscale_and_check(&opt));
    assert_eq!(scaler.scale, 32768.0);
    let mut w2 = w.shallow_clone();
    w2.zero_grad();
    (&w * 3.0 * scaler.scale).sum(Kind::Float).backward();
    assert!(scaler.unscale_and_check(&opt));
    assert_eq!(Vec::<f32>::try_from(w.grad()).unwrap(), [3.0, 3.0]);
    assert_eq!(scaler.scale, 32768.0);
}

/// A classifier on a real backbone that unfreezes everything at `unfreeze_at`.
struct Gradual {
    model: Box<dyn ferrovis_core::backbone::Backbone>,
    vs_vars: Vec<(String, Tensor)>,
    unfreeze_at: usize,
    snapshots: Vec<Vec<(String, String)>>,
}

impl TrainTask for Gradual {
    fn steps_per_epoch(&self) -> usize {
        2
    }
    fn train_step(&mut self, _epoch: usize, _step: usize) -> Result<Tensor> {
        let x = Tensor::randn([4, 3, 32, 32], (Kind::Float, Device::Cpu));
        let y = Tensor::from_slice(&[0i64, 1, 0, 1]);
        Ok(self.model.forward_t(&x, true).cross_entropy_for_logits(&y))
    }
    fn validate(&mut self, _epoch: usize) -> Result<Vec<(String, f64)>> {
        let mut snap: Vec<(String, String)> = self
            .vs_vars
            .iter()
            .map(|(n, t)| (n.clone(), tensor_sha256(t)))
            .collect();
        snap.sort();
        self.snapshots.push(snap);
        Ok(vec![])
    }
    fn on_epoch_start(&mut self, epoch: usize) -> Result<()> {
        if epoch == self.unfreeze_at {
            for (_, t) in &self.vs_vars {
                if t.is_floating_point() {
                    let _ = t.shallow_clone().requires_grad_(true);
                }
            }
        }
        Ok(())
    }
}

#[test]
fn gradual_unfreezing_trains_the_head_first_then_everything_at_spread_rates() {
    let _serial = crate::serial();
    use ferrovis_core::backbone::{self, BackboneOptions};
    use ferrovis_core::freeze::{self, FreezeOptions};
    tch::manual_seed(0);
    let vs = VarStore::new(Device::Cpu);
    let model = backbone::create("resnet18", &vs.root(), &BackboneOptions::classes(2)).unwrap();
    let stages = model.stages();
    freeze::freeze_before_stage(&vs, &stages, "head", FreezeOptions::default()).unwrap();
    let cfg_groups = GroupConfig {
        lr_spread: Some(0.01),
        include_frozen: true,
        ..Default::default()
    };
    let groups = param_groups(&vs, &stages, &cfg_groups);
    let scale = |name: &str| {
        groups
            .iter()
            .find(|g| g.name == name)
            .unwrap_or_else(|| {
                panic!(
                    "{name} not in {:?}",
                    groups
                        .iter()
                        .map(|g| (&g.name, g.params.len()))
                        .collect::<Vec<_>>()
                )
            })
            .lr_scale
    };
    assert!((scale("stem/decay") - 0.01).abs() < 1e-15);
    assert!((scale("layer2/decay") - 0.01f64.powf(3.0 / 5.0)).abs() < 1e-15);
    assert_eq!(scale("head/decay"), 1.0);
    let mut opt = Optimizer::new(
        OptimizerKind::Sgd {
            momentum: 0.9,
            dampening: 0.0,
            nesterov: false,
        },
        groups,
        0.01,
    );
    // Buffers (BatchNorm statistics) are left out of the snapshots: only parameters are compared.
    let params: std::collections::HashSet<usize> = vs
        .trainable_variables()
        .iter()
        .map(|t| t.data_ptr() as usize)
        .collect();
    let vs_vars: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(_, t)| params.contains(&(t.data_ptr() as usize)))
        .collect();
    let before: Vec<(String, String)> = {
        let mut v: Vec<(String, String)> = vs_vars
            .iter()
            .map(|(n, t)| (n.clone(), tensor_sha256(t)))
            .collect();
        v.sort();
        v
    };
    let mut task = Gradual {
        model,
        vs_vars,
        unfreeze_at: 1,
        snapshots: Vec::new(),
    };
    let mut cfg = config(2);
    cfg.monitor = "train_loss".into();
    cfg.ema = None;
    let dir = tempfile::tempdir().unwrap();
    let control = RunControl {
        config_toml: Some("[train]\nmode = \"gradual\"\n".into()),
        ..RunControl::quiet()
    };
    fit(&vs, &mut task, &mut opt, &cfg, dir.path(), &control).unwrap();
    let changed = |a: &[(String, String)], b: &[(String, String)]| -> Vec<String> {
        a.iter()
            .zip(b)
            .filter(|(x, y)| x.1 != y.1)
            .map(|(x, _)| x.0.clone())
            .collect()
    };
    let epoch1 = changed(&before, &task.snapshots[0]);
    assert_eq!(
        epoch1,
        ["fc.bias", "fc.weight"],
        "epoch 1 trains only the head"
    );
    let epoch2 = changed(&task.snapshots[0], &task.snapshots[1]);
    assert!(
        epoch2.contains(&"conv1.weight".to_string())
            && epoch2.contains(&"layer4.1.conv2.weight".to_string()),
        "{epoch2:?}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("config.toml")).unwrap(),
        "[train]\nmode = \"gradual\"\n"
    );
}

/// A small convolutional regression for the GPU check: records the dtype its forward pass
/// produced inside each step, so the test can see autocast at work.
struct ConvRegression {
    conv: nn::Conv2D,
    head: nn::Linear,
    x: Tensor,
    y: Tensor,
    kinds: Vec<Kind>,
}

impl ConvRegression {
    fn predict(&self, x: &Tensor) -> Tensor {
        let pooled = self
            .conv
            .forward(x)
            .relu()
            .mean_dim(&[2i64, 3][..], false, None);
        self.head.forward(&pooled)
    }
}

impl TrainTask for ConvRegression {
    fn steps_per_epoch(&self) -> usize {
        10
    }
    fn train_step(&mut self, _epoch: usize, _step: usize) -> Result<Tensor> {
        let out = self.predict(&self.x);
        self.kinds.push(out.kind());
        Ok(out
            .to_kind(Kind::Float)
            .mse_loss(&self.y, tch::Reduction::Mean))
    }
    fn validate(&mut self, _epoch: usize) -> Result<Vec<(String, f64)>> {
        let loss = tch::no_grad(|| {
            self.predict(&self.x)
                .to_kind(Kind::Float)
                .mse_loss(&self.y, tch::Reduction::Mean)
        });
        Ok(vec![("val_loss".into(), loss.double_value(&[]))])
    }
}

/// Mixed precision on a GPU (run by `make gpu-check`; `make test` has no GPU to run it on):
/// the steps run under float16 autocast, the loss scaler keeps training finite, and the model
/// still learns.
#[test]
#[ignore = "needs a CUDA GPU: make gpu-check"]
fn amp_autocasts_and_trains_on_cuda() {
    let _serial = crate::serial();
    assert!(
        tch::Cuda::is_available(),
        "libtorch sees no CUDA device (was libtorch_cuda linked? see scripts/setup.sh)"
    );
    let device = Device::Cuda(0);
    tch::manual_seed(0);
    let vs = VarStore::new(device);
    let x = Tensor::randn([64, 3, 32, 32], (Kind::Float, device));
    let y = x
        .mean_dim(&[1i64, 2, 3][..], true, Kind::Float)
        .view([64, 1])
        * 10.0;
    let mut task = ConvRegression {
        conv: nn::conv2d(vs.root() / "conv", 3, 16, 3, Default::default()),
        head: nn::linear(vs.root() / "fc", 16, 1, Default::default()),
        x,
        y,
        kinds: Vec::new(),
    };
    let before = task.validate(0).unwrap()[0].1;
    let groups = param_groups(&vs, &[], &GroupConfig::default());
    let mut opt = Optimizer::new(OptimizerKind::from_name("adam", 0.0).unwrap(), groups, 1e-2);
    let cfg = TrainConfig {
        epochs: 3,
        lr: 1e-2,
        amp: true,
        ..TrainConfig::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let out = fit(
        &vs,
        &mut task,
        &mut opt,
        &cfg,
        dir.path(),
        &RunControl::default(),
    )
    .unwrap();
    assert_eq!(out.reason, StopReason::Completed);
    assert!(
        task.kinds.iter().all(|k| *k == Kind::Half),
        "forward dtypes under autocast: {:?}",
        task.kinds
    );
    let (after, _) = out.best.unwrap();
    println!("val_loss {before:.4} -> {after:.4} in 30 steps under AMP");
    assert!(
        after.is_finite() && after < 0.5 * before,
        "{before} -> {after}"
    );
}

/// The engine's TensorBoard event file, read by TensorBoard's own reader
/// (`reference/tensorboard_read.py`): every record's CRCs check, every `results.csv` column is a
/// scalar series with the epoch as the step and the same values, each parameter group's rate is
/// there, and the chart drawn each epoch is an image; `tensorboard: false` writes no file.
#[test]
fn tensorboard_events_hold_every_results_csv_column() {
    let _serial = crate::serial();
    let dir = tempfile::tempdir().unwrap();
    let (_, out) = run(dir.path(), 3, &config(3), false, None, |_| {});
    out.unwrap();
    let stdout = ferrovis_tests::run_reference("tensorboard_read.py", &[dir.path().as_os_str()]);
    let read: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(read["files"].as_array().unwrap().len(), 1, "{read}");
    assert_eq!(read["crc_ok"], true, "{read}");
    // The file version, then one event of scalars per epoch and one per picture.
    assert!(read["records"].as_u64().unwrap() >= 4, "{read}");
    let csv = std::fs::read_to_string(dir.path().join("results.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let rows: Vec<Vec<f64>> = lines
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    assert_eq!(rows.len(), 3);
    let scalars = &read["scalars"];
    for (c, name) in header.iter().enumerate().skip(1) {
        let series = scalars[*name]
            .as_array()
            .unwrap_or_else(|| panic!("no scalar '{name}' in {scalars}"));
        assert_eq!(series.len(), rows.len(), "{name}");
        for (row, point) in rows.iter().zip(series) {
            let (step, value) = (point[0].as_f64().unwrap(), point[1].as_f64().unwrap());
            assert_eq!(step, row[0], "{name}: step");
            // results.csv keeps 6 decimals (lr 6 significant digits, seconds 4 decimals), the
            // event a float32.
            let tolerance = if *name == "seconds" {
                6e-5
            } else {
                1e-6 * row[c].abs().max(1.0)
            };
            assert!(
                (value - row[c]).abs() <= tolerance,
                "{name} at epoch {step}: {value} in TensorBoard, {} in results.csv",
                row[c]
            );
        }
        println!("{name}: {} epochs equal results.csv", series.len());
    }
    assert_eq!(scalars["lr/pg0"].as_array().unwrap().len(), 3);
    // The chart (core's default `plot` feature) is drawn every epoch, and logged each time.
    assert!(dir.path().join("results.png").is_file());
    let charts = read["images"]["results"].as_array().unwrap();
    assert_eq!(charts.len(), 3, "{read}");
    assert!(charts.iter().all(|c| c[1].as_i64().unwrap() > 100));
    // Off by the setting: no event file.
    let off = tempfile::tempdir().unwrap();
    let mut cfg = config(1);
    cfg.tensorboard = false;
    let (_, out) = run(off.path(), 3, &cfg, false, None, |_| {});
    out.unwrap();
    let events = std::fs::read_dir(off.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("events.out"))
        .count();
    assert_eq!(events, 0);
}

/// The learning-rate range test on the regression task: the rate sweeps exponentially, the
/// smoothed loss falls and then diverges (the test stops there), fastai's four suggestions equal
/// a NumPy transcription of its functions on the recorded curve (`reference/lr_find_suggest.py`),
/// and the weights, the optimiser's state and its rates are what they were before.
#[test]
fn lr_find_suggests_as_fastai_and_restores_the_model() {
    use ferrovis_core::engine::lr_find::{lr_find, LrFindConfig};
    let _serial = crate::serial();
    tch::manual_seed(5);
    let vs = VarStore::new(Device::Cpu);
    let mut task = Regression::new(&vs);
    let groups = param_groups(&vs, &[], &GroupConfig::default());
    let mut opt = Optimizer::new(OptimizerKind::from_name("sgd", 0.9).unwrap(), groups, 0.05);
    // Some optimiser state first, so that restoring it is tested too.
    for step in 0..3 {
        opt.zero_grad().unwrap();
        task.train_step(0, step).unwrap().backward();
        opt.step().unwrap();
    }
    let digest = |vs: &VarStore| {
        let mut v: Vec<(String, String)> = vs
            .variables()
            .iter()
            .map(|(n, t)| (n.clone(), tensor_sha256(t)))
            .collect();
        v.sort();
        v
    };
    let state = |opt: &Optimizer| {
        let mut v: Vec<(String, String)> = opt
            .state_dict()
            .iter()
            .map(|(n, t)| (n.to_string(), tensor_sha256(t)))
            .collect();
        v.sort();
        v
    };
    let (weights, opt_state, rates) = (digest(&vs), state(&opt), opt.lrs().to_vec());
    let cfg = LrFindConfig {
        num_it: 100,
        ..LrFindConfig::default()
    };
    let curve = lr_find(&vs, &mut task, &mut opt, &cfg).unwrap();
    assert_eq!(digest(&vs), weights, "weights after lr-find");
    assert_eq!(state(&opt), opt_state, "optimiser state after lr-find");
    assert_eq!(opt.lrs(), rates.as_slice());
    // The rates sweep exponentially from 1e-7; the loss diverges before 10.
    assert!((curve.lrs[0] - 1e-7).abs() < 1e-20);
    let ratio = curve.lrs[1] / curve.lrs[0];
    assert!((ratio - 1e8f64.powf(0.01)).abs() < 1e-9, "{ratio}");
    assert!(curve.diverged, "{curve:?}");
    let best = curve.losses.iter().cloned().fold(f64::INFINITY, f64::min);
    assert!(*curve.losses.last().unwrap() > 4.0 * best);
    println!(
        "{} iterations, loss {:.4} → best {best:.4} → {:.4} at lr {:.3e}",
        curve.losses.len(),
        curve.losses[0],
        curve.losses.last().unwrap(),
        curve.lrs.last().unwrap()
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("curve.json");
    let json =
        serde_json::json!({"lrs": curve.lrs, "losses": curve.losses, "num_it": curve.num_it});
    std::fs::write(&path, json.to_string()).unwrap();
    let stdout = ferrovis_tests::run_reference("lr_find_suggest.py", &[path.as_os_str()]);
    let theirs: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let ours = curve.suggestions();
    for (name, got) in [
        ("valley", ours.valley),
        ("minimum", ours.minimum),
        ("steep", ours.steep),
        ("slide", ours.slide),
    ] {
        let (lr, (at, loss)) = got.unwrap_or_else(|| panic!("no {name} suggestion"));
        let want = &theirs[name];
        let close = |a: f64, b: &serde_json::Value| {
            let b = b.as_f64().unwrap();
            (a - b).abs() <= 1e-12 * b.abs().max(1e-30)
        };
        println!("{name}: {lr:.4e} (point {at:.4e}, loss {loss:.5})");
        assert!(
            close(lr, &want[0]) && close(at, &want[1][0]) && close(loss, &want[1][1]),
            "{name}: ours ({lr}, ({at}, {loss})), the transcription's {want}"
        );
    }
}
