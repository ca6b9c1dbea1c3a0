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
///
/// A near-tie is the one exception: where two boxes of one label score within 1e-5 of each
/// other, which of them NMS keeps is decided by the last bit of the CPU's rounding (these
/// random-weight models give many). A detection of the first `exact` with no counterpart passes
/// only when such a twin exists in its own list, at most 2 + 5 % of them per image; and the
/// position-by-position score comparison stops at the first of them on either side, after
/// which the ranks of the two lists may shift by one.
pub fn check_detections_up_to(arch: &str, dets: &[Detections], expected: &StateDict, exact: usize) {
    for (i, d) in dets.iter().enumerate() {
        let get = |k: &str| expected.get(&format!("{k}{i}")).unwrap();
        let n = d.scores.size()[0];
        assert_eq!(
            n,
            get("scores").size()[0],
            "{arch} image {i}: detection count"
        );
        let (labels, theirs_labels): (Vec<i64>, Vec<i64>) = (
            Vec::try_from(&d.labels).unwrap(),
            Vec::try_from(get("labels")).unwrap(),
        );
        let (scores, theirs_scores): (Vec<f32>, Vec<f32>) = (
            Vec::try_from(&d.scores).unwrap(),
            Vec::try_from(get("scores")).unwrap(),
        );
        let (boxes, theirs_boxes) = (&d.boxes, get("boxes"));
        // The ranks each side holds that the other has no box for.
        let unpaired =
            |labels: &[i64], scores: &[f32], boxes: &Tensor, other: (&[i64], &[f32], &Tensor)| {
                (0..n as usize)
                    .filter(|&k| {
                        !(0..n as usize).any(|j| {
                            other.0[j] == labels[k]
                                && (other.1[j] - scores[k]).abs() <= 1e-5
                                && max_diff(&boxes.get(k as i64), &other.2.get(j as i64)) <= 1e-3
                        })
                    })
                    .collect::<Vec<usize>>()
            };
        let head = (n as usize).min(exact);
        let twin = |labels: &[i64], scores: &[f32], k: usize| {
            (0..n as usize)
                .any(|j| j != k && labels[j] == labels[k] && (scores[j] - scores[k]).abs() <= 1e-5)
        };
        let ours_alone = unpaired(
            &labels,
            &scores,
            boxes,
            (&theirs_labels, &theirs_scores, theirs_boxes),
        );
        let theirs_alone = unpaired(
            &theirs_labels,
            &theirs_scores,
            theirs_boxes,
            (&labels, &scores, boxes),
        );
        let mut ties = 0;
        for (side, alone, l, sc) in [
            ("ours", &ours_alone, &labels, &scores),
            (
                "torchvision's",
                &theirs_alone,
                &theirs_labels,
                &theirs_scores,
            ),
        ] {
            for &k in alone.iter().filter(|&&k| k < head) {
                assert!(
                    twin(l, sc, k),
                    "{arch} image {i}: {side} detection {k} (label {}, score {}) has no \
                     counterpart within 1e-5 and 1e-3 px, and no near-tied twin",
                    l[k],
                    sc[k]
                );
                ties += 1;
            }
        }
        assert!(
            ties <= 2 + head / 20,
            "{arch} image {i}: {ties} near-tied detections decided differently"
        );
        let compared = ours_alone
            .iter()
            .chain(&theirs_alone)
            .copied()
            .filter(|&k| k < head)
            .min()
            .unwrap_or(head) as i64;
        let ds = max_diff(
            &d.scores.narrow(0, 0, compared),
            &get("scores").narrow(0, 0, compared),
        );
        println!(
            "{arch} image {i}: {n} detections, max |Δscore| {ds:.1e} over the first {compared} \
             of {head}; {ties} near-ties decided the other way"
        );
        assert!(ds <= 1e-5, "{arch} image {i}: scores differ by {ds:e}");
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
                None if k >= exact || ours_alone.contains(&k) => unmatched += 1,
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
