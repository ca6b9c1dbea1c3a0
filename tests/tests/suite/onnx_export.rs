//! ONNX export (`ferrovis_core::onnx`): models written from Rust, checked by the ONNX project's
//! own checker (`onnx.checker.check_model`, full check) and run by ONNX Runtime on real images
//! (`reference/onnx_run.py`); the outputs must equal the libtorch forward's within 1e-4 of their
//! scale.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ferrovis_core::onnx::{export, Dynamic, OnnxOptions, OnnxSummary};
use ferrovis_core::{create_backbone, BackboneOptions};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

/// BatchNorm statistics and every 1-D parameter moved away from their initial values, so that
/// folding a BatchNorm into its convolution is tested with real numbers, and every tensor
/// initialised to a constant (ViT's zero head, layer scales) given noise, so that no output is
/// the same whatever the input.
pub(crate) fn randomise_one_dim(vs: &VarStore) {
    tch::no_grad(|| {
        for (name, mut t) in vs.variables() {
            if !t.is_floating_point() {
                continue;
            }
            if t.dim() != 1 {
                if t.numel() > 1 && t.std(false).double_value(&[]) == 0.0 {
                    let v = &t + Tensor::randn_like(&t) * 0.02;
                    t.copy_(&v);
                }
                continue;
            }
            if name.ends_with("running_var") {
                let v = Tensor::rand_like(&t) + 0.5;
                t.copy_(&v);
            } else {
                let v = &t + Tensor::randn_like(&t) * 0.1;
                t.copy_(&v);
            }
        }
    });
}

/// The two committed public-domain pictures (the cat `chelsea.png`, `starry_night.jpg`),
/// resized to `size` and normalised with ImageNet's statistics: a (2, 3, size, size) batch.
pub(crate) fn real_images(size: i64) -> Tensor {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let images: Vec<Tensor> = ["style/assets/chelsea.png", "style/assets/starry_night.jpg"]
        .iter()
        .map(|p| {
            let img = ferrovis_data::decode::read_rgb(&root.join(p)).unwrap();
            let t = Tensor::from_slice(&img.data)
                .view([img.height as i64, img.width as i64, 3])
                .permute([2, 0, 1])
                .to_kind(Kind::Float)
                / 255.0;
            t.unsqueeze(0)
                .upsample_bilinear2d([size, size], false, None, None)
                .squeeze_dim(0)
        })
        .collect();
    let mean = Tensor::from_slice(&[0.485f32, 0.456, 0.406]).view([3, 1, 1]);
    let std = Tensor::from_slice(&[0.229f32, 0.224, 0.225]).view([3, 1, 1]);
    (Tensor::stack(&images, 0) - mean) / std
}

/// ONNX Runtime's outputs for `feeds` (name → tensor, `name@k` for the k-th run) and what the
/// script says of the model (opset, metadata, declared shapes, operators, initialisers).
pub(crate) fn onnx_runtime(
    model: &Path,
    feeds: &[(String, Tensor)],
) -> (HashMap<String, Tensor>, serde_json::Value) {
    let dir = model.parent().unwrap();
    let stem = model.file_stem().unwrap().to_string_lossy();
    let inputs = dir.join(format!("{stem}.inputs.safetensors"));
    let outputs = dir.join(format!("{stem}.outputs.safetensors"));
    let named: Vec<(&str, Tensor)> = feeds
        .iter()
        .map(|(n, t)| (n.as_str(), t.contiguous()))
        .collect();
    Tensor::write_safetensors(&named, &inputs).unwrap();
    let stdout = ferrovis_tests::run_reference(
        "onnx_run.py",
        &[model.as_os_str(), inputs.as_os_str(), outputs.as_os_str()],
    );
    let meta: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let results = Tensor::read_safetensors(&outputs)
        .unwrap()
        .into_iter()
        .collect();
    (results, meta)
}

/// `max |ours - theirs| / max |ours|`.
pub(crate) fn relative_difference(ours: &Tensor, theirs: &Tensor) -> f64 {
    assert_eq!(ours.size(), theirs.size(), "shapes differ");
    let scale = ours.abs().max().double_value(&[]).max(1e-12);
    (ours - theirs).abs().max().double_value(&[]) / scale
}

/// Runs `model` in ONNX Runtime on each `(input, expected)` pair (one run each, of whatever
/// batch and size the input has); returns the largest relative difference and what the script
/// says of the model.
pub(crate) fn worst_of_runs(
    model: &Path,
    input: &str,
    runs: &[(Tensor, Tensor)],
) -> (f64, serde_json::Value) {
    let feeds: Vec<(String, Tensor)> = runs
        .iter()
        .enumerate()
        .map(|(k, (x, _))| (format!("{input}@{k}"), x.shallow_clone()))
        .collect();
    let (out, meta) = onnx_runtime(model, &feeds);
    let name = meta["outputs"]
        .as_object()
        .and_then(|o| o.keys().next().cloned())
        .unwrap();
    let worst = runs
        .iter()
        .enumerate()
        .map(|(k, (x, expected))| {
            let d = relative_difference(expected, &out[&format!("{name}@{k}")]);
            println!(
                "  {} at {:?}: ONNX Runtime vs libtorch {d:.2e}",
                model.file_name().unwrap().to_string_lossy(),
                x.size()
            );
            d
        })
        .fold(0.0, f64::max);
    (worst, meta)
}

/// A backbone with moved statistics, exported traced on one picture with `dynamic` axes;
/// returns the file, the summary and the libtorch forward at other inputs.
fn export_backbone(
    name: &str,
    size: i64,
    dynamic: Dynamic,
    dir: &Path,
) -> (PathBuf, OnnxSummary, impl Fn(&Tensor) -> Tensor) {
    let mut vs = VarStore::new(Device::Cpu);
    let opts = BackboneOptions {
        image_size: Some(size),
        ..BackboneOptions::default()
    };
    let net = create_backbone(name, &vs.root(), &opts).unwrap();
    randomise_one_dim(&vs);
    vs.freeze();
    let x = real_images(size).narrow(0, 0, 1);
    let path = dir.join(format!("{name}.onnx"));
    let summary = export(
        &vs,
        &[x],
        |inputs| Ok(vec![net.forward_t(&inputs[0], false)]),
        &OnnxOptions {
            dynamic,
            ..OnnxOptions::default()
        },
        &path,
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    let forward = move |x: &Tensor| tch::no_grad(|| net.forward_t(x, false));
    (path, summary, forward)
}

#[test]
fn backbones_export_to_onnx_and_onnx_runtime_gives_their_logits() {
    let tmp = tempfile::tempdir().unwrap();
    // Exported with a free batch, height and width (ViT: batch only, it takes 224² alone),
    // traced on one picture, run on both at the traced size and on one at a smaller size.
    for (name, size, dynamic) in [
        ("resnet50", 224, Dynamic::BatchAndSize),
        ("efficientnet_b0", 224, Dynamic::BatchAndSize),
        ("mobilenet_v3_large", 224, Dynamic::BatchAndSize),
        ("convnext_tiny", 224, Dynamic::BatchAndSize),
        ("vit_b_16", 224, Dynamic::Batch),
    ] {
        let (path, summary, forward) = export_backbone(name, size, dynamic, tmp.path());
        let both = real_images(size);
        let other = if dynamic == Dynamic::BatchAndSize {
            real_images(160).narrow(0, 1, 1)
        } else {
            both.narrow(0, 1, 1)
        };
        let runs = [
            (both.shallow_clone(), forward(&both)),
            (other.shallow_clone(), forward(&other)),
        ];
        let (d, meta) = worst_of_runs(&path, "images", &runs);
        let free = if dynamic == Dynamic::BatchAndSize {
            serde_json::json!(["batch", 3, "height", "width"])
        } else {
            serde_json::json!(["batch", 3, 224, 224])
        };
        assert_eq!(meta["inputs"]["images"], free, "{name}");
        assert_eq!(
            meta["outputs"]["output0"],
            serde_json::json!(["batch", 1000])
        );
        println!(
            "{name}: {} nodes, {} initialisers ({} by state-dict name), {:.1} MB; ONNX Runtime \
             vs libtorch {d:.2e}",
            summary.nodes,
            summary.initialisers,
            summary.named_initialisers,
            summary.bytes as f64 / 1e6
        );
        assert!(d <= 1e-4, "{name}: ONNX Runtime differs by {d:.3e}");
        assert_eq!(meta["opset"], 18);
        assert_eq!(meta["ir_version"], 10);
        // Every BatchNorm is folded away.
        let ops: Vec<String> = serde_json::from_value(meta["operators"].clone()).unwrap();
        assert!(
            !ops.contains(&"BatchNormalization".into()),
            "{name}: {ops:?}"
        );
        // The weights keep their state-dict names.
        let inits: Vec<String> = serde_json::from_value(meta["initialisers"].clone()).unwrap();
        let vs_names = {
            let vs = VarStore::new(Device::Cpu);
            let opts = BackboneOptions {
                image_size: Some(size),
                ..BackboneOptions::default()
            };
            let _net = create_backbone(name, &vs.root(), &opts).unwrap();
            vs.variables().into_keys().collect::<Vec<_>>()
        };
        let named = inits.iter().filter(|n| vs_names.contains(n)).count();
        assert!(
            named * 2 >= summary.named_initialisers && named > 10,
            "{name}: {named} of {} initialisers carry state-dict names",
            inits.len()
        );
    }
}

/// The two pictures as `detect predict` would feed a `size` model: RGB in [0, 1], (2, 3, size,
/// size) (squashed rather than letterboxed: the comparison needs the same pixels, not a fit).
fn unit_images(size: i64) -> Tensor {
    let mean = Tensor::from_slice(&[0.485f32, 0.456, 0.406]).view([1, 3, 1, 1]);
    let std = Tensor::from_slice(&[0.229f32, 0.224, 0.225]).view([1, 3, 1, 1]);
    (real_images(size) * std + mean).clamp(0.0, 1.0)
}

/// `detect export --weights pt --format onnx --imgsz 320 --out out` with `extra` flags, which
/// must succeed; its standard output.
fn detect_onnx_export(pt: &Path, out: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "detect",
        "export",
        "--weights",
        pt.to_str().unwrap(),
        "--format",
        "onnx",
        "--imgsz",
        "320",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let (ok, stdout, stderr) = crate::cli::cli(&args);
    assert!(ok, "{stdout}\n{stderr}");
    stdout
}

#[test]
fn yolov8n_onnx_has_ultralytics_layout_and_equals_ultralytics_own_export() {
    let case = crate::yolo_ultralytics::model_case("yolov8n");
    let pt = case.join("yolov8n-2cls.pt");
    let tmp = tempfile::tempdir().unwrap();
    let ours = tmp.path().join("ours.onnx");
    let stdout = detect_onnx_export(&pt, &ours, &[]);
    assert!(stdout.contains("ONNX, opset 18"), "{stdout}");
    let theirs = tmp.path().join("theirs.onnx");
    ferrovis_tests::run_reference(
        "onnx_ultralytics.py",
        &[pt.as_os_str(), "320".as_ref(), theirs.as_os_str()],
    );
    let x = unit_images(320).narrow(0, 0, 1);
    let feeds = [("images".to_string(), x.shallow_clone())];
    let (ours_out, ours_meta) = onnx_runtime(&ours, &feeds);
    let (theirs_out, theirs_meta) = onnx_runtime(&theirs, &feeds);
    // 2 classes at 320: (1, 4 + 2, 40² + 20² + 10²).
    assert_eq!(ours_out["output0"].size(), [1, 6, 2100]);
    let d = relative_difference(&theirs_out["output0"], &ours_out["output0"]);
    println!("YOLOv8n at 320: our ONNX vs Ultralytics' ONNX (both in ONNX Runtime): {d:.2e}");
    assert!(
        d <= 1e-4,
        "output0 differs from Ultralytics' export by {d:.3e}"
    );
    for key in ["names", "stride", "task", "imgsz", "batch", "channels"] {
        assert_eq!(
            ours_meta["metadata"][key], theirs_meta["metadata"][key],
            "metadata property {key}"
        );
    }
    assert_eq!(ours_meta["opset"], theirs_meta["opset"]);
    assert_eq!(
        ours_meta["inputs"]["images"],
        serde_json::json!([1, 3, 320, 320])
    );
    // The libtorch forward `detect predict` runs gives the same numbers.
    let m = ferrovis_detect::yolo::predict::load_model(&pt, Device::Cpu, false).unwrap();
    let expected = tch::no_grad(|| m.model.predict(&x));
    let d = relative_difference(&expected, &ours_out["output0"]);
    println!("YOLOv8n at 320: ONNX Runtime vs libtorch {d:.2e}");
    assert!(d <= 1e-4, "{d:.3e}");
    // `--dynamic`: one graph for any batch and any multiple of 32, anchors computed in it.
    let dynamic = tmp.path().join("dynamic.onnx");
    let stdout = detect_onnx_export(&pt, &dynamic, &["--dynamic"]);
    assert!(stdout.contains("free batch, height and width"), "{stdout}");
    let both = unit_images(320);
    let smaller = unit_images(256).narrow(0, 1, 1);
    let runs = [
        (
            both.shallow_clone(),
            tch::no_grad(|| m.model.predict(&both)),
        ),
        (
            smaller.shallow_clone(),
            tch::no_grad(|| m.model.predict(&smaller)),
        ),
    ];
    let (d, meta) = worst_of_runs(&dynamic, "images", &runs);
    println!("YOLOv8n --dynamic: ONNX Runtime vs libtorch {d:.2e}");
    assert!(d <= 1e-4, "{d:.3e}");
    assert_eq!(
        meta["inputs"]["images"],
        serde_json::json!(["batch", 3, "height", "width"])
    );
    assert_eq!(
        meta["outputs"]["output0"],
        serde_json::json!(["batch", 6, "anchors"])
    );
}

/// `detections` as (n, 6) rows `x1, y1, x2, y2, score, class` by decreasing score.
fn detection_rows(detections: &[ferrovis_core::metrics::detection::Detection]) -> Tensor {
    let flat: Vec<f32> = detections
        .iter()
        .flat_map(|d| {
            let [x1, y1, x2, y2] = d.bbox;
            [x1, y1, x2, y2, d.score, d.class as f32]
        })
        .collect();
    Tensor::from_slice(&flat).view([-1, 6])
}

/// The rows of one image's `(max_det, 6)` output that hold a detection (score above zero).
fn filled_rows(rows: &Tensor) -> Tensor {
    let n = i64::try_from(rows.select(1, 4).gt(0.0).sum(Kind::Int64)).unwrap();
    rows.narrow(0, 0, n)
}

#[test]
fn yolov8n_nms_export_equals_detect_predict_and_ultralytics_nms_export() {
    let case = crate::yolo_ultralytics::model_case("yolov8n");
    let pt = case.join("yolov8n-2cls.pt");
    let tmp = tempfile::tempdir().unwrap();
    let ours = tmp.path().join("ours-nms.onnx");
    // A low threshold, so that the pictures give many boxes to suppress and keep.
    let conf = "0.01";
    let stdout = detect_onnx_export(&pt, &ours, &["--dynamic", "batch", "--nms", "--conf", conf]);
    assert!(stdout.contains("with NMS"), "{stdout}");
    let theirs = tmp.path().join("theirs-nms.onnx");
    ferrovis_tests::run_reference(
        "onnx_ultralytics.py",
        &[
            pt.as_os_str(),
            "320".as_ref(),
            theirs.as_os_str(),
            conf.as_ref(),
        ],
    );
    let both = unit_images(320);
    let (ours_out, ours_meta) = onnx_runtime(&ours, &[("images".into(), both.shallow_clone())]);
    assert_eq!(
        ours_meta["outputs"]["output0"],
        serde_json::json!(["batch", 300, 6])
    );
    let feeds: Vec<(String, Tensor)> = (0..2)
        .map(|k| (format!("images@{k}"), both.narrow(0, k, 1)))
        .collect();
    let (theirs_out, _) = onnx_runtime(&theirs, &feeds);
    // `detect predict`'s post-processing of the libtorch forward, at the same threshold.
    let m = ferrovis_detect::yolo::predict::load_model(&pt, Device::Cpu, false).unwrap();
    let decoded = tch::no_grad(|| m.model.predict(&both));
    let cfg = ferrovis_detect::yolo::postprocess::NmsConfig {
        conf: 0.01,
        ..ferrovis_detect::yolo::postprocess::NmsConfig::predict()
    };
    let predicted = ferrovis_detect::yolo::postprocess::non_max_suppression(&decoded, &cfg);
    for k in 0..2 {
        let ours = ours_out["output0"].get(k);
        let filled = filled_rows(&ours);
        let expected = detection_rows(&predicted[k as usize]);
        let theirs = filled_rows(&theirs_out[&format!("output0@{k}")].get(0));
        println!(
            "picture {k}: {} rows from our graph, {} from detect predict, {} from Ultralytics' \
             nms=True export",
            filled.size()[0],
            expected.size()[0],
            theirs.size()[0]
        );
        assert!(filled.size()[0] >= 5, "too few detections to compare");
        // The rows after the detections are zeros.
        let rest = ours.narrow(0, filled.size()[0], 300 - filled.size()[0]);
        assert_eq!(rest.abs().sum(Kind::Double).double_value(&[]), 0.0);
        let d = relative_difference(&expected, &filled);
        let u = relative_difference(&theirs, &filled);
        println!("  vs detect predict {d:.2e}, vs Ultralytics {u:.2e}");
        assert!(
            d <= 1e-4,
            "picture {k}: our NMS graph vs detect predict {d:.3e}"
        );
        assert!(
            u <= 1e-4,
            "picture {k}: our NMS graph vs Ultralytics' {u:.3e}"
        );
    }
}

#[test]
fn segmentation_and_style_networks_export_to_onnx() {
    let tmp = tempfile::tempdir().unwrap();
    // U-Net on ResNet-34 and DeepLabV3 on ResNet-50, fresh with moved statistics.
    use ferrovis_segment::model::Architecture;
    for (arch, name, encoder, size) in [
        (Architecture::Unet, "unet", "resnet34", 128),
        (Architecture::Deeplabv3, "deeplabv3", "resnet50", 128),
    ] {
        let spec = ferrovis_segment::model::ModelSpec {
            arch,
            encoder: encoder.into(),
            num_classes: 3,
            ..Default::default()
        };
        let mut model =
            ferrovis_segment::model::SegmentationModel::new(&spec, Device::Cpu).unwrap();
        randomise_one_dim(&model.vs);
        model.vs.freeze();
        let x = real_images(size);
        let path = tmp.path().join(format!("{name}.onnx"));
        export(
            &model.vs,
            &[x.narrow(0, 0, 1)],
            |i| Ok(vec![model.forward_t(&i[0], false).out]),
            &OnnxOptions {
                dynamic: Dynamic::BatchAndSize,
                ..OnnxOptions::default()
            },
            &path,
        )
        .unwrap();
        // Traced on one picture at 128²: run on both, and on one at 96².
        let smaller = real_images(96).narrow(0, 1, 1);
        let forward = |x: &Tensor| tch::no_grad(|| model.forward_t(x, false).out);
        let runs = [
            (x.shallow_clone(), forward(&x)),
            (smaller.shallow_clone(), forward(&smaller)),
        ];
        let (d, meta) = worst_of_runs(&path, "images", &runs);
        println!("{name}-{encoder}: ONNX Runtime vs libtorch {d:.2e}");
        assert!(d <= 1e-4, "{name}: {d:.3e}");
        assert_eq!(
            meta["outputs"]["output0"],
            serde_json::json!(["batch", 3, "height", "width"])
        );
    }
    // The fast style network (reflection padding, instance norm, upsampling).
    let vs = VarStore::new(Device::Cpu);
    let net = ferrovis_style::transformer::TransformerNet::new(&vs.root());
    let mut vs = vs;
    randomise_one_dim(&vs);
    vs.freeze();
    let x = unit_images(96).narrow(0, 0, 1);
    let path = tmp.path().join("style.onnx");
    export(
        &vs,
        &[x.shallow_clone()],
        |i| Ok(vec![net.forward(&i[0])]),
        &OnnxOptions {
            dynamic: Dynamic::BatchAndSize,
            ..OnnxOptions::default()
        },
        &path,
    )
    .unwrap();
    let both = unit_images(64);
    let forward = |x: &Tensor| tch::no_grad(|| net.forward(x));
    let runs = [
        (x.shallow_clone(), forward(&x)),
        (both.shallow_clone(), forward(&both)),
    ];
    let (d, _) = worst_of_runs(&path, "images", &runs);
    println!("style network: ONNX Runtime vs libtorch {d:.2e}");
    assert!(d <= 1e-4, "{d:.3e}");
}

#[test]
fn the_export_check_runs_the_graph_and_refuses_one_that_computes_something_else() {
    let mut vs = VarStore::new(Device::Cpu);
    let net = create_backbone("resnet18", &vs.root(), &BackboneOptions::classes(4)).unwrap();
    randomise_one_dim(&vs);
    vs.freeze();
    let x = real_images(64).narrow(0, 0, 1);
    let mut forward = |i: &[Tensor]| Ok(vec![net.forward_t(&i[0], false)]);
    let options = OnnxOptions {
        dynamic: Dynamic::BatchAndSize,
        ..OnnxOptions::default()
    };
    let model =
        ferrovis_core::onnx::to_model(&vs, &[x.shallow_clone()], &mut forward, &options).unwrap();
    // The graph as written runs to the forward's logits, at the traced input and another.
    ferrovis_core::onnx::verify(&model, &[x.shallow_clone()], &mut forward, &options).unwrap();
    let other = real_images(96);
    let got = ferrovis_core::onnx::run::run(&model, &[other.shallow_clone()]).unwrap();
    let d = relative_difference(&forward(&[other]).unwrap()[0], &got["output0"]);
    println!("resnet18 run from its ONNX graph at 2×96²: {d:.2e}");
    assert!(d <= 1e-5, "{d:.3e}");
    // One weight changed in the file: the check names the output and the difference.
    let mut tampered = model.clone();
    let graph = tampered.graph.as_mut().unwrap();
    let fc = graph
        .initializer
        .iter_mut()
        .find(|t| t.name == "fc.bias")
        .unwrap();
    fc.raw_data[0..4].copy_from_slice(&5.0f32.to_le_bytes());
    let err = ferrovis_core::onnx::verify(&tampered, &[x], &mut forward, &options)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("'output0'") && err.contains("away from the libtorch forward"),
        "{err}"
    );
}

#[test]
fn a_run_folder_without_weights_is_named_and_no_file_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    std::fs::create_dir(&run).unwrap();
    std::fs::write(run.join("results.csv"), "epoch\n").unwrap();
    for task in ["classify", "detect", "segment", "style"] {
        let out = tmp.path().join(format!("{task}.onnx"));
        let (ok, stdout, stderr) = crate::cli::cli(&[
            task,
            "export",
            "--weights",
            run.to_str().unwrap(),
            "--format",
            "onnx",
            "--out",
            out.to_str().unwrap(),
        ]);
        println!("{task}: {}", stderr.trim());
        assert!(!ok, "{task}: {stdout}");
        assert!(stderr.contains(run.to_str().unwrap()), "{task}: {stderr}");
        assert!(!stderr.contains("panicked"), "{task}: {stderr}");
        assert!(!out.exists(), "{task} left {}", out.display());
    }
}

#[test]
fn an_unsupported_operator_and_an_unwritable_path_are_named_and_leave_no_file() {
    let tmp = tempfile::tempdir().unwrap();
    let mut vs = VarStore::new(Device::Cpu);
    let w = vs.root().var(
        "w",
        &[4, 4],
        tch::nn::Init::Randn {
            mean: 0.,
            stdev: 1.,
        },
    );
    vs.freeze();
    let x = Tensor::randn([2, 4], (Kind::Float, Device::Cpu));
    let path = tmp.path().join("svd.onnx");
    // An operator without a translation: the error names it, and no file is written.
    let err = export(
        &vs,
        &[x.shallow_clone()],
        |i| Ok(vec![i[0].matmul(&w).cumprod(1, Kind::Float)]),
        &OnnxOptions::default(),
        &path,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("aten::cumprod"), "{err}");
    assert!(!path.exists());
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "no partial file"
    );
    // A folder that cannot be written.
    let blocked = tmp.path().join("file");
    std::fs::write(&blocked, b"not a folder").unwrap();
    let err = export(
        &vs,
        &[x],
        |i| Ok(vec![i[0].matmul(&w)]),
        &OnnxOptions::default(),
        &blocked.join("m.onnx"),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("file"), "{err}");
}

#[test]
fn yolo11_and_yolo26_end_to_end_export_to_onnx() {
    use ferrovis_app::args::ExportFormat;
    let tmp = tempfile::tempdir().unwrap();
    let x = unit_images(320).narrow(0, 0, 1);
    for (version, end2end) in [("yolo11n", false), ("yolo26n", true)] {
        let pt = crate::yolo_ultralytics::model_case(version).join(format!("{version}-2cls.pt"));
        let path = tmp.path().join(format!("{version}.onnx"));
        let (m, _) = if end2end {
            ferrovis_detect::yolo::export::export_end2end(&pt, &path, ExportFormat::Onnx, Some(320))
        } else {
            ferrovis_detect::yolo::export::export(&pt, &path, ExportFormat::Onnx, Some(320))
        }
        .unwrap_or_else(|e| panic!("{version}: {e:#}"));
        let expected = tch::no_grad(|| {
            if end2end {
                m.model
                    .predict_end2end(&x, ferrovis_detect::yolo::yolo26::MAX_DET)
                    .unwrap()
            } else {
                m.model.predict(&x)
            }
        });
        let (out, _) = onnx_runtime(&path, &[("images".into(), x.shallow_clone())]);
        let (expected, got) = if end2end {
            // TopK may order, and choose among, rows of equal score either way: the score
            // column is compared whole, the rows up to the first near-tie in full.
            let (a, b) = (rows_in_order(&expected), rows_in_order(&out["output0"]));
            let ds = relative_difference(&a.select(2, 4), &b.select(2, 4));
            assert!(ds <= 1e-4, "{version}: scores differ by {ds:.3e}");
            let scores = Vec::<f32>::try_from(a.select(2, 4).flatten(0, -1)).unwrap();
            let distinct = scores
                .windows(2)
                .position(|w| (w[0] - w[1]).abs() <= 1e-6)
                .unwrap_or(scores.len());
            println!("{version}: the first {distinct} rows have distinct scores");
            assert!(distinct >= 5, "too few rows to compare: {distinct}");
            (
                a.narrow(1, 0, distinct as i64),
                b.narrow(1, 0, distinct as i64),
            )
        } else {
            (expected, out["output0"].shallow_clone())
        };
        let d = relative_difference(&expected, &got);
        println!(
            "{version}{}: output0 {:?}, ONNX Runtime vs libtorch {d:.2e}",
            if end2end { " end-to-end" } else { "" },
            out["output0"].size()
        );
        assert!(d <= 1e-4, "{version}: {d:.3e}");
    }
}

/// The (1, n, 6) rows sorted by decreasing score, then by x1, y1, x2, y2 and class.
fn rows_in_order(t: &Tensor) -> Tensor {
    let rows: Vec<Vec<f32>> = (0..t.size()[1])
        .map(|r| Vec::<f32>::try_from(t.get(0).get(r)).unwrap())
        .collect();
    let mut sorted = rows.clone();
    sorted.sort_by(|a, b| {
        let key = |r: &Vec<f32>| [-r[4], r[0], r[1], r[2], r[3], r[5]];
        key(a)
            .partial_cmp(&key(b))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let flat: Vec<f32> = sorted.into_iter().flatten().collect();
    Tensor::from_slice(&flat).view([1, -1, 6])
}
