//! Faster R-CNN against torchvision (`reference/faster_rcnn.py`): seeded torchvision models with
//! randomised BatchNorm statistics, saved with `torch.save`, load strictly into ours and give the
//! same detections on two images of different sizes (boxes within 1e-3 px, scores within 1e-5,
//! the same labels and count) for v1, v2, MobileNetV3-Large FPN and its 320 variant, and
//! MobileNetV2 FPN (torchvision's `mobilenet_backbone` construction); state-dict
//! keys and parameters equal torchvision's counts. (Training parity draws on libtorch's global
//! generator, so it runs with the serial workflow tests: `workflows/faster_rcnn_training.rs`.)

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ferrovis_core::checkpoint::{self, LoadOptions, StateDict};
use ferrovis_core::freeze::parameter_counts;
use ferrovis_detect::torchvision::faster_rcnn::{FasterRcnn, FasterRcnnConfig};
use ferrovis_detect::torchvision::transform::RcnnTransform;
use ferrovis_tests::write_reference;

use crate::detection_parity::{check_detections_up_to, max_diff};
use tch::nn::VarStore;
use tch::{Device, Tensor};

fn reference() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        write_reference(
            "faster_rcnn.py",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("faster-rcnn-reference"),
        )
    })
}

fn counts() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(reference().join("counts.json")).unwrap())
        .unwrap()
}

/// `arch` as the reference built it (min_size 256, max_size 400 except the 320 variant), loaded
/// strictly from `file`.
fn load(arch: &str, file: &str, pretrained: bool) -> (VarStore, FasterRcnn) {
    let mut config = FasterRcnnConfig::by_name(arch, 91, pretrained).unwrap();
    if !arch.contains("320") {
        config.transform = RcnnTransform::new(256, 400);
    }
    let vs = VarStore::new(Device::Cpu);
    let model = FasterRcnn::new(&vs.root(), &config).unwrap();
    let report = checkpoint::load_file(
        &vs,
        reference().join(file),
        &LoadOptions::default().strict(true),
    )
    .unwrap();
    println!("{arch}: {}", report.summary());
    (vs, model)
}

fn check_detections(arch: &str, model: &FasterRcnn, images: &[Tensor], expected: &StateDict) {
    let dets = tch::no_grad(|| model.detect(images)).unwrap();
    check_detections_up_to(arch, &dets, expected, usize::MAX);
}

#[test]
fn faster_rcnn_detections_and_counts_match_torchvision() {
    tch::set_num_threads(1);
    let counts = counts();
    for arch in [
        "fasterrcnn_resnet50_fpn",
        "fasterrcnn_resnet50_fpn_v2",
        "fasterrcnn_mobilenet_v3_large_fpn",
        "fasterrcnn_mobilenet_v2_fpn",
    ] {
        let (vs, model) = load(arch, &format!("{arch}.pth"), false);
        let (_, params) = parameter_counts(&vs);
        let keys = vs.variables().len() as i64;
        println!("{arch}: {keys} state-dict keys, {params} parameters");
        assert_eq!(keys, counts[arch]["keys"].as_i64().unwrap(), "{arch}: keys");
        assert_eq!(
            params,
            counts[arch]["params"].as_i64().unwrap(),
            "{arch}: parameters"
        );
        let expected = checkpoint::read(reference().join(format!("{arch}.safetensors"))).unwrap();
        let images = [
            expected.get("image0").unwrap().shallow_clone(),
            expected.get("image1").unwrap().shallow_clone(),
        ];
        if arch == "fasterrcnn_mobilenet_v2_fpn" {
            // Even on blobs, this random model scores a run of boxes along the image border for
            // one class alike to 1e-6, and rounding decides their order and which survive: as
            // for the tutorial's model, the first 50 must match in place, 90 % of the rest
            // anywhere.
            let dets = tch::no_grad(|| model.detect(&images)).unwrap();
            check_detections_up_to(arch, &dets, &expected, 50);
        } else {
            check_detections(arch, &model, &images, &expected);
        }
        if arch == "fasterrcnn_mobilenet_v3_large_fpn" {
            let arch = "fasterrcnn_mobilenet_v3_large_320_fpn";
            let (_, m320) = load(arch, "fasterrcnn_mobilenet_v3_large_fpn.pth", false);
            let expected =
                checkpoint::read(reference().join(format!("{arch}.safetensors"))).unwrap();
            check_detections(arch, &m320, &images, &expected);
        }
    }
}

/// A checkpoint with the FPN and RPN head names of torchvision's version-1 modules
/// (`backbone.fpn.inner_blocks.0.weight`, `rpn.head.conv.weight`) loads strictly with
/// [`FasterRcnn::legacy_renames`], into the same values as the current spelling, and not without.
#[test]
fn faster_rcnn_loads_old_key_spellings() {
    let arch = "fasterrcnn_resnet50_fpn";
    let (current, _) = load(arch, &format!("{arch}.pth"), false);
    let config = FasterRcnnConfig::by_name(arch, 91, false).unwrap();
    let vs = VarStore::new(Device::Cpu);
    let _model = FasterRcnn::new(&vs.root(), &config).unwrap();
    let legacy = reference().join("legacy.pth");
    let strict = LoadOptions::default().strict(true);
    let err = checkpoint::load_file(&vs, &legacy, &strict)
        .unwrap_err()
        .to_string();
    assert!(err.contains("backbone.fpn.inner_blocks.0.weight"), "{err}");
    let report =
        checkpoint::load_file(&vs, &legacy, &FasterRcnn::legacy_renames(strict).unwrap()).unwrap();
    println!("legacy spelling: {}", report.summary());
    let (a, b) = (current.variables(), vs.variables());
    for name in [
        "backbone.fpn.inner_blocks.0.0.weight",
        "backbone.fpn.layer_blocks.3.0.bias",
        "rpn.head.conv.0.0.weight",
        "roi_heads.box_head.fc6.weight",
    ] {
        assert_eq!(max_diff(&a[name], &b[name]), 0.0, "{name}");
    }
}

/// The tutorial's recipe: an ImageNet classification checkpoint as the backbone (its classifier
/// dropped, its names moved under `backbone.body`), the rest fresh, two classes, and torchvision's
/// default of 3 trainable backbone layers (the same trainable parameter count as torchvision's);
/// a 91-class detection checkpoint into a 2-class model keeps all but the box predictor.
#[test]
fn faster_rcnn_fine_tuning_loads_and_freezes_as_torchvision() {
    let counts = counts();
    for (arch, file, key, body_tensors) in [
        (
            "fasterrcnn_resnet50_fpn",
            "imagenet_resnet50.pth",
            "resnet50_fpn_2_classes_trainable",
            265,
        ),
        (
            "fasterrcnn_mobilenet_v3_large_fpn",
            "imagenet_mobilenet_v3_large.pth",
            "mobilenet_v3_fpn_2_classes_trainable",
            262,
        ),
    ] {
        let config = FasterRcnnConfig::by_name(arch, 2, true).unwrap();
        let vs = VarStore::new(Device::Cpu);
        let model = FasterRcnn::new(&vs.root(), &config).unwrap();
        let report = model.load_weights(&vs, &reference().join(file)).unwrap();
        println!("{arch} from {file}: {}", report.summary());
        assert!(report
            .loaded
            .iter()
            .all(|n| n.starts_with("backbone.body.")));
        assert!(report
            .reinitialized
            .iter()
            .all(|n| !n.starts_with("backbone.body.")));
        assert_eq!(
            report.loaded.len(),
            body_tensors,
            "{arch}: backbone tensors loaded"
        );
        let sd = checkpoint::read(reference().join(file)).unwrap();
        let vars = vs.variables();
        let (ours, theirs) = match arch {
            "fasterrcnn_resnet50_fpn" => (
                "backbone.body.layer3.2.bn2.running_var",
                "layer3.2.bn2.running_var",
            ),
            _ => (
                "backbone.body.13.block.0.0.weight",
                "features.13.block.0.0.weight",
            ),
        };
        assert_eq!(
            max_diff(&vars[ours], sd.get(theirs).unwrap()),
            0.0,
            "{ours}"
        );
        model.set_trainable_backbone_layers(&vs, 3).unwrap();
        let (trainable, _) = parameter_counts(&vs);
        println!(
            "{arch}, 2 classes, 3 trainable backbone layers: {trainable} trainable parameters"
        );
        assert_eq!(
            trainable,
            counts[key].as_i64().unwrap(),
            "{arch}: trainable parameters"
        );
    }
    // A 91-class detection checkpoint into a 2-class model: only the box predictor starts fresh.
    let config = FasterRcnnConfig::by_name("fasterrcnn_resnet50_fpn", 2, true).unwrap();
    let vs = VarStore::new(Device::Cpu);
    let model = FasterRcnn::new(&vs.root(), &config).unwrap();
    let report = model
        .load_weights(&vs, &reference().join("train.pth"))
        .unwrap();
    println!("91-class checkpoint into 2 classes: {}", report.summary());
    assert_eq!(
        report.reinitialized,
        [
            "roi_heads.box_predictor.bbox_pred.bias",
            "roi_heads.box_predictor.bbox_pred.weight",
            "roi_heads.box_predictor.cls_score.bias",
            "roi_heads.box_predictor.cls_score.weight",
        ]
    );
    assert_eq!(report.loaded.len(), 291);
}

/// The tutorial's second recipe, `FasterRCNN(mobilenet_v2().features, 2, …)` with anchors
/// 32–512 on its one map: torchvision's checkpoint (`backbone.0.0.weight` …) loads strictly
/// into `fasterrcnn_mobilenet_v2` and gives torchvision's detections.
#[test]
fn faster_rcnn_on_a_core_backbone_matches_the_tutorial_model() {
    tch::set_num_threads(1);
    let arch = "fasterrcnn_mobilenet_v2";
    let mut config = FasterRcnnConfig::by_name(arch, 2, false).unwrap();
    config.transform = RcnnTransform::new(256, 400);
    let vs = VarStore::new(Device::Cpu);
    let model = FasterRcnn::new(&vs.root(), &config).unwrap();
    let report = model
        .load_weights(&vs, &reference().join(format!("{arch}.pth")))
        .unwrap();
    println!("{arch}: {}", report.summary());
    assert!(
        report.is_complete() && report.reinitialized.is_empty(),
        "{report}"
    );
    let (_, params) = parameter_counts(&vs);
    assert_eq!(
        params,
        counts()[arch]["params"].as_i64().unwrap(),
        "parameters"
    );
    let expected = checkpoint::read(reference().join(format!("{arch}.safetensors"))).unwrap();
    let images = [
        expected.get("image0").unwrap().shallow_clone(),
        expected.get("image1").unwrap().shallow_clone(),
    ];
    // With two classes, a random MobileNetV2 gives many proposals the same score to within
    // 1e-5 (groups of 0.9920 at the top); far down the list, which of two such boxes NMS keeps
    // is decided by rounding. The first 50 must be torchvision's, the rest have counterparts.
    let dets = tch::no_grad(|| model.detect(&images)).unwrap();
    check_detections_up_to(arch, &dets, &expected, 50);
}

/// `fasterrcnn_<backbone>` on the zoo's newer families (the tutorial's construction: the
/// backbone's last map, anchors 32–512): each builds with the backbone's torchvision names under
/// `backbone.` (its classifier left out) and detects on an image of any size.
#[test]
fn faster_rcnn_builds_on_the_zoos_newer_families() {
    for name in [
        "convnext_tiny",
        "swin_t",
        "vit_b_32",
        "regnet_y_400mf",
        "densenet121",
    ] {
        let arch = format!("fasterrcnn_{name}");
        let mut config = FasterRcnnConfig::by_name(&arch, 3, false).unwrap();
        config.transform = RcnnTransform::new(128, 160);
        let vs = VarStore::new(Device::Cpu);
        let model = FasterRcnn::new(&vs.root(), &config).unwrap();
        let encoder = VarStore::new(Device::Cpu);
        ferrovis_core::backbone::create(
            name,
            &encoder.root(),
            &ferrovis_core::backbone::BackboneOptions::classes(0),
        )
        .unwrap();
        let vars = vs.variables();
        for key in encoder.variables().keys() {
            assert!(
                vars.contains_key(&format!("backbone.{key}")),
                "{arch}: {key}"
            );
        }
        let image = Tensor::rand([3, 120, 150], (tch::Kind::Float, Device::Cpu));
        let dets = tch::no_grad(|| model.detect(&[image])).unwrap();
        assert_eq!(dets.len(), 1, "{arch}");
        println!(
            "{arch}: {} detections on a random image",
            dets[0].boxes.size()[0]
        );
    }
}
