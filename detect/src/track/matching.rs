//! Associating tracks with detections: IoU costs (optionally fused with the detection scores)
//! and the minimum-cost assignment with a cost limit, as the `lap` solver Ultralytics' trackers
//! use computes it: leaving a track or a detection unmatched costs half the limit, so a pair is
//! matched only where that beats leaving both alone, and the total is minimised over all pairs
//! at once.

use ferrovis_core::ops::boxes::{area, intersection};

/// `1 − IoU` of every track box against every detection box (`x1, y1, x2, y2`), in single
/// precision as the reference computes it.
pub fn iou_distance(tracks: &[[f32; 4]], detections: &[[f32; 4]]) -> Vec<Vec<f64>> {
    // The reference's denominator has an epsilon where core's `iou` tests for zero.
    const EPS: f32 = 1e-7;
    tracks
        .iter()
        .map(|a| {
            detections
                .iter()
                .map(|b| {
                    let inter = intersection(a, b);
                    let iou = inter / (area(b) + area(a) - inter + EPS);
                    (1.0 - iou) as f64
                })
                .collect()
        })
        .collect()
}

/// ByteTrack's score fusion: the IoU similarity times each detection's score, as a cost.
pub fn fuse_score(cost: &mut [Vec<f64>], scores: &[f64]) {
    for row in cost.iter_mut() {
        for (c, s) in row.iter_mut().zip(scores) {
            *c = 1.0 - (1.0 - *c) * s;
        }
    }
}

/// The minimum-cost matching of rows (tracks) to the `cols` columns (detections) where leaving
/// a row or a column unmatched costs `limit / 2`: `(matches, unmatched rows, unmatched
/// columns)`. (`cols` is given because a matrix with no rows cannot say it.)
pub fn linear_assignment(
    cost: &[Vec<f64>],
    cols: usize,
    limit: f64,
) -> (Vec<(usize, usize)>, Vec<usize>, Vec<usize>) {
    let rows = cost.len();
    if rows == 0 || cols == 0 {
        return (Vec::new(), (0..rows).collect(), (0..cols).collect());
    }
    // The square problem of size rows + cols: the costs, a block of limit/2 beside and below
    // them (unmatched), zeros in the corner (dummy to dummy).
    let n = rows + cols;
    let mut square = vec![vec![limit / 2.0; n]; n];
    for (i, row) in square.iter_mut().enumerate() {
        for (j, c) in row.iter_mut().enumerate() {
            if i < rows && j < cols {
                *c = cost[i][j];
            } else if i >= rows && j >= cols {
                *c = 0.0;
            }
        }
    }
    let row_to_col = hungarian(&square);
    let mut matches = Vec::new();
    let mut col_matched = vec![false; cols];
    let mut unmatched_rows = Vec::new();
    for (i, &j) in row_to_col.iter().enumerate().take(rows) {
        if j < cols {
            matches.push((i, j));
            col_matched[j] = true;
        } else {
            unmatched_rows.push(i);
        }
    }
    let unmatched_cols = (0..cols).filter(|&j| !col_matched[j]).collect();
    (matches, unmatched_rows, unmatched_cols)
}

/// The minimum-cost perfect matching of a square cost matrix (the Hungarian method with
/// potentials, O(n³)): each row's column.
fn hungarian(cost: &[Vec<f64>]) -> Vec<usize> {
    let n = cost.len();
    // 1-based potentials and matching, column 0 a sentinel.
    let (mut u, mut v) = (vec![0.0; n + 1], vec![0.0; n + 1]);
    let mut p = vec![0usize; n + 1];
    let mut way = vec![0usize; n + 1];
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0;
        let mut minv = vec![f64::INFINITY; n + 1];
        let mut used = vec![false; n + 1];
        loop {
            used[j0] = true;
            let i0 = p[j0];
            let mut delta = f64::INFINITY;
            let mut j1 = 0;
            for j in 1..=n {
                if !used[j] {
                    let cur = cost[i0 - 1][j - 1] - u[i0] - v[j];
                    if cur < minv[j] {
                        minv[j] = cur;
                        way[j] = j0;
                    }
                    if minv[j] < delta {
                        delta = minv[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=n {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut row_to_col = vec![0; n];
    for j in 1..=n {
        if p[j] > 0 {
            row_to_col[p[j] - 1] = j - 1;
        }
    }
    row_to_col
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cost_limit_leaves_poor_pairs_unmatched() {
        let cost = vec![vec![0.1, 0.9], vec![0.2, 0.3]];
        let (m, ur, uc) = linear_assignment(&cost, 2, 0.8);
        assert_eq!(m, vec![(0, 0), (1, 1)]);
        assert!(ur.is_empty() && uc.is_empty());
        // Matching (0,0) and (1,1) costs 0.4 in all, but (1,1) alone beats leaving it: with a
        // limit of 0.25, 0.3 is above it and row 1 and column 1 stay alone.
        let (m, ur, uc) = linear_assignment(&cost, 2, 0.25);
        assert_eq!((m, ur, uc), (vec![(0, 0)], vec![1], vec![1]));
        let (m, ur, uc) = linear_assignment(&[vec![0.5; 3]], 3, 0.8);
        assert_eq!(linear_assignment(&[], 2, 0.8).2, vec![0, 1]);
        assert_eq!((m.len(), ur.len(), uc.len()), (1, 0, 2));
        let iou = iou_distance(&[[0.0, 0.0, 10.0, 10.0]], &[[5.0, 0.0, 15.0, 10.0]]);
        assert!((iou[0][0] - (1.0 - 50.0 / 150.0)).abs() < 1e-6);
    }
}
