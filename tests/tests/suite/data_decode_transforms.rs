//! Decoding against PIL (odd colour modes, 16-bit, EXIF orientation, masks) and torchvision's
//! RandomResizedCrop statistics, with the references computed by `tests/reference/data.py`.

use std::path::Path;

use ferrovis_data::decode::{read_mask, read_rgb};
use ferrovis_data::rng::derive;
use ferrovis_data::transform::RandomResizedCrop;
use ferrovis_tests::run_reference;

fn expected_rgb(path: &Path) -> (usize, usize, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap();
    let w = u32::from_le_bytes(bytes[0..4].try_into().unwrap()) as usize;
    let h = u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
    (w, h, bytes[8..].to_vec())
}

#[test]
fn odd_image_modes_decode_like_pil() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_reference("data.py", &["fixtures".as_ref(), dir.path().as_os_str()]);
    let names: Vec<String> = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(names.len(), 8);
    for name in &names {
        let img = read_rgb(&dir.path().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (w, h, want) = expected_rgb(&dir.path().join(format!("{name}.rgb")));
        assert_eq!(
            (img.width, img.height),
            (w, h),
            "{name}: size (EXIF orientation applied?)"
        );
        let diffs: Vec<i32> = img
            .data
            .iter()
            .zip(&want)
            .map(|(&a, &b)| (a as i32 - b as i32).abs())
            .collect();
        let mean = diffs.iter().sum::<i32>() as f64 / diffs.len() as f64;
        let lossy = name.ends_with(".jpg");
        // Lossless formats decode to the same bytes; JPEG decoders may round a little differently.
        let limit = if lossy { 2.0 } else { 0.0 };
        assert!(mean <= limit, "{name}: mean |ours − PIL| = {mean}");
    }

    // Masks keep their indices: palette PNG indices (not palette colours), 16-bit, grey-as-RGB.
    let idx = std::fs::read(dir.path().join("mask_palette.idx")).unwrap();
    for name in ["mask_palette.png", "mask16.png", "mask_greyrgb.png"] {
        let m = read_mask(&dir.path().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((m.width, m.height), (64, 48), "{name}");
        assert_eq!(m.data, idx, "{name}: indices changed");
    }
    assert!(idx.contains(&255), "255 (ignore) must survive");
    let err = read_mask(&dir.path().join("mask_colour.png"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("mask_colour.png") && err.contains("colour pixels"),
        "{err}"
    );
    let err = read_mask(&dir.path().join("mask16_big.png"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("mask16_big.png") && err.contains("300"),
        "{err}"
    );
}

#[test]
fn resizing_matches_pillow_filters() {
    use ferrovis_data::transform::{resize, Filter};
    let dir = tempfile::tempdir().unwrap();
    run_reference("data.py", &["fixtures".as_ref(), dir.path().as_os_str()]);
    let src = read_rgb(&dir.path().join("resize_src.png")).unwrap();
    for (name, filter) in [
        ("down_bilinear", Filter::Bilinear),
        ("up_bilinear", Filter::Bilinear),
        ("down_bicubic", Filter::Bicubic),
    ] {
        let (w, h, want) = expected_rgb(&dir.path().join(format!("{name}.rgb")));
        let got = resize(&src, w, h, filter).unwrap();
        let diffs: Vec<i32> = got
            .data
            .iter()
            .zip(&want)
            .map(|(&a, &b)| (a as i32 - b as i32).abs())
            .collect();
        let max = *diffs.iter().max().unwrap();
        let mean = diffs.iter().sum::<i32>() as f64 / diffs.len() as f64;
        // Same filters as Pillow; the fixed-point rounding differs by a step here and there
        // (two for bicubic, whose negative lobes get clamped).
        let limit = if filter == Filter::Bicubic { 2 } else { 1 };
        assert!(
            max <= limit && mean < 0.5,
            "{name}: |ours − Pillow| max {max}, mean {mean:.3}"
        );
    }
}

#[test]
fn random_resized_crop_matches_torchvision_statistics() {
    let (w, h, n) = (500usize, 375usize, 20000usize);
    let out = run_reference(
        "data.py",
        &[
            "rrc".as_ref(),
            "500".as_ref(),
            "375".as_ref(),
            "20000".as_ref(),
            "0".as_ref(),
        ],
    );
    let reference: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let rrc = RandomResizedCrop::default();
    let mut rng = derive(11, &[]);
    let (mut areas, mut logr, mut lefts, mut fallbacks) =
        (Vec::new(), Vec::new(), Vec::new(), 0usize);
    for _ in 0..n {
        let r = rrc.params(w, h, &mut rng);
        areas.push((r.width * r.height) as f64 / (w * h) as f64);
        logr.push((r.width as f64 / r.height as f64).ln());
        lefts.push(if w > r.width {
            r.left as f64 / (w - r.width) as f64
        } else {
            0.5
        });
        if r.left == (w - r.width) / 2
            && r.top == (h - r.height) / 2
            && (r.width == w || r.height == h)
        {
            fallbacks += 1;
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let std = |v: &[f64]| {
        let m = mean(v);
        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
    };
    let quantile = |v: &[f64], q: f64| {
        let mut s = v.to_vec();
        s.sort_by(|a, b| a.partial_cmp(b).unwrap());
        s[((s.len() - 1) as f64 * q) as usize]
    };
    let ours = [
        ("area_mean", mean(&areas)),
        ("area_std", std(&areas)),
        ("logratio_mean", mean(&logr)),
        ("logratio_std", std(&logr)),
        ("area_p10", quantile(&areas, 0.1)),
        ("area_p90", quantile(&areas, 0.9)),
        ("left_mean", mean(&lefts)),
        ("fallback_fraction", fallbacks as f64 / n as f64),
    ];
    for (key, value) in ours {
        let want = reference[key].as_f64().unwrap();
        // 20000 draws: sampling noise of these statistics is well under 0.01.
        assert!(
            (value - want).abs() < 0.012,
            "{key}: ours {value:.4}, torchvision {want:.4}"
        );
    }
}

/// Mean absolute difference of two normalised tensors, in 0–255 pixel units.
fn pixel_mad(a: &tch::Tensor, b: &tch::Tensor) -> f64 {
    let std = tch::Tensor::from_slice(&[0.229f32, 0.224, 0.225]).view([3, 1, 1]);
    f64::try_from(((a - b) * std).abs().mean(tch::Kind::Float)).unwrap() * 255.0
}

#[test]
fn file_fast_path_matches_decode_then_transform() {
    use ferrovis_data::decode::{read_bytes, write_rgb};
    use ferrovis_data::jpeg;
    use ferrovis_data::synthetic::{scene, ShapesConfig};
    use ferrovis_data::transform::{resize, ClassifyTransform, Filter};

    let dir = tempfile::tempdir().unwrap();
    run_reference("data.py", &["fixtures".as_ref(), dir.path().as_os_str()]);
    // A large photo-like JPEG, where the crop is decoded at a reduced DCT scale.
    let cfg = ShapesConfig {
        image_size: 300,
        ..Default::default()
    };
    let s = scene(&cfg, &[3], &mut derive(1, &[])).unwrap();
    let big = resize(&s.image, 1600, 1200, Filter::Bicubic).unwrap();
    write_rgb(&dir.path().join("big.jpg"), &big).unwrap();
    write_rgb(&dir.path().join("big.png"), &big).unwrap();

    // A full-size region decode is libjpeg's own full decode: the same bytes as OpenCV's.
    let bytes = read_bytes(&dir.path().join("big.jpg")).unwrap();
    let region = jpeg::decode_region(&dir.path().join("big.jpg"), &bytes, 8, (0, 0, 1600, 1200))
        .unwrap()
        .unwrap();
    assert_eq!(region, read_rgb(&dir.path().join("big.jpg")).unwrap());
    // A region is the same pixels as cropping the full decode (columns widened then trimmed).
    let part = jpeg::decode_region(&dir.path().join("big.jpg"), &bytes, 8, (333, 101, 777, 555))
        .unwrap()
        .unwrap();
    let full = read_rgb(&dir.path().join("big.jpg")).unwrap();
    let want = ferrovis_data::transform::geometry::crop(
        &full,
        ferrovis_data::transform::Rect {
            left: 333,
            top: 101,
            width: 444,
            height: 454,
        },
    )
    .unwrap();
    let mad = part
        .data
        .iter()
        .zip(&want.data)
        .map(|(&a, &b)| (a as f64 - b as f64).abs())
        .sum::<f64>()
        / want.data.len() as f64;
    // Block-aligned cropping can change the chroma upsampling at the region's left edge only.
    assert!(mad < 0.5, "region vs crop of full decode: {mad}");
    // Corrupt data is an error naming the file, never a crash.
    let mut broken = bytes.clone();
    broken[200..4000].iter_mut().for_each(|b| *b = 0xff);
    let err = jpeg::decode_region(&dir.path().join("big.jpg"), &broken, 8, (0, 0, 1600, 1200))
        .unwrap_err();
    assert!(
        err.to_string().contains("big.jpg") && err.to_string().contains("JPEG:"),
        "{err}"
    );

    let train = ClassifyTransform::train(224);
    let eval = ClassifyTransform::eval(224);
    for name in ["big.jpg", "big.png", "exif6.jpg", "cmyk.jpg", "gray.png"] {
        let path = dir.path().join(name);
        let img = read_rgb(&path).unwrap();
        let mut worst: f64 = 0.0;
        for seed in 0..12 {
            let slow = train.apply(&img, &mut derive(seed, &[])).unwrap();
            let fast = train.apply_file(&path, &mut derive(seed, &[])).unwrap();
            assert_eq!(slow.size(), fast.size());
            worst = worst.max(pixel_mad(&slow, &fast));
            // The comparison can tell crops apart: another seed's crop is far off.
            let other = train
                .apply_file(&path, &mut derive(seed + 100, &[]))
                .unwrap();
            assert!(
                pixel_mad(&slow, &other) > 8.0,
                "{name}: seeds {seed} and {} look alike",
                seed + 100
            );
        }
        let e = pixel_mad(
            &eval.apply(&img, &mut derive(0, &[])).unwrap(),
            &eval.apply_file(&path, &mut derive(0, &[])).unwrap(),
        );
        worst = worst.max(e);
        // Lossless or fall-back paths are identical. Reduced-scale JPEG decoding differs by 1–3
        // grey levels on average on this noisy synthetic picture (DCT scaling, then a smaller
        // antialiased resize, instead of one antialiased resize): two ways to shrink.
        let limit = if name.starts_with("big.jpg") {
            3.5
        } else {
            1e-3
        };
        assert!(
            worst <= limit,
            "{name}: mean |fast − slow| = {worst:.3} grey levels"
        );
    }

    // Quarter turns: the file path draws and applies them as the image path does, and they
    // happen (with the same crop and flip draws, a sample differs from the unturned one when
    // its draw is a turn and equals it when the draw is 0°).
    let turned = ClassifyTransform {
        rotate90: true,
        ..ClassifyTransform::train(224)
    };
    let path = dir.path().join("big.png");
    let img = read_rgb(&path).unwrap();
    let mut differ = 0;
    for seed in 0..8 {
        let slow = turned.apply(&img, &mut derive(seed, &[])).unwrap();
        let fast = turned.apply_file(&path, &mut derive(seed, &[])).unwrap();
        assert!(pixel_mad(&slow, &fast) <= 1e-3, "seed {seed}");
        let plain = train.apply(&img, &mut derive(seed, &[])).unwrap();
        let mad = pixel_mad(&slow, &plain);
        if mad > 1.0 {
            differ += 1;
        } else {
            assert!(mad < 1e-6, "seed {seed}: neither turned nor equal ({mad})");
        }
    }
    assert!(differ >= 3, "{differ} of 8 samples turned");
}
