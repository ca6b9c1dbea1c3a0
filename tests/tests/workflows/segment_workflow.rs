//! `segment` end to end on a tiny synthetic set (64 px, CPU): training writes the run folder and
//! its `segment.json`, feature extraction leaves the encoder untouched, DeepLabV3's auxiliary loss
//! trains, `val` rebuilds the run and scores what training scored, `predict` writes masks, colour
//! masks and overlays, FCN and LR-ASPP train, resume, validate, export and predict, and bad masks
//! get messages naming the file.

use std::path::Path;

use ferrovis_core::checkpoint;
use ferrovis_core::engine::RunDir;
use ferrovis_data::decode::{read_mask, write_mask};
use ferrovis_data::image::Mask;
use ferrovis_data::synthetic::{self, ShapesConfig};
use ferrovis_segment::config::{InferMode, Mode, SegmentConfig};
use ferrovis_segment::infer::InferOptions;
use ferrovis_segment::model::Architecture;
use ferrovis_segment::run::RunMeta;
use ferrovis_segment::{data, predict, train, val};
use tch::Device;

use ferrovis_core::engine::RunControl;

fn shapes(dir: &Path) -> std::path::PathBuf {
    let cfg = ShapesConfig {
        image_size: 64,
        train: 12,
        val: 4,
        classes: ["circle", "square"].map(String::from).to_vec(),
        max_objects: 2,
        ..Default::default()
    };
    synthetic::write_segmentation(&dir.join("shapes"), &cfg).unwrap()
}

/// A U-Net on ResNet18 for the synthetic masks in `data`, run `name` under `project`.
pub(crate) fn config(data: &Path, project: &Path, name: &str) -> SegmentConfig {
    let mut cfg = SegmentConfig::default();
    cfg.data.images = data.join("train/images").display().to_string();
    cfg.data.masks = data.join("train/masks").display().to_string();
    cfg.data.val_images = data.join("val/images").display().to_string();
    cfg.data.val_masks = data.join("val/masks").display().to_string();
    cfg.data.image_size = 64;
    cfg.data.batch_size = 4;
    cfg.model.encoder = "resnet18".into();
    cfg.train.epochs = 2;
    cfg.train.device = "cpu".into();
    cfg.train.project = project.display().to_string();
    cfg.train.name = name.into();
    cfg
}

/// `val` of the run folder `run` (rebuilt from it) on `cfg`'s validation images, whole images:
/// the mIoU.
fn val_miou(run: &Path, cfg: &SegmentConfig) -> f64 {
    let meta: RunMeta = RunDir::new(run).read_meta().unwrap();
    let loaded = predict::load_model(run, None, None, Device::Cpu).unwrap();
    let splits = data::splits(&cfg.data).unwrap();
    let loader = val::loader(&splits.val, meta.mean, meta.std, false, 0).unwrap();
    let opts = InferOptions {
        mode: InferMode::Whole,
        size: 64,
        flip: false,
        channels_last: false,
    };
    let e = val::evaluate(&loaded.model, &loader, &meta.names, &opts, Device::Cpu).unwrap();
    e.report.mean_iou
}

#[test]
fn train_val_predict_round_trip() {
    let _serial = crate::serial();
    let tmp = tempfile::tempdir().unwrap();
    let data = shapes(tmp.path());
    let project = tmp.path().join("runs");

    // Feature extraction: the encoder's weights (and BatchNorm statistics) do not move.
    let mut cfg = config(&data, &project, "unet");
    cfg.train.mode = Mode::FeatureExtract;
    cfg.train.loss = "ce+dice".into();
    let summary = train::train(&cfg, &RunControl::quiet(), None).unwrap();
    let run = &summary.run;
    for f in [
        "segment.json",
        "config.toml",
        "results.csv",
        "weights/best.safetensors",
        "weights/last.safetensors",
    ] {
        assert!(run.join(f).is_file(), "{f}");
    }
    let meta: RunMeta = RunDir::new(run).read_meta().unwrap();
    assert_eq!(meta.names, vec!["background", "circle", "square"]);
    assert_eq!(meta.model.num_classes, 3);

    // The encoder of the saved weights equals a fresh model's under the same seed.
    tch::manual_seed(cfg.train.seed as i64);
    let fresh = ferrovis_segment::model::SegmentationModel::new(&meta.model, Device::Cpu).unwrap();
    let saved = checkpoint::read(run.join("weights/last.safetensors")).unwrap();
    let vars = fresh.vs.variables();
    let mut encoder = 0;
    let mut decoder_moved = false;
    for (name, t) in saved.iter() {
        let same = vars[name].equal(&t.contiguous());
        if name.starts_with("encoder.") {
            assert!(same, "{name} changed under feature extraction");
            encoder += 1;
        } else if !same {
            decoder_moved = true;
        }
    }
    assert!(encoder > 100 && decoder_moved);

    // val rebuilds the run and scores the best weights exactly as the best epoch did.
    let loaded = predict::load_model(run, None, None, Device::Cpu).unwrap();
    let splits = data::splits(&cfg.data).unwrap();
    let loader = val::loader(&splits.val, meta.mean, meta.std, false, 0).unwrap();
    let opts = InferOptions {
        mode: InferMode::Whole,
        size: 64,
        flip: false,
        channels_last: false,
    };
    let e = val::evaluate(&loaded.model, &loader, &meta.names, &opts, Device::Cpu).unwrap();
    assert_eq!(e.images, 4);
    let (best, _) = summary.best_miou;
    assert!(
        (e.report.mean_iou - best).abs() < 1e-4,
        "val {} vs training's best {best}",
        e.report.mean_iou
    );

    // export: Python's torch.jit.load gives the same logits.
    let ts = tmp.path().join("segment.pt");
    let (exported, size) = ferrovis_segment::export::export(
        run,
        &ts,
        ferrovis_app::args::ExportFormat::Torchscript,
        Some(64),
    )
    .unwrap();
    assert_eq!(size, 64);
    let input = tch::Tensor::randn([2, 3, 64, 64], (tch::Kind::Float, Device::Cpu));
    let output = tch::no_grad(|| exported.model.forward_t(&input, false).out);
    assert_eq!(output.size(), [2, 3, 64, 64]);
    let diff = ferrovis_tests::torchscript_max_diff(&ts, &input, &output);
    println!("segment export: max abs difference {diff:e}");
    assert!(diff < 1e-5, "segment export: {diff:e}");

    // predict: a class-index mask of the image's size with known classes, colours, overlay.
    let image = data.join("val/images/0000.png");
    let out = tmp.path().join("pred");
    let flip = InferOptions {
        flip: true,
        mode: InferMode::Slide,
        size: 48,
        ..opts
    };
    let preds = predict::predict(&loaded, &[image], &out, &flip, Device::Cpu).unwrap();
    assert_eq!(preds.len(), 1);
    let mask = read_mask(&out.join("0000.png")).unwrap();
    assert_eq!((mask.width, mask.height), (64, 64));
    assert!(mask.data.iter().all(|&v| v < 3));
    for f in ["0000_color.png", "0000_overlay.jpg", "predictions.json"] {
        assert!(out.join(f).is_file(), "{f}");
    }
}

#[test]
fn deeplab_trains_with_its_auxiliary_loss_and_sgd_poly() {
    let _serial = crate::serial();
    let tmp = tempfile::tempdir().unwrap();
    let data = shapes(tmp.path());
    let mut cfg = config(&data, &tmp.path().join("runs"), "deeplab");
    cfg.model.arch = Architecture::Deeplabv3;
    cfg.train.epochs = 1;
    let summary = train::train(&cfg, &RunControl::quiet(), None).unwrap();
    let csv = std::fs::read_to_string(summary.run.join("results.csv")).unwrap();
    let row: Vec<f64> = csv
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .map(|v| v.parse().unwrap())
        .collect();
    assert!(row[1].is_finite() && row[1] > 0.0, "{csv}");
    let saved = checkpoint::read(summary.run.join("weights/last.safetensors")).unwrap();
    assert!(saved.get("aux_classifier.4.weight").is_some());
}

#[test]
fn bad_masks_and_settings_are_named() {
    let _serial = crate::serial();
    let tmp = tempfile::tempdir().unwrap();
    let data = shapes(tmp.path());
    // A mask holding class 9 when classes.txt lists three classes.
    let bad = data.join("train/masks/0003.png");
    write_mask(&bad, &Mask::filled(64, 64, 9)).unwrap();
    let cfg = config(&data, &tmp.path().join("runs"), "bad");
    let splits = data::splits(&cfg.data).unwrap();
    assert_eq!(splits.train.items.len(), 11);
    let report = splits.train.report.to_string();
    assert!(
        report.contains("0003.png") && report.contains("class index 9"),
        "{report}"
    );

    let mut cfg = config(&data, &tmp.path().join("runs"), "bad");
    cfg.train.loss = "ce+lovasz".into();
    let err = format!(
        "{:#}",
        train::train(&cfg, &RunControl::quiet(), None).unwrap_err()
    );
    assert!(
        err.contains("train.loss") && err.contains("lovasz"),
        "{err}"
    );

    let mut cfg = config(&data, &tmp.path().join("runs"), "bad");
    cfg.train.optimizer = "adamx".into();
    let err = format!(
        "{:#}",
        train::train(&cfg, &RunControl::quiet(), None).unwrap_err()
    );
    assert!(
        err.contains("train.optimizer") && err.contains("adamx"),
        "{err}"
    );

    let mut cfg = config(&data, &tmp.path().join("runs"), "bad");
    cfg.data.masks = tmp.path().join("nowhere").display().to_string();
    let err = format!("{:#}", data::splits(&cfg.data).unwrap_err());
    assert!(err.contains("nowhere"), "{err}");
}

/// FCN (its auxiliary head trained) on ResNet18 and LR-ASPP on MobileNetV3-Large through the
/// same run folder as the other architectures: a run stopped after its first epoch resumes to
/// the end, `val` rebuilds it and scores the best weights as training did, `export` traces the
/// main head for Python's `torch.jit.load`, `predict` writes masks.
#[test]
fn fcn_and_lraspp_train_resume_val_export_predict() {
    let _serial = crate::serial();
    let tmp = tempfile::tempdir().unwrap();
    let data = shapes(tmp.path());
    let rows = |run: &Path| {
        std::fs::read_to_string(run.join("results.csv"))
            .unwrap()
            .lines()
            .count()
    };
    for (arch, encoder) in [
        (Architecture::Fcn, "resnet18"),
        (Architecture::Lraspp, "mobilenet_v3_large"),
    ] {
        let mut cfg = config(&data, &tmp.path().join("runs"), &format!("{arch:?}"));
        cfg.model.arch = arch;
        cfg.model.encoder = encoder.into();
        let stop = RunControl {
            stop_after: Some(1),
            ..RunControl::quiet()
        };
        let first = train::train(&cfg, &stop, None).unwrap();
        assert_eq!(rows(&first.run), 2, "{arch:?}");
        let summary = train::train(&cfg, &RunControl::quiet(), Some(&first.run)).unwrap();
        assert_eq!(summary.run, first.run);
        assert_eq!(rows(&summary.run), 3, "{arch:?}");
        let saved = checkpoint::read(summary.run.join("weights/last.safetensors")).unwrap();
        assert_eq!(
            saved.get("aux_classifier.4.weight").is_some(),
            arch == Architecture::Fcn
        );

        let meta: RunMeta = RunDir::new(&summary.run).read_meta().unwrap();
        assert_eq!(
            (meta.model.arch, meta.model.encoder.as_str()),
            (arch, encoder)
        );
        let loaded = predict::load_model(&summary.run, None, None, Device::Cpu).unwrap();
        let splits = data::splits(&cfg.data).unwrap();
        let loader = val::loader(&splits.val, meta.mean, meta.std, false, 0).unwrap();
        let opts = InferOptions {
            mode: InferMode::Whole,
            size: 64,
            flip: false,
            channels_last: false,
        };
        let e = val::evaluate(&loaded.model, &loader, &meta.names, &opts, Device::Cpu).unwrap();
        let (best, _) = summary.best_miou;
        assert!(
            (e.report.mean_iou - best).abs() < 1e-4,
            "{arch:?}: val {} vs training's best {best}",
            e.report.mean_iou
        );

        let ts = tmp.path().join(format!("{arch:?}.pt"));
        let (exported, _) = ferrovis_segment::export::export(
            &summary.run,
            &ts,
            ferrovis_app::args::ExportFormat::Torchscript,
            Some(64),
        )
        .unwrap();
        let input = tch::Tensor::randn([2, 3, 64, 64], (tch::Kind::Float, Device::Cpu));
        let output = tch::no_grad(|| exported.model.forward_t(&input, false).out);
        assert_eq!(output.size(), [2, 3, 64, 64]);
        let diff = ferrovis_tests::torchscript_max_diff(&ts, &input, &output);
        println!("{arch:?} export: max abs difference {diff:e}");
        assert!(diff < 1e-5, "{arch:?} export: {diff:e}");

        let out = tmp.path().join(format!("{arch:?}-pred"));
        let image = data.join("val/images/0000.png");
        let preds = predict::predict(&loaded, &[image], &out, &opts, Device::Cpu).unwrap();
        assert_eq!(preds.len(), 1);
        let mask = read_mask(&out.join("0000.png")).unwrap();
        assert_eq!((mask.width, mask.height), (64, 64));
        assert!(mask.data.iter().all(|&v| v < 3));
    }
}

/// `segment train --arch linear --encoder dinov2_vits14 --mode feature-extract`: DINOv2's linear
/// probe on the cached `facebook/dinov2-small` (a seeded transformers checkpoint here, taken
/// without being named). The encoder does not move, the head does; the run records how the
/// source resizes its positional embedding, and `val` rebuilds the run to training's best mIoU.
#[test]
fn dinov2_linear_probe_trains_from_the_hub_and_validates() {
    let _serial = crate::serial();
    let tmp = tempfile::tempdir().unwrap();
    let data = shapes(tmp.path());
    let reference = tmp.path().join("dinov2");
    ferrovis_tests::run_reference(
        "dinov2.py",
        &[reference.as_os_str(), "dinov2-small".as_ref()],
    );
    let hf_cache = reference.join("hub");
    ferrovis_tests::with_offline_env(&[("HF_HUB_CACHE", &hf_cache)], || {
        let mut cfg = config(&data, &tmp.path().join("runs"), "probe");
        cfg.model.arch = Architecture::Linear;
        cfg.model.encoder = "dinov2_vits14".into();
        cfg.model.weights = String::new();
        cfg.train.mode = Mode::FeatureExtract;
        cfg.train.epochs = 2;
        let summary =
            train::train(&cfg, &RunControl::quiet(), None).unwrap_or_else(|e| panic!("{e:#}"));
        let meta: RunMeta = RunDir::new(&summary.run).read_meta().unwrap();
        assert_eq!(meta.model.arch, Architecture::Linear);
        assert_eq!(
            meta.model.build.pos_embed_resize,
            Some(ferrovis_core::backbone::PosEmbedResize::Size { antialias: false }),
            "transformers' resizing recorded"
        );
        // The saved encoder is the Hub's (q/k/v fused), the head trained.
        let saved = checkpoint::read(summary.run.join("weights/last.safetensors")).unwrap();
        let source = checkpoint::read(
            ferrovis_tests::offline_hub(&hf_cache)
                .hf_cached_path("facebook/dinov2-small", "model.safetensors"),
        )
        .unwrap();
        assert!(saved
            .get("backbone.blocks.3.mlp.fc1.weight")
            .unwrap()
            .equal(source.get("encoder.layer.3.mlp.fc1.weight").unwrap()));
        assert_eq!(
            saved.get("decode_head.conv_seg.weight").unwrap().size(),
            [3, 384, 1, 1]
        );

        let miou = val_miou(&summary.run, &cfg);
        let (best, _) = summary.best_miou;
        println!("DINOv2 linear probe: best mIoU {best:.3}, val {miou:.3}");
        assert!(
            (miou - best).abs() < 1e-4,
            "val {miou} vs training's best {best}"
        );
    });
}
