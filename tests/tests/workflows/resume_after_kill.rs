//! `classify train --resume RUN`, `segment train --resume RUN` and `detect train --resume RUN`
//! (YOLO11) continue a run whose process was
//! killed (SIGKILL, in the middle of an epoch: nothing gets to clean up) or interrupted (SIGINT,
//! as Ctrl-C: the run says its checkpoint is kept and exits 130) to the same final weights as an
//! uninterrupted run, bit for bit on the CPU. The commands run as a user runs them, through the
//! task CLIs in a real process (`ferrovis-cli`, the four binaries' command lines in one, with the
//! same `main`).

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ferrovis_classify::config::Mode;
use ferrovis_core::checkpoint;
use ferrovis_core::engine::RunDir;
use ferrovis_data::synthetic::{self, ShapesConfig};

const EPOCHS: usize = 3;

fn cli() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ferrovis-cli"))
}

/// Runs `ferrovis-cli args…` to the end; panics with its output unless it succeeds.
fn run_to_end(args: &[&str]) -> String {
    let out = cli().args(args).output().expect("start ferrovis-cli");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "ferrovis-cli {args:?} failed:\n{}\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

/// How a run is stopped in the middle of epoch 2.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Stop {
    /// SIGKILL: the process dies at once.
    Kill,
    /// SIGINT, as Ctrl-C: the run stops after its current step.
    Interrupt,
}

/// Starts `ferrovis-cli args…` and stops it (`how`) as soon as it reports a step of epoch 2 (the
/// engine prints `epoch 2/3 step 2/8 …` on a non-terminal stderr), so it stops mid-epoch. Every
/// stderr line is returned.
fn stop_in_epoch_two(args: &[&str], how: Stop) -> Vec<String> {
    let mut child = cli()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ferrovis-cli");
    let stderr = child.stderr.take().expect("piped stderr");
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.expect("stderr line");
        let mid_epoch_two = matches!(epoch_two_step(&line), Some((n, m)) if n < m);
        seen.push(line);
        if mid_epoch_two {
            match how {
                Stop::Kill => child.kill().expect("SIGKILL"),
                Stop::Interrupt => {
                    let sent = Command::new("kill")
                        .args(["-INT", &child.id().to_string()])
                        .status()
                        .expect("run kill -INT");
                    assert!(sent.success(), "kill -INT failed");
                }
            }
            break;
        }
    }
    // The rest of what it says on the way out.
    seen.extend(lines.map_while(|l| l.ok()));
    let status = child.wait().expect("wait");
    match how {
        Stop::Kill => assert_eq!(
            status.signal(),
            Some(9),
            "the run ended before it could be killed in epoch 2 ({status}):\n{}",
            seen.join("\n")
        ),
        Stop::Interrupt => {
            assert_eq!(
                status.code(),
                Some(130),
                "an interrupted run exits 130 ({status}):\n{}",
                seen.join("\n")
            );
            assert!(
                seen.iter().any(|l| l.contains("WARN")
                    && l.contains("interrupted; the last completed epoch's checkpoint is kept")),
                "the engine's warning reaches stderr:\n{}",
                seen.join("\n")
            );
        }
    }
    seen
}

/// `(N, M)` of an epoch-2 progress line `epoch 2/3 step N/M loss …`.
fn epoch_two_step(line: &str) -> Option<(u32, u32)> {
    let rest = line.strip_prefix(&format!("epoch 2/{EPOCHS} step "))?;
    let (n, rest) = rest.split_once('/')?;
    let m = rest.split_whitespace().next()?;
    Some((n.parse().ok()?, m.parse().ok()?))
}

/// Every tensor of two weights files, compared bit for bit.
fn assert_bit_identical(a: &Path, b: &Path) {
    let (sa, sb) = (checkpoint::read(a).unwrap(), checkpoint::read(b).unwrap());
    let names: Vec<&str> = sa.names().collect();
    assert_eq!(names, sb.names().collect::<Vec<_>>());
    for name in names {
        let (ta, tb) = (sa.get(name).unwrap(), sb.get(name).unwrap());
        assert!(
            ta.equal(tb),
            "{name} differs between {} and {}",
            a.display(),
            b.display()
        );
    }
    assert!(sa.len() > 100, "{} tensors", sa.len());
}

/// Writes a configuration as the TOML file a user would pass with `--config`.
fn write_config(toml: String, path: &Path) -> PathBuf {
    std::fs::write(path, toml).unwrap();
    path.to_path_buf()
}

/// The stop → resume → compare cycle for one task: `config(name)` is the TOML of the run named
/// `name`.
fn check_task(task: &str, dir: &Path, how: Stop, config: impl Fn(&str) -> String) {
    let project = dir.join("runs");
    let whole = write_config(config("whole"), &dir.join("whole.toml"));
    let killed = write_config(config("killed"), &dir.join("killed.toml"));
    run_to_end(&[task, "train", "--config", whole.to_str().unwrap()]);

    let seen = stop_in_epoch_two(&[task, "train", "--config", killed.to_str().unwrap()], how);
    let run = RunDir::new(project.join("killed"));
    let rows = std::fs::read_to_string(run.results()).unwrap();
    assert_eq!(
        rows.lines().count(),
        2,
        "stopped after epoch 1 only:\n{rows}\n{}",
        seen.join("\n")
    );

    let log = run_to_end(&[task, "train", "--resume", run.path().to_str().unwrap()]);
    assert!(
        !log.contains("epoch 1/"),
        "the resumed run redid epoch 1:\n{log}"
    );
    let whole = RunDir::new(project.join("whole"));
    assert_bit_identical(&whole.last(), &run.last());
    assert_bit_identical(&whole.best(), &run.best());
    // Same losses and metrics, epoch by epoch (timings aside).
    let table = |r: &RunDir| -> Vec<String> {
        std::fs::read_to_string(r.results())
            .unwrap()
            .lines()
            .map(|l| l.rsplit_once(',').unwrap().0.to_string())
            .collect()
    };
    assert_eq!(table(&whole), table(&run));
    assert_eq!(table(&run).len(), EPOCHS + 1);
}

#[test]
fn classify_resumes_a_killed_run_to_identical_weights() {
    let _serial = crate::serial();
    classify_resumes(Stop::Kill);
}

#[test]
fn classify_resumes_an_interrupted_run_to_identical_weights() {
    let _serial = crate::serial();
    classify_resumes(Stop::Interrupt);
}

fn classify_resumes(how: Stop) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("shapes");
    let shapes = ShapesConfig {
        image_size: 48,
        train: 16,
        val: 4,
        classes: ["circle", "square", "star"].map(String::from).to_vec(),
        ..Default::default()
    };
    synthetic::write_classification(&data, &shapes).unwrap();
    check_task("classify", dir.path(), how, |name| {
        // Fine-tuning through the image loader: shuffling, augmentation, dropout and the
        // optimiser's state all have to come back exactly.
        let mut cfg =
            crate::classify_workflow::config(&data, &dir.path().join("runs"), Mode::FineTune);
        cfg.data.image_size = 48;
        cfg.data.batch_size = 6;
        cfg.train.epochs = EPOCHS;
        cfg.train.name = name.into();
        ferrovis_core::config::to_toml(&cfg).unwrap()
    });
}

#[test]
fn segment_resumes_a_killed_run_to_identical_weights() {
    let _serial = crate::serial();
    let dir = tempfile::tempdir().unwrap();
    let shapes = ShapesConfig {
        image_size: 64,
        train: 16,
        val: 4,
        classes: ["circle", "square"].map(String::from).to_vec(),
        max_objects: 2,
        ..Default::default()
    };
    let data = synthetic::write_segmentation(&dir.path().join("shapes"), &shapes).unwrap();
    check_task("segment", dir.path(), Stop::Kill, |name| {
        let mut cfg = crate::segment_workflow::config(&data, &dir.path().join("runs"), name);
        cfg.data.batch_size = 2;
        cfg.train.epochs = EPOCHS;
        ferrovis_core::config::to_toml(&cfg).unwrap()
    });
}

#[test]
fn detect_yolo11_resumes_a_killed_run_to_identical_weights() {
    detect_resumes("yolo11n", "auto", "yolo11", 4);
}

/// YOLO26 with MuSGD: both of its momentum buffers per weight, the one-to-one head and the
/// end-to-end loss's epoch weights all come back. (A nominal batch of 16 steps the optimiser
/// once per epoch: MuSGD's bfloat16 Newton–Schulz is slow on a CPU.)
#[test]
fn detect_yolo26_with_musgd_resumes_a_killed_run_to_identical_weights() {
    detect_resumes("yolo26n", "MuSGD", "yolo26", 16);
}

fn detect_resumes(model: &str, optimizer: &str, arch: &str, nbs: usize) {
    let _serial = crate::serial();
    let dir = tempfile::tempdir().unwrap();
    let shapes = ShapesConfig {
        image_size: 64,
        train: 16,
        val: 4,
        classes: ["circle", "square"].map(String::from).to_vec(),
        max_objects: 2,
        ..Default::default()
    };
    let data = synthetic::write_detection(&dir.path().join("shapes"), &shapes).unwrap();
    let project = dir.path().join("runs");
    check_task("detect", dir.path(), Stop::Kill, |name| {
        // Mosaic, the affine and colour augmentation, the warmup and the EMA all have to come
        // back exactly.
        let args: Vec<String> = vec![
            format!("data={}", data.display()),
            format!("project={}", project.display()),
            format!("name={name}"),
            format!("model={model}"),
            format!("optimizer={optimizer}"),
            "imgsz=64".into(),
            "batch=4".into(),
            format!("nbs={nbs}"),
            format!("epochs={EPOCHS}"),
            "close_mosaic=1".into(),
            "device=cpu".into(),
        ];
        let cfg = ferrovis_detect::config::DetectConfig::load(None, &args).unwrap();
        ferrovis_core::config::to_toml(&cfg).unwrap()
    });
    let meta = std::fs::read_to_string(project.join("whole/detect.json")).unwrap();
    assert!(meta.contains(&format!("\"arch\": \"{arch}\"")), "{meta}");
}
