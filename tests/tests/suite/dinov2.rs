//! DINOv2 from the Hugging Face Hub, offline, against the libraries that publish it
//! (`reference/dinov2.py`): seeded ViT-S/14 models, with and without registers, saved by
//! transformers (`facebook/dinov2-small`, split q/k/v) and by timm
//! (`timm/vit_small_patch14_dinov2.lvd142m`, fused qkv) in the hub cache's layout, load by
//! their `hf-hub:` names into `dinov2_vits14[_reg]` and give the library's class and patch
//! tokens at 224², at 280² and at 224×294 (the positional embedding resized from 37² as each
//! library resizes it). ViT-g's SwiGLU is checked on a two-block model. Bad snapshots are named
//! errors.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ferrovis_core::backbone::{self, BackboneOptions, Dinov2, Dinov2Config, Interpolation};
use ferrovis_core::checkpoint::{self, LoadOptions};
use ferrovis_core::hub::checkpoint as hub_checkpoint;
use ferrovis_core::knn::KnnClassifier;
use ferrovis_core::transformers;
use ferrovis_tests::{offline_hub, run_reference, write_reference};
use tch::nn::VarStore;
use tch::{Device, Tensor};

fn reference() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        write_reference(
            "dinov2.py",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("dinov2-reference"),
        )
    })
}

/// `max |ours − theirs|`, asserted within 1e-4 of the reference's scale.
fn assert_close(what: &str, ours: &Tensor, theirs: &Tensor) -> f64 {
    assert_eq!(ours.size(), theirs.size(), "{what}: shape");
    let scale = theirs.abs().max().double_value(&[]);
    let diff = (ours - theirs).abs().max().double_value(&[]);
    assert!(
        diff <= 1e-4 * scale.max(1.0),
        "{what}: max |Δ| {diff} (of {scale})"
    );
    diff
}

/// The reference's inputs and tokens at `h × w` against `model`'s.
fn check_tokens(what: &str, model: &Dinov2, expected: &checkpoint::StateDict, h: i64, w: i64) {
    let key = |k: &str| {
        expected
            .get(&format!("{k}_{h}x{w}"))
            .unwrap_or_else(|| panic!("{k}_{h}x{w} in the reference"))
    };
    let (cls, patches) = tch::no_grad(|| model.tokens(key("input"), false)).unwrap();
    let d1 = assert_close(&format!("{what} {h}×{w} class token"), &cls, key("cls"));
    let d2 = assert_close(
        &format!("{what} {h}×{w} patch tokens"),
        &patches,
        key("patch"),
    );
    println!("{what} at {h}×{w}: class token max |Δ| {d1:.1e}, patch tokens {d2:.1e}");
}

#[test]
fn dinov2_checkpoints_load_by_hub_name_and_give_the_librarys_tokens() {
    let dir = reference();
    let hub = offline_hub(&dir.join("hub"));
    let counts: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("counts.json")).unwrap()).unwrap();
    let cases = [
        ("facebook/dinov2-small", "dinov2-small", "dinov2_vits14"),
        (
            "facebook/dinov2-with-registers-small",
            "dinov2-with-registers-small",
            "dinov2_vits14_reg",
        ),
        (
            "timm/vit_small_patch14_dinov2.lvd142m",
            "vit_small_patch14_dinov2",
            "dinov2_vits14",
        ),
        (
            "timm/vit_small_patch14_reg4_dinov2.lvd142m",
            "vit_small_patch14_reg4_dinov2",
            "dinov2_vits14_reg",
        ),
    ];
    for (repo, name, arch) in cases {
        let spec = format!("hf-hub:{repo}");
        let ckpt = hub_checkpoint::read_in(&hub, &spec).unwrap();
        assert_eq!(ckpt.arch, arch, "{repo}");
        assert_eq!(ckpt.image_size, 518, "{repo}");
        assert_eq!(ckpt.config.num_classes, 0, "{repo}");
        let expected = checkpoint::read(dir.join(format!("{name}.safetensors"))).unwrap();
        // Built at each square size (the checkpoint's 37² embedding resized once, as it loads),
        // and at 518 for the oblong input (resized on the fly).
        for (h, w, built) in [(224, 224, 224), (280, 280, 280), (224, 294, 518)] {
            let vs = VarStore::new(Device::Cpu);
            let opts = ckpt.build.apply(BackboneOptions {
                num_classes: 0,
                image_size: Some(built),
                ..Default::default()
            });
            let cfg = Dinov2Config::by_name(arch).unwrap();
            let model = Dinov2::new(&vs.root(), &cfg, &opts).unwrap();
            let mut sd = checkpoint::StateDict::new();
            for (k, t) in ckpt.state_dict.iter() {
                sd.insert(k, t.shallow_clone());
            }
            // As the reference's own `.pth` files hold it: dropped when the checkpoint is adapted.
            sd.insert("mask_token", Tensor::zeros([1, 384], tch::kind::FLOAT_CPU));
            backbone::Backbone::adapt_checkpoint(&model, &mut sd).unwrap();
            checkpoint::load_into(&vs, &sd, &LoadOptions::default().strict(true)).unwrap();
            if built == 518 {
                // The reference's parameters, less the pre-training mask token; timm's register
                // models keep no class entry in the positional embedding (384 fewer).
                let params: i64 = vs
                    .trainable_variables()
                    .iter()
                    .map(|t| t.numel() as i64)
                    .sum();
                let theirs = counts[name].as_i64().unwrap();
                let timm_reg = name.starts_with("vit_") && arch.ends_with("_reg");
                assert_eq!(params, theirs + if timm_reg { 384 } else { 0 }, "{name}");
            }
            check_tokens(name, &model, &expected, h, w);
        }
    }
}

#[test]
fn transformers_preprocessing_is_dinov2s_evaluation_transform() {
    let hub = offline_hub(&reference().join("hub"));
    let ckpt = hub_checkpoint::read_in(&hub, "hf-hub:facebook/dinov2-small").unwrap();
    let pre = ckpt.config.pretrained_cfg().unwrap();
    assert_eq!((pre.input_size, pre.resize_size), (224, 256));
    assert_eq!(pre.interpolation, Interpolation::Bicubic);
    assert_eq!(pre.mean, backbone::IMAGENET_MEAN);
    // timm's DINOv2 tags: 518², crop_pct 1.
    let ckpt =
        hub_checkpoint::read_in(&hub, "hf-hub:timm/vit_small_patch14_dinov2.lvd142m").unwrap();
    let pre = ckpt.config.pretrained_cfg().unwrap();
    assert_eq!((pre.input_size, pre.resize_size), (518, 518));
}

#[test]
fn vit_g_swiglu_feed_forward_matches_transformers() {
    let dir = reference();
    // Two blocks of width 48 with transformers' SwiGLU (hidden 128 a branch, gate first).
    let cfg = Dinov2Config {
        embed_dim: 48,
        depth: 2,
        num_heads: 3,
        mlp_hidden: 128,
        swiglu: true,
        num_register_tokens: 0,
        pos_embed_resize: backbone::PosEmbedResize::Size { antialias: false },
    };
    let sd = checkpoint::read(dir.join("swiglu").join("model.safetensors")).unwrap();
    let sd = transformers::to_reference(&sd).unwrap();
    assert!(sd.get("blocks.1.mlp.w12.weight").is_some());
    let expected = checkpoint::read(dir.join("swiglu.safetensors")).unwrap();
    let vs = VarStore::new(Device::Cpu);
    let opts = BackboneOptions {
        num_classes: 0,
        ..Default::default()
    };
    let model = Dinov2::new(&vs.root(), &cfg, &opts).unwrap();
    checkpoint::load_into(&vs, &sd, &LoadOptions::default().strict(true)).unwrap();
    check_tokens("SwiGLU", &model, &expected, 224, 224);
}

#[test]
fn bad_dinov2_snapshots_are_named_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = offline_hub(&reference().join("hub"));
    let dir = tmp.path().join("dinov2-small");
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(hub.hf_cached_path("facebook/dinov2-small", f), dir.join(f)).unwrap();
    }
    let spec = dir.to_str().unwrap();
    // A folder reads as the snapshot does (no preprocessor_config.json: DINOv2's own transform).
    assert!(transformers::is_transformers(spec));
    let ckpt = hub_checkpoint::read(spec).unwrap();
    assert_eq!(ckpt.arch, "dinov2_vits14");
    assert_eq!(ckpt.config.pretrained_cfg().unwrap().resize_size, 256);

    // A transformers model that is not DINOv2, and a DINOv2 of another patch size.
    let config = dir.join("config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("\"dinov2\"", "\"vit\"")).unwrap();
    let err = hub_checkpoint::read(spec).unwrap_err().to_string();
    assert!(
        err.contains("config.json") && err.contains("\"vit\"") && err.contains("not built"),
        "{err}"
    );
    std::fs::write(
        &config,
        text.replace("\"patch_size\": 14", "\"patch_size\": 16"),
    )
    .unwrap();
    let err = hub_checkpoint::read(spec).unwrap_err().to_string();
    assert!(err.contains("`patch_size` 16"), "{err}");
    std::fs::write(&config, &text).unwrap();

    // A projection missing from the weights: named, nothing loaded.
    let file = dir.join("model.safetensors");
    let mut sd = checkpoint::read(&file).unwrap();
    sd.remove("encoder.layer.3.attention.attention.key.weight");
    checkpoint::save_safetensors(&file, sd.iter()).unwrap();
    let err = hub_checkpoint::read(spec).unwrap_err().to_string();
    assert!(
        err.contains("blocks.3.attn.qkv.weight") && err.contains("model.safetensors"),
        "{err}"
    );

    // A file missing from the folder.
    std::fs::remove_file(&file).unwrap();
    let err = hub_checkpoint::read(spec).unwrap_err().to_string();
    assert!(
        err.contains("model.safetensors is missing") || err.contains("missing"),
        "{err}"
    );

    // Not cached and offline: the URL, nothing written.
    let hub = offline_hub(&tmp.path().join("empty-cache"));
    let err = hub_checkpoint::read_in(&hub, "hf-hub:facebook/dinov2-base")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("/facebook/dinov2-base/resolve/main/config.json") && err.contains("offline"),
        "{err}"
    );
    assert!(!tmp.path().join("empty-cache").exists());
}

#[test]
fn knn_classifier_matches_a_numpy_implementation_of_dinov2s_rule() {
    let file = Path::new(env!("CARGO_TARGET_TMPDIR")).join("knn-reference.safetensors");
    run_reference("knn.py", &[file.as_os_str()]);
    let r = checkpoint::read(&file).unwrap();
    let get = |k: &str| r.get(k).unwrap_or_else(|| panic!("{k}"));
    for (k, t) in [(20, 0.07), (5, 0.5), (500, 0.07)] {
        let knn = KnnClassifier::new(get("train"), get("labels"), 5, k, t).unwrap();
        let ours = knn.probabilities(get("query"));
        let theirs = get(&format!("probs_k{k}_t{t}"));
        let diff = (&ours - theirs).abs().max().double_value(&[]);
        assert!(diff < 1e-5, "k {k}, T {t}: probabilities differ by {diff}");
        let agree = ours
            .argmax(1, false)
            .eq_tensor(&theirs.argmax(1, false))
            .all()
            .int64_value(&[]);
        assert_eq!(agree, 1, "k {k}, T {t}: predictions");
        let acc = ours
            .argmax(1, false)
            .eq_tensor(get("query_labels"))
            .to_kind(tch::Kind::Float)
            .mean(tch::Kind::Float)
            .double_value(&[]);
        println!("k-NN k {k}, T {t}: max |Δp| {diff:.1e}, accuracy {acc:.2}");
    }
    // What `save` writes, `load` reads back to the same votes.
    let knn = KnnClassifier::new(get("train"), get("labels"), 5, 20, 0.07).unwrap();
    let saved = Path::new(env!("CARGO_TARGET_TMPDIR")).join("knn-saved.safetensors");
    knn.save(&saved).unwrap();
    let back = KnnClassifier::load(&saved, Device::Cpu).unwrap();
    assert!(back.probabilities(get("query")).allclose(
        &knn.probabilities(get("query")),
        1e-5,
        1e-6,
        false
    ));
}

/// `segment`'s linear probe (`--arch linear`) on the cached `facebook/dinov2-small` against
/// DINOv2's own probe on transformers' model (`reference/dinov2_linear_seg.py`: CenterPadding,
/// final-norm patch tokens, BNHead, bilinear resize), at sizes that are not multiples of 14.
#[test]
fn the_linear_segmentation_probe_is_dinov2_s() {
    use ferrovis_segment::model::{Architecture, ModelSpec, SegmentationModel};
    let dir = reference();
    let hub = offline_hub(&dir.join("hub"));
    let file = dir.join("linear_seg.safetensors");
    let snapshot = hub.hf_cached_path("facebook/dinov2-small", "");
    run_reference(
        "dinov2_linear_seg.py",
        &[file.as_os_str(), snapshot.as_os_str()],
    );
    let expected = checkpoint::read(&file).unwrap();

    let ckpt = hub_checkpoint::read_in(&hub, "hf-hub:facebook/dinov2-small").unwrap();
    let spec = ModelSpec {
        arch: Architecture::Linear,
        encoder: ckpt.arch.clone(),
        num_classes: 3,
        build: ckpt.build,
        ..Default::default()
    };
    let mut model = SegmentationModel::new(&spec, Device::Cpu).unwrap();
    let report = model
        .load_state_dict(ckpt.state_dict, "facebook/dinov2-small")
        .unwrap();
    println!("{report}");
    // The reference's head, by its released names.
    let mut head = checkpoint::StateDict::new();
    for (name, t) in expected.iter() {
        if name.starts_with("decode_head.") {
            head.insert(name.to_string(), t.shallow_clone());
        }
    }
    assert_eq!(head.len(), 6);
    checkpoint::load_into(&model.vs, &head, &LoadOptions::default()).unwrap();
    for (h, w) in [(60, 50), (56, 84)] {
        let x = expected.get(&format!("input_{h}x{w}")).unwrap();
        let ours = tch::no_grad(|| model.forward_t(x, false)).out;
        let theirs = expected.get(&format!("logits_{h}x{w}")).unwrap();
        let d = assert_close(&format!("linear probe {h}×{w}"), &ours, theirs);
        println!("linear probe at {h}×{w}: logits max |Δ| {d:.1e}");
    }
}
