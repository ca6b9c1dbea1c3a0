//! Optimiser steps equal `torch.optim`'s on the same model and data (≤ 1e-6, in float64);
//! OneCycle equals `OneCycleLR`; freezing keeps frozen weights and BatchNorm statistics
//! bit-identical while the head trains; parameter groups split as configured; optimiser state
//! round-trips.

use std::path::Path;

use ferrovis_core::backbone::{self, BackboneOptions};
use ferrovis_core::checkpoint::{self, StateDict};
use ferrovis_core::freeze::{self, FreezeOptions};
use ferrovis_core::optim::{
    param_groups, Decay, GroupConfig, ModelEma, Optimizer, OptimizerKind, ParamGroup, Schedule,
};
use ferrovis_tests::{run_reference, tensor_sha256};
use tch::nn::{self, Module, VarStore};
use tch::{Device, Kind, Tensor};

fn reference() -> &'static Path {
    static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("optim-reference");
        run_reference("optim.py", &[dir.as_os_str()]);
        dir
    })
}

/// The reference's `Linear(4, 3) → tanh → Linear(3, 2)` in float64, names `0.*` and `2.*`.
struct Mlp {
    l0: nn::Linear,
    l2: nn::Linear,
}

fn mlp(vs: &mut VarStore, init: &StateDict) -> Mlp {
    let p = vs.root();
    let m = Mlp {
        l0: nn::linear(&p / "0", 4, 3, Default::default()),
        l2: nn::linear(&p / "2", 3, 2, Default::default()),
    };
    vs.double();
    let renamed: StateDict = init
        .iter()
        .filter_map(|(n, t)| {
            n.strip_prefix("init.")
                .map(|n| (n.to_string(), t.shallow_clone()))
        })
        .collect();
    checkpoint::load_into(
        vs,
        &renamed,
        &checkpoint::LoadOptions::default().strict(true),
    )
    .unwrap();
    m
}

fn groups(vs: &VarStore) -> Vec<ParamGroup> {
    let vars = vs.variables();
    let pick = |names: &[&str]| {
        names
            .iter()
            .map(|n| (n.to_string(), vars[*n].shallow_clone()))
            .collect()
    };
    vec![
        ParamGroup {
            name: "weights".into(),
            params: pick(&["0.weight", "2.weight"]),
            lr_scale: 1.0,
            weight_decay: 0.05,
        },
        ParamGroup {
            name: "biases".into(),
            params: pick(&["0.bias", "2.bias"]),
            lr_scale: 0.5,
            weight_decay: 0.0,
        },
    ]
}

#[test]
fn optimizers_step_like_torch_optim() {
    let data = checkpoint::read(reference().join("optim.safetensors")).unwrap();
    let (x, y) = (data.get("x").unwrap(), data.get("y").unwrap());
    let configs = [
        (
            "sgd",
            OptimizerKind::Sgd {
                momentum: 0.0,
                dampening: 0.0,
                nesterov: false,
            },
            0.1,
        ),
        (
            "sgd_momentum",
            OptimizerKind::Sgd {
                momentum: 0.9,
                dampening: 0.1,
                nesterov: false,
            },
            0.1,
        ),
        (
            "sgd_nesterov",
            OptimizerKind::Sgd {
                momentum: 0.9,
                dampening: 0.0,
                nesterov: true,
            },
            0.1,
        ),
        (
            "adam",
            OptimizerKind::Adam {
                beta1: 0.9,
                beta2: 0.99,
                eps: 1e-8,
            },
            0.01,
        ),
        (
            "adamw",
            OptimizerKind::AdamW {
                beta1: 0.8,
                beta2: 0.95,
                eps: 1e-6,
            },
            0.01,
        ),
    ];
    for (name, kind, lr) in configs {
        let mut vs = VarStore::new(Device::Cpu);
        let model = mlp(&mut vs, &data);
        let mut opt = Optimizer::new(kind, groups(&vs), lr);
        for _ in 0..5 {
            opt.zero_grad().expect("zero_grad");
            let out = model.l2.forward(&model.l0.forward(x).tanh());
            (out - y).square().mean(Kind::Double).backward();
            opt.step().expect("step");
        }
        let vars = vs.variables();
        for p in ["0.weight", "0.bias", "2.weight", "2.bias"] {
            let want = data.get(&format!("{name}.{p}")).unwrap();
            let d = (&vars[p] - want).abs().max().double_value(&[]);
            assert!(d <= 1e-6, "{name} {p}: differs from torch.optim by {d:e}");
        }
    }
}

#[test]
fn one_cycle_matches_torch() {
    let lrs: Vec<f64> =
        serde_json::from_str(&std::fs::read_to_string(reference().join("onecycle.json")).unwrap())
            .unwrap();
    let s = Schedule {
        decay: Decay::OneCycle {
            pct: 0.3,
            div: 25.0,
            final_div: 1e4,
        },
        warmup_iters: 0,
        warmup_start: 1.0,
    };
    for (i, want) in lrs.iter().enumerate() {
        let got = s.factor(i as u64, 40);
        assert!(
            (got - want).abs() <= 1e-9,
            "step {i}: {got} vs OneCycleLR {want}"
        );
    }
}

#[test]
fn frozen_backbone_and_batchnorm_stay_bit_identical() {
    tch::manual_seed(1);
    let vs = VarStore::new(Device::Cpu);
    let model = backbone::create("resnet18", &vs.root(), &BackboneOptions::classes(3)).unwrap();
    let stages = model.stages();
    let frozen =
        freeze::freeze_before_stage(&vs, &stages, "head", FreezeOptions::default()).unwrap();
    assert_eq!(
        frozen, 60,
        "every resnet18 parameter but fc.weight and fc.bias"
    );
    let before: Vec<(String, String)> = {
        let mut v: Vec<(String, String)> = vs
            .variables()
            .iter()
            .map(|(n, t)| (n.clone(), tensor_sha256(t)))
            .collect();
        v.sort();
        v
    };
    let groups = param_groups(
        &vs,
        &stages,
        &GroupConfig {
            weight_decay: 1e-4,
            ..Default::default()
        },
    );
    let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["head/no_decay", "head/decay"]);
    let mut opt = Optimizer::new(
        OptimizerKind::Sgd {
            momentum: 0.9,
            dampening: 0.0,
            nesterov: false,
        },
        groups,
        0.1,
    );
    let x = Tensor::randn([4, 3, 64, 64], (Kind::Float, Device::Cpu));
    let labels = Tensor::from_slice(&[0i64, 1, 2, 0]);
    for _ in 0..3 {
        opt.zero_grad().expect("zero_grad");
        model
            .forward_t(&x, true)
            .cross_entropy_for_logits(&labels)
            .backward();
        opt.step().expect("step");
    }
    let vars = vs.variables();
    for (name, sha) in &before {
        let changed = tensor_sha256(&vars[name]) != *sha;
        assert_eq!(
            changed,
            name.starts_with("fc."),
            "{name}: changed = {changed}"
        );
    }

    // Errors name what is wrong.
    let err =
        freeze::freeze_before_stage(&vs, &stages, "layer9", FreezeOptions::default()).unwrap_err();
    assert!(err.to_string().contains("stages are stem, layer1"), "{err}");
    let err = freeze::freeze_patterns(&vs, &["backbone.*"], FreezeOptions::default()).unwrap_err();
    assert!(
        err.to_string()
            .contains("\"backbone.*\" matches no variable"),
        "{err}"
    );
}

#[test]
fn partial_fine_tuning_and_group_learning_rates() {
    let vs = VarStore::new(Device::Cpu);
    let model = backbone::create("resnet18", &vs.root(), &BackboneOptions::classes(2)).unwrap();
    let stages = model.stages();
    freeze::train_last_stages(&vs, &stages, 2, FreezeOptions::default());
    let trainable: Vec<String> = vs
        .variables()
        .into_iter()
        .filter(|(_, t)| t.requires_grad())
        .map(|(n, _)| n)
        .collect();
    assert!(
        trainable
            .iter()
            .all(|n| n.starts_with("layer4.") || n.starts_with("fc.")),
        "{trainable:?}"
    );

    // Everything trainable, layer-wise decay 0.5 and the backbone at a tenth: stage i of 6 gets
    // 0.1 · 0.5^(5 − i), the head 1.
    freeze::set_trainable(&vs, true, FreezeOptions::default(), |_| true);
    let cfg = GroupConfig {
        weight_decay: 0.01,
        backbone_lr_scale: 0.1,
        layer_decay: Some(0.5),
        ..Default::default()
    };
    let groups = param_groups(&vs, &stages, &cfg);
    let scale = |name: &str| groups.iter().find(|g| g.name == name).unwrap().lr_scale;
    assert!((scale("stem/decay") - 0.1 * 0.5f64.powi(5)).abs() < 1e-15);
    assert!((scale("layer3/no_decay") - 0.1 * 0.25).abs() < 1e-15);
    assert_eq!(scale("head/decay"), 1.0);
    let wd = |name: &str| groups.iter().find(|g| g.name == name).unwrap().weight_decay;
    assert_eq!((wd("layer1/decay"), wd("layer1/no_decay")), (0.01, 0.0));
    let mut opt = Optimizer::new(
        OptimizerKind::Sgd {
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
        },
        groups,
        0.2,
    );
    let stem = opt
        .groups()
        .iter()
        .position(|g| g.name == "stem/decay")
        .unwrap();
    assert!((opt.lrs()[stem] - 0.2 * 0.1 / 32.0).abs() < 1e-15);
    opt.set_lr(1.0);
    assert!((opt.lrs()[stem] - 0.1 / 32.0).abs() < 1e-15);

    // Ultralytics-style layer index freezing.
    let vs = VarStore::new(Device::Cpu);
    for i in 0..12 {
        let _ = vs
            .root()
            .sub("model")
            .sub(i.to_string())
            .var("weight", &[2], nn::Init::Const(0.0));
    }
    assert_eq!(
        freeze::freeze_first_layers(&vs, 10, FreezeOptions::default()),
        10
    );
    assert!(
        vs.variables()["model.10.weight"].requires_grad()
            && !vs.variables()["model.9.weight"].requires_grad()
    );
}

#[test]
fn optimizer_state_round_trips_and_ema_ramps() {
    let vs = VarStore::new(Device::Cpu);
    let w = vs.root().var("w", &[3], nn::Init::Const(1.0));
    let group = || {
        vec![ParamGroup {
            name: "all".into(),
            params: vec![("w".into(), w.shallow_clone())],
            lr_scale: 1.0,
            weight_decay: 0.0,
        }]
    };
    let kind = OptimizerKind::Adam {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
    };
    let mut a = Optimizer::new(kind, group(), 0.1);
    for _ in 0..2 {
        a.zero_grad().expect("zero_grad");
        (&w * &w).sum(Kind::Float).backward();
        a.step().expect("step");
    }
    let saved = a.state_dict();
    assert_eq!(saved.get("w.step").unwrap().int64_value(&[]), 2);
    let mut b = Optimizer::new(kind, group(), 0.1);
    b.load_state_dict(&saved).unwrap();
    let resumed = b.state_dict();
    for (n, t) in saved.iter() {
        assert_eq!(
            tensor_sha256(t),
            tensor_sha256(resumed.get(n).unwrap()),
            "{n}"
        );
    }

    // EMA decay ramps as 0.9999·(1 − e^(−u/2000)).
    let mut ema = ModelEma::new(&vs, 0.9999, 2000.0);
    ema.update(&vs);
    assert!((ema.current_decay() - 0.9999 * (1.0 - (-1.0f64 / 2000.0).exp())).abs() < 1e-15);
}
