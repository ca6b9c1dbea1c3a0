//! `predict`'s sources in every task: folders, `dir/**/*.jpg` globs and list files; among good
//! images, an empty file and a text file named `.jpg` are each named once and skipped,
//! everything readable is predicted and written (`predictions.json` complete), and the summary
//! and exit status say that files were skipped.

use std::path::{Path, PathBuf};

use crate::cli::cli;
use ferrovis_data::decode::write_rgb;
use ferrovis_data::image::RgbImage;
use tch::Device;

/// `root/a/x1.png` and `root/a/sub/x2.jpg` (good), `root/a/sub/empty.jpg` (0 bytes),
/// `root/a/notes.jpg` (text).
fn tree(root: &Path) -> PathBuf {
    let a = root.join("a");
    std::fs::create_dir_all(a.join("sub")).unwrap();
    let image = RgbImage::filled(48, 40, [200, 120, 40]);
    write_rgb(&a.join("x1.png"), &image).unwrap();
    write_rgb(&a.join("sub/x2.jpg"), &image).unwrap();
    std::fs::write(a.join("sub/empty.jpg"), b"").unwrap();
    std::fs::write(a.join("notes.jpg"), b"not a picture\n").unwrap();
    a
}

/// A fresh ResNet-18 classifier with three classes, saved in `dir` (weights of an untrained
/// model: what `predict` reads is the point, not what it answers).
pub(crate) fn fresh_classifier(dir: &Path) -> PathBuf {
    let clf = ferrovis_classify::model::Classifier::new("resnet18", 3, 0.0, Device::Cpu).unwrap();
    let weights = dir.join("resnet18.safetensors");
    clf.vs.save(&weights).unwrap();
    weights
}

/// A fresh U-Net on ResNet-18 with two classes, saved in `dir`
/// (`--arch unet --encoder resnet18 --classes 2`).
pub(crate) fn fresh_unet(dir: &Path) -> PathBuf {
    let spec = ferrovis_segment::model::ModelSpec {
        encoder: "resnet18".into(),
        num_classes: 2,
        ..Default::default()
    };
    let model = ferrovis_segment::model::SegmentationModel::new(&spec, Device::Cpu).unwrap();
    let weights = dir.join("unet.safetensors");
    model.vs.save(&weights).unwrap();
    weights
}

/// A fresh fast style network, saved in `dir`.
pub(crate) fn fresh_style_net(dir: &Path) -> PathBuf {
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let _net = ferrovis_style::transformer::TransformerNet::new(&vs.root());
    let weights = dir.join("net.safetensors");
    vs.save(&weights).unwrap();
    weights
}

/// Each bad file named exactly once in `stderr`, with its reason, and the count.
fn assert_skipped(stderr: &str, bad: &[(&str, &str)], of: usize) {
    for (file, reason) in bad {
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("skipped ") && l.contains(file))
            .collect();
        assert_eq!(lines.len(), 1, "{file} named once:\n{stderr}");
        assert!(lines[0].contains(reason), "{}", lines[0]);
    }
    let summary = format!("{} of {of} files could not be read", bad.len());
    assert!(stderr.contains(&summary), "{summary}:\n{stderr}");
}

#[test]
fn classify_predict_skips_unreadable_files_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tree(tmp.path());
    let weights = fresh_classifier(tmp.path());
    let glob = a.join("**/*.jpg");
    let (ok, stdout, stderr) = cli(&[
        "classify".as_ref(),
        "predict".as_ref(),
        "--weights".as_ref(),
        weights.as_os_str(),
        "--arch".as_ref(),
        "resnet18".as_ref(),
        "--json".as_ref(),
        glob.as_os_str(),
    ]);
    assert!(!ok, "the exit status says files were skipped");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let images: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["image"].as_str().unwrap())
        .collect();
    assert_eq!(images.len(), 1, "{stdout}");
    assert!(images[0].ends_with("sub/x2.jpg"));
    assert_skipped(
        &stderr,
        &[
            ("empty.jpg", "empty file"),
            ("notes.jpg", "unreadable image header"),
        ],
        3,
    );
}

#[test]
fn detect_writes_every_readable_image_of_a_folder_or_a_glob() {
    use ferrovis_detect::output::{write_predictions, ImagePrediction};
    let tmp = tempfile::tempdir().unwrap();
    let a = tree(tmp.path());
    let detect_one = |file: &Path, img: &RgbImage| {
        Ok(ImagePrediction {
            image: file.to_path_buf(),
            frame: None,
            size: (img.width, img.height),
            detections: Vec::new(),
        })
    };
    for (source, written, skipped) in [
        (a.clone(), vec!["x1.png"], 1),
        (a.join("**/*.jpg"), vec!["x2.jpg"], 2),
    ] {
        let out = tmp.path().join(format!("out-{skipped}"));
        let err = write_predictions(
            std::slice::from_ref(&source),
            &out,
            &Default::default(),
            None,
            detect_one,
        )
        .unwrap_err()
        .to_string();
        let of = written.len() + skipped;
        assert!(
            err.contains(&format!("{skipped} of {of} files could not be read")),
            "{err}"
        );
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("predictions.json")).unwrap())
                .unwrap();
        assert_eq!(json.as_array().unwrap().len(), written.len(), "{json}");
        for name in written {
            assert!(out.join(name).is_file(), "{name} drawn");
        }
    }
}

#[test]
fn segment_and_style_predict_skip_unreadable_files() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tree(tmp.path());
    let weights = fresh_unet(tmp.path());
    // A list file naming the folder and the glob's sub-folder pattern.
    let list = tmp.path().join("sources.txt");
    std::fs::write(&list, "a/x1.png\na/sub/*.jpg\n").unwrap();
    let out = tmp.path().join("masks");
    let (ok, _, stderr) = cli(&[
        "segment".as_ref(),
        "predict".as_ref(),
        "--weights".as_ref(),
        weights.as_os_str(),
        "--arch".as_ref(),
        "unet".as_ref(),
        "--encoder".as_ref(),
        "resnet18".as_ref(),
        "--classes".as_ref(),
        "2".as_ref(),
        "--out".as_ref(),
        out.as_os_str(),
        list.as_os_str(),
    ]);
    assert!(!ok);
    assert_skipped(&stderr, &[("empty.jpg", "empty file")], 3);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("predictions.json")).unwrap())
            .unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2);
    assert!(out.join("x1.png").is_file() && out.join("x2.png").is_file());

    // style: the fast network, fresh.
    let net_file = fresh_style_net(tmp.path());
    let styled = tmp.path().join("styled");
    let (ok, stdout, stderr) = cli(&[
        "style".as_ref(),
        "predict".as_ref(),
        "--weights".as_ref(),
        net_file.as_os_str(),
        "--out".as_ref(),
        styled.as_os_str(),
        a.as_os_str(),
    ]);
    assert!(!ok);
    assert!(stdout.contains("1 images"), "{stdout}");
    assert_skipped(&stderr, &[("notes.jpg", "not a decodable image")], 2);
    assert!(styled.join("x1.png").is_file());
}
