//! Operations on boxes given as `[x1, y1, x2, y2]`: area, intersection, IoU, non-maximum
//! suppression. Metrics and detectors share them.

/// A box as `[x1, y1, x2, y2]`.
pub type BoxXyxy = [f32; 4];

/// Area of a box (0 when it is empty or inverted).
pub fn area(b: &BoxXyxy) -> f32 {
    (b[2] - b[0]).max(0.0) * (b[3] - b[1]).max(0.0)
}

/// Area of the intersection of two boxes.
pub fn intersection(a: &BoxXyxy, b: &BoxXyxy) -> f32 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    w * h
}

/// IoU of two boxes (0 when the union is empty).
pub fn iou(a: &BoxXyxy, b: &BoxXyxy) -> f32 {
    let inter = intersection(a, b);
    let union = area(a) + area(b) - inter;
    if union > 0.0 {
        inter / union
    } else {
        0.0
    }
}

/// Row-major `|a| × |b|` IoU matrix.
pub fn box_iou(a: &[BoxXyxy], b: &[BoxXyxy]) -> Vec<f32> {
    a.iter()
        .flat_map(|x| b.iter().map(move |y| iou(x, y)))
        .collect()
}

/// Greedy non-maximum suppression as torchvision's CPU kernel does it: indices of kept boxes in
/// decreasing score order (a stable sort: ties in index order). With `classes`, boxes only
/// suppress boxes of their own class (batched NMS); with `None`, class-agnostic. A box is
/// suppressed when its (float) IoU with a kept box is above `iou_threshold`, compared in double
/// precision as the kernel compares it (0.3 rounds up in float: comparing in float would keep a
/// box of IoU exactly f32(0.3) that torchvision drops).
pub fn nms(
    boxes: &[BoxXyxy],
    scores: &[f32],
    classes: Option<&[usize]>,
    iou_threshold: f64,
) -> Vec<usize> {
    nms_max(boxes, scores, classes, iou_threshold, usize::MAX)
}

/// [`nms`] that stops once `max_keep` boxes are kept: the same first `max_keep` indices, without
/// comparing the remaining candidates (YOLO keeps at most 300 of up to 30 000).
pub fn nms_max(
    boxes: &[BoxXyxy],
    scores: &[f32],
    classes: Option<&[usize]>,
    iou_threshold: f64,
    max_keep: usize,
) -> Vec<usize> {
    let mut order: Vec<usize> = (0..boxes.len()).collect();
    order.sort_by(|&i, &j| scores[j].total_cmp(&scores[i]));
    let mut keep: Vec<usize> = Vec::new();
    for i in order {
        if keep.len() >= max_keep {
            break;
        }
        let suppressed = keep.iter().any(|&k| {
            classes.is_none_or(|c| c[k] == c[i])
                && f64::from(iou(&boxes[k], &boxes[i])) > iou_threshold
        });
        if !suppressed {
            keep.push(i);
        }
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_and_nms_on_hand_made_boxes() {
        let a = [0.0, 0.0, 10.0, 10.0];
        let b = [5.0, 0.0, 15.0, 10.0];
        assert!((iou(&a, &b) - 50.0 / 150.0).abs() < 1e-6);
        let boxes = [a, b, [0.0, 0.0, 10.0, 9.0], [20.0, 20.0, 30.0, 30.0]];
        let scores = [0.9, 0.8, 0.7, 0.6];
        // Box 2 overlaps box 0 with IoU 0.9: suppressed; box 1 (IoU 1/3) survives at 0.5.
        assert_eq!(nms(&boxes, &scores, None, 0.5), [0, 1, 3]);
        assert_eq!(nms(&boxes, &scores, Some(&[0, 0, 1, 0]), 0.5), [0, 1, 2, 3]);
        assert_eq!(nms_max(&boxes, &scores, None, 0.5, 2), [0, 1]);
    }
}
