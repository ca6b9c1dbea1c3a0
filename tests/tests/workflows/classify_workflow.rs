//! `classify` end to end on a tiny synthetic set (random initialisation, 32 px, CPU): every mode
//! trains what it should and nothing else, the run folder holds what eval needs, and eval
//! reproduces the best epoch's accuracy.

use std::collections::HashMap;

use ferrovis_classify::config::{ClassifyConfig, Mode};
use ferrovis_classify::{eval, predict, train};
use ferrovis_core::checkpoint;
use ferrovis_core::engine::{RunControl, RunDir};
use ferrovis_data::synthetic::{self, ShapesConfig};

/// ResNet18 at 32 px on the synthetic shapes in `data`, runs under `project`.
pub(crate) fn config(
    data: &std::path::Path,
    project: &std::path::Path,
    mode: Mode,
) -> ClassifyConfig {
    let mut cfg = ClassifyConfig::default();
    cfg.data.root = data.display().to_string();
    cfg.data.image_size = 32;
    cfg.data.batch_size = 8;
    cfg.data.workers = 2;
    cfg.model.arch = "resnet18".into();
    cfg.train.mode = mode;
    cfg.train.epochs = 2;
    cfg.train.head_epochs = 1;
    cfg.train.partial_stages = 2;
    cfg.train.device = "cpu".into();
    cfg.train.project = project.display().to_string();
    cfg
}

fn weights(path: &std::path::Path) -> HashMap<String, Vec<f32>> {
    let sd = checkpoint::read(path).unwrap();
    sd.iter()
        .map(|(k, t)| {
            let values = Vec::<f32>::try_from(t.to_kind(tch::Kind::Float).flatten(0, -1));
            (k.to_string(), values.unwrap())
        })
        .collect()
}

#[test]
fn every_mode_trains_the_right_layers_and_eval_reads_the_run() {
    let _serial = crate::serial();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("shapes");
    let shapes = ShapesConfig {
        image_size: 40,
        train: 6,
        val: 3,
        classes: ["circle", "square", "star"].map(String::from).to_vec(),
        ..Default::default()
    };
    synthetic::write_classification(&data, &shapes).unwrap();
    let project = dir.path().join("runs");

    // A starting point every mode shares: save the random initialisation once.
    let init_cfg = config(&data, &project, Mode::FeatureExtract);
    tch::manual_seed(0);
    let clf =
        ferrovis_classify::model::Classifier::new("resnet18", 3, 0.2, tch::Device::Cpu).unwrap();
    let init = dir.path().join("init.safetensors");
    clf.vs.save(&init).unwrap();
    drop(clf);
    let before = weights(&init);

    for mode in [
        Mode::FeatureExtract,
        Mode::FineTune,
        Mode::Partial,
        Mode::Gradual,
    ] {
        let mut cfg = init_cfg.clone();
        cfg.train.mode = mode;
        cfg.model.weights = init.display().to_string();
        let summary = train::train(&cfg, &RunControl::quiet(), None).unwrap();
        let run = &summary.run;
        assert_eq!(run.file_name().unwrap(), train::mode_name(mode));
        for file in [
            "classify.json",
            "config.toml",
            "results.csv",
            "weights/best.safetensors",
            "weights/last.safetensors",
            "checkpoint.safetensors",
        ] {
            assert!(run.join(file).is_file(), "{mode:?}: {file} missing");
        }
        let after = weights(&run.join("weights/last.safetensors"));
        let moved = |prefix: &str| {
            after
                .iter()
                .filter(|(k, _)| {
                    k.starts_with(prefix) && !k.contains("running_") && !k.contains("num_batches")
                })
                .any(|(k, v)| before[k] != *v)
        };
        let stem_moved = moved("conv1.");
        let layer4_moved = moved("layer4.");
        let head_moved = moved("fc.");
        assert!(head_moved, "{mode:?}: the head must train");
        match mode {
            Mode::FeatureExtract => assert!(
                !stem_moved && !layer4_moved,
                "feature extraction moved the backbone"
            ),
            Mode::FineTune | Mode::Gradual => assert!(
                stem_moved && layer4_moved,
                "{mode:?} left the backbone frozen"
            ),
            Mode::Partial => assert!(
                layer4_moved && !stem_moved,
                "partial(2) = layer4 + head only"
            ),
            Mode::Knn => unreachable!("a k-NN run has no head (classify_zoo.rs tests it)"),
        }
        // Frozen BatchNorm keeps its statistics in feature extraction.
        let stats_moved = after
            .iter()
            .filter(|(k, _)| k.contains("running_mean"))
            .any(|(k, v)| before[k] != *v);
        assert_eq!(
            stats_moved,
            mode != Mode::FeatureExtract,
            "{mode:?}: BN statistics"
        );

        // eval reads the run folder alone and reproduces the best epoch's accuracy.
        let result = eval::eval_run(
            &RunDir::new(run),
            &RunDir::new(run).best(),
            None,
            tch::Device::Cpu,
            Some(&dir.path().join("eval")),
        )
        .unwrap();
        assert_eq!(result.images, 9);
        assert!(
            (result.report.accuracy - summary.best_accuracy).abs() < 1e-9,
            "{mode:?}: eval {} vs best {}",
            result.report.accuracy,
            summary.best_accuracy
        );
        assert!(dir.path().join("eval/confusion_matrix.png").is_file());
    }
    // predict from a run folder agrees with eval, image by image.
    let run = project.join("fine-tune");
    let (clf, classes, transform) =
        predict::load(&predict::ModelSource::run(&run), tch::Device::Cpu).unwrap();
    assert_eq!(classes, ["circle", "square", "star"]);
    let val = ferrovis_data::sources::expand_images(
        &[data.join("val/star"), data.join("val/circle/0000.png")],
        "test",
    )
    .unwrap();
    assert_eq!(val.len(), 4);
    let preds = predict::predict(&clf, &classes, &transform, &val, 2, tch::Device::Cpu).unwrap();
    for p in &preds {
        assert_eq!(p.top.len(), 2);
        assert!(p.top[0].1 >= p.top[1].1);
        let total: f64 = p.top.iter().map(|t| t.1).sum();
        assert!(total <= 1.0 + 1e-6);
    }
    // export: Python's torch.jit.load runs the traced model with the same outputs.
    let ts = dir.path().join("model.pt");
    let size =
        ferrovis_classify::export::export(&run, &ts, ferrovis_app::args::ExportFormat::Torchscript)
            .unwrap();
    let input = tch::Tensor::randn([3, 3, size, size], (tch::Kind::Float, tch::Device::Cpu));
    let output = tch::no_grad(|| clf.model.forward_t(&input, false));
    assert_eq!(output.size(), [3, 3]);
    let diff = ferrovis_tests::torchscript_max_diff(&ts, &input, &output);
    println!("classify export: max abs difference {diff:e}");
    assert!(diff < 1e-5, "classify export: {diff:e}");

    // eval also takes a plain checkpoint + arch + labelled folder (preprocessing: the
    // architecture's defaults, as a checkpoint carries none); the head must fit the folders.
    let direct = eval::eval_weights(
        &run.join("weights/best.safetensors"),
        "resnet18",
        &data.join("val"),
        tch::Device::Cpu,
        &dir.path().join("eval-direct"),
    )
    .unwrap();
    assert_eq!(direct.images, 9);
    assert!(dir.path().join("eval-direct/val.json").is_file());
    let two = dir.path().join("two-classes");
    for class in ["circle", "square"] {
        std::fs::create_dir_all(two.join(class)).unwrap();
        std::fs::copy(
            data.join(format!("val/{class}/0000.png")),
            two.join(format!("{class}/0000.png")),
        )
        .unwrap();
    }
    let err = eval::eval_weights(
        &run.join("weights/best.safetensors"),
        "resnet18",
        &two,
        tch::Device::Cpu,
        &dir.path().join("eval-direct"),
    )
    .unwrap_err();
    assert!(format!("{err:#}").contains("has 3 outputs but"), "{err:#}");

    // A plain 1000-class checkpoint predicts with ImageNet's class names.
    let imagenet =
        ferrovis_classify::model::Classifier::new("resnet18", 1000, 0.0, tch::Device::Cpu).unwrap();
    let raw = dir.path().join("resnet18-imagenet-like.safetensors");
    imagenet.vs.save(&raw).unwrap();
    let (clf, classes, transform) = predict::load(
        &predict::ModelSource::Weights {
            path: raw.clone(),
            arch: "resnet18".into(),
        },
        tch::Device::Cpu,
    )
    .unwrap();
    assert_eq!(
        (classes.len(), classes[0].as_str(), classes[285].as_str()),
        (1000, "tench", "Egyptian cat")
    );
    assert_eq!(transform.size, 224);
    let p = predict::predict(&clf, &classes, &transform, &val[..1], 5, tch::Device::Cpu).unwrap();
    assert_eq!(p[0].top.len(), 5);

    // Without augmentation, feature extraction trains the head on features computed once.
    let mut cfg = init_cfg.clone();
    cfg.data.augment = false;
    cfg.model.weights = init.display().to_string();
    cfg.train.name = "cached".into();
    let summary = train::train(&cfg, &RunControl::quiet(), None).unwrap();
    assert_eq!(summary.path, "cached features");

    // Mixup and CutMix (one or the other per batch), label smoothing and class balancing run.
    let mut cfg = init_cfg.clone();
    cfg.model.weights = init.display().to_string();
    cfg.train.mode = Mode::FineTune;
    cfg.train.epochs = 1;
    cfg.train.mixup = 0.2;
    cfg.train.cutmix = 1.0;
    cfg.train.label_smoothing = 0.1;
    cfg.data.balance_classes = true;
    cfg.train.name = "mixed".into();
    let summary = train::train(&cfg, &RunControl::quiet(), None).unwrap();
    let csv = std::fs::read_to_string(summary.run.join("results.csv")).unwrap();
    let loss: f64 = csv
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!(loss.is_finite() && loss > 0.0, "{csv}");
}

#[test]
fn bad_configuration_and_data_are_named() {
    let _serial = crate::serial();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), dir.path(), Mode::FineTune);
    cfg.data.root = dir.path().join("nowhere").display().to_string();
    let err = train::train(&cfg, &RunControl::default(), None).unwrap_err();
    assert!(format!("{err:#}").contains("nowhere"), "{err:#}");
    cfg.data.root = String::new();
    let err = train::train(&cfg, &RunControl::default(), None).unwrap_err();
    assert!(format!("{err:#}").contains("data.root"), "{err:#}");
    let err =
        ferrovis_core::config::load::<ClassifyConfig>(None, &["train.epoch=3".into()]).unwrap_err();
    assert!(
        err.to_string().contains("did you mean \"train.epochs\""),
        "{err}"
    );
}
