//! Detections compared with torchvision's (`boxes{i}`, `scores{i}`, `labels{i}` of a reference
//! file), for the Faster R-CNN and SSD parity tests.

use ferrovis_core::checkpoint::StateDict;
use ferrovis_detect::torchvision::targets::Detections;
use tch::Tensor;

/// Largest absolute difference (0 for empty tensors).
pub fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    if a.numel() == 0 {
        return 0.0;
    }
    (a - b).abs().max().double_value(&[])
}

/// The detections equal torchvision's: the same count, and each of the first `exact` (all, for
/// the torchvision architectures) matches the one at its position (scores within 1e-5), or one
/// of equal label and score when near-equal scores swapped places, with boxes within 1e-3 px.
/// Past `exact`, at least 90 % must have such a counterpart anywhere in torchvision's list.
pub fn check_detections_up_to(arch: &str, dets: &[Detections], expected: &StateDict, exact: usize) {
    for (i, d) in dets.iter().enumerate() {
        let get = |k: &str| expected.get(&format!("{k}{i}")).unwrap();
        let n = d.scores.size()[0];
        assert_eq!(
            n,
            get("scores").size()[0],
            "{arch} image {i}: detection count"
        );
        let head = (n as usize).min(exact) as i64;
        let ds = max_diff(
            &d.scores.narrow(0, 0, head),
            &get("scores").narrow(0, 0, head),
        );
        println!("{arch} image {i}: {n} detections, max |Δscore| {ds:.1e} over the first {head}");
        assert!(ds <= 1e-5, "{arch} image {i}: scores differ by {ds:e}");
        let (labels, theirs_labels): (Vec<i64>, Vec<i64>) = (
            Vec::try_from(&d.labels).unwrap(),
            Vec::try_from(get("labels")).unwrap(),
        );
        let (scores, theirs_scores): (Vec<f32>, Vec<f32>) = (
            Vec::try_from(&d.scores).unwrap(),
            Vec::try_from(get("scores")).unwrap(),
        );
        let (mut worst, mut swapped, mut unmatched) = (0f64, 0, 0);
        for k in 0..n as usize {
            let mine = d.boxes.get(k as i64);
            let candidates = (0..n as usize).filter(|&j| {
                theirs_labels[j] == labels[k] && (theirs_scores[j] - scores[k]).abs() <= 1e-5
            });
            let best = candidates
                .map(|j| (max_diff(&mine, &get("boxes").get(j as i64)), j))
                .filter(|(db, _)| *db <= 1e-3)
                .min_by(|a, b| a.0.total_cmp(&b.0));
            match best {
                Some((db, j)) => {
                    worst = worst.max(db);
                    swapped += usize::from(j != k);
                }
                None if k >= exact => unmatched += 1,
                None => panic!(
                    "{arch} image {i}: detection {k} (label {}, score {}, box {:?}) has no \
                     counterpart within 1e-5 and 1e-3 px (torchvision's there: label {}, \
                     score {}, box {:?})",
                    labels[k],
                    scores[k],
                    Vec::<f32>::try_from(&mine).unwrap_or_default(),
                    theirs_labels[k],
                    theirs_scores[k],
                    Vec::<f32>::try_from(get("boxes").get(k as i64)).unwrap_or_default(),
                ),
            }
        }
        println!(
            "  max |Δbox| {worst:.1e} px; {swapped} swapped with an equal score; {unmatched} \
             past the first {head} without a counterpart"
        );
        assert!(
            unmatched * 10 <= n as usize,
            "{arch} image {i}: {unmatched} of {n} detections have no counterpart"
        );
    }
}
