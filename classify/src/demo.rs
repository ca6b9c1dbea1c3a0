//! `classify demo`: the synthetic shapes set, a head trained on a MobileNetV2, the metrics.

use anyhow::Result;
use ferrovis_core::engine::RunControl;
use ferrovis_data::synthetic::{self, ShapesConfig};

use crate::config::{ClassifyConfig, Mode};
use crate::{eval, train, DemoArgs};

/// torchvision's ImageNet MobileNetV2 when no --weights is given: in `$FERROVIS_WEIGHTS` or
/// torch.hub's cache, else fetched by its registry name unless offline
/// (`ferrovis_core::cli::demo_weights`).
const MOBILENET_V2: &str = "mobilenet_v2-b0353104.pth";

/// Generates the data, trains, evaluates.
pub fn run(args: &DemoArgs) -> Result<()> {
    let data = args.out.join("shapes-classify");
    let shapes = ShapesConfig {
        seed: 0,
        image_size: 96,
        train: 40,
        val: 15,
        classes: ["circle", "square", "triangle", "star"]
            .map(String::from)
            .to_vec(),
        max_objects: 1,
    };
    if !data.join("val").is_dir() {
        synthetic::write_classification(&data, &shapes)?;
    }
    println!(
        "data: synthetic shapes (4 classes, 40 + 15 images each) in {}",
        data.display()
    );
    let weights = args.weights.clone().or_else(|| {
        ferrovis_core::cli::demo_weights(&[MOBILENET_V2], "mobilenet_v2:IMAGENET1K_V1")
    });
    let mut cfg = ClassifyConfig::default();
    cfg.data.root = data.display().to_string();
    cfg.data.image_size = 96;
    cfg.train.project = args.out.join("classify").display().to_string();
    cfg.model.arch = "mobilenet_v2".into();
    match &weights {
        Some(w) => {
            // Frozen ImageNet features, computed once: seconds on a CPU.
            cfg.model.weights = w.display().to_string();
            cfg.train.mode = Mode::FeatureExtract;
            cfg.data.augment = false;
            cfg.train.epochs = 30;
            cfg.train.lr = 3e-3;
        }
        None => {
            println!(
                "no pretrained weights found: training ResNet18 from random initialisation, which \
                 on 160 images stays far below what transfer learning gives. For transfer \
                 learning, get torchvision's mobilenet_v2-b0353104.pth (it loads as it is) and pass \
                 --weights FILE or set FERROVIS_WEIGHTS."
            );
            cfg.model.arch = "resnet18".into();
            cfg.train.mode = Mode::FineTune;
            cfg.train.backbone_lr_scale = 1.0;
            cfg.data.image_size = 64;
            cfg.data.min_crop_scale = 0.5;
            cfg.train.epochs = 12;
        }
    }
    let summary = train::train(&cfg, &RunControl::default(), None)?;
    println!(
        "\nbest validation accuracy {:.4} after {:.0} s ({})",
        summary.best_accuracy, summary.seconds, summary.path
    );
    let run = ferrovis_core::run::RunDir::new(&summary.run);
    eval::eval_run(
        &run,
        &run.best(),
        None,
        ferrovis_core::device::parse_device("auto")?,
        None,
    )?;
    println!("run folder: {}", summary.run.display());
    Ok(())
}
