//! `make validate`: segmentation on real data from ../shared.
//!
//! - ISBI 2012 membranes: a U-Net on the real MobileNetV2 ImageNet encoder, 25 training / 5
//!   validation images (the last five in file-name order, 25–29), pixel accuracy ≥ 0.90 and the
//!   membrane class's IoU reported.
//! - coco128 masks: DeepLabV3+ on the same encoder with the sparse COCO panoptic ids remapped to
//!   129 contiguous classes (`unlabeled` ignored): it trains, its training loss falls, its pixel
//!   accuracy beats always answering the most frequent class, and mIoU is reported.
//!
//! Runs and predicted overlays stay in `target/tmp/validate-segment` for a person to look at.

use std::path::{Path, PathBuf};

use ferrovis_core::engine::RunControl;
use ferrovis_segment::config::{InferMode, Mode, SegmentConfig};
use ferrovis_segment::infer::InferOptions;
use ferrovis_segment::model::Architecture;
use ferrovis_segment::{predict, train};
use ferrovis_tests::shared_dir;

fn out_dir(name: &str) -> PathBuf {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("validate-segment")
        .join(name);
    let _ = std::fs::remove_dir_all(&out);
    out
}

fn column(csv: &str, name: &str) -> Vec<f64> {
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let i = header.iter().position(|c| *c == name).unwrap();
    csv.lines()
        .skip(1)
        .map(|l| l.split(',').nth(i).unwrap().parse().unwrap())
        .collect()
}

fn mobilenet_weights(shared: &Path) -> String {
    shared
        .join("weights/mobilenet_v2-b0353104.pth")
        .display()
        .to_string()
}

#[test]
#[ignore = "needs ../shared (make validate)"]
fn validate_segment_isbi_unet_mobilenet_v2() {
    let shared = shared_dir();
    let out = out_dir("isbi");
    let isbi = shared.join("datasets/isbi2012_membrane/train");
    let mut cfg = SegmentConfig::default();
    cfg.data.images = isbi.join("image").display().to_string();
    cfg.data.masks = isbi.join("label").display().to_string();
    cfg.data.val_fraction = 5.0 / 30.0;
    // Binary masks: 0 = membrane, 255 = cell interior.
    cfg.data.names = vec!["membrane".into(), "cell".into()];
    cfg.data.image_size = 256;
    cfg.data.scale = (0.75, 1.25);
    cfg.data.batch_size = 4;
    cfg.model.arch = Architecture::Unet;
    cfg.model.encoder = "mobilenet_v2".into();
    cfg.model.weights = mobilenet_weights(&shared);
    cfg.train.mode = Mode::FineTune;
    cfg.train.optimizer = "adamw".into();
    cfg.train.lr = 2e-3;
    cfg.train.loss = "ce+dice".into();
    cfg.train.epochs = 20;
    cfg.train.device = "cpu".into();
    cfg.train.project = out.display().to_string();
    cfg.train.name = "unet-mobilenet_v2".into();
    let t = std::time::Instant::now();
    let summary = train::train(&cfg, &RunControl::quiet(), None).unwrap();
    let last = summary.last.as_ref().unwrap();
    println!("{}", last.table());
    let csv = std::fs::read_to_string(summary.run.join("results.csv")).unwrap();
    println!("{csv}");
    let val_first = last.names.iter().position(|n| n == "membrane").unwrap();
    let membrane_iou = last.report.per_class[val_first].iou.unwrap();
    println!(
        "ISBI 2012, U-Net MobileNetV2 (ImageNet), 20 epochs: pixel accuracy {:.4}, membrane IoU \
         {membrane_iou:.4}, mIoU {:.4}, best mIoU {:.4} (epoch {}), {:.0} s",
        last.report.pixel_accuracy,
        last.report.mean_iou,
        summary.best_miou.0,
        summary.best_miou.1,
        t.elapsed().as_secs_f64()
    );
    assert_eq!(last.images, 5);
    assert!(
        last.report.pixel_accuracy >= 0.90,
        "pixel accuracy {:.4} < 0.90",
        last.report.pixel_accuracy
    );

    // The best weights predict the validation images and a test image (no label) into masks,
    // colour masks and overlays.
    let loaded = predict::load_model(&summary.run, None, None, tch::Device::Cpu).unwrap();
    let opts = InferOptions {
        mode: InferMode::Whole,
        size: 512,
        flip: true,
        channels_last: false,
    };
    let sources = vec![
        isbi.join("image/29.png"),
        shared.join("datasets/isbi2012_membrane/test/0.png"),
    ];
    let preds = predict::predict(
        &loaded,
        &sources,
        &summary.run.join("predict"),
        &opts,
        tch::Device::Cpu,
    )
    .unwrap();
    assert_eq!(preds.len(), 2);
    assert!(summary.run.join("predict/29_overlay.jpg").is_file());
}

#[test]
#[ignore = "needs ../shared (make validate)"]
fn validate_segment_coco128_deeplabv3plus() {
    let shared = shared_dir();
    let out = out_dir("coco128");
    let mut cfg = SegmentConfig::default();
    cfg.data.yaml = shared
        .join("datasets/coco128/semantic.yaml")
        .display()
        .to_string();
    // The DeepLabV3+ decoder's two 3×3 256-channel convolutions run at stride 4 and dominate a
    // training step; 192-pixel crops and 3 epochs keep it to a few CPU minutes.
    cfg.data.image_size = 192;
    cfg.data.scale = (0.4, 0.8);
    cfg.data.batch_size = 8;
    cfg.data.infer = InferMode::Resize;
    cfg.data.infer_size = 320;
    cfg.model.arch = Architecture::Deeplabv3plus;
    cfg.model.encoder = "mobilenet_v2".into();
    cfg.model.output_stride = 16;
    cfg.model.weights = mobilenet_weights(&shared);
    cfg.train.mode = Mode::FineTune;
    cfg.train.optimizer = "adamw".into();
    cfg.train.lr = 2e-3;
    cfg.train.epochs = 3;
    cfg.train.device = "cpu".into();
    cfg.train.project = out.display().to_string();
    cfg.train.name = "deeplabv3plus-mobilenet_v2".into();
    let t = std::time::Instant::now();
    let summary = train::train(&cfg, &RunControl::quiet(), None).unwrap();
    let last = summary.last.as_ref().unwrap();
    println!("{}", last.table());
    let csv = std::fs::read_to_string(summary.run.join("results.csv")).unwrap();
    println!("{csv}");
    let loss = column(&csv, "train_loss");
    let most_frequent = last
        .report
        .per_class
        .iter()
        .map(|c| c.pixels)
        .max()
        .unwrap() as f64
        / last
            .report
            .per_class
            .iter()
            .map(|c| c.pixels)
            .sum::<u64>()
            .max(1) as f64;
    println!(
        "coco128 masks, DeepLabV3+ MobileNetV2 (ImageNet), {} classes, 3 epochs: train loss \
         {:.3} -> {:.3}, mIoU {:.4}, pixel accuracy {:.4} (most frequent class alone {:.4}), \
         {:.0} s",
        last.names.len(),
        loss[0],
        loss[loss.len() - 1],
        last.report.mean_iou,
        last.report.pixel_accuracy,
        most_frequent,
        t.elapsed().as_secs_f64()
    );
    assert_eq!(last.names.len(), 129);
    assert_eq!(last.images, 100);
    assert!(loss[loss.len() - 1] < loss[0], "training loss did not fall");
    assert!(
        last.report.pixel_accuracy > most_frequent,
        "pixel accuracy {:.4} does not beat the most frequent class ({most_frequent:.4})",
        last.report.pixel_accuracy
    );
    assert!(last.report.mean_iou > 0.0 && last.report.mean_iou.is_finite());

    let loaded = predict::load_model(&summary.run, None, None, tch::Device::Cpu).unwrap();
    let opts = InferOptions {
        mode: InferMode::Resize,
        size: 320,
        flip: false,
        channels_last: false,
    };
    let photos = shared.join("datasets/images/content");
    let preds = predict::predict(
        &loaded,
        &[photos],
        &summary.run.join("predict"),
        &opts,
        tch::Device::Cpu,
    )
    .unwrap();
    assert!(!preds.is_empty());
}
