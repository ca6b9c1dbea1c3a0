//! Backbones built by ferrovis load torchvision's real `state_dict()` by name (strict) and give
//! torchvision's outputs: logits and every feature level in eval mode, feature levels, first-conv
//! gradients and BatchNorm running statistics in training mode. The plain architectures are
//! `zoo_parity`'s; here are the variants ferrovis' options build (dilated ResNet-50 and
//! MobileNetV3, SSDlite's reduced tail), frozen BatchNorm and EfficientNet-Lite.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ferrovis_core::backbone::{self, Backbone, BackboneOptions, MobileNetV3, MobileNetV3Config};
use ferrovis_core::checkpoint::{self, LoadOptions, StateDict};
use ferrovis_tests::run_reference;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

fn references() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("backbone-references");
        let _ = std::fs::remove_dir_all(&dir);
        run_reference("backbones.py", &["all".as_ref(), dir.as_os_str()]);
        dir
    })
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    (a - b).abs().max().double_value(&[])
}

/// Max abs difference ≤ `tol` (the issue's criterion), printed for the record.
fn check_close(what: &str, ours: &Tensor, theirs: &Tensor, tol: f64) {
    let d = max_abs_diff(ours, theirs);
    println!("{what}: max abs difference {d:.3e}");
    assert!(d <= tol, "{what}: max abs difference {d:e} > {tol:e}");
}

fn build(name: &str, output_stride: i64) -> (VarStore, Box<dyn Backbone>) {
    let vs = VarStore::new(Device::Cpu);
    let opts = BackboneOptions {
        output_stride,
        stochastic_depth: Some(0.0),
        ..Default::default()
    };
    // `<name>_reduced_tail`: torchvision's reduced_tail option (no name of its own there).
    let model: Box<dyn Backbone> = match name.strip_suffix("_reduced_tail") {
        Some(base) => {
            let mut cfg = MobileNetV3Config::by_name(base).unwrap();
            cfg.reduced_tail = true;
            Box::new(MobileNetV3::new(&vs.root(), &cfg, &opts))
        }
        None => backbone::create(name, &vs.root(), &opts).unwrap(),
    };
    (vs, model)
}

fn parity(case: &str, name: &str, output_stride: i64) {
    // The reference ran single-threaded; the same thread count picks the same kernels and
    // summation order, so float32 differences stay at rounding level.
    tch::set_num_threads(1);
    let dir = references().join(case);
    let sd = checkpoint::read(dir.join("weights.pth")).unwrap();
    let expected: StateDict = checkpoint::read(dir.join("expected.safetensors")).unwrap();
    let (vs, model) = build(name, output_stride);
    let report = checkpoint::load_into(&vs, &sd, &LoadOptions::default().strict(true)).unwrap();
    assert_eq!(report.loaded.len(), sd.len(), "{case}: {report}");

    let x = expected.get("input").unwrap();
    // Float64: the same weights and input in double precision agree to rounding error, which
    // shows the architecture is identical, not merely close.
    let (mut vs64, model64) = build(name, output_stride);
    checkpoint::load_into(&vs64, &sd, &LoadOptions::default().strict(true)).unwrap();
    vs64.double();
    tch::no_grad(|| {
        let x64 = x.to_kind(Kind::Double);
        check_close(
            &format!("{case} logits (float64)"),
            &model64.forward_t(&x64, false),
            expected.get("logits64").unwrap(),
            1e-10,
        );
        for (i, f) in model64.features(&x64, false).iter().enumerate() {
            check_close(
                &format!("{case} feat{i} (float64)"),
                f,
                expected.get(&format!("feat64_{i}")).unwrap(),
                1e-10,
            );
        }
    });

    tch::no_grad(|| {
        check_close(
            &format!("{case} logits"),
            &model.forward_t(x, false),
            expected.get("logits").unwrap(),
            1e-4,
        );
        let feats = model.features(x, false);
        let info = model.feature_info();
        assert_eq!(feats.len(), 5, "{case}: levels");
        for (i, (f, fi)) in feats.iter().zip(&info).enumerate() {
            check_close(
                &format!("{case} feat{i}"),
                f,
                expected.get(&format!("feat{i}")).unwrap(),
                1e-4,
            );
            assert_eq!(f.size()[1], fi.channels, "{case} feat{i} channels");
            assert_eq!(96 / f.size()[2], fi.stride, "{case} feat{i} stride");
        }
    });

    // Training mode: batch statistics, running-stat update, and the first conv's gradient.
    let feats = model.features(x, true);
    for (i, f) in feats.iter().enumerate() {
        check_close(
            &format!("{case} train_feat{i}"),
            f,
            expected.get(&format!("train_feat{i}")).unwrap(),
            1e-4,
        );
    }
    let loss = feats
        .iter()
        .map(|f| f.square().mean(Kind::Float))
        .fold(Tensor::from(0.0f32), |a, b| a + b);
    loss.backward();
    let vars = vs.variables();
    for (key, want) in expected.iter() {
        if let Some(param) = key.strip_prefix("grad:") {
            let grad = vars[param].grad();
            let rel = max_abs_diff(&grad, want) / want.abs().max().double_value(&[]);
            assert!(
                rel <= 1e-4,
                "{case}: gradient of {param} differs by {rel:e} (relative)"
            );
        } else if let Some(buffer) = key.strip_prefix("after:") {
            check_close(
                &format!("{case} {buffer} after one training step"),
                &vars[buffer],
                want,
                1e-5,
            );
        }
    }
}

#[test]
fn resnet18_matches_torchvision() {
    parity("resnet18", "resnet18", 32);
}

#[test]
fn resnet50_dilated_output_stride_8_matches_torchvision() {
    parity("resnet50_os8", "resnet50", 8);
}

#[test]
fn mobilenet_v3_large_dilated_output_stride_16_matches_torchvision() {
    parity("mobilenet_v3_large_os16", "mobilenet_v3_large", 16);
}

#[test]
fn mobilenet_v3_large_reduced_tail_matches_torchvision() {
    parity(
        "mobilenet_v3_large_reduced_tail",
        "mobilenet_v3_large_reduced_tail",
        32,
    );
}

/// The issue's figures, beside the check against torchvision's own count: large 5,483,032,
/// small 2,542,856.
#[test]
fn mobilenet_v3_parameter_counts() {
    for (name, want) in [
        ("mobilenet_v3_large", 5_483_032),
        ("mobilenet_v3_small", 2_542_856),
    ] {
        let (vs, _model) = build(name, 32);
        assert_eq!(trainable_parameters(&vs), want, "{name}");
    }
}

fn trainable_parameters(vs: &VarStore) -> i64 {
    vs.trainable_variables()
        .iter()
        .map(|t| t.numel() as i64)
        .sum()
}

#[test]
fn efficientnet_lite0_has_the_reference_layout() {
    let (vs, model) = build("efficientnet_lite0", 32);
    // From the published efficientnet-lite0-57934424.pth: 296 tensors, 4,652,008 parameters.
    assert_eq!(trainable_parameters(&vs), 4_652_008);
    assert_eq!(vs.variables().len(), 296);
    let vars = vs.variables();
    assert_eq!(vars["_conv_stem.weight"].size(), [32, 3, 3, 3]);
    assert_eq!(
        vars["_blocks.15._project_conv.weight"].size(),
        [320, 1152, 1, 1]
    );
    assert_eq!(vars["_fc.weight"].size(), [1000, 1280]);
    let x = Tensor::randn([1, 3, 224, 224], (Kind::Float, Device::Cpu));
    let feats = tch::no_grad(|| model.features(&x, false));
    let shapes: Vec<Vec<i64>> = feats.iter().map(Tensor::size).collect();
    assert_eq!(
        shapes,
        [
            [1, 16, 112, 112],
            [1, 24, 56, 56],
            [1, 40, 28, 28],
            [1, 112, 14, 14],
            [1, 320, 7, 7]
        ]
    );
    assert_eq!(
        tch::no_grad(|| model.forward_t(&x, false)).size(),
        [1, 1000]
    );
}

#[test]
fn head_pattern_drops_exactly_the_classifier() {
    let dir = references().join("resnet18");
    let sd = checkpoint::read(dir.join("weights.pth")).unwrap();
    let vs = VarStore::new(Device::Cpu);
    let model = backbone::create("resnet18", &vs.root(), &BackboneOptions::classes(2)).unwrap();
    assert_eq!(model.head_pattern(), r"^(fc\.)");
    let opts = LoadOptions::default().skip(&model.head_pattern()).unwrap();
    let report = checkpoint::load_into(&vs, &sd, &opts).unwrap();
    assert_eq!(report.skipped, ["fc.weight", "fc.bias"]);
    assert_eq!(report.missing, ["fc.bias", "fc.weight"]);
    assert!(report.unexpected.is_empty() && report.mismatched.is_empty());
}

/// The folder `frozen_bn.py` writes, run once for both frozen-BatchNorm tests.
fn frozen_bn_reference() -> &'static Path {
    static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("frozen-bn-reference");
        let _ = std::fs::remove_dir_all(&dir);
        run_reference("frozen_bn.py", &[dir.as_os_str()]);
        dir
    })
}

/// torchvision's detection backbones: ResNet-50 with FrozenBatchNorm2d (eps 1e-5, and 0.0 as the
/// COCO v1 Faster R-CNN weights need), loaded from an ordinary BatchNorm checkpoint whose
/// `num_batches_tracked` buffers have nowhere to go (skipped, as torchvision drops them).
#[test]
fn resnet50_with_frozen_batch_norm_matches_torchvision() {
    use ferrovis_core::nn::NormLayer;
    tch::set_num_threads(1);
    let dir = frozen_bn_reference();
    let counts: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("counts.json")).unwrap()).unwrap();
    for (eps, tag) in [(1e-5, "1e-5"), (0.0, "0")] {
        let vs = VarStore::new(Device::Cpu);
        let opts = BackboneOptions {
            norm: NormLayer::Frozen { eps },
            ..Default::default()
        };
        let model = backbone::create("resnet50", &vs.root(), &opts).unwrap();
        let report = checkpoint::load_file(
            &vs,
            dir.join("resnet50_bn.pth"),
            &LoadOptions::default().strict(true),
        )
        .unwrap();
        // 53 BatchNorms, each with a step counter the frozen ones do not keep.
        assert_eq!(report.skipped.len(), 53, "{report}");
        assert!(report
            .skipped
            .iter()
            .all(|n| n.ends_with(".num_batches_tracked")));
        assert_eq!(
            trainable_parameters(&vs),
            counts[tag].as_i64().unwrap(),
            "eps {tag}: parameters (frozen statistics are buffers)"
        );
        let expected = checkpoint::read(dir.join(format!("frozen_{tag}.safetensors"))).unwrap();
        let x = expected.get("input").unwrap();
        tch::no_grad(|| {
            // Training mode changes nothing: the statistics are frozen.
            check_close(
                &format!("frozen eps {tag} logits (train mode)"),
                &model.forward_t(x, true),
                expected.get("logits").unwrap(),
                1e-4,
            );
            // Uncalibrated statistics let activations grow through 50 layers: judge the last
            // level relative to its size.
            let feats = model.features(x, false);
            let theirs = expected.get("layer4").unwrap();
            let scale = theirs.abs().max().double_value(&[]);
            let rel = max_abs_diff(&feats[4], theirs) / scale;
            println!("frozen eps {tag} layer4: max abs difference / max |value| {rel:.1e} (max {scale:.1})");
            assert!(rel <= 1e-5, "frozen eps {tag} layer4: {rel:e} relative");
        });
    }
}

/// MobileNetV3-Large as `fasterrcnn_mobilenet_v3_large_fpn` builds it (FrozenBatchNorm2d with
/// its default eps 1e-5, not MobileNetV3's 0.001), and as SSDlite does (BatchNorm momentum 0.03):
/// the same logits and running statistics as torchvision from the same checkpoint.
#[test]
fn mobilenet_v3_with_frozen_or_custom_batch_norm_matches_torchvision() {
    use ferrovis_core::nn::NormLayer;
    tch::set_num_threads(1);
    let dir = frozen_bn_reference();
    let counts: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("counts.json")).unwrap()).unwrap();
    let build = |norm| {
        let vs = VarStore::new(Device::Cpu);
        let opts = BackboneOptions {
            norm,
            ..Default::default()
        };
        let model = backbone::create("mobilenet_v3_large", &vs.root(), &opts).unwrap();
        let report = checkpoint::load_file(
            &vs,
            dir.join("mobilenet_v3_large_bn.pth"),
            &LoadOptions::default().strict(true),
        )
        .unwrap();
        (vs, model, report)
    };
    let (vs, model, report) = build(NormLayer::Frozen { eps: 1e-5 });
    assert!(report
        .skipped
        .iter()
        .all(|n| n.ends_with(".num_batches_tracked")));
    // 46 BatchNorms, each with a step counter the frozen ones do not keep.
    assert_eq!(report.skipped.len(), 46, "{report}");
    assert_eq!(
        trainable_parameters(&vs),
        counts["mnv3_frozen"].as_i64().unwrap(),
        "parameters (frozen statistics are buffers)"
    );
    let expected = checkpoint::read(dir.join("mnv3_frozen.safetensors")).unwrap();
    let x = expected.get("input").unwrap();
    tch::no_grad(|| {
        check_close(
            "MobileNetV3 frozen eps 1e-5 logits",
            &model.forward_t(x, false),
            expected.get("logits").unwrap(),
            1e-4,
        );
        // Training mode changes no feature (the classifier's dropout aside): frozen statistics.
        let (train, eval) = (model.features(x, true), model.features(x, false));
        assert_eq!(
            max_abs_diff(&train[4], &eval[4]),
            0.0,
            "features in training mode"
        );
    });
    let (vs, model, _) = build(NormLayer::BatchNormWith {
        eps: 0.001,
        momentum: 0.03,
    });
    let _ = tch::no_grad(|| model.forward_t(x, true));
    let stats = checkpoint::read(dir.join("mnv3_momentum.safetensors")).unwrap();
    let vars = vs.variables();
    for name in ["running_mean", "running_var"] {
        let ours = &vars[&format!("features.0.1.{name}")];
        let d = max_abs_diff(ours, stats.get(name).unwrap());
        println!("MobileNetV3 BatchNorm momentum 0.03, features.0.1.{name}: max |Δ| {d:.1e}");
        assert!(d <= 1e-5, "{name}: {d:e}");
    }
}
