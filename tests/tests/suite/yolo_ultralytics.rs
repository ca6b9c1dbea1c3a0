//! YOLOv8, YOLO11 and YOLO26 against the installed `ultralytics` package (`tests/reference/
//! yolo_ultralytics.py`): every scale's parameter count and state-dict names and shapes; and, for
//! a yolov8n and a yolo11n trained briefly by Ultralytics on two real photographs, the checkpoint
//! it wrote (recognised and loaded), the boxes of its predictor, the loss items of one training
//! step, and the mAP of its validator (rectangular batches).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ferrovis_core::checkpoint::{self, LoadOptions};
use ferrovis_data::decode::read_rgb;
use ferrovis_detect::config::DetectConfig;
use ferrovis_detect::yolo::loss::YoloLoss;
use ferrovis_detect::yolo::model::{parameter_count, Version, Yolo, YoloConfig};
use ferrovis_detect::yolo::postprocess::NmsConfig;
use ferrovis_detect::yolo::{predict, train, val, weights};
use ferrovis_tests::run_reference;
use serde_json::Value;
use tch::nn::VarStore;
use tch::Device;

fn reference_dir(case: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("yolo-ultralytics")
        .join(case)
}

pub(crate) fn model_case(version: &str) -> &'static Path {
    static DIRS: OnceLock<HashMap<&'static str, PathBuf>> = OnceLock::new();
    let dirs = DIRS.get_or_init(|| {
        ["yolov8n", "yolo11n", "yolo26n"]
            .into_iter()
            .map(|v| {
                let dir = reference_dir(v);
                let _ = std::fs::remove_dir_all(&dir);
                let out = run_reference(
                    "yolo_ultralytics.py",
                    &["model".as_ref(), v.as_ref(), dir.as_os_str()],
                );
                println!("{v}: {out}");
                (v, dir)
            })
            .collect()
    });
    &dirs[version]
}

fn json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("reference JSON")
}

#[test]
fn every_scale_has_ultralytics_names_shapes_and_parameter_count() {
    let dir = reference_dir("shapes");
    run_reference("yolo_ultralytics.py", &["shapes".as_ref(), dir.as_os_str()]);
    let theirs = json(&dir.join("shapes.json"));
    let models = theirs.as_object().expect("object");
    assert_eq!(models.len(), 15, "yolov8, yolo11 and yolo26, n to x");
    for (name, expected) in models {
        let (version, scale) = Version::parse_model_name(name).expect("a model name");
        let vs = VarStore::new(Device::Cpu);
        let _model = Yolo::new(
            &vs.root(),
            YoloConfig {
                version,
                scale,
                num_classes: 80,
            },
        );
        let ours: HashMap<String, Vec<i64>> = vs
            .variables()
            .into_iter()
            .map(|(k, t)| (k, t.size()))
            .collect();
        let keys = expected["keys"].as_object().expect("keys");
        let mut missing: Vec<&String> = keys.keys().filter(|k| !ours.contains_key(*k)).collect();
        missing.sort();
        let mut extra: Vec<&String> = ours.keys().filter(|k| !keys.contains_key(*k)).collect();
        extra.sort();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{name}: missing {missing:?}, extra {extra:?}"
        );
        for (k, shape) in keys {
            let shape: Vec<i64> = serde_json::from_value(shape.clone()).expect("shape");
            assert_eq!(ours[k], shape, "{name}: {k}");
        }
        let params = expected["params"].as_i64().expect("params");
        assert_eq!(parameter_count(&vs), params, "{name}");
        println!("{name}: {} tensors, {params} parameters", ours.len());
    }
    assert_eq!(models["yolo11n"]["params"], 2_624_080);
    assert_eq!(models["yolo11x"]["params"], 56_966_176);
    assert_eq!(models["yolo26n"]["params"], 2_572_280);
    assert_eq!(models["yolo26x"]["params"], 58_993_368);

    // A YOLO checkpoint of another task is refused, naming what its last layer holds.
    let cls = dir.join("yolo11n-cls.pt");
    let sd = weights::read(&cls).expect("a readable checkpoint");
    let err = format!("{:#}", weights::shape_of(&sd, &cls).unwrap_err());
    assert!(
        err.contains("yolo11n-cls.pt") && err.contains("model.10.") && err.contains("neither"),
        "{err}"
    );
    let err = format!(
        "{:#}",
        ferrovis_detect::source::identify(&cls, None).unwrap_err()
    );
    assert!(err.contains("YOLO11"), "{err}");
}

#[test]
fn truncated_checkpoint_is_a_named_error() {
    let dir = model_case("yolo11n");
    let whole = std::fs::read(dir.join("yolo11n-2cls.pt")).expect("checkpoint");
    let cut = reference_dir("truncated.pt");
    std::fs::write(&cut, &whole[..whole.len() / 2]).expect("write");
    let err = match predict::load_model(&cut, Device::Cpu, false) {
        Ok(_) => panic!("half a checkpoint loaded"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("truncated.pt"), "{err}");
}

fn checkpoint_is_recognised(version: &str, expected: Version) {
    let dir = model_case(version);
    let path = dir.join(format!("{version}-2cls.pt"));
    let sd = weights::read(&path).expect("Ultralytics checkpoint");
    let shape = weights::shape_of(&sd, &path).expect("shape");
    assert_eq!(
        (shape.version, shape.scale.name, shape.num_classes),
        (expected, 'n', 2)
    );
    let source = ferrovis_detect::source::identify(&path, None).expect("identify");
    assert_eq!(source.arch, expected.prefix());
    // The class names an Ultralytics checkpoint carries on its model.
    let m = predict::load_model(&path, Device::Cpu, false).expect("load");
    assert_eq!(m.names, ["person", "bus"]);
}

#[test]
fn yolov8_checkpoint_is_recognised() {
    checkpoint_is_recognised("yolov8n", Version::V8);
}

#[test]
fn yolo11_checkpoint_is_recognised() {
    checkpoint_is_recognised("yolo11n", Version::V11);
}

#[test]
fn yolo26_checkpoint_is_recognised() {
    checkpoint_is_recognised("yolo26n", Version::V26);
}

fn iou(a: &[f64], b: &[f64]) -> f64 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)
}

fn predictions_match(version: &str, end2end: bool) {
    tch::set_num_threads(1);
    let dir = model_case(version);
    let m = predict::load_model(&dir.join(format!("{version}-2cls.pt")), Device::Cpu, true)
        .expect("load");
    let file = if end2end {
        "predict_end2end.json"
    } else {
        "predict.json"
    };
    let theirs = json(&dir.join(file));
    let nms = NmsConfig {
        conf: 0.1,
        end2end,
        ..NmsConfig::predict()
    };
    let mut compared = 0;
    for (name, expected) in theirs.as_object().expect("object") {
        let path = dir.join("images").join(name);
        let image = read_rgb(&path).expect("image");
        let ours = predict::predict_image(&m, &path, &image, 320, &nms).expect("predict");
        let boxes: Vec<Vec<f64>> =
            serde_json::from_value(expected["boxes"].clone()).expect("boxes");
        let scores: Vec<f64> = serde_json::from_value(expected["scores"].clone()).expect("scores");
        let classes: Vec<usize> =
            serde_json::from_value(expected["classes"].clone()).expect("classes");
        assert_eq!(
            ours.detections.len(),
            scores.len(),
            "{version} {name}: ours {:?}, theirs {scores:?}",
            ours.detections
                .iter()
                .map(|d| d.confidence)
                .collect::<Vec<_>>()
        );
        for ((b, &s), &c) in boxes.iter().zip(&scores).zip(&classes) {
            let best = ours
                .detections
                .iter()
                .filter(|d| d.class == c)
                .map(|d| {
                    let xyxy: Vec<f64> = d.xyxy.iter().map(|&v| v as f64).collect();
                    (iou(&xyxy, b), xyxy, d.confidence as f64)
                })
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .unwrap_or_else(|| panic!("{version} {name}: no class {c} detection"));
            let (_, xyxy, score) = best;
            let db = xyxy
                .iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f64::max);
            assert!(
                (score - s).abs() <= 1e-4 && db <= 0.5,
                "{version} {name}: ours {xyxy:?} {score}, theirs {b:?} {s} (box Δ {db:.3} px)"
            );
            compared += 1;
        }
    }
    println!("{version} ({file}): {compared} detections equal Ultralytics' predictor's");
    assert!(compared >= 5, "only {compared} detections to compare");
}

#[test]
fn yolov8_predictions_match_ultralytics_predictor() {
    predictions_match("yolov8n", false);
}

#[test]
fn yolo11_predictions_match_ultralytics_predictor() {
    predictions_match("yolo11n", false);
}

/// YOLO26 by default: its one-to-many head through NMS, as Ultralytics 8.4 predicts.
#[test]
fn yolo26_predictions_match_ultralytics_predictor() {
    predictions_match("yolo26n", false);
}

/// YOLO26 with `nms=false`: the one-to-one head's top detections, no NMS.
#[test]
fn yolo26_end2end_predictions_match_ultralytics_predictor() {
    predictions_match("yolo26n", true);
}

fn training_step_loss_matches(version: &str) {
    tch::set_num_threads(1);
    let dir = model_case(version);
    let (v, scale) = Version::parse_model_name(version).expect("name");
    let vs = VarStore::new(Device::Cpu);
    let model = Yolo::new(
        &vs.root(),
        YoloConfig {
            version: v,
            scale,
            num_classes: 2,
        },
    );
    let sd = checkpoint::read(dir.join("step.pt")).expect("step.pt");
    checkpoint::load_into(&vs, &sd, &LoadOptions::default().strict(true)).expect("strict load");
    let batch = checkpoint::read(dir.join("step_batch.safetensors")).expect("batch");
    let img = batch.get("img").expect("img");
    let targets = batch.get("targets").expect("targets");
    let (raw, one2one) = model.forward_both(img, true);
    // At the first epoch (YOLO26: one-to-many weight 0.8); the items are YOLO26's one-to-one
    // branch's, as Ultralytics reports them.
    let loss = YoloLoss::for_model(&model, Default::default());
    let out = loss.compute(&raw, one2one.as_deref(), targets);
    let theirs = json(&dir.join("step_loss.json"));
    let items: Vec<f64> = serde_json::from_value(theirs["items"].clone()).expect("items");
    for ((name, ours), theirs) in loss.part_names().iter().zip(out.parts).zip(&items) {
        let rel = (ours - theirs).abs() / theirs.abs().max(1e-12);
        println!("{version} {name}: ours {ours:.6}, Ultralytics {theirs:.6} (relative {rel:.1e})");
        assert!(
            rel <= 1e-4,
            "{version} {name}: ours {ours}, theirs {theirs}"
        );
    }
}

#[test]
fn yolov8_training_step_loss_matches_ultralytics() {
    training_step_loss_matches("yolov8n");
}

#[test]
fn yolo11_training_step_loss_matches_ultralytics() {
    training_step_loss_matches("yolo11n");
}

#[test]
fn yolo26_training_step_loss_matches_ultralytics() {
    training_step_loss_matches("yolo26n");
}

fn val_map_matches(version: &str, tolerance: f64, least: f64) {
    tch::set_num_threads(1);
    let dir = model_case(version);
    let m = predict::load_model(&dir.join(format!("{version}-2cls.pt")), Device::Cpu, true)
        .expect("load");
    let data = dir.join("data.yaml");
    let (_, _, val_data) =
        ferrovis_detect::data::check_dataset(&data.to_string_lossy()).expect("data set");
    let cfg = DetectConfig {
        imgsz: 320,
        workers: 1,
        ..DetectConfig::default()
    };
    let loader = train::loader(&val_data, &cfg, false, 4).expect("loader");
    let out = val::evaluate(&m.model, &loader, &NmsConfig::val(), Device::Cpu, None).expect("val");
    let theirs = json(&dir.join("val.json"));
    let (map50, map) = (
        theirs["map50"].as_f64().expect("map50"),
        theirs["map50_95"].as_f64().expect("map50_95"),
    );
    println!(
        "{version}: mAP50 {:.4} (Ultralytics {map50:.4}), mAP50-95 {:.4} (Ultralytics {map:.4})",
        out.report.map50, out.report.map50_95
    );
    assert!(
        map50 > least,
        "the reference model should detect something: {map50}"
    );
    assert!((out.report.map50 - map50).abs() <= tolerance);
    assert!((out.report.map50_95 - map).abs() <= tolerance);
}

#[test]
fn yolov8_val_map_matches_ultralytics_validator() {
    val_map_matches("yolov8n", 0.005, 0.2);
}

#[test]
fn yolo11_val_map_matches_ultralytics_validator() {
    val_map_matches("yolo11n", 0.005, 0.2);
}

#[test]
fn yolo26_val_map_matches_ultralytics_validator() {
    val_map_matches("yolo26n", 0.01, 0.05);
}

/// `detect train model=<an Ultralytics checkpoint> freeze=10`, as an Ultralytics user
/// fine-tunes: all its tensors load, the backbone (model.0 … model.9) stays as it was, the run
/// records the version and still detects the photographs the model was trained on.
fn ultralytics_checkpoint_fine_tunes(version: &str, arch: &str, least: f64) {
    let dir = model_case(version);
    let ckpt = dir.join(format!("{version}-2cls.pt"));
    let project = reference_dir(&format!("fine-tune-{version}"));
    let _ = std::fs::remove_dir_all(&project);
    let args: Vec<String> = vec![
        format!("model={}", ckpt.display()),
        format!("data={}", dir.join("data.yaml").display()),
        format!("project={}", project.display()),
        "name=tuned".into(),
        "imgsz=320".into(),
        "batch=4".into(),
        "epochs=1".into(),
        "freeze=10".into(),
        "workers=1".into(),
        "device=cpu".into(),
    ];
    let cfg = DetectConfig::load(None, &args).expect("settings");
    let summary =
        train::train(&cfg, &ferrovis_core::engine::RunControl::quiet(), None).expect("fine-tuning");
    let meta = std::fs::read_to_string(summary.run.join("detect.json")).expect("detect.json");
    assert!(meta.contains(&format!("\"arch\": \"{arch}\"")), "{meta}");
    println!("{version} fine-tuned one epoch: mAP50 {:.3}", summary.map50);
    assert!(summary.map50 > least, "mAP50 {}", summary.map50);
    let before = weights::read(&ckpt).expect("checkpoint");
    let after = checkpoint::read(summary.run.join("weights/last.safetensors")).expect("last");
    for (name, frozen) in [
        ("model.0.conv.weight", true),
        ("model.9.cv2.conv.weight", true),
        ("model.10.m.0.attn.qkv.conv.weight", false),
        ("model.23.cv3.0.0.0.conv.weight", false),
    ] {
        let a = before.get(name).expect(name).to_kind(tch::Kind::Float);
        let b = after.get(name).expect(name);
        let d = (a - b).abs().max().double_value(&[]);
        assert_eq!(d == 0.0, frozen, "{name}: changed by {d}");
    }
}

#[test]
fn ultralytics_yolo11_checkpoint_fine_tunes() {
    ultralytics_checkpoint_fine_tunes("yolo11n", "yolo11", 0.2);
}

#[test]
fn ultralytics_yolo26_checkpoint_fine_tunes() {
    ultralytics_checkpoint_fine_tunes("yolo26n", "yolo26", 0.02);
}

/// `detect export` of an Ultralytics yolo11n checkpoint: the TorchScript file gives, in Python,
/// what the model gives here (Ultralytics' export layout, `(N, 4 + classes, anchors)`).
#[test]
fn yolo11_exports_to_torchscript() {
    let dir = model_case("yolo11n");
    let ts = reference_dir("yolo11n-export.pt");
    let (exported, size) = ferrovis_detect::yolo::export::export(
        &dir.join("yolo11n-2cls.pt"),
        &ts,
        ferrovis_app::args::ExportFormat::Torchscript,
        Some(320),
    )
    .expect("export");
    assert_eq!(size, 320);
    let input = tch::Tensor::rand([2, 3, 320, 320], (tch::Kind::Float, Device::Cpu));
    let output = tch::no_grad(|| exported.model.predict(&input));
    assert_eq!(output.size(), [2, 6, 40 * 40 + 20 * 20 + 10 * 10]);
    let diff = ferrovis_tests::torchscript_max_diff(&ts, &input, &output);
    println!("yolo11 export: max abs difference {diff:e}");
    // Box coordinates reach 320 px, where a float's step is 3e-5: 1e-3 is a few steps, the
    // order of summation differing between the two runtimes' thread splits.
    assert!(diff < 1e-3, "yolo11 export: {diff:e}");
}

/// `detect export --end2end` of an Ultralytics yolo26n checkpoint: the one-to-one head's
/// `(N, 300, 6)` rows, the same in Python as here; a YOLO11 has no such head and says so.
#[test]
fn yolo26_exports_its_end_to_end_output() {
    let dir = model_case("yolo26n");
    let ts = reference_dir("yolo26n-end2end.pt");
    let (exported, size) = ferrovis_detect::yolo::export::export_end2end(
        &dir.join("yolo26n-2cls.pt"),
        &ts,
        ferrovis_app::args::ExportFormat::Torchscript,
        Some(320),
    )
    .expect("export");
    assert_eq!(size, 320);
    let input = tch::Tensor::rand([2, 3, 320, 320], (tch::Kind::Float, Device::Cpu));
    let output = tch::no_grad(|| exported.model.predict_end2end(&input, 300)).expect("end2end");
    assert_eq!(output.size(), [2, 300, 6]);
    let diff = ferrovis_tests::torchscript_max_diff(&ts, &input, &output);
    println!("yolo26 end-to-end export: max abs difference {diff:e}");
    assert!(diff < 1e-3, "yolo26 export: {diff:e}");

    let v11 = model_case("yolo11n").join("yolo11n-2cls.pt");
    let err = match ferrovis_detect::yolo::export::export_end2end(
        &v11,
        &ts,
        ferrovis_app::args::ExportFormat::Torchscript,
        Some(320),
    ) {
        Ok(_) => panic!("a YOLO11 has no one-to-one head"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        err.contains("YOLO11") && err.contains("one-to-one"),
        "{err}"
    );
}

/// Two MuSGD steps on a yolo26n's parameters equal those of Ultralytics' own `MuSGD`
/// (`tests/reference/musgd.py`): the Muon step (momentum average, batched Newton–Schulz in
/// bfloat16) and the SGD step, with the same gradients.
#[test]
fn musgd_steps_equal_ultralytics() {
    use ferrovis_core::optim::{Optimizer, OptimizerKind, ParamGroup};
    tch::set_num_threads(1);
    let dir = reference_dir("musgd");
    run_reference("musgd.py", &[dir.as_os_str()]);
    let sd = checkpoint::read(dir.join("musgd.safetensors")).expect("reference");
    let vs = VarStore::new(Device::Cpu);
    let (version, scale) = Version::parse_model_name("yolo26n").expect("name");
    let _model = Yolo::new(
        &vs.root(),
        YoloConfig {
            version,
            scale,
            num_classes: 2,
        },
    );
    let mut muon = Vec::new();
    let mut plain = Vec::new();
    let mut vars: Vec<(String, tch::Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(_, t)| t.requires_grad())
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    tch::no_grad(|| {
        for (name, t) in &vars {
            let start = sd.get(&format!("start.{name}")).expect(name);
            t.shallow_clone().copy_(start);
        }
    });
    for (name, t) in vars.iter() {
        if matches!(t.dim(), 2 | 4) {
            muon.push((name.clone(), t.shallow_clone()));
        } else {
            plain.push((name.clone(), t.shallow_clone()));
        }
    }
    assert_eq!(
        muon.len() + plain.len(),
        sd.names().filter(|n| n.starts_with("end.")).count()
    );
    let groups = vec![
        ParamGroup {
            name: "muon".into(),
            params: muon,
            lr_scale: 1.0,
            weight_decay: 5e-4,
        },
        ParamGroup {
            name: "plain".into(),
            params: plain,
            lr_scale: 1.0,
            weight_decay: 0.0,
        },
    ];
    let kind = OptimizerKind::MuSgd {
        momentum: 0.9,
        nesterov: true,
        muon: 0.2,
        sgd: 1.0,
    };
    let mut opt = Optimizer::new(kind, groups, 0.01);
    for step in 1..=2 {
        opt.zero_grad().expect("zero_grad");
        // Each gradient exactly the reference's: d(Σ p·g)/dp = g.
        let loss = vars
            .iter()
            .map(|(name, t)| {
                let g = sd.get(&format!("grad{step}.{name}")).expect(name);
                (t * g).sum(tch::Kind::Float)
            })
            .fold(
                tch::Tensor::zeros([], (tch::Kind::Float, Device::Cpu)),
                |a, b| a + b,
            );
        loss.backward();
        opt.step().expect("step");
    }
    let mut worst = (0.0f64, String::new());
    for (name, t) in &vars {
        let theirs = sd.get(&format!("end.{name}")).expect(name);
        let scale = theirs.abs().max().double_value(&[]).max(1e-12);
        let rel = (t - theirs).abs().max().double_value(&[]) / scale;
        if rel > worst.0 {
            worst = (rel, name.clone());
        }
    }
    println!(
        "MuSGD, two steps: largest relative difference {:.2e} ({})",
        worst.0, worst.1
    );
    assert!(worst.0 <= 1e-6, "{}: {:e}", worst.1, worst.0);
}
