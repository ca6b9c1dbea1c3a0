//! SSD through the `detect` workflow on a tiny synthetic set (CPU): SSDlite320-MobileNetV3 with
//! the recipe's defaults, the run folder YOLOv8 writes with torchvision's SSD loss names, `val`
//! reproducing the final validation, `predict` writing YOLOv8's outputs, fine-tuning from the
//! run's weights with 3 trainable backbone layers leaving the frozen ones bit-identical, and a
//! stopped run resuming to the end; one SSD300-VGG16 epoch writes the same run folder.

use ferrovis_core::engine::RunControl;
use ferrovis_detect::config::DetectConfig;
use ferrovis_detect::source::identify;
use ferrovis_detect::torchvision::train;

use crate::detect_support::{
    check_tv_run_folder, stops_then_resumes, tensor, tv_config, tv_shapes,
};

/// SSD's two losses, as torchvision names them.
const LOSSES: [&str; 2] = ["bbox_regression", "classification"];

#[test]
fn ssdlite_train_val_predict_and_fine_tune() {
    let _serial = crate::serial();
    let dir = tempfile::tempdir().unwrap();
    let data = tv_shapes(dir.path(), 8);
    let project = dir.path().join("runs");
    let arch = "ssdlite320_mobilenet_v3_large";
    let cfg = tv_config(arch, &data, &project, "scratch", &[]);
    // The recipe where nothing else is said (batch given above).
    assert_eq!(
        (cfg.optimizer.as_str(), cfg.lr0, cfg.weight_decay),
        ("SGD", 0.006, 0.00004)
    );
    let scratch = train::train(&cfg, &RunControl::quiet(), None).unwrap();
    let run = &scratch.run;
    check_tv_run_folder(run, arch, 2, &LOSSES);

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

    // predict writes YOLOv8's outputs, boxes inside the 96-pixel images.
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
    assert!(preds.iter().any(|p| !p.detections.is_empty()));
    for p in &preds {
        for d in &p.detections {
            let [x1, y1, x2, y2] = d.xyxy;
            assert!(0.0 <= x1 && x1 <= x2 && x2 <= 96.0 && 0.0 <= y1 && y1 <= y2 && y2 <= 96.0);
        }
    }

    // Fine-tuning from the run's weights with 3 trainable layers: MobileNetV3's modules before
    // `features.7` stay bit-identical, the last convolution and the head train.
    let best = run.join("weights/best.safetensors");
    let model = format!("model={}", best.display());
    let tuned = train::train(
        &tv_config(
            arch,
            &data,
            &project,
            "tuned",
            &[&model, "epochs=1", "trainable_backbone_layers=3"],
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
        "backbone.features.0.0.0.weight",
        "backbone.features.0.6.block.0.0.weight",
        "backbone.features.0.6.block.0.1.running_mean",
    ] {
        assert_eq!(
            diff(frozen),
            0.0,
            "{frozen} changed with 3 trainable layers"
        );
    }
    for trained in [
        "backbone.features.1.3.0.weight",
        "backbone.extra.0.0.0.weight",
        "head.classification_head.module_list.0.1.weight",
    ] {
        assert!(diff(trained) > 0.0, "{trained} did not train");
    }
}

#[test]
fn a_stopped_ssd_run_resumes_to_the_end() {
    let _serial = crate::serial();
    let dir = tempfile::tempdir().unwrap();
    let data = tv_shapes(dir.path(), 8);
    let cfg = tv_config(
        "ssdlite320_mobilenet_v3_large",
        &data,
        &dir.path().join("runs"),
        "r",
        &[],
    );
    stops_then_resumes(|control, resume| train::train(&cfg, control, resume).unwrap());
}

#[test]
fn ssd300_trains_an_epoch_into_a_complete_run_folder() {
    let _serial = crate::serial();
    let dir = tempfile::tempdir().unwrap();
    let data = tv_shapes(dir.path(), 2);
    let arch = "ssd300_vgg16";
    let cfg = tv_config(
        arch,
        &data,
        &dir.path().join("runs"),
        "vgg",
        &["epochs=1", "batch=2"],
    );
    assert_eq!((cfg.lr0, cfg.weight_decay), (0.002, 0.0005));
    let summary = train::train(&cfg, &RunControl::quiet(), None).unwrap();
    check_tv_run_folder(&summary.run, arch, 1, &LOSSES);
}
