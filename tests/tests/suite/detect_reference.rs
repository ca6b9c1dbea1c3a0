//! YOLOv8 against an independent PyTorch implementation written in `tests/reference/yolo.py`
//! from the layer table and the loss definitions: raw head outputs and decoded predictions of the
//! same weights, loss value and gradients on fixed predictions, and loading an Ultralytics-style
//! checkpoint (pickled module, float16) into a model with other classes.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ferrovis_core::checkpoint::{self, LoadOptions, StateDict};
use ferrovis_detect::yolo::loss::DetectionLoss;
use ferrovis_detect::yolo::model::{Version, Yolo, YoloConfig};
use ferrovis_detect::yolo::weights;
use ferrovis_tests::run_reference;
use tch::nn::VarStore;
use tch::{Device, Tensor};

fn references() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("yolo-references");
        let _ = std::fs::remove_dir_all(&dir);
        run_reference("yolo.py", &["model".as_ref(), dir.as_os_str()]);
        run_reference("yolo.py", &["loss".as_ref(), dir.as_os_str()]);
        dir
    })
}

fn expected(file: &str) -> StateDict {
    checkpoint::read(references().join(file)).expect("reference tensors")
}

fn check_close(what: &str, ours: &Tensor, theirs: &Tensor, tol: f64) {
    assert_eq!(ours.size(), theirs.size(), "{what}: shape");
    let d = (ours - theirs).abs().max().double_value(&[]);
    println!("{what}: max abs difference {d:.3e}");
    assert!(d <= tol, "{what}: max abs difference {d:e} > {tol:e}");
}

fn yolov8n(classes: i64) -> (VarStore, Yolo) {
    let vs = VarStore::new(Device::Cpu);
    let scale = Version::V8.scale('n').expect("yolov8n");
    let model = Yolo::new(
        &vs.root(),
        YoloConfig {
            version: Version::V8,
            scale,
            num_classes: classes,
        },
    );
    (vs, model)
}

#[test]
fn head_outputs_match_the_reference_forward() {
    tch::set_num_threads(1);
    let sd = checkpoint::read(references().join("weights.pt")).expect("weights.pt");
    let (vs, model) = yolov8n(3);
    let report = checkpoint::load_into(&vs, &sd, &LoadOptions::default().strict(true))
        .expect("strict load by Ultralytics names");
    assert_eq!(report.loaded.len(), 355);
    let exp = expected("expected.safetensors");
    let x = exp.get("input").expect("input");
    let raw = tch::no_grad(|| model.forward_t(x, false));
    for (i, r) in raw.iter().enumerate() {
        let name = format!("raw{i}");
        check_close(&name, r, exp.get(&name).expect("raw level"), 1e-4);
    }
    // Decoded boxes are in pixels (up to ~128 here): 1e-4 relative to that scale.
    let decoded = model.decode(&raw);
    check_close(
        "decoded",
        &decoded,
        exp.get("decoded").expect("decoded"),
        1e-3,
    );
    let probs = decoded.narrow(1, 4, 3);
    check_close(
        "class probabilities",
        &probs,
        &exp.get("decoded").expect("decoded").narrow(1, 4, 3),
        1e-5,
    );
}

#[test]
fn ultralytics_checkpoint_loads_into_new_classes() {
    let path = references().join("yolov8n-style.pt");
    let sd = weights::read(&path).expect("pickled DetectionModel");
    assert_eq!(sd.len(), 355);
    let shape = weights::shape_of(&sd, &path).expect("shape");
    assert_eq!((shape.scale.name, shape.num_classes), ('n', 80));
    let (vs, _model) = yolov8n(3);
    let line = weights::load(&vs, Version::V8, &sd, &path).expect("load with a new class branch");
    println!("{line}");
    assert!(line.contains("319 of 355 tensors loaded"), "{line}");
    // A loaded tensor equals the float16 original (widened); the new class branch is untouched.
    let vars = vs.variables();
    let stem = &vars["model.0.conv.weight"];
    let theirs = sd.get("model.0.conv.weight").expect("stem");
    assert_eq!(theirs.kind(), tch::Kind::Half);
    check_close("stem", stem, &theirs.to_kind(tch::Kind::Float), 0.0);
    assert_eq!(vars["model.22.cv3.0.2.bias"].size(), vec![3]);

    // The same checkpoint into an 80-class model loads all 355; into yolov8s it is refused by name.
    let (vs80, _m) = yolov8n(80);
    let line = weights::load(&vs80, Version::V8, &sd, &path).expect("full load");
    assert!(line.contains("355 of 355"), "{line}");
    let vs_s = VarStore::new(Device::Cpu);
    let _s = Yolo::new(
        &vs_s.root(),
        YoloConfig {
            version: Version::V8,
            scale: Version::V8.scale('s').expect("s"),
            num_classes: 80,
        },
    );
    let err = format!(
        "{:#}",
        weights::load(&vs_s, Version::V8, &sd, &path).unwrap_err()
    );
    assert!(
        err.contains("another scale") && err.contains("model."),
        "{err}"
    );

    // Its class names are the ones stored on the pickled model, not COCO's.
    let names = checkpoint::class_names(&path)
        .expect("read")
        .expect("names stored");
    assert_eq!(
        (names.len(), names[0].as_str(), names[79].as_str()),
        (80, "thing0", "thing79")
    );
    let m = ferrovis_detect::yolo::predict::load_model(&path, Device::Cpu, false).expect("load");
    assert_eq!(m.names, names);
    // A plain state dict stores none.
    assert_eq!(
        checkpoint::class_names(references().join("weights.pt")).unwrap(),
        None
    );
}

#[test]
fn loss_and_gradients_match_the_reference_definition() {
    let exp = expected("loss.safetensors");
    let raw: Vec<Tensor> = (0..3)
        .map(|i| {
            exp.get(&format!("raw{i}"))
                .expect("raw")
                .detach()
                .set_requires_grad(true)
        })
        .collect();
    let targets = exp.get("targets").expect("targets");
    let loss = DetectionLoss::new(3);
    let out = loss.compute(&raw, targets);
    let parts = Tensor::from_slice(&out.parts.map(|v| v as f32));
    check_close(
        "loss parts (box, cls, dfl)",
        &parts,
        exp.get("parts").expect("parts"),
        1e-4,
    );
    check_close(
        "total",
        &out.total.view([1]),
        exp.get("total").expect("total"),
        1e-3,
    );
    out.total.backward();
    for (i, r) in raw.iter().enumerate() {
        let g = exp.get(&format!("grad{i}")).expect("grad");
        check_close(&format!("gradient of level {i}"), &r.grad(), g, 1e-5);
    }
    let positives = exp
        .get("foreground")
        .expect("fg")
        .sum(tch::Kind::Float)
        .double_value(&[]);
    assert!(
        positives >= 10.0,
        "the case must exercise the box and DFL terms ({positives})"
    );
}
