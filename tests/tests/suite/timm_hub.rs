//! timm checkpoints by their Hugging Face Hub names, offline, against timm itself
//! (`reference/timm_hub.py`): seeded timm models (norms randomised) saved by timm's `save_for_hf`
//! in the hub cache's layout load by `hf-hub:timm/<arch>.<tag>` into the torchvision-named
//! backbone, every tensor accounted for, and give timm's logits; `config.json` gives timm's
//! `resolve_data_config` (input size, interpolation, crop_pct, mean/std) and the class count,
//! and classify's evaluation transform built from it gives `create_transform`'s pixels on real
//! images (within 1/255). Bad snapshots are named errors.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ferrovis_classify::config::DataSection;
use ferrovis_classify::data::{
    self as classify_data, pillow_filter, with_checkpoint_preprocessing,
};
use ferrovis_core::backbone::{self, BackboneOptions, Interpolation};
use ferrovis_core::checkpoint::{self, LoadOptions};
use ferrovis_core::timm;
use ferrovis_data::rng::derive;
use ferrovis_tests::{offline_hub, write_reference};
use tch::nn::VarStore;
use tch::Device;

/// `reference/timm_hub.py`'s cases, with the ferrovis architecture each one is built as.
const CASES: [(&str, &str); 12] = [
    ("resnet18.tv_in1k", "resnet18"),
    ("resnet50.a1_in1k", "resnet50"),
    ("convnext_tiny.fb_in1k", "convnext_tiny"),
    ("efficientnet_b0.ra_in1k", "efficientnet_b0"),
    ("regnety_016.tv2_in1k", "regnet_y_1_6gf"),
    ("regnetx_004_tv.tv2_in1k", "regnet_x_400mf"),
    ("vit_base_patch16_224.augreg2_in21k_ft_in1k", "vit_b_16"),
    ("tf_efficientnet_b0.ns_jft_in1k", "efficientnet_b0"),
    ("tf_efficientnetv2_s.in21k_ft_in1k", "efficientnet_v2_s"),
    ("mobilenetv3_large_100.ra_in1k", "mobilenet_v3_large"),
    ("tf_mobilenetv3_small_100.in1k", "mobilenet_v3_small"),
    ("swin_tiny_patch4_window7_224.ms_in1k", "swin_t"),
];

/// The real pictures the reference preprocessed, by the key it saved them under.
const IMAGES: [(&str, &str); 2] = [
    ("chelsea", "style/assets/chelsea.png"),
    ("starry_night", "style/assets/starry_night.jpg"),
];

fn reference() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        write_reference(
            "timm_hub.py",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("timm-hub-reference"),
        )
    })
}

#[test]
fn timm_checkpoints_load_by_hub_name_and_give_timms_logits() {
    let dir = reference();
    let hub = offline_hub(&dir.join("hub"));
    for (name, arch) in CASES {
        let ckpt = timm::read_in(&hub, &format!("hf-hub:timm/{name}")).unwrap();
        assert_eq!(ckpt.arch, arch, "{name}");
        let want: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap(),
        )
        .unwrap();

        // config.json: what timm's resolve_data_config says.
        let data = &want["data_config"];
        let cfg = &ckpt.config;
        assert_eq!(cfg.num_classes, 1000, "{name}");
        assert_eq!(
            serde_json::json!(cfg.input_size),
            data["input_size"],
            "{name}: input_size"
        );
        let interpolation = match cfg.interpolation {
            Interpolation::Bilinear => "bilinear",
            Interpolation::Bicubic => "bicubic",
        };
        assert_eq!(interpolation, data["interpolation"], "{name}");
        assert_eq!(
            Some(cfg.crop_pct),
            data["crop_pct"].as_f64(),
            "{name}: crop_pct"
        );
        assert_eq!(cfg.crop_mode, data["crop_mode"], "{name}");
        for (ours, key) in [(cfg.mean, "mean"), (cfg.std, "std")] {
            let theirs: Vec<f64> = serde_json::from_value(data[key].clone()).unwrap();
            assert_eq!(ours.to_vec(), theirs, "{name}: {key}");
        }
        let pre = cfg.pretrained_cfg().unwrap();
        let size = data["input_size"][1].as_i64().unwrap();
        assert_eq!(pre.input_size, size);
        assert_eq!(
            pre.resize_size,
            (size as f64 / cfg.crop_pct).floor() as i64,
            "{name}: timm resizes to floor(size / crop_pct)"
        );

        // classify's evaluation transform from the configuration: timm's pixels.
        let expected = checkpoint::read(dir.join(format!("{name}.safetensors"))).unwrap();
        let data = with_checkpoint_preprocessing(&DataSection::default(), cfg);
        let filter = classify_data::filter(&data, pillow_filter(cfg.interpolation)).unwrap();
        let (_, eval) = classify_data::transforms(&data, &pre, filter);
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for (key, file) in IMAGES {
            let ours = eval
                .apply_file(&root.join(file), &mut derive(0, &[]))
                .unwrap();
            let theirs = expected.get(&format!("pixels_{key}")).unwrap();
            assert_eq!(ours.size(), theirs.size(), "{name}: {key}");
            // In 0–1 units: the normalised difference times the channel's std.
            let std = tch::Tensor::from_slice(&cfg.std.map(|v| v as f32)).view([3, 1, 1]);
            let diff = ((&ours - theirs).abs() * std).max().double_value(&[]);
            println!("{name}: {key} pixels max |Δ| {:.3}/255", diff * 255.0);
            assert!(
                diff <= 1.0 / 255.0 + 1e-6,
                "{name}: {key}: pixels differ from timm's by {:.2}/255",
                diff * 255.0
            );
        }

        // The weights: every tensor renamed into the torchvision-named model, timm's logits.
        let vs = VarStore::new(Device::Cpu);
        let opts = ckpt.build.apply(BackboneOptions {
            num_classes: cfg.num_classes,
            image_size: Some(ckpt.image_size),
            ..Default::default()
        });
        let model = backbone::create(arch, &vs.root(), &opts).unwrap();
        let mut sd = ckpt.state_dict;
        model.adapt_checkpoint(&mut sd).unwrap();
        let report = checkpoint::load_into(&vs, &sd, &LoadOptions::default().strict(true)).unwrap();
        let params: i64 = vs
            .trainable_variables()
            .iter()
            .map(|t| t.numel() as i64)
            .sum();
        assert_eq!(
            Some(params),
            want["parameters"].as_i64(),
            "{name}: parameters"
        );
        let x = expected.get("input").unwrap();
        let theirs = expected.get("logits").unwrap();
        let ours = tch::no_grad(|| model.forward_t(x, false));
        let scale = theirs.abs().max().double_value(&[]);
        let diff = (&ours - theirs).abs().max().double_value(&[]);
        println!(
            "{name} as {arch}: {}; logits max |Δ| {diff:.2e} (of {scale:.2})",
            report.summary()
        );
        assert!(
            diff <= 1e-4 * scale.max(1.0),
            "{name}: logits differ by {diff}"
        );
    }
}

/// Copies the resnet18 snapshot's two files into a fresh folder for a bad-input case.
fn resnet18_folder(tmp: &Path) -> PathBuf {
    let hub = offline_hub(&reference().join("hub"));
    let dir = tmp.join("resnet18");
    std::fs::create_dir_all(&dir).unwrap();
    for f in [timm::CONFIG_FILE, timm::WEIGHTS_FILE] {
        std::fs::copy(hub.hf_cached_path("timm/resnet18.tv_in1k", f), dir.join(f)).unwrap();
    }
    dir
}

#[test]
fn bad_timm_snapshots_are_named_errors() {
    let tmp = tempfile::tempdir().unwrap();
    // A local folder reads as the hub's snapshot does.
    let dir = resnet18_folder(tmp.path());
    let spec = dir.to_str().unwrap();
    assert!(timm::is_timm(spec));
    assert_eq!(timm::read(spec).unwrap().arch, "resnet18");

    // An architecture ferrovis does not build: its name in the error.
    let config = dir.join(timm::CONFIG_FILE);
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("\"resnet18\"", "\"resnet18d\"")).unwrap();
    let err = timm::read(spec).unwrap_err().to_string();
    assert!(
        err.contains("resnet18d") && err.contains("not built"),
        "{err}"
    );
    std::fs::write(&config, "{\"num_classes\": 10}").unwrap();
    let err = timm::read(spec).unwrap_err().to_string();
    assert!(
        err.contains("architecture") && err.contains("config.json"),
        "{err}"
    );

    // A file missing from the snapshot.
    std::fs::remove_file(dir.join(timm::WEIGHTS_FILE)).unwrap();
    let err = timm::snapshot(spec).unwrap_err().to_string();
    assert!(err.contains("model.safetensors"), "{err}");

    // Not cached and offline: the URL and where to put the file, nothing written.
    let hub = offline_hub(&tmp.path().join("empty-cache"));
    let err = timm::read_in(&hub, "hf-hub:timm/convnext_tiny.fb_in1k")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("/timm/convnext_tiny.fb_in1k/resolve/main/config.json")
            && err.contains("offline"),
        "{err}"
    );
    assert!(!tmp.path().join("empty-cache").exists());

    // A tensor timm's ResNet has and torchvision's does not (a variant's extra layer).
    let dir = resnet18_folder(&tmp.path().join("extra"));
    let file = dir.join(timm::WEIGHTS_FILE);
    let mut sd = checkpoint::read(&file).unwrap();
    sd.insert(
        "fc_norm.weight",
        tch::Tensor::ones([512], tch::kind::FLOAT_CPU),
    );
    checkpoint::save_safetensors(&file, sd.iter()).unwrap();
    let ckpt = timm::read(dir.to_str().unwrap()).unwrap();
    let vs = VarStore::new(Device::Cpu);
    backbone::create("resnet18", &vs.root(), &BackboneOptions::default()).unwrap();
    let err = checkpoint::load_into(&vs, &ckpt.state_dict, &LoadOptions::default().strict(true))
        .unwrap_err()
        .to_string();
    assert!(err.contains("fc_norm.weight"), "{err}");
}

#[test]
fn weights_list_shows_the_cached_hub_repositories() {
    let hub = reference().join("hub");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferrovis-cli"))
        .args(["classify", "weights", "list", "hf-hub:timm/"])
        .env("HF_HUB_CACHE", &hub)
        .env("FERROVIS_OFFLINE", "1")
        .output()
        .expect("start ferrovis-cli");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (name, _) in CASES {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("hf-hub:timm/{name} ")))
            .unwrap_or_else(|| panic!("{name} not listed:\n{text}"));
        assert!(
            line.contains("yes") && line.contains("(timm: config.json, model.safetensors)"),
            "{line}"
        );
    }
    // The filter applies to Hub names too; the registry's names are filtered out.
    assert!(!text.contains("resnet18 (="), "{text}");
}
