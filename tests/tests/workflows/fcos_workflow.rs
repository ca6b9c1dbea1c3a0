//! FCOS through the `detect` workflow on a tiny synthetic set (CPU, 128-pixel inputs): two epochs
//! from random weights, stopped after the first and resumed, write the run folder with
//! torchvision's three FCOS loss names and the recipe's defaults, `val` reproduces the final validation, `predict` keeps boxes inside the
//! images, and fine-tuning from the run's weights with 3 trainable backbone layers leaves the
//! frozen ones bit-identical while the head trains.

use ferrovis_core::engine::RunControl;
use ferrovis_detect::config::DetectConfig;
use ferrovis_detect::source::identify;
use ferrovis_detect::torchvision::train;

use crate::detect_support::{
    check_tv_run_folder, stops_then_resumes, tensor, tv_config, tv_shapes,
};

/// FCOS's three losses, as torchvision names them.
const LOSSES: [&str; 3] = ["classification", "bbox_regression", "bbox_ctrness"];

#[test]
fn fcos_trains_validates_predicts_and_fine_tunes() {
    let _serial = crate::serial();
    let dir = tempfile::tempdir().unwrap();
    let data = tv_shapes(dir.path(), 2);
    let project = dir.path().join("runs");
    let arch = "fcos_resnet50_fpn";
    let small = ["epochs=2", "batch=2", "min_size=128", "max_size=128"];
    let cfg = tv_config(arch, &data, &project, "scratch", &small);
    assert_eq!(
        (cfg.optimizer.as_str(), cfg.lr0, cfg.weight_decay),
        ("SGD", 0.0025, 0.0001)
    );
    let scratch =
        stops_then_resumes(|control, resume| train::train(&cfg, control, resume).unwrap());
    let run = &scratch.run;
    check_tv_run_folder(run, arch, 2, &LOSSES);

    let source = identify(run, None).unwrap();
    let out = train::val(&source, &cfg, Some(dir.path().join("val"))).unwrap();
    assert_eq!(out.report.images, 4);
    assert!(
        (out.coco.ap50 - scratch.map50).abs() < 1e-9,
        "{} vs {}",
        out.coco.ap50,
        scratch.map50
    );

    let images = data.parent().unwrap().join("images/val");
    let low = DetectConfig {
        conf: Some(0.0),
        ..cfg.clone()
    };
    let preds = train::predict(
        &source,
        &low,
        std::slice::from_ref(&images),
        &dir.path().join("pred"),
        &Default::default(),
        None,
    )
    .unwrap();
    assert_eq!(preds.len(), 4);
    for p in &preds {
        for d in &p.detections {
            let [x1, y1, x2, y2] = d.xyxy;
            assert!(0.0 <= x1 && x1 <= x2 && x2 <= 96.0 && 0.0 <= y1 && y1 <= y2 && y2 <= 96.0);
        }
    }

    // Fine-tuning from the run's weights with 3 trainable layers: conv1 and layer1 stay
    // bit-identical, layer4 and the head train.
    let best = run.join("weights/best.safetensors");
    let model = format!("model={}", best.display());
    let mut args = small.to_vec();
    args.extend([model.as_str(), "trainable_backbone_layers=3"]);
    let tuned = train::train(
        &tv_config(arch, &data, &project, "tuned", &args),
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
        "backbone.body.conv1.weight",
        "backbone.body.layer1.0.conv1.weight",
    ] {
        assert_eq!(
            diff(frozen),
            0.0,
            "{frozen} changed with 3 trainable layers"
        );
    }
    for trained in [
        "backbone.body.layer4.2.conv3.weight",
        "head.classification_head.cls_logits.weight",
        "head.regression_head.bbox_ctrness.weight",
    ] {
        assert!(diff(trained) > 0.0, "{trained} did not train");
    }
}
