//! `detect predict` and `weights inspect --arch` with torchvision's own detection checkpoints, as
//! a torchvision user has them: `reference/detect_predict.py` trains
//! `fasterrcnn_mobilenet_v3_large_320_fpn` and `ssdlite320_mobilenet_v3_large` briefly (2 classes,
//! heads rescaled so scores spread), saves their state dicts with `torch.save` and records their
//! detections on three PNG scenes. The command line (`ferrovis-cli`, the binaries' own parsing),
//! given only the `.pth` and the images, must write the same detections: each of torchvision's
//! ten best has one of ours with the same class, a score within 1e-3 and a box within 0.5 px, and
//! so do at least 90 % of those scoring 0.1 or more (near-tied boxes may go either way in NMS);
//! the same the other way round.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use ferrovis_core::checkpoint;
use ferrovis_detect::source::infer_arch;
use ferrovis_tests::write_reference;

fn reference() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        write_reference(
            "detect_predict.py",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("detect-predict-reference"),
        )
    })
}

/// Runs `ferrovis-cli args…` on one thread, as the reference ran (the same summation order, so
/// near-equal scores rank alike); its stdout and stderr, after checking it succeeded.
fn cli(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ferrovis-cli"))
        .args(args)
        .env("OMP_NUM_THREADS", "1")
        .output()
        .expect("start ferrovis-cli");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "ferrovis-cli {args:?} failed:\n{text}"
    );
    text
}

/// One detection: class (0-based, as `predict` writes it), score, box.
type Det = (usize, f64, [f64; 4]);

/// torchvision's detections of each image (labels made 0-based), from the reference's JSON.
fn theirs(arch: &str) -> Vec<(String, Vec<Det>)> {
    let text = std::fs::read_to_string(reference().join(format!("{arch}.json"))).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut images: Vec<(String, Vec<Det>)> = json
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, d)| {
            let f = |v: &serde_json::Value| v.as_f64().unwrap();
            let dets = (0..d["scores"].as_array().unwrap().len())
                .map(|i| {
                    let b = &d["boxes"][i];
                    (
                        d["labels"][i].as_u64().unwrap() as usize - 1,
                        f(&d["scores"][i]),
                        [f(&b[0]), f(&b[1]), f(&b[2]), f(&b[3])],
                    )
                })
                .collect();
            (name.clone(), dets)
        })
        .collect();
    images.sort_by(|a, b| a.0.cmp(&b.0));
    images
}

/// Our detections of each image, from `predict`'s predictions.json.
fn ours(out: &Path) -> Vec<(String, Vec<Det>)> {
    let text = std::fs::read_to_string(out.join("predictions.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut images: Vec<(String, Vec<Det>)> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let name = Path::new(p["image"].as_str().unwrap())
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let dets = p["detections"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| {
                    let b: Vec<f64> = d["xyxy"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_f64().unwrap())
                        .collect();
                    (
                        d["class"].as_u64().unwrap() as usize,
                        d["confidence"].as_f64().unwrap(),
                        [b[0], b[1], b[2], b[3]],
                    )
                })
                .collect();
            (name, dets)
        })
        .collect();
    images.sort_by(|a, b| a.0.cmp(&b.0));
    images
}

/// How many of `a`'s detections scoring at least `floor` have a counterpart in `b` (same class,
/// score within 1e-3, box within 0.5 px), and how many there are.
fn matched(a: &[Det], b: &[Det], floor: f64) -> (usize, usize) {
    let wanted: Vec<&Det> = a.iter().filter(|d| d.1 >= floor).collect();
    let found = wanted
        .iter()
        .filter(|(class, score, bbox)| {
            b.iter().any(|(c, s, bb)| {
                c == class
                    && (s - score).abs() <= 1e-3
                    && bb.iter().zip(bbox).all(|(x, y)| (x - y).abs() <= 0.5)
            })
        })
        .count();
    (found, wanted.len())
}

/// `a`'s best `top` detections all have counterparts in `b`, and at least 90 % of those scoring
/// 0.1 or more do: where scores tie to the last bits, NMS may keep a different one of two equal
/// boxes (as in the parity tests' `check_detections_up_to`).
fn all_matched(a: &[Det], b: &[Det], top: usize, what: &str) {
    let (found, of) = matched(&a[..top.min(a.len())], b, 0.0);
    assert_eq!(
        found, of,
        "{what}: the best {of} detections have {found} counterparts"
    );
    let (found, of) = matched(a, b, 0.1);
    println!("  {what}: {found} of {of} at 0.1 or more have counterparts");
    assert!(
        found * 10 >= of * 9,
        "{what}: {found} of {of} have counterparts"
    );
}

/// `detect predict --weights <arch>.pth [arch=…] conf=0.05 images/` against torchvision.
fn check_predict(arch: &str, give_arch: bool) {
    let out = tempfile::tempdir().unwrap();
    let weights = reference().join(format!("{arch}.pth"));
    let arch_setting = format!("arch={arch}");
    let mut args = vec![
        "detect",
        "predict",
        "--weights",
        weights.to_str().unwrap(),
        "--out",
        out.path().to_str().unwrap(),
        "conf=0.05",
        "max_det=1000",
    ];
    if give_arch {
        args.push(&arch_setting);
    }
    let images = reference().join("images");
    args.push(images.to_str().unwrap());
    cli(&args);
    let (theirs, ours) = (theirs(arch), ours(out.path()));
    assert_eq!(theirs.len(), 3);
    assert_eq!(
        theirs.iter().map(|t| &t.0).collect::<Vec<_>>(),
        ours.iter().map(|o| &o.0).collect::<Vec<_>>()
    );
    for ((name, t), (_, o)) in theirs.iter().zip(&ours) {
        let above = |d: &[Det]| d.iter().filter(|d| d.1 >= 0.1).count();
        println!(
            "{arch} {name}: torchvision {} detections ({} at 0.1 or more), ours {} ({})",
            t.len(),
            above(t),
            o.len(),
            above(o)
        );
        assert!(above(t) > 0, "{arch} {name}: the reference detects nothing");
        all_matched(t, o, 10, &format!("{arch} {name}, torchvision's"));
        all_matched(o, t, 10, &format!("{arch} {name}, ours"));
    }
    // The scores spread, so the comparison is not of one repeated value.
    let scores: Vec<f64> = theirs
        .iter()
        .flat_map(|t| t.1.iter().map(|d| d.1))
        .collect();
    let spread = scores.iter().cloned().fold(f64::MIN, f64::max)
        - scores.iter().cloned().fold(f64::MAX, f64::min);
    println!("{arch}: scores spread over {spread:.3}");
    assert!(spread > 0.02, "{arch}: scores spread over {spread}");
}

#[test]
fn predict_takes_a_torchvision_faster_rcnn_checkpoint_with_its_arch() {
    check_predict("fasterrcnn_mobilenet_v3_large_320_fpn", true);
}

#[test]
fn predict_takes_a_torchvision_ssdlite_checkpoint_and_infers_its_arch() {
    check_predict("ssdlite320_mobilenet_v3_large", false);
}

#[test]
fn the_architecture_is_read_off_the_tensors_or_asked_for() {
    let read = |arch: &str| {
        let file = reference().join(format!("{arch}.pth"));
        infer_arch(&checkpoint::read(&file).unwrap(), &file)
    };
    assert_eq!(
        read("ssdlite320_mobilenet_v3_large").unwrap(),
        "ssdlite320_mobilenet_v3_large"
    );
    // The 320 and full-size MobileNetV3 Faster R-CNNs share every tensor: the error names both.
    let err = format!(
        "{:#}",
        read("fasterrcnn_mobilenet_v3_large_320_fpn").unwrap_err()
    );
    assert!(
        err.contains("fasterrcnn_mobilenet_v3_large_fpn")
            && err.contains("fasterrcnn_mobilenet_v3_large_320_fpn")
            && err.contains("arch="),
        "{err}"
    );
    // Through the command line, the same error stops predict before anything is written.
    let out = Command::new(env!("CARGO_BIN_EXE_ferrovis-cli"))
        .args(["detect", "predict", "--weights"])
        .arg(reference().join("fasterrcnn_mobilenet_v3_large_320_fpn.pth"))
        .arg(reference().join("images"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("give arch="), "{stderr}");
}

#[test]
fn weights_inspect_builds_every_detector_by_name() {
    let text = std::fs::read_to_string(reference().join("counts.json")).unwrap();
    let torchvision: serde_json::Value = serde_json::from_str(&text).unwrap();
    // YOLOv8n for 80 classes as Ultralytics publishes it (unfused), then torchvision's detectors
    // for 91 classes as torchvision counts them.
    let mut expected = vec![("yolov8n".to_string(), 3_157_200)];
    for (arch, n) in torchvision.as_object().unwrap() {
        expected.push((arch.clone(), n.as_u64().unwrap()));
    }
    assert_eq!(expected.len(), 5);
    for (arch, n) in expected {
        let text = cli(&["detect", "weights", "inspect", "--arch", &arch, "--json"]);
        let json: serde_json::Value =
            serde_json::from_str(&text[text.find('{').unwrap()..]).unwrap();
        assert_eq!(json["parameters"].as_u64(), Some(n), "{arch}");
    }
}
