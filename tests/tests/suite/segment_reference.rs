//! torchvision's `deeplabv3_resnet50` (random init, seeded, saved with `torch.save`) loads into
//! ferrovis' DeepLabV3 by name, strictly, and gives torchvision's outputs (main and auxiliary);
//! a PyTorch U-Net with smp's layout and a PyTorch DeepLabV3+ on torchvision's parts do the same
//! for ours; the losses equal PyTorch's.

use std::path::Path;

use ferrovis_core::checkpoint::{self, LoadOptions};
use ferrovis_segment::deeplab::{DeepLabConfig, DeepLabV3};
use ferrovis_segment::deeplabv3plus::{DeepLabV3Plus, DeepLabV3PlusConfig};
use ferrovis_segment::loss::SegmentationLoss;
use ferrovis_segment::model::{Architecture, ModelSpec, SegmentationModel};
use ferrovis_tests::run_reference;
use tch::nn::VarStore;
use tch::Device;

#[test]
fn deeplabv3_resnet50_matches_torchvision() {
    tch::set_num_threads(1);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("deeplab-reference");
    let _ = std::fs::remove_dir_all(&dir);
    let out = run_reference("deeplab.py", &[dir.as_os_str()]);
    assert!(out.contains("parameters 42004074"), "{out}");
    let sd = checkpoint::read(dir.join("weights.pth")).unwrap();
    let vs = VarStore::new(Device::Cpu);
    let model = DeepLabV3::new(
        &vs.root(),
        DeepLabConfig {
            backbone: "resnet50".into(),
            num_classes: 21,
            aux: true,
        },
    )
    .unwrap();
    let report = checkpoint::load_into(&vs, &sd, &LoadOptions::default().strict(true)).unwrap();
    assert_eq!(report.loaded.len(), sd.len());
    let exp = checkpoint::read(dir.join("expected.safetensors")).unwrap();
    let y = tch::no_grad(|| model.forward_t(exp.get("input").unwrap(), false));
    for (name, ours) in [("out", &y.out), ("aux", y.aux.as_ref().unwrap())] {
        let theirs = exp.get(name).unwrap();
        assert_eq!(ours.size(), theirs.size(), "{name}");
        let d = (ours - theirs).abs().max().double_value(&[]);
        println!("{name}: max abs difference {d:.3e}");
        assert!(d <= 1e-4, "{name}: {d:e}");
    }
}

/// tests/reference/deeplabv3plus.py (the model bench/segment_train.py trains in PyTorch) is the
/// same network as ours: its seeded weights load strictly and give its outputs. At 67×90 the
/// ASPP reads a 5×6 map, so its three dilated branches run with their outer taps skipped.
#[test]
fn deeplabv3plus_resnet50_matches_its_pytorch_definition() {
    tch::set_num_threads(1);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("deeplabv3plus-reference");
    let _ = std::fs::remove_dir_all(&dir);
    let out = run_reference("deeplabv3plus.py", &[dir.as_os_str()]);
    assert!(out.contains("parameters 40352181"), "{out}");
    let sd = checkpoint::read(dir.join("weights.pth")).unwrap();
    let vs = VarStore::new(Device::Cpu);
    let model = DeepLabV3Plus::new(
        &vs.root(),
        DeepLabV3PlusConfig {
            encoder: "resnet50".into(),
            num_classes: 21,
            output_stride: 16,
        },
    )
    .unwrap();
    let report = checkpoint::load_into(&vs, &sd, &LoadOptions::default().strict(true)).unwrap();
    assert_eq!(report.loaded.len(), sd.len());
    let exp = checkpoint::read(dir.join("expected.safetensors")).unwrap();
    let y = tch::no_grad(|| model.forward_t(exp.get("input").unwrap(), false));
    let theirs = exp.get("out").unwrap();
    assert_eq!(y.out.size(), theirs.size());
    let d = (&y.out - theirs).abs().max().double_value(&[]);
    println!("out: max abs difference {d:.3e}");
    assert!(d <= 1e-4, "out: {d:e}");
}

/// Loss values and a U-Net with smp's layout, both from tests/reference/segment.py.
#[test]
fn losses_and_unet_match_pytorch() {
    tch::set_num_threads(1);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("segment-reference");
    let _ = std::fs::remove_dir_all(&dir);
    let out = run_reference("segment.py", &[dir.as_os_str()]);
    assert!(out.contains("unet parameters 24436369"), "{out}");

    let exp = checkpoint::read(dir.join("losses.safetensors")).unwrap();
    let t = |name: &str| exp.get(name).unwrap().shallow_clone();
    let (logits, target) = (t("logits"), t("target"));
    let value = |loss: &str, target: &tch::Tensor| {
        let l: SegmentationLoss = loss.parse().unwrap();
        l.compute(&logits, target).double_value(&[])
    };
    for (loss, expected, target) in [
        ("ce", "ce", &target),
        ("dice", "dice", &target),
        ("focal", "focal", &target),
        ("ce+0.5*dice", "ce_plus_half_dice", &target),
        ("dice", "dice_missing", &t("target_missing")),
    ] {
        let (ours, theirs) = (value(loss, target), t(expected).double_value(&[0]));
        println!("{loss}: {ours:.7} vs PyTorch {theirs:.7}");
        assert!((ours - theirs).abs() <= 1e-5, "{loss}: {ours} vs {theirs}");
    }

    let sd = checkpoint::read(dir.join("unet.pth")).unwrap();
    let spec = ModelSpec {
        arch: Architecture::Unet,
        encoder: "resnet34".into(),
        num_classes: 1,
        ..Default::default()
    };
    let model = SegmentationModel::new(&spec, Device::Cpu).unwrap();
    let report =
        checkpoint::load_into(&model.vs, &sd, &LoadOptions::default().strict(true)).unwrap();
    assert_eq!(report.loaded.len(), sd.len());
    let exp = checkpoint::read(dir.join("unet.safetensors")).unwrap();
    let y = tch::no_grad(|| model.forward_t(exp.get("input").unwrap(), false));
    let d = (&y.out - exp.get("out").unwrap())
        .abs()
        .max()
        .double_value(&[]);
    println!("unet: max abs difference {d:.3e}");
    assert!(d <= 1e-4, "unet: {d:e}");
}

/// How many of the model's variables lie outside the encoder.
fn vars_outside(model: &SegmentationModel, encoder_prefix: &str) -> usize {
    let prefix = format!("{encoder_prefix}.");
    model
        .vs
        .variables()
        .keys()
        .filter(|k| !k.starts_with(&prefix))
        .count()
}

/// A torchvision ImageNet classifier's checkpoint loads into each architecture's encoder, under
/// its prefix, the classifier dropped; the decoder is left as it was.
#[test]
fn classifier_checkpoints_load_into_encoders() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("segment-reference-encoders");
    let _ = std::fs::remove_dir_all(&dir);
    run_reference("segment.py", &[dir.as_os_str()]);
    for (arch, encoder, prefix) in [
        (Architecture::Unet, "resnet18", "encoder"),
        (Architecture::Deeplabv3plus, "mobilenet_v2", "backbone"),
        (Architecture::Deeplabv3, "resnet18", "backbone"),
        (Architecture::Unet, "mobilenet_v3_large", "encoder"),
    ] {
        let file = dir.join(format!("{encoder}.pth"));
        let sd = checkpoint::read(&file).unwrap();
        let spec = ModelSpec {
            arch,
            encoder: encoder.into(),
            num_classes: 3,
            ..Default::default()
        };
        let mut model = SegmentationModel::new(&spec, Device::Cpu).unwrap();
        let line = model.load_weights(&file).unwrap();
        println!("{line}");
        assert!(
            line.contains("(encoder (its ImageNet classifier dropped))"),
            "{line}"
        );
        // Every decoder variable starts fresh and is counted as such.
        let decoder = vars_outside(&model, prefix);
        assert!(
            line.contains(&format!("; {decoder} start fresh (")),
            "{line} ({decoder} decoder variables)"
        );
        let vars = model.vs.variables();
        let mut compared = 0;
        for (name, t) in sd.iter() {
            if name.starts_with("fc.") || name.starts_with("classifier.") {
                assert!(!vars.contains_key(&format!("{prefix}.{name}")), "{name}");
                continue;
            }
            let ours = &vars[&format!("{prefix}.{name}")];
            assert!(ours.equal(t), "{arch:?} {name}");
            compared += 1;
        }
        assert!(compared > 100, "{compared}");
    }
    // A whole checkpoint of other classes keeps the rest and re-initialises the class layers.
    let spec = ModelSpec {
        encoder: "resnet34".into(),
        num_classes: 4,
        ..Default::default()
    };
    let mut model = SegmentationModel::new(&spec, Device::Cpu).unwrap();
    let unet = dir.join("unet.pth");
    let line = model.load_weights(&unet).unwrap();
    assert!(
        line.contains("2 start fresh (segmentation_head.0.bias, segmentation_head.0.weight)"),
        "{line}"
    );
    // A checkpoint of another encoder is refused, naming what does not fit.
    let spec = ModelSpec {
        encoder: "resnet50".into(),
        ..Default::default()
    };
    let mut model = SegmentationModel::new(&spec, Device::Cpu).unwrap();
    let err = format!(
        "{:#}",
        model.load_weights(&dir.join("resnet18.pth")).unwrap_err()
    );
    assert!(
        err.contains("does not fit") && err.contains("resnet18.pth"),
        "{err}"
    );
}
