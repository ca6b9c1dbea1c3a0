//! FCOS (`fcos_resnet50_fpn`) against torchvision (`reference/fcos.py`): a seeded torchvision
//! model with randomised BatchNorm statistics and a calibrated head (scores spread as a trained
//! model's), saved with `torch.save`, loads strictly into ours; state-dict keys and parameters
//! equal torchvision's (372 and 32,322,720 with BatchNorm; 319 and 32,269,600 with
//! FrozenBatchNorm2d, the COCO checkpoint's `num_params`); the locations equal; eval-mode
//! detections on two images of different sizes equal torchvision's (labels, scores within 1e-5,
//! boxes within 1e-3 px); in training mode the matched locations equal, the three losses within
//! 1e-5 (relative) and the three predictors' gradients within 1e-4 (relative). An ImageNet
//! ResNet-50 loads as `weights_backbone` does, and a detection checkpoint into another class
//! count re-initialises only the class logits.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ferrovis_core::checkpoint::{self, LoadOptions, StateDict};
use ferrovis_core::freeze::parameter_counts;
use ferrovis_detect::torchvision::fcos::{Fcos, FcosConfig};
use ferrovis_detect::torchvision::targets::Target;
use ferrovis_detect::torchvision::transform::RcnnTransform;
use ferrovis_tests::write_reference;
use tch::nn::VarStore;
use tch::{Device, Kind};

use crate::detection_parity::{check_detections_up_to, max_diff};

const ARCH: &str = "fcos_resnet50_fpn";

fn reference() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        write_reference(
            "fcos.py",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("fcos-reference"),
        )
    })
}

fn counts() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(reference().join("counts.json")).unwrap())
        .unwrap()
}

/// FCOS for `classes` (with the background slot) at the reference's input size (256 / 400);
/// `pretrained`: FrozenBatchNorm2d in the ResNet, as torchvision builds it from weights.
fn build(classes: i64, pretrained: bool) -> (VarStore, Fcos) {
    let mut config = FcosConfig::by_name(ARCH, classes, pretrained).unwrap();
    config.transform = RcnnTransform::new(256, 400);
    let vs = VarStore::new(Device::Cpu);
    let model = Fcos::new(&vs.root(), &config).unwrap();
    (vs, model)
}

fn targets(expected: &StateDict) -> Vec<Target> {
    (0..2)
        .map(|i| Target {
            boxes: expected
                .get(&format!("target_boxes{i}"))
                .unwrap()
                .shallow_clone(),
            labels: expected
                .get(&format!("target_labels{i}"))
                .unwrap()
                .shallow_clone(),
        })
        .collect()
}

#[test]
fn fcos_detections_losses_and_counts_match_torchvision() {
    tch::set_num_threads(1);
    let counts = counts();
    let (vs, model) = build(91, false);
    let report = checkpoint::load_file(
        &vs,
        reference().join(format!("{ARCH}.pth")),
        &LoadOptions::default().strict(true),
    )
    .unwrap();
    println!("{ARCH}: {}", report.summary());
    let (_, params) = parameter_counts(&vs);
    let keys = vs.variables().len() as i64;
    println!("{ARCH}: {keys} state-dict keys, {params} parameters");
    assert_eq!(keys, counts[ARCH]["keys"].as_i64().unwrap(), "keys");
    assert_eq!(
        params,
        counts[ARCH]["params"].as_i64().unwrap(),
        "parameters"
    );

    let expected = checkpoint::read(reference().join(format!("{ARCH}.safetensors"))).unwrap();
    let images = [
        expected.get("image0").unwrap().shallow_clone(),
        expected.get("image1").unwrap().shallow_clone(),
    ];
    // The locations of the padded batch.
    let (batch, _) = model.config.transform.apply(&images, None, false).unwrap();
    let features = tch::no_grad(|| model.features(&batch.tensors, false)).unwrap();
    let (anchors, levels) = model.anchors(&batch, &features).unwrap();
    let theirs = expected.get("anchors0").unwrap();
    assert_eq!(anchors.size(), theirs.size(), "locations");
    assert_eq!(max_diff(&anchors, theirs), 0.0, "locations differ");
    println!(
        "{ARCH}: {} locations over levels {levels:?}",
        theirs.size()[0]
    );

    let dets = tch::no_grad(|| model.detect(&images)).unwrap();
    check_detections_up_to(ARCH, &dets, &expected, usize::MAX);

    // Training mode: the same matches, losses and gradients.
    let targets = targets(&expected);
    let (batch, resized) = model
        .config
        .transform
        .apply(&images, Some(&targets), true)
        .unwrap();
    let resized = resized.unwrap();
    let features = model.features(&batch.tensors, true).unwrap();
    let head = model.head_outputs(&features);
    let (anchors, levels) = model.anchors(&batch, &features).unwrap();
    let matched = model.match_targets(&anchors, &levels, &resized).unwrap();
    for (i, m) in matched.iter().enumerate() {
        let theirs = expected.get(&format!("matched{i}")).unwrap();
        let differ = m.ne_tensor(theirs).sum(Kind::Int64).int64_value(&[]);
        let positives = m.ge(0).sum(Kind::Int64).int64_value(&[]);
        println!("{ARCH} image {i}: {positives} positive locations, {differ} differ");
        assert!(
            positives > 0,
            "image {i}: no positives to test the losses on"
        );
        assert_eq!(differ, 0, "image {i}: matched locations");
    }
    let losses = model
        .compute_loss(&resized, &head, &anchors, &matched)
        .unwrap();
    for (name, ours) in [
        ("classification", &losses.classification),
        ("bbox_regression", &losses.bbox_regression),
        ("bbox_ctrness", &losses.bbox_ctrness),
    ] {
        let (a, b) = (
            ours.double_value(&[]),
            expected.get(name).unwrap().double_value(&[]),
        );
        let rel = (a - b).abs() / b.abs();
        println!("{ARCH}: {name} {a:.7} (torchvision {b:.7}), relative |Δ| {rel:.1e}");
        assert!(rel <= 1e-5, "{name}: {a} vs {b}");
    }
    (&losses.classification + &losses.bbox_regression + &losses.bbox_ctrness).backward();
    let vars = vs.variables();
    for (name, key) in [
        (
            "head.classification_head.cls_logits.weight",
            "cls_logits_grad",
        ),
        ("head.regression_head.bbox_reg.weight", "bbox_reg_grad"),
        (
            "head.regression_head.bbox_ctrness.weight",
            "bbox_ctrness_grad",
        ),
    ] {
        let g = vars[name].grad();
        assert!(g.defined(), "{name}: no gradient");
        let theirs = expected.get(key).unwrap();
        let scale = theirs.abs().max().double_value(&[]);
        assert!(scale > 0.0, "{name}: torchvision's gradient is zero");
        let rel = max_diff(&g, theirs) / scale;
        println!("{ARCH}: {name} gradient relative max |Δ| {rel:.1e}");
        assert!(
            rel <= 1e-4,
            "{name}: gradient differs by {rel:e} (relative)"
        );
    }
}

/// What torchvision builds from pretrained weights (FrozenBatchNorm2d, the COCO checkpoint's
/// layout) loads strictly, with torchvision's keys and its COCO weights' `num_params`; with 2
/// classes and the default 3 trainable backbone layers, as many parameters train as in
/// torchvision.
#[test]
fn fcos_from_pretrained_weights_counts_as_torchvision() {
    let counts = counts();
    let (vs, _) = build(91, true);
    let report = checkpoint::load_file(
        &vs,
        reference().join("frozen.pth"),
        &LoadOptions::default().strict(true),
    )
    .unwrap();
    println!("frozen: {}", report.summary());
    let (_, params) = parameter_counts(&vs);
    let keys = vs.variables().len() as i64;
    let theirs = &counts["fcos_resnet50_fpn_frozen"];
    println!("frozen: {keys} state-dict keys, {params} parameters");
    assert_eq!(keys, theirs["keys"].as_i64().unwrap(), "keys");
    assert_eq!(params, theirs["params"].as_i64().unwrap(), "parameters");
    // FCOS_ResNet50_FPN_Weights.COCO_V1.meta["num_params"].
    assert_eq!(params, 32_269_600);

    let (vs, model) = build(2, true);
    let frozen = model.set_trainable_backbone_layers(&vs, 3).unwrap();
    let (trainable, _) = parameter_counts(&vs);
    println!("2 classes, 3 trainable backbone layers: {trainable} trainable ({frozen} frozen)");
    assert_eq!(
        trainable,
        counts["frozen_2_classes_trainable_3"].as_i64().unwrap()
    );
    let err = model
        .set_trainable_backbone_layers(&vs, 6)
        .unwrap_err()
        .to_string();
    assert!(err.contains("trainable_backbone_layers"), "{err}");
}

/// `weights_backbone`: an ImageNet ResNet-50 checkpoint fills `backbone.body` (its classifier
/// dropped) and the FPN and head start fresh.
#[test]
fn fcos_backbone_loads_from_an_imagenet_resnet50() {
    let (vs, model) = build(2, true);
    let file = reference().join("imagenet_resnet50.pth");
    let report = model.load_weights(&vs, &file).unwrap();
    println!("from {}: {}", file.display(), report.summary());
    assert!(report
        .reinitialized
        .iter()
        .all(|n| n.starts_with("backbone.fpn.") || n.starts_with("head.")));
    assert!(report.reinitialized.iter().any(|n| n.starts_with("head.")));
    let sd = checkpoint::read(&file).unwrap();
    let vars = vs.variables();
    let mut compared = 0;
    for (name, theirs) in sd.iter() {
        if name.starts_with("fc.") || name.ends_with("num_batches_tracked") {
            continue;
        }
        let ours = &vars[&format!("backbone.body.{name}")];
        assert_eq!(max_diff(ours, theirs), 0.0, "{name}");
        compared += 1;
    }
    println!("{compared} backbone tensors equal the checkpoint's");
    assert_eq!(compared, 265);
}

/// Fine-tuning as torchvision users do: a 91-class checkpoint into a 3-class model replaces the
/// class logits only; the towers and the box and centre-ness predictors keep their weights.
#[test]
fn fcos_checkpoint_into_another_class_count_replaces_only_the_class_logits() {
    let (vs, model) = build(3, false);
    let file = reference().join(format!("{ARCH}.pth"));
    let report = model.load_weights(&vs, &file).unwrap();
    println!("91-class checkpoint into 3 classes: {}", report.summary());
    assert_eq!(
        report.reinitialized,
        [
            "head.classification_head.cls_logits.bias",
            "head.classification_head.cls_logits.weight",
        ]
    );
    let sd = checkpoint::read(&file).unwrap();
    let vars = vs.variables();
    for (name, t) in sd.iter() {
        if name.starts_with("head.") && !name.contains("cls_logits") {
            assert_eq!(max_diff(&vars[name], t), 0.0, "{name}");
        }
    }
    // The whole 91-class checkpoint loads strictly only into 91 classes.
    let err = checkpoint::load_file(&vs, &file, &LoadOptions::default().strict(true))
        .unwrap_err()
        .to_string();
    assert!(err.contains("cls_logits"), "{err}");
}

#[test]
fn fcos_configuration_rejects_unknown_names_and_class_counts() {
    let err = FcosConfig::by_name("fcos_resnet101_fpn", 91, false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("fcos_resnet101_fpn"), "{err}");
    let err = FcosConfig::by_name(ARCH, 1, false).unwrap_err().to_string();
    assert!(err.contains("num_classes"), "{err}");
}
