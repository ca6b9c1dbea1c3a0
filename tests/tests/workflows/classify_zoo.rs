//! `classify train --arch <family> --weights <its name>` for the zoo's newer families, the
//! weights resolved by name from torch.hub's cache (filled here with seeded torchvision
//! checkpoints under the real file names: nothing is downloaded): ConvNeXt-T, Swin-T, DenseNet-121
//! (whose files carry torchvision's legacy names) and ViT-B/32 trained at 64 px from a 224
//! checkpoint (its positional embedding interpolated as torchvision's `interpolate_embeddings`).
//! Feature extraction keeps the backbone as loaded, so the run's weights show what loaded; the
//! run records the weight set's normalisation. A timm checkpoint by its Hub name builds its own
//! architecture and normalisation.

use ferrovis_classify::config::Mode;
use ferrovis_classify::{predict, train};
use ferrovis_core::checkpoint;
use ferrovis_core::engine::RunControl;
use ferrovis_data::synthetic::{self, ShapesConfig};
use ferrovis_tests::{offline_hub, run_reference};

/// Circles and squares, 4 training and 2 validation images each, 72 px, under `dir/shapes`.
fn two_shapes(dir: &std::path::Path) -> std::path::PathBuf {
    let data = dir.join("shapes");
    let shapes = ShapesConfig {
        image_size: 72,
        train: 4,
        val: 2,
        classes: ["circle", "square"].map(String::from).to_vec(),
        ..Default::default()
    };
    synthetic::write_classification(&data, &shapes).unwrap();
    data
}

#[test]
fn new_families_train_from_their_weights_by_name() {
    let _serial = crate::serial();
    let dir = tempfile::tempdir().unwrap();
    let data = two_shapes(dir.path());
    let torch_home = dir.path().join("torch");
    let cache = torch_home.join("hub").join("checkpoints");
    let archs = ["convnext_tiny", "swin_t", "densenet121", "vit_b_32"];
    let mut args: Vec<std::ffi::OsString> = vec![cache.clone().into()];
    args.extend(archs.iter().map(|a| a.into()));
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    run_reference("zoo_checkpoints.py", &args);
    // The hub reads these on every resolve; the lock above keeps other tests out meanwhile.
    ferrovis_tests::with_offline_env(&[("TORCH_HOME", &torch_home)], || {
        for (arch, probe, checkpoint_name) in [
            ("convnext_tiny", "features.5.3.block.3.weight", None),
            ("swin_t", "features.5.1.attn.qkv.weight", None),
            (
                "densenet121",
                "features.denseblock2.denselayer4.norm2.running_var",
                Some("features.denseblock2.denselayer4.norm.2.running_var"),
            ),
            (
                "vit_b_32",
                "encoder.layers.encoder_layer_7.mlp.0.weight",
                None,
            ),
        ] {
            let mut cfg = crate::classify_workflow::config(
                &data,
                &dir.path().join("runs").join(arch),
                Mode::FeatureExtract,
            );
            cfg.model.arch = arch.into();
            cfg.model.weights = arch.into();
            cfg.data.image_size = 64;
            cfg.data.augment = false;
            cfg.train.epochs = 1;
            let summary = train::train(&cfg, &RunControl::quiet(), None)
                .unwrap_or_else(|e| panic!("{arch}: {e:#}"));
            let entry = ferrovis_core::hub::registry::lookup(arch).unwrap();
            let source = checkpoint::read(cache.join(entry.file_name())).unwrap();
            let trained = checkpoint::read(summary.run.join("weights/best.safetensors")).unwrap();
            let want = source.get(checkpoint_name.unwrap_or(probe)).unwrap();
            let got = trained.get(probe).unwrap();
            assert!(got.equal(want), "{arch}: {probe} is not the checkpoint's");
            if arch == "vit_b_32" {
                // 224 / 32 = 7 → 64 / 32 = 2: a 1 + 2·2 token embedding.
                let pos = trained.get("encoder.pos_embedding").unwrap();
                assert_eq!(pos.size(), [1, 5, 768]);
            }
            let meta = std::fs::read_to_string(summary.run.join("classify.json")).unwrap();
            let meta: serde_json::Value = serde_json::from_str(&meta).unwrap();
            let want_mean = entry.transforms.unwrap().mean;
            let mean: Vec<f64> = serde_json::from_value(meta["transform"]["mean"].clone()).unwrap();
            assert_eq!(mean, want_mean, "{arch}: normalisation");
            println!("{arch}: trained from {} by name", entry.file_name());
        }
    });
}

/// A seeded timm checkpoint `name` in a hub cache under `dir` (reference `timm_hub.py`), and a
/// one-epoch feature-extraction run of it on `data` at 64 px with `model.arch` left at its
/// default (the checkpoint's config.json decides): the cache and the configuration.
fn timm_feature_extraction(
    dir: &std::path::Path,
    data: &std::path::Path,
    name: &str,
) -> (
    std::path::PathBuf,
    ferrovis_classify::config::ClassifyConfig,
) {
    let reference = dir.join("timm");
    run_reference("timm_hub.py", &[reference.as_os_str(), name.as_ref()]);
    let mut cfg = crate::classify_workflow::config(data, &dir.join("runs"), Mode::FeatureExtract);
    cfg.model.arch = ferrovis_classify::config::ModelSection::default().arch;
    cfg.model.weights = format!("hf-hub:timm/{name}");
    cfg.data.image_size = 64;
    cfg.data.augment = false;
    cfg.train.epochs = 1;
    (reference.join("hub"), cfg)
}

/// `classify train --weights hf-hub:timm/convnext_tiny.fb_in1k` with no `--arch`: ConvNeXt-T is
/// built from the snapshot's `config.json` (a seeded timm model saved by timm's `save_for_hf` in
/// the Hugging Face cache's layout, read offline), its timm-named weights load into the
/// torchvision-named backbone (feature extraction keeps them as loaded), and the run records the
/// architecture and the file's normalisation and crop.
#[test]
fn classify_trains_from_a_timm_checkpoint_by_its_hub_name() {
    let _serial = crate::serial();
    let dir = tempfile::tempdir().unwrap();
    let data = two_shapes(dir.path());
    let name = "convnext_tiny.fb_in1k";
    let (hf_cache, cfg) = timm_feature_extraction(dir.path(), &data, name);
    ferrovis_tests::with_offline_env(&[("HF_HUB_CACHE", &hf_cache)], || {
        let summary =
            train::train(&cfg, &RunControl::quiet(), None).unwrap_or_else(|e| panic!("{e:#}"));
        let hub = offline_hub(&hf_cache);
        let repo = format!("timm/{name}");
        let source = checkpoint::read(hub.hf_cached_path(&repo, "model.safetensors")).unwrap();
        let trained = checkpoint::read(summary.run.join("weights/best.safetensors")).unwrap();
        for (timm_name, torchvision_name) in [
            (
                "stages.2.blocks.4.mlp.fc1.weight",
                "features.5.4.block.3.weight",
            ),
            ("stages.3.downsample.1.weight", "features.6.1.weight"),
        ] {
            let (want, got) = (
                source.get(timm_name).unwrap(),
                trained.get(torchvision_name).unwrap(),
            );
            assert!(
                got.equal(want),
                "{torchvision_name} is not timm's {timm_name}"
            );
        }
        let scale = trained.get("features.1.0.layer_scale").unwrap();
        assert_eq!(scale.size(), [96, 1, 1]);
        let meta = std::fs::read_to_string(summary.run.join("classify.json")).unwrap();
        let meta: serde_json::Value = serde_json::from_str(&meta).unwrap();
        assert_eq!(meta["arch"], "convnext_tiny");
        let config: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(hub.hf_cached_path(&repo, "config.json")).unwrap(),
        )
        .unwrap();
        let pre = &config["pretrained_cfg"];
        assert_eq!(meta["transform"]["mean"], pre["mean"]);
        assert_eq!(meta["transform"]["std"], pre["std"]);
        println!(
            "{name}: trained as convnext_tiny; run transform {}",
            meta["transform"]
        );

        // `classify predict --weights hf-hub:timm/…`: timm's 1000 ImageNet classes, its
        // preprocessing.
        let spec = std::path::PathBuf::from(format!("hf-hub:timm/{name}"));
        let source = predict::ModelSource::resolve(&spec, None).unwrap();
        assert!(
            matches!(source, predict::ModelSource::Hub { .. }),
            "{source:?}"
        );
        let (clf, classes, transform) = predict::load(&source, tch::Device::Cpu).unwrap();
        assert_eq!(clf.arch, "convnext_tiny");
        assert_eq!((classes.len(), classes[0].as_str()), (1000, "tench"));
        assert_eq!(serde_json::json!(transform.mean), pre["mean"]);
        assert_eq!(transform.size, 224);
        let image = data
            .join("val/circle")
            .read_dir()
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let preds =
            predict::predict(&clf, &classes, &transform, &[image], 3, tch::Device::Cpu).unwrap();
        assert_eq!(preds[0].top.len(), 3);
        let total: f64 = preds[0].top.iter().map(|(_, p)| p).sum();
        assert!(total > 0.0 && total <= 1.0 + 1e-6, "{:?}", preds[0].top);
    });
}

/// A run trained from one of timm's `tf_` ports records what its network needs beyond the
/// architecture (TensorFlow's SAME padding, BatchNorm eps 1e-3), and `val`/`predict` rebuild
/// that network from the run folder, not the architecture's default one.
#[test]
fn a_run_from_a_tf_port_is_rebuilt_with_its_padding() {
    let _serial = crate::serial();
    let dir = tempfile::tempdir().unwrap();
    let data = two_shapes(dir.path());
    let name = "tf_mobilenetv3_small_100.in1k";
    let (hf_cache, cfg) = timm_feature_extraction(dir.path(), &data, name);
    ferrovis_tests::with_offline_env(&[("HF_HUB_CACHE", &hf_cache)], || {
        let summary =
            train::train(&cfg, &RunControl::quiet(), None).unwrap_or_else(|e| panic!("{e:#}"));
        let meta: ferrovis_classify::run::RunMeta = ferrovis_core::run::RunDir::new(&summary.run)
            .read_meta()
            .unwrap();
        assert_eq!(meta.arch, "mobilenet_v3_small");
        assert!(meta.build.tf_same_padding);
        assert_eq!(
            meta.build.norm,
            Some(ferrovis_core::nn::NormLayer::BatchNormWith {
                eps: 1e-3,
                momentum: 0.1
            })
        );
        // The run's own transform: the user's 64 px, the interpolation of timm's config.json
        // resampled as Pillow does.
        assert_eq!(meta.transform.size, 64);
        let config: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(
                offline_hub(&hf_cache).hf_cached_path(&format!("timm/{name}"), "config.json"),
            )
            .unwrap(),
        )
        .unwrap();
        let filter = serde_json::to_value(meta.transform.filter).unwrap();
        assert_eq!(filter, config["pretrained_cfg"]["interpolation"]);

        // Rebuilt from the folder, it scores the validation set as the best epoch did.
        let source = predict::ModelSource::resolve(&summary.run, None).unwrap();
        let (clf, classes, transform) = predict::load(&source, tch::Device::Cpu).unwrap();
        let images: Vec<std::path::PathBuf> = ["circle", "square"]
            .iter()
            .flat_map(|c| std::fs::read_dir(data.join("val").join(c)).unwrap())
            .map(|e| e.unwrap().path())
            .collect();
        let preds =
            predict::predict(&clf, &classes, &transform, &images, 1, tch::Device::Cpu).unwrap();
        let correct = preds
            .iter()
            .zip(&images)
            .filter(|(p, path)| {
                path.parent().and_then(|d| d.file_name()) == Some(p.top[0].0.as_ref())
            })
            .count();
        let accuracy = correct as f64 / images.len() as f64;
        assert!(
            (accuracy - summary.best_accuracy).abs() < 1e-9,
            "rebuilt {accuracy} vs training's {}",
            summary.best_accuracy
        );
        // The architecture's default network (symmetric padding) would answer otherwise.
        let plain = ferrovis_classify::model::Classifier::at_size(
            "mobilenet_v3_small",
            2,
            0.0,
            Some(64),
            tch::Device::Cpu,
        )
        .unwrap();
        ferrovis_core::checkpoint::load_file(
            &plain.vs,
            summary.run.join("weights/best.safetensors"),
            &ferrovis_core::checkpoint::LoadOptions::default().strict(true),
        )
        .unwrap();
        let x = tch::Tensor::randn([2, 3, 64, 64], tch::kind::FLOAT_CPU);
        let (ours, theirs) = tch::no_grad(|| {
            (
                clf.model.forward_t(&x, false),
                plain.model.forward_t(&x, false),
            )
        });
        let diff = (&ours - &theirs).abs().max().double_value(&[]);
        assert!(diff > 1e-3, "padding made no difference: {diff}");
    });
}

/// `classify train --arch dinov2_vits14 --mode feature-extract` (the linear probe on the class
/// token and the mean patch token) and `--mode knn` (DINOv2's k-NN classifier), the weights
/// taken from the Hub cache's `facebook/dinov2-small` (a seeded transformers checkpoint here)
/// without being named; predict and val read the k-NN run back.
#[test]
fn classify_probes_and_knns_dinov2_features_from_the_hub() {
    let _serial = crate::serial();
    let dir = tempfile::tempdir().unwrap();
    let data = two_shapes(dir.path());
    let reference = dir.path().join("dinov2");
    run_reference(
        "dinov2.py",
        &[reference.as_os_str(), "dinov2-small".as_ref()],
    );
    let hf_cache = reference.join("hub");
    ferrovis_tests::with_offline_env(&[("HF_HUB_CACHE", &hf_cache)], || {
        let source = checkpoint::read(
            offline_hub(&hf_cache).hf_cached_path("facebook/dinov2-small", "model.safetensors"),
        )
        .unwrap();
        let runs = dir.path().join("runs");

        // The linear probe: a 2 × 768 head on [class token, mean patch token].
        let mut cfg = crate::classify_workflow::config(&data, &runs, Mode::FeatureExtract);
        cfg.model.arch = "dinov2_vits14".into();
        cfg.model.weights = String::new();
        cfg.data.image_size = 56;
        cfg.data.augment = false;
        cfg.train.epochs = 2;
        let probe =
            train::train(&cfg, &RunControl::quiet(), None).unwrap_or_else(|e| panic!("{e:#}"));
        let trained = checkpoint::read(probe.run.join("weights/best.safetensors")).unwrap();
        assert_eq!(trained.get("head.weight").unwrap().size(), [2, 768]);
        let qkv = trained.get("blocks.5.attn.qkv.weight").unwrap();
        let parts: Vec<tch::Tensor> = ["query", "key", "value"]
            .iter()
            .map(|p| {
                source
                    .get(&format!("encoder.layer.5.attention.attention.{p}.weight"))
                    .unwrap()
                    .shallow_clone()
            })
            .collect();
        assert!(qkv.equal(&tch::Tensor::cat(&parts, 0)), "fused q/k/v");
        // Built at 56 px: the 37² positional embedding resized to 4² when it loaded.
        assert_eq!(trained.get("pos_embed").unwrap().size(), [1, 17, 384]);
        let meta: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(probe.run.join("classify.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(meta["arch"], "dinov2_vits14");
        println!("linear probe: best accuracy {:.3}", probe.best_accuracy);

        // k-NN: nothing trains; the run holds the backbone and the features.
        cfg.train.mode = Mode::Knn;
        cfg.train.knn_k = 3;
        let knn =
            train::train(&cfg, &RunControl::quiet(), None).unwrap_or_else(|e| panic!("{e:#}"));
        let file = knn.run.join("knn.safetensors");
        let saved = checkpoint::read(&file).unwrap();
        assert_eq!(saved.get("features").unwrap().size(), [8, 384]);
        let weights = checkpoint::read(knn.run.join("weights/best.safetensors")).unwrap();
        assert!(weights.get("head.weight").is_none());
        // The accuracy train reports is what the run folder predicts.
        let run = ferrovis_core::run::RunDir::new(&knn.run);
        let (clf, meta) = predict::load_run(&run, &run.best(), tch::Device::Cpu).unwrap();
        assert!(clf.knn.is_some());
        let mut correct = 0;
        let mut total = 0;
        for (label, class) in meta.classes.iter().enumerate() {
            let images: Vec<_> = data
                .join("val")
                .join(class)
                .read_dir()
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            let preds = predict::predict(
                &clf,
                &meta.classes,
                &meta.transform,
                &images,
                2,
                tch::Device::Cpu,
            )
            .unwrap();
            for p in preds {
                let sum: f64 = p.top.iter().map(|(_, p)| p).sum();
                assert!((sum - 1.0).abs() < 1e-5, "{:?}", p.top);
                correct += usize::from(p.top[0].0 == meta.classes[label]);
                total += 1;
            }
        }
        let acc = correct as f64 / total as f64;
        assert!(
            (acc - knn.best_accuracy).abs() < 1e-9,
            "predict {acc} vs train's {}",
            knn.best_accuracy
        );
        println!("k-NN (k 3): accuracy {acc:.3}");
        // Its classifier is no traceable head: export says so instead of writing features.
        let err = ferrovis_classify::export::export(
            &knn.run,
            &dir.path().join("knn.pt"),
            ferrovis_app::args::ExportFormat::Torchscript,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("k-NN run"), "{err}");

        // An image size DINOv2 cannot tile: named.
        cfg.data.image_size = 64;
        let err = train::train(&cfg, &RunControl::quiet(), None).unwrap_err();
        assert!(
            format!("{err:#}").contains("multiple of the patch size 14"),
            "{err:#}"
        );
    });
}
