//! `make validate`: RetinaNet (torchvision's `retinanet_resnet50_fpn`, its recipe) trained on the
//! first 64 real coco128 images (a `.txt` list, for CI's time: all 128 took 13 minutes) at 320 px
//! on the CPU, 2 epochs: the training loss (focal classification +
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
    let coco = shared.join("datasets/coco128");
    let mut images: Vec<_> = std::fs::read_dir(coco.join("images/train2017"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    images.sort();
    std::fs::create_dir_all(&out).unwrap();
    let list = out.join("first64.txt");
    let lines: Vec<String> = images[..64]
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    std::fs::write(&list, lines.join("\n") + "\n").unwrap();
    let original = std::fs::read_to_string(coco.join("coco128.yaml")).unwrap();
    let names = original
        .split_once("names:")
        .map(|(_, n)| format!("names:{n}"))
        .unwrap();
    let data = out.join("coco64.yaml");
    std::fs::write(
        &data,
        format!(
            "path: {}\ntrain: {}\nval: {}\n{names}",
            coco.display(),
            list.display(),
            list.display()
        ),
    )
    .unwrap();
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
        "coco128's first 64, retinanet_resnet50_fpn at 320 px, {label}: loss {:.3} -> {:.3} over {} epochs, \
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
