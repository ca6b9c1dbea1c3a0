//! torchvision's whole classification zoo (`list_models(module=torchvision.models)`: 80
//! architectures) against torchvision itself (`reference/zoo.py`):
//! - every architecture: `backbone::create` knows it, its trainable parameter count equals
//!   torchvision's, and its variables are exactly the state_dict's names and shapes;
//! - every architecture but the few `zoo.py` lists as LARGE (checked by `make validate`): a
//!   seeded network with randomised normalisation loads strictly and gives torchvision's logits
//!   and every feature level; one architecture per family also in float64 and in training mode
//!   (levels, a gradient, a buffer after the step).

use std::path::Path;
use std::sync::OnceLock;

use ferrovis_core::backbone::{self, BackboneOptions};
use ferrovis_tests::{run_reference, zoo};
use tch::nn::VarStore;
use tch::Device;

/// `zoo.py layout`: per architecture, its parameter count and state_dict names and shapes.
fn layout() -> &'static serde_json::Map<String, serde_json::Value> {
    static LAYOUT: OnceLock<serde_json::Map<String, serde_json::Value>> = OnceLock::new();
    LAYOUT.get_or_init(|| {
        let file = Path::new(env!("CARGO_TARGET_TMPDIR")).join("zoo-layout.json");
        run_reference("zoo.py", &["layout".as_ref(), file.as_os_str()]);
        let text = std::fs::read_to_string(&file).unwrap();
        match serde_json::from_str(&text).unwrap() {
            serde_json::Value::Object(m) => m,
            other => panic!("zoo.py layout wrote {other}"),
        }
    })
}

#[test]
fn every_torchvision_architecture_has_its_layout() {
    let layout = layout();
    assert_eq!(layout.len(), 80, "torchvision 0.28 lists 80 architectures");
    let mut failures = Vec::new();
    for (name, want) in layout {
        let vs = VarStore::new(Device::Cpu);
        if let Err(e) = backbone::create(name, &vs.root(), &BackboneOptions::default()) {
            failures.push(format!("{name}: {e}"));
            continue;
        }
        let count: i64 = vs
            .trainable_variables()
            .iter()
            .map(|t| t.numel() as i64)
            .sum();
        if Some(count) != want["parameters"].as_i64() {
            failures.push(format!(
                "{name}: {count} trainable parameters, torchvision {}",
                want["parameters"]
            ));
        }
        let vars = vs.variables();
        let sd = want["state_dict"].as_object().unwrap();
        for (key, shape) in sd {
            let shape: Vec<i64> = serde_json::from_value(shape.clone()).unwrap();
            match vars.get(key) {
                None => failures.push(format!("{name}: no variable {key} {shape:?}")),
                Some(t) if t.size() != shape => failures.push(format!(
                    "{name}: {key} is {:?}, torchvision's {shape:?}",
                    t.size()
                )),
                Some(_) => {}
            }
        }
        failures.extend(
            vars.keys()
                .filter(|k| !sd.contains_key(*k))
                .map(|k| format!("{name}: {k} is not in torchvision's state_dict")),
        );
        println!("{name}: {count} parameters, {} tensors", sd.len());
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Every name ferrovis offers besides torchvision's is the EfficientNet-Lite family or DINOv2
    // (checked against transformers and timm in `dinov2.rs`).
    let others: Vec<&&str> = backbone::NAMES
        .iter()
        .filter(|n| !layout.contains_key(**n))
        .collect();
    assert!(
        others
            .iter()
            .all(|n| n.starts_with("efficientnet_lite") || n.starts_with("dinov2_")),
        "{others:?}"
    );
}

#[test]
fn every_architecture_gives_torchvisions_outputs() {
    let (small, large) =
        zoo::check_cases(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")), "small");
    assert_eq!(small.len() + large.len(), 80);
    println!(
        "{} architectures checked here; {} in make validate: {}",
        small.len(),
        large.len(),
        large.join(", ")
    );
}
