//! `detect` end to end on a tiny synthetic set (64 px, CPU): training writes Ultralytics' run
//! folder, `freeze=10` leaves the backbone untouched, a stopped run resumes, val reads the run,
//! predict writes drawn images, labels and JSON in original pixels, and layout mistakes get
//! messages that say what was searched.

use std::path::Path;

use ferrovis_core::checkpoint;
use ferrovis_core::engine::RunControl;
use ferrovis_data::synthetic::{self, ShapesConfig};
use ferrovis_detect::config::DetectConfig;
use ferrovis_detect::yolo::postprocess::NmsConfig;
use ferrovis_detect::yolo::{predict, train, val};
use tch::Device;

fn shapes(dir: &Path) -> std::path::PathBuf {
    let cfg = ShapesConfig {
        image_size: 64,
        train: 16,
        val: 6,
        classes: ["circle", "square", "star"].map(String::from).to_vec(),
        max_objects: 3,
        ..Default::default()
    };
    synthetic::write_detection(&dir.join("shapes"), &cfg).unwrap()
}

fn config(data: &Path, project: &Path, name: &str, extra: &[&str]) -> DetectConfig {
    let mut args: Vec<String> = vec![
        format!("data={}", data.display()),
        format!("project={}", project.display()),
        format!("name={name}"),
        "imgsz=64".into(),
        "batch=8".into(),
        "nbs=8".into(),
        "epochs=2".into(),
        "device=cpu".into(),
        "close_mosaic=1".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    DetectConfig::load(None, &args).unwrap()
}

fn tensor(path: &Path, name: &str) -> tch::Tensor {
    checkpoint::read(path)
        .unwrap()
        .get(name)
        .unwrap()
        .shallow_clone()
}

#[test]
fn train_val_predict_on_a_run_folder() {
    let _serial = crate::serial();
    let dir = tempfile::tempdir().unwrap();
    let data = shapes(dir.path());
    let project = dir.path().join("runs");

    // From scratch, then fine-tuned from its weights with the backbone frozen.
    let scratch = train::train(
        &config(&data, &project, "scratch", &[]),
        &RunControl::quiet(),
        None,
    )
    .unwrap();
    let run = &scratch.run;
    let results = std::fs::read_to_string(run.join("results.csv")).unwrap();
    let header = results.lines().next().unwrap();
    for col in [
        "train/box_loss",
        "train/cls_loss",
        "train/dfl_loss",
        "metrics/precision(B)",
        "metrics/recall(B)",
        "metrics/mAP50(B)",
        "metrics/mAP50-95(B)",
        "val/box_loss",
        "fitness",
    ] {
        assert!(
            header.split(',').any(|c| c == col),
            "{col} missing from {header}"
        );
    }
    assert_eq!(results.lines().count(), 3, "{results}");
    for f in [
        "weights/best.safetensors",
        "weights/last.safetensors",
        "detect.json",
        "config.toml",
        "PR_curve.png",
        "confusion_matrix.png",
        "metrics.json",
    ] {
        assert!(run.join(f).is_file(), "{f} missing");
    }

    let best = run.join("weights/best.safetensors");
    let model = format!("model={}", best.display());
    let tuned = train::train(
        &config(&data, &project, "tuned", &[&model, "freeze=10", "epochs=1"]),
        &RunControl::quiet(),
        None,
    )
    .unwrap();
    let tuned_w = tuned.run.join("weights/last.safetensors");
    for frozen in [
        "model.0.conv.weight",
        "model.9.cv2.conv.weight",
        "model.4.m.0.cv1.bn.weight",
    ] {
        let diff = (tensor(&best, frozen) - tensor(&tuned_w, frozen))
            .abs()
            .max();
        assert_eq!(
            diff.double_value(&[]),
            0.0,
            "{frozen} changed under freeze=10"
        );
    }
    let head = "model.22.cv3.0.2.weight";
    let diff = (tensor(&best, head) - tensor(&tuned_w, head)).abs().max();
    assert!(diff.double_value(&[]) > 0.0, "the head did not train");
    let dfl = tensor(&tuned_w, "model.22.dfl.conv.weight");
    assert_eq!(
        Vec::<f32>::try_from(dfl.flatten(0, -1)).unwrap(),
        (0..16).map(|v| v as f32).collect::<Vec<_>>()
    );

    // val from the run folder reproduces the final validation's numbers.
    let m = predict::load_model(run, Device::Cpu, false).unwrap();
    assert_eq!(m.names, ["circle", "square", "star"]);
    let cfg = config(&data, &project, "v", &[]);
    let (_, _, val_data) = ferrovis_detect::data::check_dataset(&cfg.data).unwrap();
    let loader = train::loader(&val_data, &cfg, false, 4).unwrap();
    let out = val::evaluate(&m.model, &loader, &NmsConfig::val(), Device::Cpu, None).unwrap();
    assert_eq!(out.report.images, 6);
    assert!((out.report.map50 - scratch.map50).abs() < 1e-9);

    // export: Python's torch.jit.load gives the same boxes and probabilities before NMS.
    let ts = dir.path().join("yolo.pt");
    let (exported, size) = ferrovis_detect::yolo::export::export(
        run,
        &ts,
        ferrovis_app::args::ExportFormat::Torchscript,
        None,
    )
    .unwrap();
    assert_eq!(size, 64);
    let input = tch::Tensor::rand([2, 3, 64, 64], (tch::Kind::Float, Device::Cpu));
    let output = tch::no_grad(|| exported.model.predict(&input));
    // 4 box coordinates + 3 classes, over 8×8 + 4×4 + 2×2 anchors.
    assert_eq!(output.size(), [2, 7, 84]);
    let diff = ferrovis_tests::torchscript_max_diff(&ts, &input, &output);
    println!("detect export: max abs difference {diff:e}");
    assert!(diff < 1e-5, "detect export: {diff:e}");

    // predict: drawn copies, txt and JSON in the original pixels.
    let images = data.parent().unwrap().join("images/val");
    let pred_dir = dir.path().join("pred");
    let nms = NmsConfig {
        conf: 0.0001,
        ..NmsConfig::predict()
    };
    let fused = predict::load_model(run, Device::Cpu, true).unwrap();
    let preds = predict::predict(
        &fused,
        std::slice::from_ref(&images),
        64,
        &nms,
        &pred_dir,
        &Default::default(),
        None,
    )
    .unwrap();
    assert_eq!(preds.len(), 6);
    assert!(pred_dir.join("0000.png").is_file() && pred_dir.join("labels/0000.txt").is_file());
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(pred_dir.join("predictions.json")).unwrap())
            .unwrap();
    assert_eq!(json.as_array().unwrap().len(), 6);
    let any = preds.iter().flat_map(|p| &p.detections).count();
    assert!(any > 0, "a threshold of 1e-4 should leave detections");
    for p in &preds {
        for d in &p.detections {
            let [x1, y1, x2, y2] = d.xyxy;
            assert!(0.0 <= x1 && x1 <= x2 && x2 <= 64.0 && 0.0 <= y1 && y1 <= y2 && y2 <= 64.0);
        }
    }
}

#[test]
fn a_stopped_run_resumes_to_the_end() {
    let _serial = crate::serial();
    let dir = tempfile::tempdir().unwrap();
    let data = shapes(dir.path());
    let project = dir.path().join("runs");
    let cfg = config(&data, &project, "r", &["mosaic=0"]);
    crate::detect_support::stops_then_resumes(|control, resume| {
        train::train(&cfg, control, resume).unwrap()
    });
}

#[test]
fn layout_mistakes_and_missing_weights_are_named() {
    let _serial = crate::serial();
    let dir = tempfile::tempdir().unwrap();
    let data = shapes(dir.path());
    // Labels moved away: Ultralytics users' most common error.
    let root = data.parent().unwrap();
    std::fs::rename(root.join("labels"), root.join("annotations")).unwrap();
    let err = format!(
        "{:#}",
        ferrovis_detect::data::check_dataset(&data.display().to_string()).unwrap_err()
    );
    assert!(
        err.contains("no labels found") && err.contains("labels/train"),
        "{err}"
    );

    // A path (not the release name, which would be fetched into the cache).
    let cfg = DetectConfig::load(None, &["model=missing/yolov8n.pt".into()]).unwrap();
    let err = match ferrovis_detect::yolo::weights::build(&cfg.model, 3, Device::Cpu) {
        Ok(_) => panic!("a missing checkpoint must be an error"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        err.contains("yolov8n.pt") && err.contains("model=yolov8n"),
        "{err}"
    );
    let err = format!(
        "{:#}",
        ferrovis_detect::data::check_dataset("").unwrap_err()
    );
    assert!(err.contains("data= is required"), "{err}");
}
