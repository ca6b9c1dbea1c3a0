//! `core::ops::roi_align` against `torchvision.ops.roi_align` and `MultiScaleRoIAlign` on the
//! same seeded random inputs (`reference/roi_align.py`): outputs and input gradients within 1e-5
//! for both `aligned` settings, sampling ratio 2 and adaptive, with RoIs partly and wholly
//! outside the map and smaller than a cell; the multi-scale pooler on four levels; bad input
//! named, never a panic.

use std::path::Path;

use ferrovis_core::checkpoint::{self, StateDict};
use ferrovis_core::ops::roi_align::{MultiScaleRoiAlign, RoiAlign};
use ferrovis_tests::run_reference;
use tch::{Kind, Tensor};

fn reference() -> StateDict {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("roi_align.safetensors");
    run_reference("roi_align.py", &[path.as_os_str()]);
    checkpoint::read(&path).unwrap()
}

fn close(what: &str, ours: &Tensor, theirs: &Tensor) {
    assert_eq!(ours.size(), theirs.size(), "{what}: shape");
    let d = (ours - theirs).abs().max().double_value(&[]);
    let scale = theirs.abs().max().double_value(&[]);
    println!("{what}: max |Δ| {d:.2e} (largest value {scale:.2})");
    assert!(d <= 1e-5, "{what}: max abs difference {d:e}");
}

#[test]
fn roi_align_matches_torchvision_forward_and_gradient() {
    let r = reference();
    let get = |k: &str| r.get(k).unwrap().shallow_clone();
    let (feat, rois) = (get("feat"), get("rois"));
    for aligned in [false, true] {
        for ratio in [2, 0] {
            let key = format!("{}{ratio}", if aligned { "a" } else { "u" });
            let x = feat.copy().set_requires_grad(true);
            let y = RoiAlign::new((5, 4), 0.5, ratio)
                .with_aligned(aligned)
                .forward(&x, &rois)
                .unwrap();
            (&y * get(&format!("gout_{key}")))
                .sum(Kind::Float)
                .backward();
            let what = format!("roi_align aligned={aligned} sampling_ratio={ratio}");
            close(&what, &y, &get(&format!("out_{key}")));
            close(
                &format!("{what}, input gradient"),
                &x.grad(),
                &get(&format!("gin_{key}")),
            );
        }
    }
    // Per-image boxes give the same result as the (K, 5) form.
    let boxes: Vec<Tensor> = (0..2)
        .map(|b| {
            let mine = rois.select(1, 0).eq(b as f64).nonzero().squeeze_dim(1);
            rois.index_select(0, &mine).narrow(1, 1, 4)
        })
        .collect();
    let order = Tensor::cat(
        &[
            rois.select(1, 0).eq(0.0).nonzero().squeeze_dim(1),
            rois.select(1, 0).eq(1.0).nonzero().squeeze_dim(1),
        ],
        0,
    );
    let by_image = RoiAlign::new((5, 4), 0.5, 2)
        .forward_boxes(&feat, &boxes)
        .unwrap();
    close(
        "roi_align, per-image boxes",
        &by_image,
        &get("out_u2").index_select(0, &order),
    );
}

#[test]
fn multi_scale_roi_align_matches_torchvision() {
    let r = reference();
    let get = |k: &str| r.get(k).unwrap().shallow_clone();
    let levels: Vec<Tensor> = (0..4)
        .map(|i| get(&format!("ms_level{i}")).set_requires_grad(true))
        .collect();
    let boxes = [get("ms_boxes0"), get("ms_boxes1")];
    let sizes = [(800, 1024), (704, 960)];
    let pooler = MultiScaleRoiAlign::new((7, 7), 2);
    let (scales, mapper) = pooler.scales(&levels, &sizes).unwrap();
    let theirs: Vec<f64> = Vec::try_from(get("ms_scales")).unwrap();
    assert_eq!(scales, theirs, "inferred scales");
    assert_eq!((mapper.k_min, mapper.k_max), (2, 5), "mapper levels");
    let assigned = mapper.levels(&Tensor::cat(&boxes, 0)).unwrap();
    let (ours, theirs): (Vec<i64>, Vec<i64>) = (
        Vec::try_from(&assigned).unwrap(),
        Vec::try_from(get("ms_levels")).unwrap(),
    );
    assert_eq!(ours, theirs, "level of each box");
    let counts: Vec<usize> = (0..4)
        .map(|l| ours.iter().filter(|&&x| x == l).count())
        .collect();
    println!("boxes per level P2..P5: {counts:?}");
    assert!(counts.iter().all(|&c| c > 0), "every level is exercised");
    let y = pooler.forward(&levels, &boxes, &sizes).unwrap();
    (&y * get("ms_gout")).sum(Kind::Float).backward();
    close("MultiScaleRoIAlign", &y, &get("ms_out"));
    for (i, level) in levels.iter().enumerate() {
        close(
            &format!("MultiScaleRoIAlign, gradient of level {i}"),
            &level.grad(),
            &get(&format!("ms_gin{i}")),
        );
    }
}

#[test]
fn roi_align_rejects_bad_input_by_name() {
    let feat = Tensor::rand([2, 3, 8, 8], (Kind::Float, tch::Device::Cpu));
    let pooler = RoiAlign::new((2, 2), 1.0, 2);
    let err = |rois: &[f32]| {
        let t = Tensor::from_slice(rois).view([-1, 5]);
        pooler.forward(&feat, &t).unwrap_err().to_string()
    };
    let reversed = err(&[0.0, 1.0, 1.0, 4.0, 4.0, 1.0, 5.0, 1.0, 2.0, 4.0]);
    assert!(
        reversed.contains("rois") && reversed.contains("box 1 is reversed"),
        "{reversed}"
    );
    let nan = err(&[0.0, f32::NAN, 1.0, 4.0, 4.0]);
    assert!(nan.contains("rois") && nan.contains("NaN"), "{nan}");
    let batch = err(&[0.0, 1.0, 1.0, 4.0, 4.0, 2.0, 1.0, 1.0, 4.0, 4.0]);
    assert!(
        batch.contains("RoI 1 has batch index 2") && batch.contains("2 image(s)"),
        "{batch}"
    );
    let fraction = err(&[0.5, 1.0, 1.0, 4.0, 4.0]);
    assert!(fraction.contains("batch index 0.5"), "{fraction}");
    let shape = pooler
        .forward(
            &feat,
            &Tensor::zeros([3, 4], (Kind::Float, tch::Device::Cpu)),
        )
        .unwrap_err()
        .to_string();
    assert!(
        shape.contains("rois: expected") && shape.contains("(K, 5)"),
        "{shape}"
    );
    let flat = pooler
        .forward(
            &feat.view([6, 8, 8]),
            &Tensor::zeros([0, 5], (Kind::Float, tch::Device::Cpu)),
        )
        .unwrap_err()
        .to_string();
    assert!(
        flat.contains("input: expected a non-empty (N, C, H, W)"),
        "{flat}"
    );
    let size = RoiAlign::new((0, 2), 1.0, 2)
        .forward(
            &feat,
            &Tensor::zeros([0, 5], (Kind::Float, tch::Device::Cpu)),
        )
        .unwrap_err()
        .to_string();
    assert!(size.contains("output_size"), "{size}");
    // No RoI: an empty result of the right shape, still part of the graph.
    let x = feat.copy().set_requires_grad(true);
    let empty = pooler
        .forward(&x, &Tensor::zeros([0, 5], (Kind::Float, tch::Device::Cpu)))
        .unwrap();
    assert_eq!(empty.size(), [0, 3, 2, 2]);
    empty.sum(Kind::Float).backward();
    assert_eq!(x.grad().abs().sum(Kind::Float).double_value(&[]), 0.0);

    let ms = MultiScaleRoiAlign::new((7, 7), 2);
    let none = ms.forward(&[], &[], &[]).unwrap_err().to_string();
    assert!(
        none.contains("features: expected at least one level"),
        "{none}"
    );
    let boxes = [Tensor::from_slice(&[1.0f32, 1.0, 4.0, 4.0]).view([1, 4])];
    let one = [feat.narrow(0, 0, 1)];
    let sizes = ms.forward(&one, &boxes, &[]).unwrap_err().to_string();
    assert!(sizes.contains("image_sizes"), "{sizes}");
    let wrong_order = [
        feat.narrow(0, 0, 1).avg_pool2d_default(2),
        feat.narrow(0, 0, 1),
    ];
    let order = ms
        .forward(&wrong_order, &boxes, &[(32, 32)])
        .unwrap_err()
        .to_string();
    assert!(order.contains("finest to coarsest"), "{order}");
    let channels = [
        feat.narrow(0, 0, 1),
        feat.narrow(0, 0, 1).narrow(1, 0, 2).avg_pool2d_default(2),
    ];
    let mixed = ms
        .forward(&channels, &boxes, &[(32, 32)])
        .unwrap_err()
        .to_string();
    assert!(
        mixed.contains("features[1]") && mixed.contains("3 channels"),
        "{mixed}"
    );
}
