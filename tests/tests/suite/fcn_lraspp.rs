//! torchvision's `fcn_resnet50`, `fcn_resnet101` (auxiliary heads) and
//! `lraspp_mobilenet_v3_large`, built seeded and randomised by `tests/reference/fcn_lraspp.py`:
//! ferrovis' `fcn` and `lraspp` architectures have their parameter counts and state-dict names
//! and shapes, load their weights strictly and give their outputs (main and auxiliary logits)
//! within 1e-4, NCHW and channels-last (each against torchvision's in the same layout); a
//! checkpoint of other classes replaces only the class layers; LR-ASPP's encoder takes an
//! ImageNet MobileNetV3's `features`; bad inputs are named.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ferrovis_core::checkpoint::{self, LoadOptions};
use ferrovis_core::memory_format;
use ferrovis_segment::model::{Architecture, ModelSpec, SegmentationModel};
use ferrovis_tests::run_reference;
use tch::{Device, Tensor};

/// The three models as (torchvision name, architecture, encoder).
const MODELS: [(&str, Architecture, &str); 3] = [
    ("fcn_resnet50", Architecture::Fcn, "resnet50"),
    ("fcn_resnet101", Architecture::Fcn, "resnet101"),
    (
        "lraspp_mobilenet_v3_large",
        Architecture::Lraspp,
        "mobilenet_v3_large",
    ),
];

/// The reference folder, written once for the tests of this file.
fn reference() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fcn-lraspp-reference");
        let _ = std::fs::remove_dir_all(&dir);
        let mut args = vec![dir.as_os_str()];
        args.extend(MODELS.iter().map(|(name, ..)| std::ffi::OsStr::new(*name)));
        let out = run_reference("fcn_lraspp.py", &args);
        print!("{out}");
        dir
    })
}

fn spec(arch: Architecture, encoder: &str, num_classes: i64) -> ModelSpec {
    ModelSpec {
        arch,
        encoder: encoder.into(),
        num_classes,
        aux: true,
        ..Default::default()
    }
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

#[test]
fn fcn_and_lraspp_match_torchvision() {
    tch::set_num_threads(1);
    let dir = reference();
    for (name, arch, encoder) in MODELS {
        let d = dir.join(name);
        let layout: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("layout.json")).unwrap()).unwrap();
        let model = SegmentationModel::new(&spec(arch, encoder, 21), Device::Cpu).unwrap();

        // Parameter count, names and shapes (buffers included) equal torchvision's.
        let (trainable, total) = model.parameter_counts();
        assert_eq!(
            (trainable, total),
            (
                layout["parameters"].as_i64().unwrap(),
                layout["parameters"].as_i64().unwrap()
            ),
            "{name}"
        );
        let ours: BTreeMap<String, Vec<i64>> = model
            .vs
            .variables()
            .into_iter()
            .map(|(k, v)| (k, v.size()))
            .collect();
        let theirs: BTreeMap<String, Vec<i64>> = layout["state_dict"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                let shape = v.as_array().unwrap().iter();
                (k.clone(), shape.map(|d| d.as_i64().unwrap()).collect())
            })
            .collect();
        assert_eq!(ours, theirs, "{name}: state_dict names and shapes");
        println!("{name}: {total} parameters, {} tensors", ours.len());

        // Strict load by name, then torchvision's logits.
        let sd = checkpoint::read(d.join("weights.pth")).unwrap();
        let opts = LoadOptions::default().strict(true);
        let report = checkpoint::load_into(&model.vs, &sd, &opts).unwrap();
        assert_eq!(report.loaded.len(), sd.len(), "{name}");
        let exp = checkpoint::read(d.join("expected.safetensors")).unwrap();
        let input = exp.get("input").unwrap();
        // NCHW against torchvision's NCHW, channels-last (model and input) against its
        // channels-last: the two layouts convolve with different kernels and round differently.
        let check = |suffix: &str, model: &SegmentationModel, x: &Tensor| {
            let y = tch::no_grad(|| model.forward_t(x, false));
            let outputs = [("out", Some(&y.out)), ("aux", y.aux.as_ref())];
            for (key, ours) in outputs {
                let key = format!("{key}{suffix}");
                let key = key.as_str();
                let Some(theirs) = exp.get(key) else {
                    assert!(ours.is_none(), "{name}: an {key} output torchvision lacks");
                    continue;
                };
                let ours = ours.unwrap_or_else(|| panic!("{name}: no {key} output"));
                assert_eq!(ours.size(), theirs.size(), "{name} {key}");
                let d = max_diff(ours, theirs);
                println!("{name} {key}: max abs difference {d:.3e}");
                assert!(d <= 1e-4, "{name} {key}: {d:e}");
            }
        };
        check("", &model, input);
        model.to_channels_last().unwrap();
        check("_cl", &model, &memory_format::channels_last(input).unwrap());
    }
}

/// A whole checkpoint trained for other classes loads with only the class layers fresh:
/// `classifier.4` and `aux_classifier.4` for FCN, `low_classifier` and `high_classifier` for
/// LR-ASPP; every other tensor is the checkpoint's.
#[test]
fn another_class_count_replaces_only_the_class_layers() {
    let dir = reference();
    for (name, arch, encoder) in MODELS {
        if name == "fcn_resnet101" {
            continue; // the same layers as fcn_resnet50's
        }
        let file = dir.join(name).join("weights.pth");
        let mut model = SegmentationModel::new(&spec(arch, encoder, 5), Device::Cpu).unwrap();
        let line = model.load_weights(&file).unwrap();
        println!("{line}");
        assert!(
            line.contains("(whole model)") && line.contains("; 4 start fresh ("),
            "{line}"
        );
        let class_layers: &[&str] = match arch {
            Architecture::Fcn => &["classifier.4.", "aux_classifier.4."],
            _ => &["classifier.low_classifier.", "classifier.high_classifier."],
        };
        let sd = checkpoint::read(&file).unwrap();
        let vars = model.vs.variables();
        let mut fresh = 0;
        for (key, t) in sd.iter() {
            let ours = &vars[key];
            if class_layers.iter().any(|p| key.starts_with(p)) {
                assert_eq!(ours.size()[0], 5, "{name} {key}");
                fresh += 1;
            } else {
                assert!(ours.equal(t), "{name} {key}");
            }
        }
        assert_eq!(fresh, 4, "{name}");
        assert_eq!(sd.len(), vars.len(), "{name}");
    }
}

/// An ImageNet MobileNetV3-Large classifier's `features.N` become LR-ASPP's `backbone.N`, its
/// classifier dropped, the head left fresh; freezing the encoder leaves only the head training.
#[test]
fn lraspp_encoder_takes_imagenet_features_and_freezes_by_stage() {
    let file = reference().join("mobilenet_v3_large.pth");
    let spec = spec(Architecture::Lraspp, "mobilenet_v3_large", 3);
    let mut model = SegmentationModel::new(&spec, Device::Cpu).unwrap();
    let line = model.load_weights(&file).unwrap();
    println!("{line}");
    // The head's eleven tensors: cbr's convolution and BatchNorm (its step counter included),
    // scale's convolution, two classifiers with biases.
    assert!(
        line.contains("(encoder (its ImageNet classifier dropped))")
            && line.contains("; 11 start fresh ("),
        "{line}"
    );
    let sd = checkpoint::read(&file).unwrap();
    let vars = model.vs.variables();
    let mut compared = 0;
    for (key, t) in sd.iter() {
        match key.strip_prefix("features.") {
            Some(rest) => {
                assert!(vars[&format!("backbone.{rest}")].equal(t), "{key}");
                compared += 1;
            }
            None => assert!(key.starts_with("classifier."), "{key}"),
        }
    }
    assert_eq!(compared, vars.len() - 11);

    let stages = model.stages();
    assert_eq!(stages[0].prefixes, ["backbone.0", "backbone.1"]);
    assert_eq!(stages.last().unwrap().prefixes, ["classifier"]);
    model.freeze_encoder().unwrap();
    let (trainable, total) = model.parameter_counts();
    let head: i64 = vars
        .iter()
        .filter(|(k, _)| k.starts_with("classifier.") && !k.contains("running_"))
        .filter(|(k, _)| !k.ends_with("num_batches_tracked"))
        .map(|(_, v)| v.numel() as i64)
        .sum();
    // 960·128 (cbr) + 256 (its BatchNorm) + 960·128 (scale) + 40·3 + 3 + 128·3 + 3.
    assert_eq!(head, 246_526);
    assert_eq!(trainable, head, "of {total}");
}

#[test]
fn bad_inputs_are_named() {
    let dir = reference();
    let build_err = |arch, encoder: &str| {
        format!(
            "{:#}",
            SegmentationModel::new(&spec(arch, encoder, 21), Device::Cpu).unwrap_err()
        )
    };
    // LR-ASPP is MobileNetV3's head.
    let err = build_err(Architecture::Lraspp, "resnet50");
    println!("{err}");
    assert!(
        err.contains("\"resnet50\"") && err.contains("mobilenet_v3_large"),
        "{err}"
    );
    // FCN's encoder must dilate to output stride 8.
    let err = build_err(Architecture::Fcn, "vgg16");
    println!("{err}");
    assert!(
        err.contains("vgg16") && err.contains("output_stride"),
        "{err}"
    );
    // torchvision's FCN checkpoint has the auxiliary head a model without one has no place for.
    let mut no_aux = spec(Architecture::Fcn, "resnet50", 21);
    no_aux.aux = false;
    let mut model = SegmentationModel::new(&no_aux, Device::Cpu).unwrap();
    let file = dir.join("fcn_resnet50/weights.pth");
    let err = format!("{:#}", model.load_weights(&file).unwrap_err());
    assert!(
        err.contains("aux_classifier") && err.contains("weights.pth"),
        "{err}"
    );
    // The LR-ASPP checkpoint into an FCN: its names are refused, not guessed.
    let mut model =
        SegmentationModel::new(&spec(Architecture::Fcn, "resnet50", 21), Device::Cpu).unwrap();
    let file = dir.join("lraspp_mobilenet_v3_large/weights.pth");
    let err = format!("{:#}", model.load_weights(&file).unwrap_err());
    assert!(err.contains("does not fit Fcn on resnet50"), "{err}");
}
