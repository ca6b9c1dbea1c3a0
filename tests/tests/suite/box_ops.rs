//! torchvision's box operations on tensors (`core::ops::detection`) against `torchvision.ops` on
//! the same seeded random inputs (`reference/box_ops.py`): identical kept indices for `nms` and
//! `batched_nms` (with exact score ties, several classes, three thresholds, and 5,000 boxes over
//! 80 classes), the other operations within float rounding; bad input named, never a panic.

use std::path::Path;

use ferrovis_core::checkpoint::{self, StateDict};
use ferrovis_core::ops::anchors::AnchorGenerator;
use ferrovis_core::ops::box_coder::BoxCoder;
use ferrovis_core::ops::default_boxes::DefaultBoxGenerator;
use ferrovis_core::ops::detection::{
    batched_nms, box_area, box_convert, box_iou, clip_boxes_to_image, nms, remove_small_boxes,
    BoxFormat,
};
use ferrovis_core::ops::matcher::{Matcher, SsdMatcher};
use ferrovis_tests::run_reference;
use tch::{Kind, Tensor};

fn reference() -> StateDict {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("box_ops.safetensors");
    run_reference("box_ops.py", &[path.as_os_str()]);
    checkpoint::read(&path).unwrap()
}

fn same_indices(what: &str, ours: &Tensor, theirs: &Tensor) {
    let (a, b): (Vec<i64>, Vec<i64>) = (
        Vec::try_from(ours).unwrap(),
        Vec::try_from(theirs.to_kind(Kind::Int64)).unwrap(),
    );
    println!("{what}: {} kept", a.len());
    if a != b {
        let first = a.iter().zip(&b).position(|(x, y)| x != y);
        panic!(
            "{what}: {} kept, torchvision {}; first difference at {first:?}: {:?} vs {:?}",
            a.len(),
            b.len(),
            first.map(|i| &a[i..(i + 5).min(a.len())]),
            first.map(|i| &b[i..(i + 5).min(b.len())])
        );
    }
}

fn close(what: &str, ours: &Tensor, theirs: &Tensor) {
    assert_eq!(ours.size(), theirs.size(), "{what}");
    let d = (ours - theirs).abs().max().double_value(&[]);
    assert!(d <= 1e-5, "{what}: max abs difference {d:e}");
}

#[test]
fn box_ops_match_torchvision() {
    let r = reference();
    let get = |k: &str| r.get(k).unwrap().shallow_clone();
    let (boxes, scores, idxs) = (get("boxes"), get("scores"), get("idxs"));
    for (key, t) in [("3", 0.3), ("5", 0.5), ("7", 0.7)] {
        same_indices(
            &format!("nms {t}"),
            &nms(&boxes, &scores, t).unwrap(),
            &get(&format!("nms{key}")),
        );
        same_indices(
            &format!("batched_nms {t}"),
            &batched_nms(&boxes, &scores, &idxs, t).unwrap(),
            &get(&format!("batched{key}")),
        );
    }
    // At this size torchvision takes its per-class path, which orders the result with an
    // unstable sort: equal scores may come in either order. Everything else must be identical,
    // position by position.
    let big_scores = get("big_scores");
    let ours: Vec<i64> =
        Vec::try_from(batched_nms(&get("big_boxes"), &big_scores, &get("big_idxs"), 0.5).unwrap())
            .unwrap();
    let theirs: Vec<i64> = Vec::try_from(get("big_batched5")).unwrap();
    assert_eq!(ours.len(), theirs.len(), "batched_nms, 5,000 boxes: count");
    let score: Vec<f32> = Vec::try_from(&big_scores).unwrap();
    let mut swapped = 0;
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        if a != b {
            assert_eq!(
                score[*a as usize].to_bits(),
                score[*b as usize].to_bits(),
                "batched_nms, 5,000 boxes: position {i} holds {a} (ours) and {b} (torchvision)"
            );
            swapped += 1;
        }
    }
    let (mut a, mut b) = (ours.clone(), theirs.clone());
    a.sort_unstable();
    b.sort_unstable();
    assert_eq!(a, b, "batched_nms, 5,000 boxes: the kept set");
    println!(
        "batched_nms, 5,000 boxes over 80 classes: {} kept, {swapped} positions differ only \
         between equal scores",
        ours.len()
    );
    close(
        "box_iou",
        &box_iou(&boxes.narrow(0, 0, 50), &boxes.narrow(0, 0, 37)).unwrap(),
        &get("iou"),
    );
    close("box_area", &box_area(&boxes).unwrap(), &get("area"));
    close(
        "xyxy → xywh",
        &box_convert(&boxes, BoxFormat::Xyxy, BoxFormat::Xywh).unwrap(),
        &get("xywh"),
    );
    close(
        "xyxy → cxcywh",
        &box_convert(&boxes, BoxFormat::Xyxy, BoxFormat::Cxcywh).unwrap(),
        &get("cxcywh"),
    );
    close(
        "cxcywh → xyxy",
        &box_convert(&get("cxcywh"), BoxFormat::Cxcywh, BoxFormat::Xyxy).unwrap(),
        &get("from_cxcywh"),
    );
    close(
        "clip_boxes_to_image",
        &clip_boxes_to_image(&boxes, (300, 400)).unwrap(),
        &get("clipped"),
    );
    same_indices(
        "remove_small_boxes 1e-2",
        &remove_small_boxes(&boxes, 1e-2).unwrap(),
        &get("small_1e-2"),
    );
    same_indices(
        "remove_small_boxes 5",
        &remove_small_boxes(&boxes, 5.0).unwrap(),
        &get("small_5"),
    );
    let empty = Tensor::zeros([0, 4], (Kind::Float, tch::Device::Cpu));
    let none = Tensor::zeros([0], (Kind::Float, tch::Device::Cpu));
    same_indices(
        "empty nms",
        &nms(&empty, &none, 0.5).unwrap(),
        &get("empty"),
    );
}

/// Largest difference relative to the values' scale: `|a − b| / (1 + |b|)`.
fn relative(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    ((a - b).abs() / (b.abs() + 1.0)).max().double_value(&[])
}

#[test]
fn box_coder_and_matchers_match_torchvision() {
    let r = reference();
    let get = |k: &str| r.get(k).unwrap().shallow_clone();
    let (reference_boxes, proposals, rel) = (get("coder_ref"), get("coder_props"), get("rel"));
    for (weights, suffix, codes) in [
        ([10.0, 10.0, 5.0, 5.0], "", rel.shallow_clone()),
        ([1.0, 1.0, 1.0, 1.0], "1", rel.narrow(1, 0, 4)),
    ] {
        let coder = BoxCoder::new(weights);
        let enc = coder.encode(&reference_boxes, &proposals).unwrap();
        let d = relative(&enc, &get(&format!("encoded{suffix}")));
        println!("BoxCoder {weights:?} encode: {d:.1e}");
        assert!(d <= 1e-6, "encode {weights:?}: {d:e}");
        let dec = coder.decode(&codes, &proposals).unwrap();
        let d = relative(&dec, &get(&format!("decoded{suffix}")));
        println!("BoxCoder {weights:?} decode: {d:.1e}");
        assert!(d <= 1e-6, "decode {weights:?}: {d:e}");
    }
    let iou = get("match_iou");
    let rpn = Matcher::new(0.7, 0.3, true).unwrap().apply(&iou).unwrap();
    same_indices("Matcher(0.7, 0.3, low-quality)", &rpn, &get("match_rpn"));
    let roi = Matcher::new(0.5, 0.5, false).unwrap().apply(&iou).unwrap();
    same_indices("Matcher(0.5, 0.5)", &roi, &get("match_roi"));
    let ssd = SsdMatcher { threshold: 0.5 }.apply(&iou).unwrap();
    same_indices("SSDMatcher(0.5)", &ssd, &get("match_ssd"));
    // The low-quality rule matched anchors the thresholds alone leave negative, both anchors tied
    // for ground truth 0 among them.
    let plain = Matcher::new(0.7, 0.3, false).unwrap().apply(&iou).unwrap();
    let matched = |t: &Tensor| t.ge(0).sum(Kind::Int64).int64_value(&[]);
    println!(
        "RPN matches: {} with low-quality matches, {} without",
        matched(&rpn),
        matched(&plain)
    );
    assert!(matched(&rpn) > matched(&plain));
    let rpn: Vec<i64> = Vec::try_from(&rpn).unwrap();
    assert_eq!((rpn[5], rpn[17]), (0, 0));

    let e = Matcher::new(0.3, 0.7, false).unwrap_err().to_string();
    assert!(
        e.contains("low_threshold 0.7 is above high_threshold 0.3"),
        "{e}"
    );
    let empty = Tensor::zeros([0, 5], (Kind::Float, tch::Device::Cpu));
    let e = Matcher::new(0.7, 0.3, true)
        .unwrap()
        .apply(&empty)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no ground-truth boxes"), "{e}");
    let e = BoxCoder::new([1.0; 4])
        .decode(
            &Tensor::zeros([3, 6], (Kind::Float, tch::Device::Cpu)),
            &proposals,
        )
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("rel_codes: expected shape (N, 4k), got [3, 6]"),
        "{e}"
    );
}

#[test]
fn anchors_match_torchvision() {
    let r = reference();
    let get = |k: &str| r.get(k).unwrap().shallow_clone();
    let cpu = tch::Device::Cpu;
    let fpn = AnchorGenerator::fpn();
    assert_eq!(fpn.num_anchors_per_location(), [3, 3, 3, 3, 3]);
    for (key, image, grids) in [
        (
            "anchors_fpn",
            (800, 1216),
            vec![(200, 304), (100, 152), (50, 76), (25, 38), (13, 19)],
        ),
        (
            "anchors_odd",
            (600, 1000),
            vec![(150, 250), (75, 125), (38, 63), (19, 32), (10, 16)],
        ),
    ] {
        let ours = fpn.anchors(image, &grids, Kind::Float, cpu).unwrap();
        let theirs = get(key);
        println!("{key}: {} anchors", ours.size()[0]);
        assert!(ours.equal(&theirs), "{key}");
    }
    let mobile = AnchorGenerator::new(
        vec![vec![32.0, 64.0, 128.0, 256.0, 512.0]; 3],
        vec![vec![0.5, 1.0, 2.0]; 3],
    )
    .unwrap();
    assert_eq!(mobile.num_anchors_per_location(), [15, 15, 15]);
    let ours = mobile
        .anchors((320, 320), &[(10, 10), (10, 10), (5, 5)], Kind::Float, cpu)
        .unwrap();
    assert!(ours.equal(&get("anchors_mobile")), "anchors_mobile");
    let e = fpn
        .anchors((800, 800), &[(200, 200)], Kind::Float, cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains("1 feature maps for 5 anchor sets"), "{e}");
}

#[test]
fn default_boxes_match_torchvision() {
    let r = reference();
    let get = |k: &str| r.get(k).unwrap().shallow_clone();
    let cpu = tch::Device::Cpu;
    let grids300 = [(38, 38), (19, 19), (10, 10), (5, 5), (3, 3), (1, 1)];
    let ssd300 = DefaultBoxGenerator::ssd300();
    assert_eq!(ssd300.num_anchors_per_location(), [4, 6, 6, 6, 4, 4]);
    let ours = ssd300.boxes((300, 300), &grids300, cpu).unwrap();
    assert_eq!(ours.size(), [8732, 4]);
    close("SSD300 default boxes", &ours, &get("dbox_ssd300"));
    let grids320 = [(20, 20), (10, 10), (5, 5), (3, 3), (2, 2), (1, 1)];
    let ours = DefaultBoxGenerator::ssdlite()
        .boxes((320, 320), &grids320, cpu)
        .unwrap();
    close("SSDlite320 default boxes", &ours, &get("dbox_ssdlite"));
    let free = DefaultBoxGenerator::new(
        vec![vec![2.0], vec![2.0, 3.0], vec![2.0, 3.0]],
        0.1,
        0.8,
        None,
        None,
        false,
    )
    .unwrap();
    let ours = free
        .boxes((300, 500), &[(19, 32), (10, 16), (5, 8)], cpu)
        .unwrap();
    close(
        "unclipped default boxes on 300×500",
        &ours,
        &get("dbox_free"),
    );
    // Not only close: the same floats.
    let ours = ssd300.boxes((300, 300), &grids300, cpu).unwrap();
    assert!(ours.equal(&get("dbox_ssd300")), "SSD300: not bit-identical");
    let e = ssd300
        .boxes((300, 300), &grids300[..2], cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains("2 feature maps for 6 levels"), "{e}");
}

#[test]
fn bad_boxes_are_named_errors() {
    let opts = (Kind::Float, tch::Device::Cpu);
    let good = Tensor::from_slice(&[0.0f32, 0.0, 10.0, 10.0, 5.0, 5.0, 15.0, 15.0]).view([2, 4]);
    let scores = Tensor::from_slice(&[0.9f32, 0.8]);
    let err = |r: ferrovis_core::Result<Tensor>| r.unwrap_err().to_string();

    let reversed =
        Tensor::from_slice(&[0.0f32, 0.0, 10.0, 10.0, 15.0, 5.0, 5.0, 15.0]).view([2, 4]);
    let e = err(nms(&reversed, &scores, 0.5));
    assert!(e.contains("boxes: box 1 is reversed"), "{e}");
    let nan =
        Tensor::from_slice(&[0.0f32, f32::NAN, 10.0, 10.0, 5.0, 5.0, 15.0, 15.0]).view([2, 4]);
    let e = err(batched_nms(
        &nan,
        &scores,
        &Tensor::from_slice(&[0i64, 1]),
        0.5,
    ));
    assert!(e.contains("boxes: a box has a NaN"), "{e}");
    let e = err(nms(&good, &Tensor::from_slice(&[0.9f32]), 0.5));
    assert!(e.contains("scores: expected shape (2,)"), "{e}");
    let e = err(batched_nms(
        &good,
        &scores,
        &Tensor::from_slice(&[0i64]),
        0.5,
    ));
    assert!(e.contains("idxs: expected shape (2,)"), "{e}");
    let e = err(batched_nms(
        &good,
        &scores,
        &Tensor::from_slice(&[0.0f32, 1.0]),
        0.5,
    ));
    assert!(e.contains("idxs: expected integer categories"), "{e}");
    let e = err(box_iou(&good, &Tensor::zeros([3, 5], opts)));
    assert!(
        e.contains("boxes2: expected boxes of shape (N, 4), got [3, 5]"),
        "{e}"
    );
    let e = err(nms(&good, &Tensor::from_slice(&[f32::NAN, 0.1]), 0.5));
    assert!(e.contains("scores: a score is NaN"), "{e}");
}
