//! What the detection workflow tests share: the torchvision detectors' small shapes set, a
//! checkpoint's tensor, a run folder's `results.csv` rows and files, and the stop-then-resume
//! check every detector's training must pass.

use std::path::{Path, PathBuf};

use ferrovis_core::checkpoint;
use ferrovis_core::engine::RunControl;
use ferrovis_data::synthetic::{self, ShapesConfig};
use ferrovis_detect::config::DetectConfig;
use ferrovis_detect::run::TrainSummary;

/// 96-pixel circles and squares, `train` training images and 4 validation images, at most two
/// objects each.
pub fn tv_shapes(dir: &Path, train: usize) -> PathBuf {
    let cfg = ShapesConfig {
        image_size: 96,
        train,
        val: 4,
        classes: ["circle", "square"].map(String::from).to_vec(),
        max_objects: 2,
        ..Default::default()
    };
    synthetic::write_detection(&dir.join("shapes"), &cfg).unwrap()
}

/// A torchvision detector's settings for the workflow tests: `arch` on `data`, runs in
/// `project/name`, batch 4, 2 epochs, CPU, then `extra` (`key=value`).
pub fn tv_config(
    arch: &str,
    data: &Path,
    project: &Path,
    name: &str,
    extra: &[&str],
) -> DetectConfig {
    let mut args: Vec<String> = vec![
        format!("arch={arch}"),
        format!("data={}", data.display()),
        format!("project={}", project.display()),
        format!("name={name}"),
        "batch=4".into(),
        "epochs=2".into(),
        "device=cpu".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    DetectConfig::load(None, &args).unwrap()
}

/// The tensor `name` of the checkpoint at `path`.
pub fn tensor(path: &Path, name: &str) -> tch::Tensor {
    checkpoint::read(path)
        .unwrap()
        .get(name)
        .unwrap()
        .shallow_clone()
}

/// Lines of a run's `results.csv`, its header included.
pub fn results_rows(run: &Path) -> usize {
    std::fs::read_to_string(run.join("results.csv"))
        .unwrap()
        .lines()
        .count()
}

/// A torchvision detector's run folder after `epochs` epochs: `results.csv` with `train/<loss>`
/// for each of `losses` and YOLOv8's metric columns, the weights, `detect.json` naming `arch`,
/// the configuration, the PR curve and `metrics.json`.
pub fn check_tv_run_folder(run: &Path, arch: &str, epochs: usize, losses: &[&str]) {
    let results = std::fs::read_to_string(run.join("results.csv")).unwrap();
    let header = results.lines().next().unwrap();
    let metrics = [
        "metrics/precision(B)",
        "metrics/recall(B)",
        "metrics/mAP50(B)",
        "metrics/mAP50-95(B)",
        "fitness",
    ];
    let losses: Vec<String> = losses.iter().map(|l| format!("train/{l}")).collect();
    for col in losses.iter().map(String::as_str).chain(metrics) {
        assert!(
            header.split(',').any(|c| c == col),
            "{col} missing from {header}"
        );
    }
    assert_eq!(results.lines().count(), epochs + 1, "{results}");
    for f in [
        "weights/best.safetensors",
        "weights/last.safetensors",
        "detect.json",
        "config.toml",
        "PR_curve.png",
        "metrics.json",
    ] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
    let meta = std::fs::read_to_string(run.join("detect.json")).unwrap();
    assert!(meta.contains(arch), "{meta}");
}

/// A 2-epoch training stopped after its first epoch, then resumed: the same run folder, one
/// row, then two. `train` runs the detector's training with the given control and resume folder.
/// Returns the finished run's summary.
pub fn stops_then_resumes(
    train: impl Fn(&RunControl, Option<&Path>) -> TrainSummary,
) -> TrainSummary {
    let stop = RunControl {
        stop_after: Some(1),
        ..RunControl::quiet()
    };
    let first = train(&stop, None);
    assert_eq!(results_rows(&first.run), 2);
    let resumed = train(&RunControl::quiet(), Some(&first.run));
    assert_eq!(resumed.run, first.run);
    assert_eq!(results_rows(&first.run), 3);
    resumed
}
