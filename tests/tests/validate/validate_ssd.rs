//! `make validate`: SSDlite320 on MobileNetV2 on the real coco128 images with the `ssdlite`
//! augmentation, from the ImageNet backbone in `../shared/weights` (fine-tuned, torchvision's
//! default for SSDlite) against the same trained from random weights, 6 epochs each on the CPU:
//! both training losses fall and both mAP50s are printed (coco128 is too small, and the run too
//! short, for a target). Kept in `target/tmp/validate-ssd`.

use std::path::Path;

use ferrovis_core::engine::RunControl;
use ferrovis_detect::config::DetectConfig;
use ferrovis_detect::torchvision::train;
use ferrovis_tests::{results_column_sums, shared_dir};

fn losses(run: &Path) -> Vec<f64> {
    results_column_sums(
        &run.join("results.csv"),
        &["train/bbox_regression", "train/classification"],
    )
}

#[test]
#[ignore = "needs ../shared (make validate)"]
fn validate_ssdlite_coco128_mobilenet_v2() {
    let shared = shared_dir();
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("validate-ssd");
    let _ = std::fs::remove_dir_all(&out);
    let data = shared.join("datasets/coco128/coco128.yaml");
    let weights = shared.join("weights/mobilenet_v2-b0353104.pth");
    let run = |name: &str, model: String| {
        let args = vec![
            "arch=ssdlite320_mobilenet_v2".to_string(),
            format!("data={}", data.display()),
            format!("project={}", out.display()),
            format!("name={name}"),
            format!("model={model}"),
            "epochs=6".into(),
            "lr_step=5".into(),
            "device=cpu".into(),
        ];
        let cfg = DetectConfig::load(None, &args).unwrap();
        let t = std::time::Instant::now();
        let summary = train::train(&cfg, &RunControl::quiet(), None).unwrap();
        (summary, t.elapsed().as_secs_f64())
    };
    let (pretrained, secs) = run("pretrained", weights.display().to_string());
    let (scratch, scratch_secs) = run("scratch", "none".into());
    for (label, s, secs) in [
        ("ImageNet MobileNetV2, fine-tuned", &pretrained, secs),
        ("random initialisation", &scratch, scratch_secs),
    ] {
        let l = losses(&s.run);
        println!(
            "coco128, ssdlite320_mobilenet_v2, {label}: loss {:.3} -> {:.3}, mAP50 {:.4}, \
             mAP50-95 {:.4}, {secs:.0} s",
            l[0],
            l[l.len() - 1],
            s.map50,
            s.map50_95
        );
        assert!(
            l[l.len() - 1] < l[0],
            "{label}: the training loss did not fall: {l:?}"
        );
        assert!(s.map50.is_finite() && s.map50 >= 0.0);
        for f in ["PR_curve.png", "weights/best.safetensors", "metrics.json"] {
            assert!(s.run.join(f).is_file(), "{f}");
        }
    }
}
