//! `make validate`: RetinaNet (torchvision's `retinanet_resnet50_fpn`, its recipe) trained on the
//! real coco128 images at 320 px on the CPU, 2 epochs: the training loss (focal classification +
//! L1 box regression) falls from the first epoch to the last, and the mAP50 is printed (coco128 is
//! too small, and the run too short, for a target). The backbone starts from torchvision's
//! ImageNet ResNet-50 (`resnet50-0676ba61.pth`, `weights_backbone`'s default, conv1 and layer1
//! frozen as torchvision does) when `../shared/weights` holds it; `../shared` ships no ResNet-50,
//! so otherwise every layer trains from random weights, and the test says which it ran. Kept in
//! `target/tmp/validate-retinanet`.

use std::path::Path;

use ferrovis_core::engine::RunControl;
use ferrovis_detect::config::DetectConfig;
use ferrovis_detect::torchvision::train;
use ferrovis_tests::{results_column_sums, shared_dir};

#[test]
#[ignore = "needs ../shared (make validate)"]
fn validate_retinanet_coco128() {
    let shared = shared_dir();
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("validate-retinanet");
    let _ = std::fs::remove_dir_all(&out);
    let data = shared.join("datasets/coco128/coco128.yaml");
    let imagenet = shared.join("weights/resnet50-0676ba61.pth");
    let (label, start) = if imagenet.is_file() {
        (
            "ImageNet ResNet-50, fine-tuned",
            imagenet.display().to_string(),
        )
    } else {
        (
            "random initialisation (no resnet50-0676ba61.pth in ../shared/weights)",
            "none".into(),
        )
    };
    let args = vec![
        "arch=retinanet_resnet50_fpn".to_string(),
        format!("data={}", data.display()),
        format!("project={}", out.display()),
        "name=retinanet".into(),
        format!("model={start}"),
        "epochs=2".into(),
        "min_size=320".into(),
        "max_size=320".into(),
        "batch=4".into(),
        "device=cpu".into(),
    ];
    let cfg = DetectConfig::load(None, &args).unwrap();
    let t = std::time::Instant::now();
    let summary = train::train(&cfg, &RunControl::quiet(), None).unwrap();
    let secs = t.elapsed().as_secs_f64();
    let loss = results_column_sums(
        &summary.run.join("results.csv"),
        &["train/classification", "train/bbox_regression"],
    );
    println!(
        "coco128, retinanet_resnet50_fpn at 320 px, {label}: loss {:.3} -> {:.3} over {} epochs, \
         mAP50 {:.4}, mAP50-95 {:.4}, {secs:.0} s",
        loss[0],
        loss[loss.len() - 1],
        loss.len(),
        summary.map50,
        summary.map50_95
    );
    assert_eq!(loss.len(), 2, "{loss:?}");
    assert!(
        loss[1] < loss[0],
        "the training loss did not fall: {loss:?}"
    );
    assert!(summary.map50.is_finite() && summary.map50 >= 0.0);
    for f in ["PR_curve.png", "weights/best.safetensors", "metrics.json"] {
        assert!(summary.run.join(f).is_file(), "{f}");
    }
}
