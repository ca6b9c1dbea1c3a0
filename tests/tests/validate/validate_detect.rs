//! `make validate`: YOLOv8n trained from scratch on the real coco128 images for 10 epochs at
//! 320 px on the CPU (no pretrained YOLOv8 weights exist on this machine, so no mAP target): the
//! full pipeline runs on real data, the training loss falls, validation reports its numbers, and
//! the model predicts on a real photo. Kept in `target/validate-detect` for a person to look at.

use ferrovis_core::engine::RunControl;
use ferrovis_detect::config::DetectConfig;
use ferrovis_detect::yolo::{predict, train};
use ferrovis_tests::shared_dir;

#[test]
#[ignore = "needs ../shared (make validate)"]
fn validate_detect_coco128_from_scratch() {
    let shared = shared_dir();
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("validate-detect");
    let _ = std::fs::remove_dir_all(&out);
    let yaml = shared.join("datasets/coco128/coco128.yaml");
    let args: Vec<String> = vec![
        format!("data={}", yaml.display()),
        format!("project={}", out.display()),
        "name=coco128".into(),
        "model=yolov8n".into(),
        "epochs=10".into(),
        "imgsz=320".into(),
        "batch=16".into(),
        // A short run: update every batch, no warmup (Ultralytics' lasts ≥ 100 iterations, longer
        // than these 80), and AdamW at a rate that moves in that time (auto picks 1.2e-4 here).
        "nbs=16".into(),
        "warmup_epochs=0".into(),
        "optimizer=AdamW".into(),
        "lr0=0.002".into(),
        "close_mosaic=3".into(),
        "device=cpu".into(),
        "cache=true".into(),
    ];
    let cfg = DetectConfig::load(None, &args).unwrap();
    let t = std::time::Instant::now();
    let summary = train::train(&cfg, &RunControl::quiet(), None).unwrap();
    let csv = std::fs::read_to_string(summary.run.join("results.csv")).unwrap();
    println!("{csv}");
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|c| *c == name).unwrap();
    let rows: Vec<Vec<f64>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    let loss = |r: &Vec<f64>| {
        r[col("train/box_loss")] + r[col("train/cls_loss")] + r[col("train/dfl_loss")]
    };
    let (first, last) = (loss(&rows[0]), loss(&rows[rows.len() - 1]));
    println!(
        "coco128, yolov8n from scratch, 10 epochs at 320: train loss {first:.3} -> {last:.3}, \
         mAP50 {:.4}, mAP50-95 {:.4}, {:.0} s",
        summary.map50,
        summary.map50_95,
        t.elapsed().as_secs_f64()
    );
    assert!(
        last < first,
        "training loss did not fall: {first} -> {last}"
    );
    assert!(summary.map50.is_finite() && summary.map50 >= 0.0);
    for f in [
        "PR_curve.png",
        "confusion_matrix.png",
        "results.png",
        "weights/best.safetensors",
    ] {
        assert!(summary.run.join(f).is_file(), "{f}");
    }

    // The trained model predicts on a real photo (drawn copy, labels, JSON).
    let m = predict::load_model(&summary.run, tch::Device::Cpu, true).unwrap();
    assert_eq!(m.names.len(), 80);
    let photos = shared.join("datasets/images/content");
    let preds = predict::predict(
        &m,
        &[photos],
        320,
        &ferrovis_detect::yolo::postprocess::NmsConfig::predict(),
        &out.join("predict"),
        &Default::default(),
        None,
    )
    .unwrap();
    assert!(!preds.is_empty());
    assert!(out.join("predict/predictions.json").is_file());
}
