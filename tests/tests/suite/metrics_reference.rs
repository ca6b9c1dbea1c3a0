//! Our metrics equal the reference implementations to 1e-6 on random cases that
//! `tests/reference/metrics.py` generates: scikit-learn (classification), numpy from the
//! definitions (segmentation, Ultralytics-style detection), pycocotools (COCO detection). The
//! renderers produce real PNGs.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ferrovis_core::metrics::classification::{
    top_k_accuracy, ClassificationReport, ConfusionMatrix,
};
use ferrovis_core::metrics::detection::{
    coco_evaluate, CocoTruth, Detection, DetectionAccumulator, DetectionConfusion, GroundTruth,
};
use ferrovis_core::metrics::segmentation::SegmentationConfusion;
use ferrovis_core::metrics::{charts, render};
use ferrovis_tests::run_reference;
use serde_json::Value;
use tch::Tensor;

const TOL: f64 = 1e-6;

fn cases() -> &'static Value {
    static CASES: OnceLock<Value> = OnceLock::new();
    CASES.get_or_init(|| {
        let path: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR")).join("metric-cases.json");
        run_reference("metrics.py", &["cases".as_ref(), path.as_os_str()]);
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    })
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

fn close(what: &str, ours: f64, theirs: f64) {
    assert!(
        (ours - theirs).abs() <= TOL,
        "{what}: ours {ours} reference {theirs}"
    );
}

#[test]
fn classification_equals_scikit_learn() {
    for (i, case) in cases()["classification"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let c = case["num_classes"].as_u64().unwrap() as usize;
        let (y, pred) = (usizes(&case["targets"]), usizes(&case["predictions"]));
        let mut cm = ConfusionMatrix::new(c);
        cm.update(&y, &pred).unwrap();
        let want: Vec<u64> = case["confusion"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert_eq!(cm.counts, want, "case {i}: confusion matrix");
        let r = ClassificationReport::from_confusion(&cm);
        close(
            &format!("case {i} accuracy"),
            r.accuracy,
            f(&case["accuracy"]),
        );
        close(
            &format!("case {i} balanced accuracy"),
            r.balanced_accuracy,
            f(&case["balanced_accuracy"]),
        );
        let pc = &case["per_class"];
        for (k, p) in r.per_class.iter().enumerate() {
            close(
                &format!("case {i} class {k} precision"),
                p.precision,
                f(&pc["precision"][k]),
            );
            close(
                &format!("case {i} class {k} recall"),
                p.recall,
                f(&pc["recall"][k]),
            );
            close(&format!("case {i} class {k} f1"), p.f1, f(&pc["f1"][k]));
            assert_eq!(p.support, pc["support"][k].as_u64().unwrap());
        }
        for (name, avg) in [
            ("macro", &r.macro_avg),
            ("weighted", &r.weighted_avg),
            ("micro", &r.micro_avg),
        ] {
            let w = &case[name];
            close(
                &format!("case {i} {name} precision"),
                avg.precision,
                f(&w[0]),
            );
            close(&format!("case {i} {name} recall"), avg.recall, f(&w[1]));
            close(&format!("case {i} {name} f1"), avg.f1, f(&w[2]));
        }
        if let Some(top2) = case.get("top2") {
            let scores: Vec<f32> = case["scores"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| f(v) as f32)
                .collect();
            close(
                &format!("case {i} top-2"),
                top_k_accuracy(&scores, c, &y, 2).unwrap(),
                f(top2),
            );
        }
    }
}

#[test]
fn segmentation_equals_the_numpy_definitions() {
    for (i, case) in cases()["segmentation"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let c = case["num_classes"].as_u64().unwrap() as usize;
        let shape: Vec<i64> = case["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        let as_tensor = |v: &Value| {
            let xs: Vec<i64> = v
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_i64().unwrap())
                .collect();
            Tensor::from_slice(&xs).view(shape.as_slice())
        };
        let (target, pred) = (as_tensor(&case["target"]), as_tensor(&case["prediction"]));
        let mut cm = SegmentationConfusion::new(c, 255);
        // Accumulate image by image: the data-set confusion matrix must not depend on batching.
        for b in 0..shape[0] {
            cm.update(&pred.get(b), &target.get(b)).unwrap();
        }
        let r = cm.report();
        close(&format!("case {i} mIoU"), r.mean_iou, f(&case["mean_iou"]));
        close(
            &format!("case {i} mean Dice"),
            r.mean_dice,
            f(&case["mean_dice"]),
        );
        close(
            &format!("case {i} pixel accuracy"),
            r.pixel_accuracy,
            f(&case["pixel_accuracy"]),
        );
        close(
            &format!("case {i} mean class accuracy"),
            r.mean_class_accuracy,
            f(&case["mean_class_accuracy"]),
        );
        for (k, want) in case["iou"].as_array().unwrap().iter().enumerate() {
            match (r.per_class[k].iou, want.as_f64()) {
                (Some(a), Some(b)) => close(&format!("case {i} IoU {k}"), a, b),
                (None, None) => {}
                (a, b) => panic!("case {i} class {k}: IoU {a:?} vs reference {b:?}"),
            }
        }
    }
}

fn images(case: &Value) -> Vec<(Vec<Detection>, Vec<GroundTruth>)> {
    case["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|im| {
            let dets = im["detections"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| Detection {
                    bbox: [
                        f(&d[0]) as f32,
                        f(&d[1]) as f32,
                        f(&d[2]) as f32,
                        f(&d[3]) as f32,
                    ],
                    score: f(&d[4]) as f32,
                    class: d[5].as_u64().unwrap() as usize,
                })
                .collect();
            let gts = im["truths"]
                .as_array()
                .unwrap()
                .iter()
                .map(|g| GroundTruth {
                    bbox: [
                        f(&g[0]) as f32,
                        f(&g[1]) as f32,
                        f(&g[2]) as f32,
                        f(&g[3]) as f32,
                    ],
                    class: g[4].as_u64().unwrap() as usize,
                })
                .collect();
            (dets, gts)
        })
        .collect()
}

#[test]
fn detection_equals_the_ultralytics_definitions() {
    for (i, case) in cases()["detection"].as_array().unwrap().iter().enumerate() {
        let c = case["num_classes"].as_u64().unwrap() as usize;
        let mut acc = DetectionAccumulator::new(c);
        for (dets, gts) in images(case) {
            acc.add_image(&dets, &gts).unwrap();
        }
        let r = acc.report();
        let w = &case["ultralytics"];
        assert_eq!(
            r.per_class.iter().map(|k| k.class).collect::<Vec<_>>(),
            usizes(&w["classes"]),
            "case {i}"
        );
        // Boxes travel as f32 here and f64 in numpy; IoUs at a threshold's edge could differ, so
        // the check is on AP values to 1e-6.
        close(&format!("case {i} mAP50"), r.map50, f(&w["map50"]));
        close(&format!("case {i} mAP50-95"), r.map50_95, f(&w["map50_95"]));
        close(&format!("case {i} P"), r.precision, f(&w["mp"]));
        close(&format!("case {i} R"), r.recall, f(&w["mr"]));
        for (k, cls) in r.per_class.iter().enumerate() {
            close(
                &format!("case {i} class {} AP50", cls.class),
                cls.ap50,
                f(&w["ap50"][k]),
            );
            close(
                &format!("case {i} class {} AP50-95", cls.class),
                cls.ap50_95,
                f(&w["ap50_95"][k]),
            );
        }
        println!(
            "case {i}: mAP50 {:.4} mAP50-95 {:.4} P {:.4} R {:.4}",
            r.map50, r.map50_95, r.precision, r.recall
        );
    }
}

#[test]
fn coco_mode_equals_pycocotools() {
    for (i, case) in cases()["detection"].as_array().unwrap().iter().enumerate() {
        let c = case["num_classes"].as_u64().unwrap() as usize;
        let imgs: Vec<(Vec<Detection>, Vec<CocoTruth>)> = images(case)
            .into_iter()
            .map(|(d, g)| {
                let truths = g
                    .iter()
                    .map(|g| {
                        let area =
                            ((g.bbox[2] - g.bbox[0]) as f64) * ((g.bbox[3] - g.bbox[1]) as f64);
                        CocoTruth {
                            bbox: g.bbox,
                            class: g.class,
                            area,
                            iscrowd: false,
                        }
                    })
                    .collect();
                (d, truths)
            })
            .collect();
        let r = coco_evaluate(&imgs, c);
        let ours = [
            r.ap,
            r.ap50,
            r.ap75,
            r.ap_small,
            r.ap_medium,
            r.ap_large,
            r.ar1,
            r.ar10,
            r.ar100,
            r.ar_small,
            r.ar_medium,
            r.ar_large,
        ];
        let names = [
            "AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl",
        ];
        for ((name, ours), theirs) in names.iter().zip(ours).zip(case["coco"].as_array().unwrap()) {
            close(&format!("case {i} COCO {name}"), ours, f(theirs));
        }
        println!("case {i}: COCO AP {:.4} AP50 {:.4}", r.ap, r.ap50);
    }
}

#[test]
fn tables_json_and_pngs_render() {
    let case = &cases()["detection"][1];
    let c = case["num_classes"].as_u64().unwrap() as usize;
    let names: Vec<String> = (0..c).map(|k| format!("class{k}")).collect();
    let mut acc = DetectionAccumulator::new(c);
    let mut confusion = DetectionConfusion::new(c);
    for (dets, gts) in images(case) {
        acc.add_image(&dets, &gts).unwrap();
        confusion.add_image(&dets, &gts);
    }
    let r = acc.report();
    let table = render::detection_table(&r, &names);
    assert!(
        table.lines().next().unwrap().contains("Class") && table.contains("mAP50-95"),
        "{table}"
    );
    assert_eq!(table.lines().count(), 2 + r.per_class.len());
    let json: Value = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
    close("JSON mAP50", f(&json["map50"]), r.map50);

    let dir = tempfile::tempdir().unwrap();
    let pr = dir.path().join("PR_curve.png");
    charts::pr_curves_png(&pr, &r, &names).unwrap();
    let mut labels = names.clone();
    labels.push("background".into());
    let values: Vec<f64> = confusion.counts.iter().map(|&v| v as f64).collect();
    let heat = dir.path().join("confusion_matrix.png");
    charts::heatmap_png(
        &heat,
        "Confusion matrix",
        &values,
        &labels,
        ("predicted", "true"),
        true,
    )
    .unwrap();
    for png in [&pr, &heat] {
        let bytes = std::fs::read(png).unwrap();
        assert!(
            bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 2000,
            "{}",
            png.display()
        );
    }
    // Keep a copy for a person to look at.
    let keep = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::copy(&pr, keep.join("PR_curve.png")).unwrap();
    std::fs::copy(&heat, keep.join("confusion_matrix.png")).unwrap();

    let mut cm = ConfusionMatrix::new(3);
    cm.update(&[0, 1, 2, 2], &[0, 2, 2, 1]).unwrap();
    let text = render::classification_table(&ClassificationReport::from_confusion(&cm), &[]);
    assert!(
        text.contains("macro avg") && text.contains("balanced acc"),
        "{text}"
    );
}
