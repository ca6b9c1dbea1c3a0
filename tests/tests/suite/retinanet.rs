//! RetinaNet v1 and v2 against torchvision (`reference/retinanet.py`): seeded torchvision models
//! with randomised BatchNorm statistics and GroupNorm parameters, their heads calibrated so scores
//! spread over classes and anchors, saved with `torch.save`, load strictly into ours; state-dict
//! keys and parameters equal torchvision's (34,014,999 parameters for the COCO layout with
//! FrozenBatchNorm2d); anchors identical; eval-mode detections on two images of different sizes
//! equal torchvision's (labels, scores within 1e-5, boxes within 1e-3 px, the per-level top-k and
//! the 300 cut both binding); in training mode the matched anchors equal, both losses within 1e-5
//! (relative) and both predictors' gradients within 1e-4 (relative), for v1 with BatchNorm, v1
//! with FrozenBatchNorm2d (what torchvision builds from pretrained weights) and v2; channels-last
//! (the CPU workflow's layout) changes the head outputs by at most 1e-5 (relative). Old key
//! spellings load; an ImageNet ResNet-50 loads as the backbone as `weights_backbone` does; a
//! detection checkpoint into another class count replaces only `cls_logits`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ferrovis_core::checkpoint::{self, LoadOptions, StateDict};
use ferrovis_core::freeze::parameter_counts;
use ferrovis_detect::source::infer_arch;
use ferrovis_detect::torchvision::retinanet::{RetinaNet, RetinaNetConfig};
use ferrovis_detect::torchvision::targets::Target;
use ferrovis_detect::torchvision::transform::RcnnTransform;
use ferrovis_tests::write_reference;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use crate::detection_parity::{check_detections_up_to, max_diff};

/// The reference's models: file stem, torchvision architecture, FrozenBatchNorm2d.
const MODELS: [(&str, &str, bool); 3] = [
    ("retinanet_resnet50_fpn", "retinanet_resnet50_fpn", false),
    (
        "retinanet_resnet50_fpn_v2",
        "retinanet_resnet50_fpn_v2",
        false,
    ),
    (
        "retinanet_resnet50_fpn_frozen",
        "retinanet_resnet50_fpn",
        true,
    ),
];

fn reference() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        write_reference(
            "retinanet.py",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("retinanet-reference"),
        )
    })
}

fn counts() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(reference().join("counts.json")).unwrap())
        .unwrap()
}

/// `arch` for `classes` outputs at the reference's input size (256 / 400).
fn build(arch: &str, classes: i64, frozen: bool) -> (VarStore, RetinaNet) {
    let mut config = RetinaNetConfig::by_name(arch, classes, frozen).unwrap();
    config.transform = RcnnTransform::new(256, 400);
    let vs = VarStore::new(Device::Cpu);
    let model = RetinaNet::new(&vs.root(), &config).unwrap();
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
fn retinanet_detections_losses_and_counts_match_torchvision() {
    tch::set_num_threads(1);
    let counts = counts();
    for (stem, arch, frozen) in MODELS {
        let (vs, model) = build(arch, 91, frozen);
        let file = reference().join(format!("{stem}.pth"));
        let report =
            checkpoint::load_file(&vs, &file, &LoadOptions::default().strict(true)).unwrap();
        println!("{stem}: {}", report.summary());
        let (_, params) = parameter_counts(&vs);
        let keys = vs.variables().len() as i64;
        println!("{stem}: {keys} state-dict keys, {params} parameters");
        assert_eq!(keys, counts[stem]["keys"].as_i64().unwrap(), "{stem}: keys");
        assert_eq!(
            params,
            counts[stem]["params"].as_i64().unwrap(),
            "{stem}: parameters"
        );
        let sd = checkpoint::read(&file).unwrap();
        assert_eq!(
            infer_arch(&sd, &file).unwrap(),
            arch,
            "{stem}: inferred arch"
        );
        let expected = checkpoint::read(reference().join(format!("{stem}.safetensors"))).unwrap();
        let images = [
            expected.get("image0").unwrap().shallow_clone(),
            expected.get("image1").unwrap().shallow_clone(),
        ];

        // Anchors of the padded batch.
        let (batch, _) = model.config.transform.apply(&images, None, false).unwrap();
        let features = tch::no_grad(|| model.features(&batch.tensors, false)).unwrap();
        let anchors = model.anchors(&batch, &features).unwrap();
        let theirs = expected.get("anchors0").unwrap();
        assert_eq!(anchors[0].size(), theirs.size(), "{stem}: anchors");
        let da = max_diff(&anchors[0], theirs);
        println!("{stem}: {} anchors, max |Δ| {da:e} px", theirs.size()[0]);
        assert_eq!(da, 0.0, "{stem}: anchors differ by {da}");

        let dets = tch::no_grad(|| model.detect(&images)).unwrap();
        check_detections_up_to(stem, &dets, &expected, usize::MAX);
        // Channels-last (what the workflow uses on the CPU): the same head outputs up to float
        // summation order.
        let (vs_nhwc, nhwc) = build(arch, 91, frozen);
        checkpoint::load_file(&vs_nhwc, &file, &LoadOptions::default().strict(true)).unwrap();
        nhwc.use_channels_last(&vs_nhwc).unwrap();
        let outputs = |m: &RetinaNet| {
            tch::no_grad(|| m.head_outputs(&m.features(&batch.tensors, false).unwrap()))
        };
        let (a, b) = (outputs(&model), outputs(&nhwc));
        for (name, x, y) in [
            ("logits", &a.cls_logits, &b.cls_logits),
            ("offsets", &a.bbox_regression, &b.bbox_regression),
        ] {
            let rel = max_diff(x, y) / x.abs().max().double_value(&[]);
            println!("{stem} channels-last: {name} relative max |Δ| {rel:.1e}");
            assert!(
                rel <= 1e-5,
                "{stem} channels-last: {name} differ by {rel:e}"
            );
        }

        // Training mode: the same matches, losses and predictor gradients.
        if frozen {
            // As torchvision builds it from pretrained weights (conv1 and layer1 frozen).
            model.set_trainable_backbone_layers(&vs, 3).unwrap();
        }
        let targets = targets(&expected);
        let (batch, resized) = model
            .config
            .transform
            .apply(&images, Some(&targets), true)
            .unwrap();
        let resized = resized.unwrap();
        let features = model.features(&batch.tensors, true).unwrap();
        let anchors = model.anchors(&batch, &features).unwrap();
        let matched = model.match_targets(&anchors, &resized).unwrap();
        for (i, m) in matched.iter().enumerate() {
            let theirs = expected.get(&format!("matched{i}")).unwrap();
            let differ = m.ne_tensor(theirs).sum(Kind::Int64).int64_value(&[]);
            let positives = m.ge(0).sum(Kind::Int64).int64_value(&[]);
            let ignored = m.eq(-2).sum(Kind::Int64).int64_value(&[]);
            println!(
                "{stem} image {i}: {positives} foreground, {ignored} ignored anchors, {differ} differ"
            );
            assert_eq!(differ, 0, "{stem} image {i}: matched anchors");
        }
        let head = model.head_outputs(&features);
        let losses = model
            .compute_loss(&resized, &head, &anchors, &matched)
            .unwrap();
        for (name, ours) in [
            ("classification", &losses.classification),
            ("bbox_regression", &losses.bbox_regression),
        ] {
            let (a, b) = (
                ours.double_value(&[]),
                expected.get(name).unwrap().double_value(&[]),
            );
            let rel = (a - b).abs() / b.abs();
            println!("{stem}: {name} {a:.7} (torchvision {b:.7}), relative |Δ| {rel:.1e}");
            assert!(rel <= 1e-5, "{stem}: {name} {a} vs {b}");
        }
        (&losses.classification + &losses.bbox_regression).backward();
        let vars = vs.variables();
        for (name, key) in [
            (
                "head.classification_head.cls_logits.weight",
                "cls_logits_grad",
            ),
            ("head.regression_head.bbox_reg.weight", "bbox_reg_grad"),
        ] {
            let g = vars[name].grad();
            let theirs = expected.get(key).unwrap();
            let scale = theirs.abs().max().double_value(&[]);
            assert!(scale > 0.0, "{stem}: torchvision's {key} is zero");
            let rel = max_diff(&g, theirs) / scale;
            println!("{stem}: {key} relative max |Δ| {rel:.1e}");
            assert!(rel <= 1e-4, "{stem}: {key} differs by {rel:e} (relative)");
        }
    }
    // The COCO checkpoints' layout (v1 with FrozenBatchNorm2d) is torchvision's published count.
    assert_eq!(
        counts["retinanet_resnet50_fpn_coco"]["params"].as_i64(),
        Some(34_014_999)
    );
}

/// Checkpoints with the names of torchvision's version-1 FPN and heads
/// (`backbone.fpn.inner_blocks.0.weight`, `head.classification_head.conv.2.weight`) load strictly
/// through [`RetinaNet::detection_load_options`] into the same values, and not without.
#[test]
fn retinanet_loads_old_key_spellings() {
    let arch = "retinanet_resnet50_fpn";
    let file = reference().join("retinanet_resnet50_fpn_frozen.pth");
    let (current, _) = build(arch, 91, true);
    checkpoint::load_file(&current, &file, &LoadOptions::default().strict(true)).unwrap();
    let (vs, model) = build(arch, 91, true);
    let legacy = reference().join("legacy.pth");
    let err = checkpoint::load_file(&vs, &legacy, &LoadOptions::default().strict(true))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("conv.2.weight") || err.contains("inner_blocks.0.weight"),
        "{err}"
    );
    let report = model.load_weights(&vs, &legacy).unwrap();
    println!("legacy spelling: {}", report.summary());
    assert!(
        report.is_complete() && report.reinitialized.is_empty(),
        "{}",
        report.summary()
    );
    let (a, b) = (current.variables(), vs.variables());
    for (name, t) in &a {
        assert_eq!(max_diff(t, &b[name]), 0.0, "{name}");
    }
}

/// `weights_backbone`: an ImageNet ResNet-50 loads under `backbone.body` (`fc` dropped), the FPN
/// and head start fresh, and 3 trainable backbone layers leave as many parameters training as
/// torchvision's; a 91-class detection checkpoint into a 4-output model replaces only
/// `cls_logits`, keeping the towers and the regression head.
#[test]
fn retinanet_transfer_loads() {
    let counts = counts();
    let arch = "retinanet_resnet50_fpn";
    // torchvision's `num_classes=2`: the background and one class.
    let (vs, model) = build(arch, 2, true);
    let file = reference().join("imagenet_resnet50.pth");
    let report = model.load_weights(&vs, &file).unwrap();
    println!("from ImageNet: {}", report.summary());
    assert!(report.reinitialized.iter().any(|n| n.starts_with("head.")));
    assert!(report
        .reinitialized
        .iter()
        .any(|n| n.starts_with("backbone.fpn.")));
    let vars = vs.variables();
    let mut compared = 0;
    for (name, t) in checkpoint::read(&file).unwrap().iter() {
        if name.starts_with("fc.") || name.ends_with("num_batches_tracked") {
            continue;
        }
        assert_eq!(
            max_diff(&vars[&format!("backbone.body.{name}")], t),
            0.0,
            "{name}"
        );
        compared += 1;
    }
    println!("{compared} backbone tensors equal the checkpoint's");
    // ResNet-50's 320 tensors but `fc` (2) and the 53 step counters.
    assert_eq!(compared, 265);
    model.set_trainable_backbone_layers(&vs, 3).unwrap();
    let (trainable, _) = parameter_counts(&vs);
    println!("3 trainable backbone layers: {trainable} trainable parameters");
    assert_eq!(
        trainable,
        counts["retinanet_resnet50_fpn_2_classes_trainable"]
            .as_i64()
            .unwrap()
    );
    let err = model.set_trainable_backbone_layers(&vs, 6).unwrap_err();
    assert!(err.to_string().contains("0 to 5"), "{err}");

    let file = reference().join("retinanet_resnet50_fpn_frozen.pth");
    let (vs, model) = build(arch, 4, true);
    let report = model.load_weights(&vs, &file).unwrap();
    println!("91-class checkpoint into 4 outputs: {}", report.summary());
    assert_eq!(
        report.reinitialized,
        vec![
            "head.classification_head.cls_logits.bias".to_string(),
            "head.classification_head.cls_logits.weight".to_string()
        ]
    );
    let vars = vs.variables();
    for (name, t) in checkpoint::read(&file).unwrap().iter() {
        if !name.contains("cls_logits") {
            assert_eq!(max_diff(&vars[name], t), 0.0, "{name}");
        }
    }
    // The fresh predictor starts at the prior probability 0.01.
    let bias = vars["head.classification_head.cls_logits.bias"].mean(Kind::Float);
    let p = bias.sigmoid().double_value(&[]);
    assert!((p - 0.01).abs() < 1e-6, "prior {p}");
}

#[test]
fn retinanet_configuration_names_bad_input() {
    let err = RetinaNetConfig::by_name("retinanet_resnet101_fpn", 91, false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("retinanet_resnet101_fpn"), "{err}");
    let err = RetinaNetConfig::by_name("retinanet_resnet50_fpn", 1, false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("num_classes"), "{err}");
    let (_, model) = build("retinanet_resnet50_fpn", 3, false);
    let image = Tensor::rand([3, 64, 64], (Kind::Float, Device::Cpu));
    let bad = Target {
        boxes: Tensor::from_slice(&[10.0f32, 10.0, 5.0, 30.0]).view([1, 4]),
        labels: Tensor::from_slice(&[1i64]),
    };
    let err = model
        .losses(&[image.shallow_clone()], &[bad])
        .unwrap_err()
        .to_string();
    assert!(err.contains("targets[0]") && err.contains("box 0"), "{err}");
    let unknown = Target {
        boxes: Tensor::from_slice(&[10.0f32, 10.0, 40.0, 30.0]).view([1, 4]),
        labels: Tensor::from_slice(&[3i64]),
    };
    let err = model.losses(&[image], &[unknown]).unwrap_err().to_string();
    assert!(err.contains("label 3 outside 0 to 2"), "{err}");
}
