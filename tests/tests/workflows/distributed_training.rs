//! Data-parallel training on c10d's Gloo backend, with real processes on this machine: the
//! `classify train` command started as two ranks (by hand, as torchrun would, and by torchrun
//! itself) against the same command in one process.
//!
//! - 2 ranks × batch 8 reach, after 3 optimiser steps, the weights of 1 process × batch 16 over
//!   the same samples (frozen-BatchNorm backbone, augmentation on, the image loader path), and
//!   report the same validation metrics (each rank scores half the images; the predictions are
//!   gathered);
//! - `torchrun --nproc-per-node 2 --no-python` runs it and one run folder is written, which one
//!   process then resumes;
//! - YOLOv8 follows Ultralytics' DDP step (total batch shared out, loss × world size): on equal
//!   halves 2 ranks × 8 reach 1 process × 16's weights; its validation under 2 ranks gives the
//!   single-process metrics exactly;
//! - RetinaNet (torchvision's recipe: `batch` per rank) on 2 ranks × 2 identical images reaches
//!   1 process × 4's weights;
//! - a rank killed mid-training stops the other with an error naming the failed collective and
//!   its rank, within the timeout.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use ferrovis_core::backbone::{self, BackboneOptions};
use ferrovis_core::checkpoint;
use ferrovis_data::synthetic::{self, ShapesConfig};

fn cli() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ferrovis-cli"));
    c.env_remove("WORLD_SIZE")
        .env_remove("RANK")
        .env_remove("LOCAL_RANK")
        .env_remove("TORCHELASTIC_USE_AGENT_STORE")
        .env("FERROVIS_DIST_TIMEOUT", "60");
    c
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Four shapes, 12 training and 5 validation images each, 32 px.
fn shapes(dir: &Path) -> PathBuf {
    let root = dir.join("shapes");
    synthetic::write_classification(
        &root,
        &ShapesConfig {
            seed: 3,
            image_size: 32,
            train: 12,
            val: 5,
            classes: ["circle", "square", "triangle", "star"]
                .map(String::from)
                .to_vec(),
            max_objects: 1,
        },
    )
    .unwrap();
    root
}

/// `classify train` arguments: ResNet18 from its seeded initialisation, feature extraction with
/// augmentation (the backbone frozen in eval mode, so no batch statistics; the image loader,
/// sharded), no dropout, one epoch.
fn train_args(data: &Path, project: &Path, name: &str, batch: usize, epochs: usize) -> Vec<String> {
    [
        "classify",
        "train",
        "--data",
        &data.display().to_string(),
        "--arch",
        "resnet18",
        "--mode",
        "feature-extract",
        "--epochs",
        &epochs.to_string(),
        "--batch-size",
        &batch.to_string(),
        "--image-size",
        "32",
        "--lr",
        "0.01",
        "--device",
        "cpu",
        "model.dropout=0",
        "data.augment=true",
        "data.crop_pct=1.0",
        &format!("train.project={}", project.display()),
        &format!("train.name={name}"),
    ]
    .map(String::from)
    .to_vec()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Starts `args` as ranks 0..world of one group on 127.0.0.1 (the variables torchrun sets; rank
/// 0 serves the store).
fn spawn_ranks(args: &[String], world: usize) -> Vec<std::process::Child> {
    let port = free_port().to_string();
    (0..world)
        .map(|rank| {
            cli()
                .args(args)
                .env("RANK", rank.to_string())
                .env("LOCAL_RANK", rank.to_string())
                .env("WORLD_SIZE", world.to_string())
                .env("MASTER_ADDR", "127.0.0.1")
                .env("MASTER_PORT", &port)
                .env("OMP_NUM_THREADS", "1")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect()
}

fn results(run: &Path) -> Vec<Vec<f64>> {
    std::fs::read_to_string(run.join("results.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect()
}

#[test]
fn two_ranks_of_batch_8_train_as_one_process_of_batch_16() {
    let _serial = crate::serial();
    let dir = tempfile::tempdir().unwrap();
    let data = shapes(dir.path());
    let project = dir.path().join("runs");

    let one = cli()
        .args(train_args(&data, &project, "single", 16, 1))
        .output()
        .unwrap();
    assert!(one.status.success(), "{}", text(&one));

    let outs: Vec<Output> = spawn_ranks(&train_args(&data, &project, "ddp", 8, 1), 2)
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    for (rank, out) in outs.iter().enumerate() {
        assert!(out.status.success(), "rank {rank}: {}", text(out));
    }
    // Rank 1 prints nothing (only errors would show); rank 0 reports as one process does.
    assert!(outs[1].stdout.is_empty(), "{}", text(&outs[1]));
    assert!(String::from_utf8_lossy(&outs[0].stdout).contains("data: 4 classes"));

    // One run folder, written by rank 0.
    let folders: Vec<String> = std::fs::read_dir(&project)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(folders.len(), 2, "{folders:?}");

    // 48 images: 3 steps of 16, or 3 steps of 8 on each rank. The head's weights agree.
    let single = checkpoint::read(project.join("single/weights/last.safetensors")).unwrap();
    let ddp = checkpoint::read(project.join("ddp/weights/last.safetensors")).unwrap();
    assert_eq!(single.len(), ddp.len());
    let mut worst = 0.0f64;
    for (name, a) in single.iter() {
        let b = ddp.get(name).unwrap();
        let d = (a - b).abs().max().double_value(&[]);
        worst = worst.max(d);
    }
    assert!(worst < 1e-5, "max |single − ddp| = {worst:e}");
    // The comparison can fail: one process at batch 8 (6 steps, other batches) ends elsewhere.
    let eight = cli()
        .args(train_args(&data, &project, "single8", 8, 1))
        .output()
        .unwrap();
    assert!(eight.status.success(), "{}", text(&eight));
    let eight = checkpoint::read(project.join("single8/weights/last.safetensors")).unwrap();
    let apart = (eight.get("fc.weight").unwrap() - ddp.get("fc.weight").unwrap())
        .abs()
        .max()
        .double_value(&[]);
    assert!(apart > 1e-3, "batch 8 alone vs 2 × 8: {apart:e}");
    println!("max |single − ddp| = {worst:e}; batch 8 alone is {apart:e} away");

    // The validation metrics of the whole set: val_loss and accuracy equal.
    let (a, b) = (
        results(&project.join("single")),
        results(&project.join("ddp")),
    );
    assert_eq!(a.len(), 1);
    assert!(
        (a[0][1] - b[0][1]).abs() < 1e-5,
        "train_loss {a:?} vs {b:?}"
    );
    assert!((a[0][2] - b[0][2]).abs() < 1e-5, "val_loss {a:?} vs {b:?}");
    assert_eq!(a[0][3], b[0][3], "accuracy");
}

/// `torchrun --nproc-per-node 2 … --no-python ferrovis-cli` (from the setup's Python
/// environment), one thread per rank; the subcommand's arguments follow.
fn torchrun_cli() -> Command {
    let mut c = Command::new(ferrovis_tests::python().with_file_name("torchrun"));
    c.args([
        "--nproc-per-node",
        "2",
        "--master-port",
        &free_port().to_string(),
        "--no-python",
        env!("CARGO_BIN_EXE_ferrovis-cli"),
    ])
    .env("OMP_NUM_THREADS", "1")
    .env("FERROVIS_DIST_TIMEOUT", "60");
    c
}

#[test]
fn torchrun_launches_classify_train_on_two_ranks() {
    let _serial = crate::serial();
    let dir = tempfile::tempdir().unwrap();
    let data = shapes(dir.path());
    let project = dir.path().join("runs");
    let out = torchrun_cli()
        .args(train_args(&data, &project, "tr", 8, 2))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let folders: Vec<_> = std::fs::read_dir(&project).unwrap().collect();
    assert_eq!(folders.len(), 1);
    let rows = results(&project.join("tr"));
    assert_eq!(rows.len(), 2, "two epochs");
    assert!(project.join("tr/weights/best.safetensors").is_file());
    assert!(project.join("tr/checkpoint.safetensors").is_file());

    // Resumed by one process (another world size): the third epoch continues the same run.
    let out = cli()
        .args([
            "classify",
            "train",
            "--resume",
            &project.join("tr").display().to_string(),
            "--epochs",
            "3",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let resumed = results(&project.join("tr"));
    assert_eq!(resumed.len(), 3);
    assert_eq!(
        resumed[..2],
        rows[..],
        "the first two epochs are kept as they were"
    );
}

#[test]
fn a_killed_rank_stops_the_other_with_a_named_error() {
    let _serial = crate::serial();
    let dir = tempfile::tempdir().unwrap();
    let data = shapes(dir.path());
    let project = dir.path().join("runs");
    let args = train_args(&data, &project, "killed", 4, 200);
    let mut ranks = spawn_ranks(&args, 2);
    // Let both start training (rank 0 writes results.csv after the first epoch).
    let started = Instant::now();
    while !project.join("killed/results.csv").is_file() {
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "training never started"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    ranks[1].kill().unwrap();
    let _ = ranks[1].wait();
    let t = Instant::now();
    let out = ranks.remove(0).wait_with_output().unwrap();
    let waited = t.elapsed();
    let err = text(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("rank 0 of 2") && err.contains("failed"),
        "rank 0's error should name itself and the collective: {err}"
    );
    assert!(waited < Duration::from_secs(60), "took {waited:?}: {err}");
}

/// `metrics.json`'s metrics and confusion matrix.
fn detection_metrics(dir: &Path) -> (serde_json::Value, serde_json::Value) {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("metrics.json")).unwrap()).unwrap();
    (v["metrics"].clone(), v["confusion_matrix"].clone())
}

#[test]
fn yolov8_trains_on_two_ranks_and_validates_as_one_process() {
    trains_on_two_ranks_and_validates_as_one_process("yolov8n");
}

#[test]
fn yolo11_trains_on_two_ranks_and_validates_as_one_process() {
    trains_on_two_ranks_and_validates_as_one_process("yolo11n");
}

#[test]
fn yolo26_trains_on_two_ranks_and_validates_as_one_process() {
    trains_on_two_ranks_and_validates_as_one_process("yolo26n");
}

fn trains_on_two_ranks_and_validates_as_one_process(model: &str) {
    let _serial = crate::serial();
    let dir = tempfile::tempdir().unwrap();
    let data = synthetic::write_detection(
        &dir.path().join("shapes"),
        &ShapesConfig {
            image_size: 64,
            train: 16,
            val: 9,
            classes: ["circle", "square", "star"].map(String::from).to_vec(),
            max_objects: 3,
            ..Default::default()
        },
    )
    .unwrap();
    let project = dir.path().join("runs");
    let train = torchrun_cli()
        .args([
            "detect",
            "train",
            &format!("data={}", data.display()),
            &format!("project={}", project.display()),
            "name=ddp",
            &format!("model={model}"),
            "imgsz=64",
            "batch=8",
            "nbs=8",
            "epochs=1",
            "device=cpu",
        ])
        .output()
        .unwrap();
    assert!(train.status.success(), "{}", text(&train));
    assert_eq!(std::fs::read_dir(&project).unwrap().count(), 1);
    let run = project.join("ddp");
    assert_eq!(results(&run).len(), 1);
    let meta = std::fs::read_to_string(run.join("detect.json")).unwrap();
    let version = model.trim_end_matches('n');
    assert!(meta.contains(&format!("\"arch\": \"{version}\"")), "{meta}");

    // The trained weights scored alone, and by two ranks each scoring half of the 9 images:
    // the gathered statistics give the same precision, recall, mAP and confusion matrix.
    let weights = run.join("weights/best.safetensors");
    let val_args = |out: &Path| {
        vec![
            "detect".to_string(),
            "val".into(),
            "--weights".into(),
            weights.display().to_string(),
            "--out".into(),
            out.display().to_string(),
            format!("data={}", data.display()),
            "imgsz=64".into(),
            "batch=2".into(),
            "device=cpu".into(),
        ]
    };
    let alone = dir.path().join("val-alone");
    let out = cli().args(val_args(&alone)).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let two = dir.path().join("val-two");
    let outs: Vec<Output> = spawn_ranks(&val_args(&two), 2)
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    for out in &outs {
        assert!(out.status.success(), "{}", text(out));
    }
    let (m1, c1) = detection_metrics(&alone);
    let (m2, c2) = detection_metrics(&two);
    for key in ["precision", "recall", "map50", "map50_95"] {
        assert!(m1[key].is_number(), "{key}: {m1}");
        assert_eq!(m1[key], m2[key], "{key}");
    }
    assert_eq!(m1, m2);
    assert_eq!(c1, c2);
    let detections: u64 = c1["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert!(detections > 0, "the comparison has something to compare");
}

/// YOLOv8's training step under DDP, as Ultralytics defines it: `batch` is the total, each rank
/// loads its share, and the rank's loss (a sum scaled by its batch) is multiplied by the world
/// size before the gradients are averaged. Two ranks then equal one process only when the ranks'
/// halves are alike: YOLO's loss is normalised per batch by its target-score sum and BatchNorm
/// uses batch statistics (true of Ultralytics' own DDP). With every image the same and no
/// augmentation, 2 ranks × 8 and 1 process × 16 must reach the same weights after 3 optimiser
/// steps; without the world-size factor the rank's gradients would be half as large.
#[test]
fn yolov8_on_two_ranks_follows_ultralytics_ddp_step() {
    let _serial = crate::serial();
    let dir = tempfile::tempdir().unwrap();
    let yaml = identical_training_images(dir.path(), 48, 12);
    let project = dir.path().join("runs");
    let args = |name: &str| -> Vec<String> {
        [
            "detect",
            "train",
            &format!("data={}", yaml.display()),
            &format!("project={}", project.display()),
            &format!("name={name}"),
            "imgsz=96",
            "batch=16",
            "nbs=16",
            "epochs=1",
            "device=cpu",
            "workers=1",
            "mosaic=0",
            "close_mosaic=0",
            "hsv_h=0",
            "hsv_s=0",
            "hsv_v=0",
            "translate=0",
            "scale=0",
            "fliplr=0",
            // SGD: Adam's first steps are sign(gradient)·lr, which turns the rounding noise of
            // a near-zero gradient into a full step either way; SGD's are linear in it.
            "optimizer=SGD",
            // One epoch has no warmup (Ultralytics 8.4 leaves the last epoch out of it): a
            // small rate keeps the three full steps where float32 sums of 8 and of 16 images
            // agree to the tolerance below.
            "lr0=0.001",
        ]
        .map(String::from)
        .to_vec()
    };
    let one = cli().args(args("single")).output().unwrap();
    assert!(one.status.success(), "{}", text(&one));
    for out in spawn_ranks(&args("ddp"), 2)
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
    {
        assert!(out.status.success(), "{}", text(&out));
    }
    let (worst, worst_name) = single_against_ddp(&project);
    // The train loss columns agree (without the world-size factor the ranks' would be half).
    assert_first_columns_agree(&project, 3);
    assert!(
        worst < 1e-5,
        "max |single − ddp| / (1 + |single|) = {worst:e} ({worst_name})"
    );
    println!("YOLOv8, 3 steps: max |single − ddp| / (1 + |single|) = {worst:e} ({worst_name})");
}

/// A detection set whose `train` training images are all one synthetic 96-pixel image with up to
/// `objects` shapes (2 validation images): under DDP every rank's half of a batch is then like
/// the whole, so batch statistics and per-batch loss normalisations agree with one process.
fn identical_training_images(dir: &Path, train: usize, objects: usize) -> PathBuf {
    let root = dir.join("same");
    let yaml = synthetic::write_detection(
        &root,
        &ShapesConfig {
            image_size: 96,
            train: 1,
            val: 2,
            classes: ["circle", "square", "star"].map(String::from).to_vec(),
            max_objects: objects,
            ..Default::default()
        },
    )
    .unwrap();
    let (img, lbl) = (root.join("images/train"), root.join("labels/train"));
    for i in 1..train {
        std::fs::copy(img.join("0000.png"), img.join(format!("{i:04}.png"))).unwrap();
        std::fs::copy(lbl.join("0000.txt"), lbl.join(format!("{i:04}.txt"))).unwrap();
    }
    yaml
}

/// The first `n` columns after the epoch of `project`'s `single` and `ddp` runs' first
/// `results.csv` row (their training losses) agree within 1e-4 (relative).
fn assert_first_columns_agree(project: &Path, n: usize) {
    let (a, b) = (
        results(&project.join("single")),
        results(&project.join("ddp")),
    );
    for col in 1..=n {
        assert!(
            (a[0][col] - b[0][col]).abs() < 1e-4 * a[0][col].abs().max(1.0),
            "column {col}: {a:?} vs {b:?}"
        );
    }
}

/// The largest difference between the trained tensors of `project`'s `single` and `ddp` runs,
/// relative to the magnitude (float32 sums over a rank's batch and over the whole batch round
/// differently), and where. BatchNorm's running variance is left out: PyTorch updates it with the
/// unbiased variance of the batch, n/(n−1), and n is a rank's batch under DDP, the whole batch
/// alone.
fn single_against_ddp(project: &Path) -> (f64, String) {
    let a = checkpoint::read(project.join("single/weights/last.safetensors")).unwrap();
    let b = checkpoint::read(project.join("ddp/weights/last.safetensors")).unwrap();
    let (mut worst, mut worst_name) = (0.0f64, String::new());
    for (name, t) in a.iter() {
        let u = b.get(name).unwrap();
        if t.is_floating_point() && !name.ends_with("running_var") {
            let d = ((t - u).abs() / (t.abs() + 1.0)).max().double_value(&[]);
            if d > worst {
                (worst, worst_name) = (d, name.to_string());
            }
        }
    }
    (worst, worst_name)
}

/// torchvision's detectors under DDP as its references run them: `batch` images per rank, the
/// gradients averaged. RetinaNet's loss is a mean over images of per-image normalised losses, so
/// with every image the same (and no flips), 2 ranks × 2 images reach 1 process × 4's weights
/// after 2 steps, and report the same training losses. It fine-tunes as torchvision does from an
/// ImageNet ResNet-50 (here ferrovis' seeded one): FrozenBatchNorm2d, 3 trainable layers. (From
/// scratch, BatchNorm's batch variance over layer4's 2×2 maps of identical images is nearly zero
/// in some channels, which turns float32 rounding into different weights on any two batch
/// sizes, data-parallel or not.)
#[test]
fn retinanet_on_two_ranks_trains_as_one_process_of_twice_the_batch() {
    let _serial = crate::serial();
    let dir = tempfile::tempdir().unwrap();
    let yaml = identical_training_images(dir.path(), 8, 3);
    let imagenet = dir.path().join("resnet50.safetensors");
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    backbone::create("resnet50", &vs.root(), &BackboneOptions::default()).unwrap();
    checkpoint::save_varstore(&vs, &imagenet).unwrap();
    let project = dir.path().join("runs");
    let args = |name: &str, batch: usize| -> Vec<String> {
        vec![
            "detect".into(),
            "train".into(),
            "arch=retinanet_resnet50_fpn".into(),
            format!("model={}", imagenet.display()),
            format!("data={}", yaml.display()),
            format!("project={}", project.display()),
            format!("name={name}"),
            "min_size=64".into(),
            "max_size=64".into(),
            format!("batch={batch}"),
            "epochs=1".into(),
            "fliplr=0".into(),
            "workers=1".into(),
            "device=cpu".into(),
        ]
    };
    let one = cli().args(args("single", 4)).output().unwrap();
    assert!(one.status.success(), "{}", text(&one));
    for out in spawn_ranks(&args("ddp", 2), 2)
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
    {
        assert!(out.status.success(), "{}", text(&out));
    }
    // The training loss and its two parts.
    assert_first_columns_agree(&project, 3);
    let (worst, worst_name) = single_against_ddp(&project);
    println!("RetinaNet, 2 steps: max |single − ddp| / (1 + |single|) = {worst:e} ({worst_name})");
    assert!(
        worst < 1e-5,
        "max |single − ddp| / (1 + |single|) = {worst:e} ({worst_name})"
    );
}
