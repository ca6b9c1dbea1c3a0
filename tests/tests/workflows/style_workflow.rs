//! `style` end to end without real weights: a random VGG11 saved as a torchvision checkpoint is
//! the loss network; `train-fast` runs one epoch through the engine (one optimiser step per
//! batch) and writes its run folder; the trained network loads and stylises at the input's size,
//! and `predict`'s pipeline writes what it gives;
//! Gatys with Adam lowers its loss; missing weights get the message that says where VGG19 lives.

use std::path::Path;

use ferrovis_core::backbone::{BackboneOptions, Vgg, VggConfig};
use ferrovis_core::checkpoint;
use ferrovis_core::engine::RunControl;
use ferrovis_data::decode::read_rgb;
use ferrovis_data::synthetic::{self, ShapesConfig};
use ferrovis_style::fast::{self, FastConfig};
use ferrovis_style::features::FeatureNet;
use ferrovis_style::gatys::{self, GatysConfig, Method};
use ferrovis_style::image;
use ferrovis_style::loss::PerceptualLoss;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

pub(crate) fn random_vgg11(path: &Path) {
    tch::manual_seed(0);
    let vs = VarStore::new(Device::Cpu);
    let _vgg = Vgg::new(
        &vs.root(),
        &VggConfig::by_name("vgg11").unwrap(),
        &BackboneOptions::classes(0),
    );
    checkpoint::save_varstore(&vs, path).unwrap();
}

/// The values of `column` in a results.csv, epoch by epoch.
fn csv_column(path: &Path, column: &str) -> Vec<f64> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let i = header.iter().position(|h| *h == column).unwrap();
    lines
        .map(|l| l.split(',').nth(i).unwrap().parse().unwrap())
        .collect()
}

#[test]
fn train_fast_step_stylize_and_gatys() {
    let _serial = crate::serial();
    let tmp = tempfile::tempdir().unwrap();
    let vgg = tmp.path().join("vgg11.safetensors");
    random_vgg11(&vgg);
    let shapes = ShapesConfig {
        image_size: 48,
        train: 2,
        val: 1,
        classes: ["circle", "square"].map(String::from).to_vec(),
        max_objects: 1,
        ..Default::default()
    };
    let data = synthetic::write_classification(&tmp.path().join("shapes"), &shapes).unwrap();
    let style = data.join("train/circle/0000.png");
    let cfg = FastConfig {
        style: style.clone(),
        content_dir: data.join("train"),
        vgg: vgg.clone(),
        size: 32,
        max_images: 4,
        batch_size: 4,
        epochs: 1,
        lr: 1e-3,
        loss: PerceptualLoss {
            content_layers: vec!["relu2_1".into()],
            style_layers: vec!["relu1_1".into(), "relu2_1".into()],
            content_weight: 1.0,
            style_weight: 1e3,
            tv_weight: 1e-3,
        },
        seed: 0,
        tensorboard: true,
        project: tmp.path().join("runs"),
        name: "fast".into(),
    };
    let run = fast::train_fast(&cfg, Device::Cpu, None, &RunControl::quiet()).unwrap();
    let csv = std::fs::read_to_string(run.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 2, "{csv}");
    assert!(
        csv.starts_with("epoch,train_loss,val_loss,val_content,val_style,val_tv,lr,"),
        "{csv}"
    );
    // Continuing the run to two epochs adds one row to the same folder.
    let longer = FastConfig {
        epochs: 2,
        ..cfg.clone()
    };
    let again = fast::train_fast(&longer, Device::Cpu, Some(&run), &RunControl::quiet()).unwrap();
    assert_eq!(again, run);
    let csv = std::fs::read_to_string(run.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(csv.lines().nth(2).unwrap().starts_with("2,"), "{csv}");
    let missing = tmp.path().join("no-run");
    let err = format!(
        "{:#}",
        fast::train_fast(&cfg, Device::Cpu, Some(&missing), &RunControl::quiet()).unwrap_err()
    );
    assert!(err.contains("no-run: no such run folder"), "{err}");
    // The run recorded its settings; val scores the network with them.
    let meta: FastConfig = ferrovis_core::run::RunDir::new(&run).read_meta().unwrap();
    assert_eq!(meta, longer);
    let v = fast::validate(&run, None, 0, Device::Cpu).unwrap();
    assert_eq!(v.images, 4);
    assert!(
        (v.loss - (v.content + v.style + v.tv)).abs() < 1e-6 * v.loss.max(1.0),
        "{v:?}"
    );
    // Training validated on the same 4 images (one batch): the best weights score the lowest
    // val_loss of results.csv.
    let lowest = csv_column(&run.join("results.csv"), "val_loss")
        .into_iter()
        .fold(f64::INFINITY, f64::min);
    let best = ferrovis_core::run::RunDir::new(&run).best();
    let at_best = fast::validate(&best, None, 0, Device::Cpu).unwrap();
    assert!(
        (at_best.loss - lowest).abs() <= 1e-4 * lowest.abs(),
        "{at_best:?} vs {lowest}"
    );

    // export: Python's torch.jit.load gives the same image.
    let ts = tmp.path().join("style.pt");
    fast::export(&run, &ts, ferrovis_app::args::ExportFormat::Torchscript, 32).unwrap();
    let (_vs, traced_from) = fast::load_transformer(&run, Device::Cpu).unwrap();
    let input = Tensor::rand([2, 3, 32, 32], (Kind::Float, Device::Cpu));
    let output = tch::no_grad(|| traced_from.forward(&input));
    let diff = ferrovis_tests::torchscript_max_diff(&ts, &input, &output);
    println!("style export: max abs difference {diff:e}");
    assert!(diff < 1e-5, "style export: {diff:e}");
    let (_vs, net) = fast::load_transformer(&run, Device::Cpu).unwrap();
    let x = Tensor::rand([1, 3, 40, 52], (Kind::Float, Device::Cpu));
    let y = tch::no_grad(|| net.forward(&x));
    assert_eq!(y.size(), vec![1, 3, 40, 52]);
    // predict's pipeline: every image stylised into a PNG named after it, the pixels the network
    // gives for it (in order, whatever the threads did); an image that does not decode is named.
    let photos = tmp.path().join("photos");
    let mut inputs = Vec::new();
    for (i, (h, w)) in [(40, 52), (33, 20), (48, 48)].into_iter().enumerate() {
        let path = photos.join(format!("p{i}.png"));
        image::save(
            &Tensor::rand([1, 3, h, w], (Kind::Float, Device::Cpu)),
            &path,
        )
        .unwrap();
        inputs.push(path);
    }
    let stylised = tmp.path().join("stylised");
    let mut skipped = ferrovis_data::sources::SkipLog::default();
    assert_eq!(
        fast::stylise_files(&net, &inputs, 0, &stylised, Device::Cpu, &mut skipped).unwrap(),
        3
    );
    for p in &inputs {
        let x = image::load(p, 0, Device::Cpu).unwrap();
        let want = image::to_image(&tch::no_grad(|| net.forward(&x))).unwrap();
        let got = read_rgb(&stylised.join(p.file_name().unwrap())).unwrap();
        assert_eq!((got.width, got.height), (want.width, want.height));
        assert!(got.data == want.data, "{}", p.display());
    }
    let bad = photos.join("bad.png");
    std::fs::write(&bad, b"not a png").unwrap();
    // A file that cannot be read is skipped and recorded; the others are written.
    let files = [inputs[0].clone(), bad, inputs[1].clone()];
    let written = fast::stylise_files(
        &net,
        &files,
        0,
        &tmp.path().join("s2"),
        Device::Cpu,
        &mut skipped,
    )
    .unwrap();
    assert_eq!(written, 2);
    assert_eq!(skipped.skipped().len(), 1);
    assert!(skipped.skipped()[0].file.ends_with("bad.png"));
    let err = skipped.finish(written).unwrap_err().to_string();
    assert!(err.contains("1 of 3 files"), "{err}");
    // The step changed the network: its weights differ from a fresh one's.
    let saved = checkpoint::read(run.join("weights/last.safetensors")).unwrap();
    tch::manual_seed(0);
    let fresh_vs = VarStore::new(Device::Cpu);
    let _fresh = ferrovis_style::transformer::TransformerNet::new(&fresh_vs.root());
    let moved = saved
        .iter()
        .any(|(n, t)| !fresh_vs.variables()[n].equal(&t.contiguous()));
    assert!(moved);

    // Gatys with Adam on the random VGG: the loss falls.
    let fnet = FeatureNet::load(&vgg, Device::Cpu).unwrap();
    let content = Tensor::rand([1, 3, 32, 32], (Kind::Float, Device::Cpu));
    let style_img = Tensor::rand([1, 3, 32, 32], (Kind::Float, Device::Cpu));
    let gcfg = GatysConfig {
        loss: PerceptualLoss {
            content_layers: vec!["conv2_1".into()],
            style_layers: vec!["conv1_1".into(), "conv2_1".into()],
            style_weight: 1e6,
            ..Default::default()
        },
        method: Method::Adam,
        iterations: 20,
        lr: 0.05,
        log_every: 0,
        ..Default::default()
    };
    let r = gatys::transfer(&fnet, &content, &[(style_img, 1.0)], &gcfg).unwrap();
    assert_eq!(r.history.len(), 20);
    assert!(r.history[19].total < r.history[0].total);

    let err = format!(
        "{:#}",
        FeatureNet::load(&tmp.path().join("missing.pth"), Device::Cpu).unwrap_err()
    );
    assert!(
        err.contains("vgg19-dcbb9e9d.pth") && err.contains("vgg_r31"),
        "{err}"
    );
}
