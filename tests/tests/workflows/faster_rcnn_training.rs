//! Faster R-CNN training against torchvision (`reference/faster_rcnn.py --only-train`):
//! `fasterrcnn_resnet50_fpn` with FrozenBatchNorm2d in training mode, after the same seed, gives
//! torchvision's four losses within 1e-5 and the box predictor's gradients within 1e-4
//! (relative). The RPN's and RoI heads' samples are drawn from libtorch's global generator as
//! torchvision draws them, so this runs with the other serial tests: no other test may draw in
//! between.

use std::path::Path;

use ferrovis_core::checkpoint::{self, LoadOptions};
use ferrovis_core::freeze::parameter_counts;
use ferrovis_detect::torchvision::faster_rcnn::{FasterRcnn, FasterRcnnConfig};
use ferrovis_detect::torchvision::targets::Target;
use ferrovis_detect::torchvision::transform::RcnnTransform;
use ferrovis_tests::run_reference;
use tch::nn::VarStore;
use tch::{Device, Tensor};

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

#[test]
fn faster_rcnn_training_losses_and_gradients_match_torchvision() {
    let _serial = crate::serial();
    tch::set_num_threads(1);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("faster-rcnn-train-reference");
    let _ = std::fs::remove_dir_all(&dir);
    run_reference(
        "faster_rcnn.py",
        &[dir.as_os_str(), "--only-train".as_ref()],
    );
    let counts: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("counts.json")).unwrap()).unwrap();
    let arch = "fasterrcnn_resnet50_fpn";
    let mut config = FasterRcnnConfig::by_name(arch, 91, true).unwrap();
    config.transform = RcnnTransform::new(256, 400);
    let vs = VarStore::new(Device::Cpu);
    let model = FasterRcnn::new(&vs.root(), &config).unwrap();
    checkpoint::load_file(
        &vs,
        dir.join("train.pth"),
        &LoadOptions::default().strict(true),
    )
    .unwrap();
    let (_, params) = parameter_counts(&vs);
    let keys = vs.variables().len() as i64;
    let frozen = &counts["fasterrcnn_resnet50_fpn_frozen"];
    println!("{arch} with FrozenBatchNorm2d: {keys} keys, {params} parameters");
    assert_eq!(keys, frozen["keys"].as_i64().unwrap(), "frozen: keys");
    assert_eq!(
        params,
        frozen["params"].as_i64().unwrap(),
        "frozen: parameters"
    );
    let expected = checkpoint::read(dir.join("train.safetensors")).unwrap();
    let images = [
        expected.get("image0").unwrap().shallow_clone(),
        expected.get("image1").unwrap().shallow_clone(),
    ];
    let targets: Vec<Target> = (0..2)
        .map(|i| Target {
            boxes: expected.get(&format!("boxes{i}")).unwrap().shallow_clone(),
            labels: expected.get(&format!("labels{i}")).unwrap().shallow_clone(),
        })
        .collect();
    tch::manual_seed(123);
    let losses = model.losses(&images, &targets).unwrap();
    for (name, value) in losses.named() {
        let theirs = expected.get(name).unwrap().double_value(&[]);
        let ours = value.double_value(&[]);
        println!("{name}: {ours:.6} (torchvision {theirs:.6})");
        assert!((ours - theirs).abs() <= 1e-5, "{name}: {ours} vs {theirs}");
    }
    losses.total().backward();
    let vars = vs.variables();
    for (name, key) in [
        ("roi_heads.box_predictor.cls_score.weight", "cls_score_grad"),
        ("roi_heads.box_predictor.bbox_pred.weight", "bbox_pred_grad"),
        ("roi_heads.box_head.fc6.weight", "fc6_grad"),
    ] {
        let ours = vars[name].grad();
        let theirs = expected.get(key).unwrap();
        let rel = max_diff(&ours, theirs) / theirs.abs().max().double_value(&[]).max(1e-12);
        println!("{name} gradient: max |Δ| / max |value| {rel:.1e}");
        assert!(
            rel <= 1e-4,
            "{name}: gradient differs by {rel:e} (relative)"
        );
    }
    // Frozen statistics are buffers: nothing in a FrozenBatchNorm2d has a gradient.
    assert!(!vars["backbone.body.bn1.weight"].grad().defined());
}
