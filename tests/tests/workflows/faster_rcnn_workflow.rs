//! Faster R-CNN through the `detect` workflow on a tiny synthetic set (CPU, 96-pixel inputs):
//! torchvision's recipe by default, the run folder YOLOv8 writes with torchvision's loss names,
//! `val` reproducing the final validation, `predict` writing YOLOv8's outputs, fine-tuning from
//! a run's weights with torchvision's 3 trainable backbone layers leaving the rest bit-identical,
//! and a stopped run resuming to the end.

use std::path::Path;

use ferrovis_core::engine::RunControl;
use ferrovis_detect::config::DetectConfig;
use ferrovis_detect::source::identify;
use ferrovis_detect::torchvision::train;

use crate::detect_support::{
    check_tv_run_folder, stops_then_resumes, tensor, tv_config, tv_shapes,
};

/// MobileNetV3-Large 320 FPN on the 96-pixel images as they are.
fn config(data: &Path, project: &Path, name: &str, extra: &[&str]) -> DetectConfig {
    let mut settings = vec!["min_size=96", "max_size=96"];
    settings.extend_from_slice(extra);
    tv_config(
        "fasterrcnn_mobilenet_v3_large_320_fpn",
        data,
        project,
        name,
        &settings,
    )
}

#[test]
fn faster_rcnn_train_val_predict_and_fine_tune() {
    let _serial = crate::serial();
    let dir = tempfile::tempdir().unwrap();
    let data = tv_shapes(dir.path(), 8);
    let project = dir.path().join("runs");
    let cfg = config(&data, &project, "scratch", &[]);
    // torchvision's recipe where nothing else is said.
    assert_eq!(
        (cfg.optimizer.as_str(), cfg.lr0, cfg.momentum),
        ("SGD", 0.005, 0.9)
    );
    let scratch = train::train(&cfg, &RunControl::quiet(), None).unwrap();
    let run = &scratch.run;
    check_tv_run_folder(
        run,
        "fasterrcnn_mobilenet_v3_large_320_fpn",
        2,
        &[
            "loss_classifier",
            "loss_box_reg",
            "loss_objectness",
            "loss_rpn_box_reg",
        ],
    );

    // val from the run folder reproduces the final validation.
    let out = train::val(
        &identify(run, None).unwrap(),
        &cfg,
        Some(dir.path().join("val")),
    )
    .unwrap();
    assert_eq!(out.report.images, 4);
    assert!(
        (out.coco.ap50 - scratch.map50).abs() < 1e-9,
        "{} vs {}",
        out.coco.ap50,
        scratch.map50
    );
    assert!(dir.path().join("val/metrics.json").is_file());

    // predict writes YOLOv8's outputs.
    let images = data.parent().unwrap().join("images/val");
    let pred_dir = dir.path().join("pred");
    let low = DetectConfig {
        conf: Some(0.0),
        ..cfg.clone()
    };
    let preds = train::predict(
        &identify(run, None).unwrap(),
        &low,
        std::slice::from_ref(&images),
        &pred_dir,
        &Default::default(),
        None,
    )
    .unwrap();
    assert_eq!(preds.len(), 4);
    assert!(pred_dir.join("0000.png").is_file() && pred_dir.join("labels/0000.txt").is_file());
    assert!(pred_dir.join("predictions.json").is_file());
    for p in &preds {
        for d in &p.detections {
            let [x1, y1, x2, y2] = d.xyxy;
            assert!(0.0 <= x1 && x1 <= x2 && x2 <= 96.0 && 0.0 <= y1 && y1 <= y2 && y2 <= 96.0);
        }
    }

    // Fine-tuning from the run's weights: 3 of 6 backbone stages train (torchvision's default
    // with weights), the others stay bit-identical.
    let best = run.join("weights/best.safetensors");
    let model = format!("model={}", best.display());
    let tuned = train::train(
        &config(&data, &project, "tuned", &[&model, "epochs=1"]),
        &RunControl::quiet(),
        None,
    )
    .unwrap();
    let tuned_w = tuned.run.join("weights/last.safetensors");
    let diff = |name: &str| {
        (tensor(&best, name) - tensor(&tuned_w, name))
            .abs()
            .max()
            .double_value(&[])
    };
    for frozen in [
        "backbone.body.0.0.weight",
        "backbone.body.6.block.0.0.weight",
    ] {
        assert_eq!(
            diff(frozen),
            0.0,
            "{frozen} changed with 3 trainable backbone layers"
        );
    }
    for trained in [
        "backbone.body.16.0.weight",
        "roi_heads.box_predictor.cls_score.weight",
    ] {
        assert!(diff(trained) > 0.0, "{trained} did not train");
    }
}

#[test]
fn a_stopped_faster_rcnn_run_resumes_to_the_end() {
    let _serial = crate::serial();
    let dir = tempfile::tempdir().unwrap();
    let data = tv_shapes(dir.path(), 8);
    let cfg = config(&data, &dir.path().join("runs"), "r", &[]);
    stops_then_resumes(|control, resume| train::train(&cfg, control, resume).unwrap());
}
