//! The Rust side of `reference/zoo.py`'s parity cases, shared by `make test` (the architectures
//! that fit its budget) and `make validate` (the LARGE ones).

use std::path::{Path, PathBuf};

use ferrovis_core::backbone::{self, Backbone, BackboneOptions};
use ferrovis_core::checkpoint::{self, LoadOptions, StateDict};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    (a - b).abs().max().double_value(&[])
}

fn build(name: &str, size: i64) -> (VarStore, Box<dyn Backbone>) {
    let vs = VarStore::new(Device::Cpu);
    // Stochastic depth and dropout off: the reference switches them off for its training pass.
    let opts = BackboneOptions {
        stochastic_depth: Some(0.0),
        dropout: Some(0.0),
        image_size: Some(size),
        ..Default::default()
    };
    let model = backbone::create(name, &vs.root(), &opts).unwrap();
    (vs, model)
}

/// Checks one `zoo.py parity` case in `dir`: strict load, eval logits and levels (1e-4 absolute),
/// float64 (1e-10) and training mode where the case has them. Returns its failures.
pub fn check_case(dir: &Path, name: &str) -> Vec<String> {
    let mut failures = Vec::new();
    let close =
        |failures: &mut Vec<String>, what: String, ours: &Tensor, theirs: &Tensor, tol: f64| {
            if ours.size() != theirs.size() {
                failures.push(format!(
                    "{what}: shape {:?}, torchvision {:?}",
                    ours.size(),
                    theirs.size()
                ));
                return;
            }
            let d = max_abs_diff(ours, theirs);
            println!("{what}: max abs difference {d:.3e}");
            if d > tol {
                failures.push(format!("{what}: max abs difference {d:e} > {tol:e}"));
            }
        };
    let case = dir.join(name);
    let sd = checkpoint::read(case.join("weights.pth")).unwrap();
    let expected: StateDict = checkpoint::read(case.join("expected.safetensors")).unwrap();
    let x = expected.get("input").unwrap();
    let size = x.size()[2];
    let (vs, model) = build(name, size);
    let report = checkpoint::load_into(&vs, &sd, &LoadOptions::default().strict(true))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(report.loaded.len(), sd.len(), "{name}: {report}");

    let levels = (0..)
        .map_while(|i| expected.get(&format!("feat{i}")))
        .count();
    let info = model.feature_info();
    if info.len() != levels {
        failures.push(format!(
            "{name}: {} feature levels, torchvision's reference {levels}",
            info.len()
        ));
    }
    tch::no_grad(|| {
        close(
            &mut failures,
            format!("{name} logits"),
            &model.forward_t(x, false),
            expected.get("logits").unwrap(),
            1e-4,
        );
        for (i, (f, fi)) in model.features(x, false).iter().zip(&info).enumerate() {
            close(
                &mut failures,
                format!("{name} feat{i}"),
                f,
                expected.get(&format!("feat{i}")).unwrap(),
                1e-4,
            );
            // Nominal strides: AlexNet's and SqueezeNet's unpadded layers are not exact, and
            // ViT-H/14's patches are 14 pixels.
            let measured = size as f64 / f.size()[2] as f64;
            let nominal = 2f64.powf(measured.log2().round()) as i64;
            let stride_ok = fi.stride == nominal || fi.stride as f64 == measured;
            if f.size()[1] != fi.channels || !stride_ok {
                failures.push(format!(
                    "{name} feat{i}: {:?} but feature_info says {fi:?}",
                    f.size()
                ));
            }
        }
    });
    if let Some(logits64) = expected.get("logits64") {
        // Float64 agrees to rounding error only if the architecture is the same, not merely close.
        let (mut vs64, model64) = build(name, size);
        checkpoint::load_into(&vs64, &sd, &LoadOptions::default().strict(true)).unwrap();
        vs64.double();
        tch::no_grad(|| {
            let x64 = x.to_kind(Kind::Double);
            close(
                &mut failures,
                format!("{name} logits (float64)"),
                &model64.forward_t(&x64, false),
                logits64,
                1e-10,
            );
            for (i, f) in model64.features(&x64, false).iter().enumerate() {
                close(
                    &mut failures,
                    format!("{name} feat{i} (float64)"),
                    f,
                    expected.get(&format!("feat64_{i}")).unwrap(),
                    1e-10,
                );
            }
        });
    }
    if expected.get("train_feat0").is_some() {
        let feats = model.features(x, true);
        for (i, f) in feats.iter().enumerate() {
            close(
                &mut failures,
                format!("{name} train_feat{i}"),
                f,
                expected.get(&format!("train_feat{i}")).unwrap(),
                1e-4,
            );
        }
        let loss = feats
            .iter()
            .map(|f| f.square().mean(Kind::Float))
            .fold(Tensor::from(0.0f32), |a, b| a + b);
        loss.backward();
        let vars = vs.variables();
        for (key, want) in expected.iter() {
            if let Some(param) = key.strip_prefix("grad:") {
                let grad = vars[param].grad();
                let rel = max_abs_diff(&grad, want) / want.abs().max().double_value(&[]);
                println!("{name} gradient of {param}: relative difference {rel:.3e}");
                if rel > 1e-4 {
                    failures.push(format!(
                        "{name}: gradient of {param} differs by {rel:e} (relative)"
                    ));
                }
            } else if let Some(buffer) = key.strip_prefix("after:") {
                close(
                    &mut failures,
                    format!("{name} {buffer} after one training step"),
                    &vars[buffer],
                    want,
                    1e-5,
                );
            }
        }
    }
    failures
}

/// Runs `zoo.py parity <tmp>/zoo-<which> --<which>` (`small` or `large`) and checks every case it wrote,
/// panicking with every failure; returns the small and large case lists.
pub fn check_cases(tmp: &Path, which: &str) -> (Vec<String>, Vec<String>) {
    let dir: PathBuf = tmp.join(format!("zoo-{which}"));
    let _ = std::fs::remove_dir_all(&dir);
    // The reference writes one case after another (each marked `done` when whole) while this
    // side checks the ones already written: one core each, as both run single-threaded.
    let mut reference = std::process::Command::new(crate::python())
        .arg(crate::reference_script("zoo.py"))
        .arg("parity")
        .arg(&dir)
        .arg(format!("--{which}"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("could not start the reference Python");
    let wait_for = |path: &Path, reference: &mut std::process::Child| {
        while !path.exists() {
            if let Some(status) = reference.try_wait().unwrap() {
                if !path.exists() {
                    let mut err = String::new();
                    if let Some(mut e) = reference.stderr.take() {
                        let _ = std::io::Read::read_to_string(&mut e, &mut err);
                    }
                    panic!(
                        "zoo.py stopped ({status}) before {}:\n{err}",
                        path.display()
                    );
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    wait_for(&dir.join("cases.json"), &mut reference);
    let cases: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).unwrap()).unwrap();
    let list = |k: &str| -> Vec<String> { serde_json::from_value(cases[k].clone()).unwrap() };
    let (small, large) = (list("small"), list("large"));
    // One thread, as the reference ran: the same kernels and summation order.
    tch::set_num_threads(1);
    let mut failures = Vec::new();
    for name in if which == "small" { &small } else { &large } {
        wait_for(&dir.join(name).join("done"), &mut reference);
        failures.extend(check_case(&dir, name));
        // Each case's files are read once; the large ones take gigabytes.
        let _ = std::fs::remove_dir_all(dir.join(name));
    }
    let status = reference.wait().unwrap();
    assert!(status.success(), "zoo.py failed: {status}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    (small, large)
}
