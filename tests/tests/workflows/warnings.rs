//! Warnings reach the user in every binary: each task's command line, run as a user runs it
//! (`ferrovis-cli`, the four binaries' command lines behind the same `main`), is given a data set
//! with one image whose compressed pixels are damaged (so it passes the data set's scan and
//! fails to decode), and its stderr must carry the warning that names what was left out, as plain text
//! (stderr is a pipe here, so no colour codes).

use std::path::{Path, PathBuf};
use std::process::Command;

use ferrovis_classify::config::Mode;
use ferrovis_data::synthetic::{self, ShapesConfig};

/// Runs `ferrovis-cli args…` to the end; its stderr (after its stdout, in messages), after
/// checking it succeeded.
fn run(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ferrovis-cli"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("start ferrovis-cli");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "ferrovis-cli {args:?} failed ({}):\n{}\n{stderr}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    format!(
        "{}\n--- stderr:\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    )
}

/// Asserts `stderr` has a plain-text warning line holding `message` and naming `file`'s name.
fn assert_warned(stderr: &str, message: &str, file: &Path) {
    let name = file.file_name().unwrap().to_string_lossy();
    let line = stderr
        .lines()
        .find(|l| l.contains("WARN") && l.contains(message))
        .unwrap_or_else(|| panic!("no warning {message:?} on stderr:\n{stderr}"));
    assert!(
        line.contains(name.as_ref()),
        "{line:?} does not name {name}"
    );
    assert!(
        !stderr.contains('\u{1b}'),
        "colour codes off a terminal:\n{stderr}"
    );
}

/// Zeroes the compressed pixels of `file` (a PNG) between its header and its end chunk: the data
/// sets' scans (header, end chunk) keep it, and decoding it then fails on the damaged data.
fn corrupt(file: &Path) -> PathBuf {
    let mut bytes = std::fs::read(file).unwrap();
    let n = bytes.len();
    assert!(n > 128, "{} is too small to damage", file.display());
    bytes[64..n - 16].fill(0);
    std::fs::write(file, &bytes).unwrap();
    file.to_path_buf()
}

fn shapes(image_size: usize) -> ShapesConfig {
    ShapesConfig {
        image_size,
        train: 8,
        val: 2,
        classes: ["circle", "square"].map(String::from).to_vec(),
        max_objects: 1,
        ..Default::default()
    }
}

fn write_toml(path: &Path, text: String) -> String {
    std::fs::write(path, text).unwrap();
    path.display().to_string()
}

#[test]
fn classify_warns_of_a_skipped_image() {
    let _serial = crate::serial();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("shapes");
    synthetic::write_classification(&data, &shapes(32)).unwrap();
    let bad = corrupt(&data.join("train/circle/0000.png"));
    let mut cfg = crate::classify_workflow::config(&data, &dir.path().join("runs"), Mode::FineTune);
    cfg.train.epochs = 1;
    let config = write_toml(
        &dir.path().join("c.toml"),
        ferrovis_core::config::to_toml(&cfg).unwrap(),
    );
    let stderr = run(&["classify", "train", "--config", &config]);
    assert_warned(&stderr, "sample skipped", &bad);
}

#[test]
fn segment_warns_of_a_skipped_image() {
    let _serial = crate::serial();
    let dir = tempfile::tempdir().unwrap();
    let data = synthetic::write_segmentation(&dir.path().join("shapes"), &shapes(64)).unwrap();
    let bad = corrupt(&data.join("train/images/0000.png"));
    let mut cfg = crate::segment_workflow::config(&data, &dir.path().join("runs"), "warn");
    cfg.train.epochs = 1;
    let config = write_toml(
        &dir.path().join("s.toml"),
        ferrovis_core::config::to_toml(&cfg).unwrap(),
    );
    let stderr = run(&["segment", "train", "--config", &config]);
    assert_warned(&stderr, "sample skipped", &bad);
}

#[test]
fn detect_warns_of_a_skipped_image() {
    let _serial = crate::serial();
    let dir = tempfile::tempdir().unwrap();
    let yaml = synthetic::write_detection(&dir.path().join("shapes"), &shapes(64)).unwrap();
    let bad = corrupt(&dir.path().join("shapes/images/train/0000.png"));
    let project = dir.path().join("runs");
    let stderr = run(&[
        "detect",
        "train",
        &format!("data={}", yaml.display()),
        &format!("project={}", project.display()),
        "imgsz=64",
        "batch=4",
        "nbs=4",
        "epochs=1",
        "device=cpu",
    ]);
    assert_warned(&stderr, "sample skipped", &bad);
}

#[test]
fn style_warns_of_a_skipped_content_image() {
    let _serial = crate::serial();
    let dir = tempfile::tempdir().unwrap();
    let vgg = dir.path().join("vgg11.safetensors");
    crate::style_workflow::random_vgg11(&vgg);
    let data = synthetic::write_classification(&dir.path().join("shapes"), &shapes(48)).unwrap();
    let content = data.join("train/square");
    let bad = corrupt(&content.join("0000.png"));
    let stderr = run(&[
        "style",
        "train",
        "--style",
        &data.join("train/circle/0001.png").display().to_string(),
        "--content-dir",
        &content.display().to_string(),
        "--weights",
        &vgg.display().to_string(),
        "--project",
        &dir.path().join("runs").display().to_string(),
        "--device",
        "cpu",
        "--set",
        "size=32",
        "epochs=1",
    ]);
    assert_warned(&stderr, "content image skipped", &bad);
}
