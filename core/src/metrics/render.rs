//! Metrics as people read them in a terminal: the classification, detection and segmentation
//! tables. The pictures (heat maps, precision–recall curves, training curves) are drawn by
//! [`super::charts`]; JSON comes from `serde_json` on the report structs themselves.

use super::classification::ClassificationReport;
use super::detection::DetectionReport;
use super::segmentation::SegmentationReport;

/// Class `k`'s name, or its index when `names` has none.
pub(crate) fn name<'a>(names: &'a [String], k: usize) -> std::borrow::Cow<'a, str> {
    names
        .get(k)
        .map_or_else(|| k.to_string().into(), |s| s.as_str().into())
}

/// The classification table: one row per class, then the averages (like scikit-learn's
/// `classification_report`), then accuracy and balanced accuracy.
pub fn classification_table(r: &ClassificationReport, names: &[String]) -> String {
    let width = (0..r.per_class.len())
        .map(|k| name(names, k).len())
        .max()
        .unwrap_or(5)
        .max(12);
    let mut s = format!(
        "{:>width$} {:>9} {:>9} {:>9} {:>9}\n",
        "", "precision", "recall", "f1-score", "support"
    );
    for (k, p) in r.per_class.iter().enumerate() {
        s += &format!(
            "{:>width$} {:>9.4} {:>9.4} {:>9.4} {:>9}\n",
            name(names, k),
            p.precision,
            p.recall,
            p.f1,
            p.support
        );
    }
    s += "\n";
    for (label, p) in [
        ("micro avg", &r.micro_avg),
        ("macro avg", &r.macro_avg),
        ("weighted avg", &r.weighted_avg),
    ] {
        s += &format!(
            "{label:>width$} {:>9.4} {:>9.4} {:>9.4} {:>9}\n",
            p.precision, p.recall, p.f1, p.support
        );
    }
    s += &format!(
        "\n{:>width$} {:>9.4}\n{:>width$} {:>9.4}",
        "accuracy", r.accuracy, "balanced acc", r.balanced_accuracy
    );
    s
}

/// The detection table with Ultralytics' columns.
pub fn detection_table(r: &DetectionReport, names: &[String]) -> String {
    let width = r
        .per_class
        .iter()
        .map(|c| name(names, c.class).len())
        .max()
        .unwrap_or(3)
        .max(10);
    let mut s = format!(
        "{:>width$} {:>8} {:>10} {:>8} {:>8} {:>8} {:>9}\n",
        "Class", "Images", "Instances", "P", "R", "mAP50", "mAP50-95"
    );
    s += &format!(
        "{:>width$} {:>8} {:>10} {:>8.3} {:>8.3} {:>8.3} {:>9.3}",
        "all", r.images, r.instances, r.precision, r.recall, r.map50, r.map50_95
    );
    for c in &r.per_class {
        s += &format!(
            "\n{:>width$} {:>8} {:>10} {:>8.3} {:>8.3} {:>8.3} {:>9.3}",
            name(names, c.class),
            c.images,
            c.instances,
            c.precision,
            c.recall,
            c.ap50,
            c.ap50_95
        );
    }
    s
}

/// The segmentation table: IoU, Dice, accuracy and pixels per class (`-` where undefined), then
/// the means.
pub fn segmentation_table(r: &SegmentationReport, names: &[String]) -> String {
    let width = (0..r.per_class.len())
        .map(|k| name(names, k).len())
        .max()
        .unwrap_or(5)
        .max(10);
    let opt = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.4}"));
    let mut s = format!(
        "{:>width$} {:>8} {:>8} {:>8} {:>12}\n",
        "class", "IoU", "Dice", "Acc", "pixels"
    );
    for (k, c) in r.per_class.iter().enumerate() {
        s += &format!(
            "{:>width$} {:>8} {:>8} {:>8} {:>12}\n",
            name(names, k),
            opt(c.iou),
            opt(c.dice),
            opt(c.accuracy),
            c.pixels
        );
    }
    s += &format!(
        "\nmIoU {:.4}  mean Dice {:.4}  pixel accuracy {:.4}  mean class accuracy {:.4}",
        r.mean_iou, r.mean_dice, r.pixel_accuracy, r.mean_class_accuracy
    );
    s
}
