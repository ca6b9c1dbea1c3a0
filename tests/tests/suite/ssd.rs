//! SSD300-VGG16 and SSDlite320-MobileNetV3-Large against torchvision (`reference/ssd.py`):
//! seeded torchvision models with randomised BatchNorm statistics, saved with `torch.save`, load
//! strictly into ours; state-dict keys and parameters equal torchvision's (35,641,826 and
//! 3,440,060 with 91 classes); default boxes identical; eval-mode detections on two images of
//! different sizes equal torchvision's (boxes within 1e-3 px, scores within 1e-5); in training
//! mode, the matched default boxes equal, both losses within 1e-5 and the classification
//! predictors' gradients within 1e-4 (relative); channels-last (the CPU workflow's layout) changes
//! the head outputs by at most 1e-5 (relative). ImageNet checkpoints load as the backbone as
//! `weights_backbone` does, and a detection checkpoint into another class count keeps all but the
//! classification head.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ferrovis_core::checkpoint::{self, LoadOptions, StateDict};
use ferrovis_core::freeze::parameter_counts;
use ferrovis_detect::torchvision::ssd::{Ssd, SsdBackboneKind, SsdConfig};
use ferrovis_detect::torchvision::targets::Target;
use ferrovis_tests::write_reference;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use crate::detection_parity::{check_detections_up_to, max_diff};

const ARCHS: [&str; 2] = ["ssd300_vgg16", "ssdlite320_mobilenet_v3_large"];

fn reference() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        write_reference(
            "ssd.py",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("ssd-reference"),
        )
    })
}

fn counts() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(reference().join("counts.json")).unwrap())
        .unwrap()
}

/// `arch` for `classes` (with the background); SSDlite's MobileNetV3 with the reduced tail
/// unless `imagenet` (torchvision's rule).
fn build(arch: &str, classes: i64, imagenet: bool) -> (VarStore, Ssd) {
    let backbone = SsdConfig::backbone_of(arch, imagenet).unwrap();
    let config = SsdConfig::by_name(arch, classes, backbone).unwrap();
    let vs = VarStore::new(Device::Cpu);
    let model = Ssd::new(&vs.root(), &config).unwrap();
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
fn ssd_detections_losses_and_counts_match_torchvision() {
    tch::set_num_threads(1);
    let counts = counts();
    for arch in ARCHS {
        let (vs, model) = build(arch, 91, false);
        let report = checkpoint::load_file(
            &vs,
            reference().join(format!("{arch}.pth")),
            &LoadOptions::default().strict(true),
        )
        .unwrap();
        println!("{arch}: {}", report.summary());
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

        // Default boxes of the (fixed-size) batch.
        let (batch, _) = model.config.transform.apply(&images, None, false).unwrap();
        let features = tch::no_grad(|| model.features(&batch.tensors, false));
        let anchors = model.anchors(&batch, &features).unwrap();
        let theirs = expected.get("anchors0").unwrap();
        assert_eq!(anchors[0].size(), theirs.size(), "{arch}: default boxes");
        let da = max_diff(&anchors[0], theirs);
        println!(
            "{arch}: {} default boxes, max |Δ| {da:e} px",
            theirs.size()[0]
        );
        assert_eq!(da, 0.0, "{arch}: default boxes differ by {da}");

        let dets = tch::no_grad(|| model.detect(&images)).unwrap();
        check_detections_up_to(arch, &dets, &expected, usize::MAX);
        // Channels-last (what the workflow uses on the CPU): the same head outputs up to float
        // summation order. (Not the detections: this random model has many exactly equal
        // scores, and the last bit decides which of them NMS and the cut keep.)
        let (vs_nhwc, nhwc) = build(arch, 91, false);
        checkpoint::load_file(
            &vs_nhwc,
            reference().join(format!("{arch}.pth")),
            &LoadOptions::default().strict(true),
        )
        .unwrap();
        nhwc.use_channels_last(&vs_nhwc).unwrap();
        let (batch, _) = model.config.transform.apply(&images, None, false).unwrap();
        let outputs =
            |m: &Ssd| tch::no_grad(|| m.head_outputs(&m.features(&batch.tensors, false), false));
        let (a, b) = (outputs(&model), outputs(&nhwc));
        for (name, x, y) in [
            ("logits", &a.cls_logits, &b.cls_logits),
            ("offsets", &a.bbox_regression, &b.bbox_regression),
        ] {
            let rel = max_diff(x, y) / x.abs().max().double_value(&[]);
            println!("{arch} channels-last: {name} relative max |Δ| {rel:.1e}");
            assert!(
                rel <= 1e-5,
                "{arch} channels-last: {name} differ by {rel:e}"
            );
        }

        // Training mode: the same matches, losses and gradient.
        let targets = targets(&expected);
        let (batch, resized) = model
            .config
            .transform
            .apply(&images, Some(&targets), true)
            .unwrap();
        let resized = resized.unwrap();
        let features = model.features(&batch.tensors, true);
        let anchors = model.anchors(&batch, &features).unwrap();
        let matched = model.match_targets(&anchors, &resized).unwrap();
        for (i, m) in matched.iter().enumerate() {
            let theirs = expected.get(&format!("matched{i}")).unwrap();
            let differ = m.ne_tensor(theirs).sum(Kind::Int64).int64_value(&[]);
            let positives = m.ge(0).sum(Kind::Int64).int64_value(&[]);
            println!("{arch} image {i}: {positives} positive default boxes, {differ} differ");
            assert_eq!(differ, 0, "{arch} image {i}: matched default boxes");
        }
        let head = model.head_outputs(&features, true);
        let losses = model
            .compute_loss(&resized, &head, &anchors, &matched)
            .unwrap();
        for (name, ours) in [
            ("bbox_regression", &losses.bbox_regression),
            ("classification", &losses.classification),
        ] {
            let (a, b) = (
                ours.double_value(&[]),
                expected.get(name).unwrap().double_value(&[]),
            );
            println!("{arch}: {name} {a:.6} (torchvision {b:.6})");
            assert!((a - b).abs() <= 1e-5, "{arch}: {name} {a} vs {b}");
        }
        (&losses.bbox_regression + &losses.classification).backward();
        // Every level's predictor (hard negatives may leave a level without gradient).
        let vars = vs.variables();
        let grads: Vec<(Tensor, &Tensor)> = (0..6)
            .map(|i| {
                let g = vars[&classifier_weight(arch, i)].grad();
                assert!(g.defined(), "{arch}: no gradient at level {i}");
                (g, expected.get(&format!("cls_grad{i}")).unwrap())
            })
            .collect();
        let scale = grads
            .iter()
            .map(|(_, t)| t.abs().max().double_value(&[]))
            .fold(0.0, f64::max);
        assert!(scale > 0.0, "{arch}: torchvision's gradients are zero");
        let rel = grads
            .iter()
            .map(|(g, t)| max_diff(g, t))
            .fold(0.0, f64::max)
            / scale;
        println!("{arch}: classification gradients relative max |Δ| {rel:.1e}");
        assert!(
            rel <= 1e-4,
            "{arch}: gradient differs by {rel:e} (relative)"
        );
    }
}

/// Level `i`'s classification predictor weight: a convolution in SSD300, a block's last
/// convolution in SSDlite.
fn classifier_weight(arch: &str, i: usize) -> String {
    if arch == "ssd300_vgg16" {
        format!("head.classification_head.module_list.{i}.weight")
    } else {
        format!("head.classification_head.module_list.{i}.1.weight")
    }
}

/// `weights_backbone`: an ImageNet VGG16 (conv5 into `extra.0`, classifier dropped) or
/// MobileNetV3 (split as SSDlite splits it, not reduced) checkpoint loads into exactly the
/// tensors torchvision's extractors take from it; SSD's own layers and the head start fresh, and
/// torchvision's trainable backbone layers leave as many parameters training as torchvision's.
#[test]
fn ssd_backbones_load_from_imagenet_checkpoints() {
    let counts = counts();
    for (arch, file, layers) in [
        ("ssd300_vgg16", "imagenet_vgg16.pth", vec![4, 0]),
        (
            "ssdlite320_mobilenet_v3_large",
            "imagenet_mobilenet_v3_large.pth",
            vec![3],
        ),
    ] {
        let (vs, model) = build(arch, 2, true);
        let report = model.load_weights(&vs, &reference().join(file)).unwrap();
        println!("{arch} from {file}: {}", report.summary());
        assert!(
            report.reinitialized.iter().any(|n| n.starts_with("head.")),
            "{arch}: the head starts fresh"
        );
        let expected =
            checkpoint::read(reference().join(format!("backbone_{arch}.safetensors"))).unwrap();
        let vars = vs.variables();
        let mut compared = 0;
        for (name, theirs) in expected.iter() {
            if name.ends_with("num_batches_tracked") {
                continue;
            }
            let ours = vars
                .get(name)
                .unwrap_or_else(|| panic!("{arch}: no variable {name}"));
            assert_eq!(max_diff(ours, theirs), 0.0, "{arch}: {name}");
            compared += 1;
        }
        println!("{arch}: {compared} backbone tensors equal torchvision's");
        assert!(compared > 20, "{arch}: only {compared} tensors compared");
        for n in layers {
            model.set_trainable_backbone_layers(&vs, n).unwrap();
            let (trainable, _) = parameter_counts(&vs);
            let key = format!("{arch}_2_classes_trainable_{n}");
            println!("{arch}: {n} trainable backbone layers, {trainable} trainable parameters");
            assert_eq!(trainable, counts[&key].as_i64().unwrap(), "{key}");
        }
    }
}

/// Fine-tuning as torchvision users do: a 91-class detection checkpoint into a 3-class model
/// replaces only the classification head; the regression head (and the default boxes, which
/// have no weights) keep the checkpoint's values.
#[test]
fn ssd_checkpoint_into_another_class_count_replaces_the_classification_head() {
    for arch in ARCHS {
        let (vs, model) = build(arch, 3, false);
        let file = reference().join(format!("{arch}.pth"));
        let report = model.load_weights(&vs, &file).unwrap();
        println!("{arch} with 3 classes: {}", report.summary());
        assert!(!report.reinitialized.is_empty());
        assert!(
            report
                .reinitialized
                .iter()
                .all(|n| n.starts_with("head.classification_head.")),
            "{arch}: {:?}",
            report.reinitialized
        );
        let sd = checkpoint::read(&file).unwrap();
        let vars = vs.variables();
        for (name, t) in sd.iter() {
            if name.starts_with("head.regression_head.") {
                assert_eq!(max_diff(&vars[name], t), 0.0, "{arch}: {name}");
            }
        }
        // The whole 91-class checkpoint loads strictly only into 91 classes.
        let err = checkpoint::load_file(&vs, &file, &LoadOptions::default().strict(true))
            .unwrap_err()
            .to_string();
        assert!(err.contains("head.classification_head"), "{err}");
    }
}

#[test]
fn ssd_configuration_rejects_a_mismatched_backbone() {
    let err = SsdConfig::by_name("ssd300_vgg16", 91, SsdBackboneKind::MobileNetV2)
        .unwrap_err()
        .to_string();
    assert!(err.contains("ssd300_vgg16"), "{err}");
    let err = SsdConfig::backbone_of("ssd512", false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("ssd512"), "{err}");
}
