//! RetinaNet through the `detect` workflow on a tiny synthetic set (CPU, 128-pixel inputs): v1
//! from scratch with the recipe's defaults, the run folder YOLOv8 writes with torchvision's
//! RetinaNet loss names, `val` reproducing the final validation, `predict` writing YOLOv8's
//! outputs, fine-tuning from the run's weights with 3 trainable backbone layers leaving `conv1`
//! and `layer1` bit-identical; v2, stopped after its first epoch and resumed, finishes the same
//! run folder.

use ferrovis_core::engine::RunControl;
use ferrovis_detect::config::DetectConfig;
use ferrovis_detect::source::identify;
use ferrovis_detect::torchvision::train;

use crate::detect_support::{
    check_tv_run_folder, stops_then_resumes, tensor, tv_config, tv_shapes,
};

/// RetinaNet's two losses, as torchvision names them.
const LOSSES: [&str; 2] = ["classification", "bbox_regression"];

/// Small inputs: the shapes are 96 pixels, RetinaNet's default would resize them to 800.
const SMALL: [&str; 3] = ["min_size=128", "max_size=128", "batch=2"];

#[test]
fn retinanet_train_val_predict_and_fine_tune() {
    let _serial = crate::serial();
    let dir = tempfile::tempdir().unwrap();
    let data = tv_shapes(dir.path(), 4);
    let project = dir.path().join("runs");
    let arch = "retinanet_resnet50_fpn";
    let cfg = tv_config(arch, &data, &project, "scratch", &SMALL);
    // The recipe where nothing else is said: half Faster R-CNN's tutorial rate.
    assert_eq!(
        (cfg.optimizer.as_str(), cfg.lr0, cfg.weight_decay),
        ("SGD", 0.0025, 0.0005)
    );
    let scratch = train::train(&cfg, &RunControl::quiet(), None).unwrap();
    let run = &scratch.run;
    check_tv_run_folder(run, arch, 2, &LOSSES);

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
    assert!(pred_dir.join("labels/0000.txt").is_file());
    for p in &preds {
        for d in &p.detections {
            let [x1, y1, x2, y2] = d.xyxy;
            assert!(0.0 <= x1 && x1 <= x2 && x2 <= 96.0 && 0.0 <= y1 && y1 <= y2 && y2 <= 96.0);
        }
    }

    // Fine-tuning from the run's weights (FrozenBatchNorm2d, as torchvision builds v1 from
    // weights) with 3 trainable layers.
    let best = run.join("weights/best.safetensors");
    let model = format!("model={}", best.display());
    let tuned = train::train(
        &tv_config(
            arch,
            &data,
            &project,
            "tuned",
            &[
                &model,
                "epochs=1",
                "trainable_backbone_layers=3",
                SMALL[0],
                SMALL[1],
                SMALL[2],
            ],
        ),
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
        "backbone.body.layer2.0.bn1.running_mean",
    ] {
        assert_eq!(diff(frozen), 0.0, "{frozen} changed");
    }
    for trained in [
        "backbone.body.layer4.2.conv3.weight",
        "backbone.fpn.extra_blocks.p6.weight",
        "head.classification_head.cls_logits.weight",
        "head.regression_head.conv.3.0.weight",
    ] {
        assert!(diff(trained) > 0.0, "{trained} did not train");
    }
}

#[test]
fn a_stopped_retinanet_v2_run_resumes_into_a_complete_run_folder() {
    let _serial = crate::serial();
    let dir = tempfile::tempdir().unwrap();
    let data = tv_shapes(dir.path(), 2);
    let arch = "retinanet_resnet50_fpn_v2";
    let cfg = tv_config(arch, &data, &dir.path().join("runs"), "v2", &SMALL);
    let summary =
        stops_then_resumes(|control, resume| train::train(&cfg, control, resume).unwrap());
    check_tv_run_folder(&summary.run, arch, 2, &LOSSES);
}
