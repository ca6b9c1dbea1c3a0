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
/// columns)`, matches in row order. (`cols` is given because a matrix with no rows cannot say
/// it.)
pub fn linear_assignment(
    cost: &[Vec<f64>],
    cols: usize,
    limit: f64,
) -> (Vec<(usize, usize)>, Vec<usize>, Vec<usize>) {
    let rows = cost.len();
    if rows == 0 || cols == 0 {
        return (Vec::new(), (0..rows).collect(), (0..cols).collect());
    }
    // A pair costing the limit or more is never matched (leaving both alone costs the limit),
    // so the problem splits into the groups of rows and columns joined by cheaper pairs, each
    // solved on its own. IoU costs keep the groups small: a frame of hundreds of boxes costs a
    // few small solves instead of one cubic in their number.
    let mut parent: Vec<usize> = (0..rows + cols).collect();
    fn root(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    for (i, row) in cost.iter().enumerate() {
        for (j, &c) in row.iter().enumerate() {
            if c < limit {
                let (a, b) = (root(&mut parent, i), root(&mut parent, rows + j));
                parent[a] = b;
            }
        }
    }
    let mut groups: std::collections::BTreeMap<usize, (Vec<usize>, Vec<usize>)> =
        Default::default();
    for i in 0..rows {
        groups.entry(root(&mut parent, i)).or_default().0.push(i);
    }
    for j in 0..cols {
        groups
            .entry(root(&mut parent, rows + j))
            .or_default()
            .1
            .push(j);
    }
    let mut matches = Vec::new();
    for (group_rows, group_cols) in groups.values() {
        if group_rows.is_empty() || group_cols.is_empty() {
            continue;
        }
        let sub: Vec<Vec<f64>> = group_rows
            .iter()
            .map(|&i| group_cols.iter().map(|&j| cost[i][j]).collect())
            .collect();
        for (a, b) in assign_with_limit(&sub, limit) {
            matches.push((group_rows[a], group_cols[b]));
        }
    }
    matches.sort_unstable();
    let mut row_matched = vec![false; rows];
    let mut col_matched = vec![false; cols];
    for &(i, j) in &matches {
        row_matched[i] = true;
        col_matched[j] = true;
    }
    let unmatched_rows = (0..rows).filter(|&i| !row_matched[i]).collect();
    let unmatched_cols = (0..cols).filter(|&j| !col_matched[j]).collect();
    (matches, unmatched_rows, unmatched_cols)
}

/// [`linear_assignment`]'s matches for one group. A pair at or above the limit is worth no
/// more than leaving its row and column alone, so the costs are clamped to the limit, the
/// rectangular assignment (every row of the shorter side placed) is solved, and the pairs at
/// the limit are let go: the same matching as the square problem of size rows + cols with
/// limit/2 for each unmatched side, at a fraction of its cubic cost.
fn assign_with_limit(cost: &[Vec<f64>], limit: f64) -> Vec<(usize, usize)> {
    let (rows, cols) = (cost.len(), cost[0].len());
    let transposed = rows > cols;
    let (n, m) = if transposed {
        (cols, rows)
    } else {
        (rows, cols)
    };
    let clamped: Vec<Vec<f64>> = (0..n)
        .map(|i| {
            (0..m)
                .map(|j| {
                    let c = if transposed { cost[j][i] } else { cost[i][j] };
                    c.min(limit)
                })
                .collect()
        })
        .collect();
    hungarian(&clamped)
        .into_iter()
        .enumerate()
        .filter(|&(i, j)| clamped[i][j] < limit)
        .map(|(i, j)| if transposed { (j, i) } else { (i, j) })
        .collect()
}

/// The minimum-cost assignment of every row of an `n × m` cost matrix (`n ≤ m`) to its own
/// column (the Hungarian method with potentials, O(n²m)): each row's column.
fn hungarian(cost: &[Vec<f64>]) -> Vec<usize> {
    let n = cost.len();
    let m = cost[0].len();
    // 1-based potentials and matching, column 0 a sentinel.
    let (mut u, mut v) = (vec![0.0; n + 1], vec![0.0; m + 1]);
    let mut p = vec![0usize; m + 1];
    let mut way = vec![0usize; m + 1];
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0;
        let mut minv = vec![f64::INFINITY; m + 1];
        let mut used = vec![false; m + 1];
        loop {
            used[j0] = true;
            let i0 = p[j0];
            let mut delta = f64::INFINITY;
            let mut j1 = 0;
            for j in 1..=m {
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
            for j in 0..=m {
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
    for j in 1..=m {
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
        // Two groups far apart, solved apart: row 0 with column 1, row 1 with column 0.
        let cost = vec![vec![0.9, 0.1, 1.0], vec![0.2, 1.0, 1.0]];
        let (m, ur, uc) = linear_assignment(&cost, 3, 0.8);
        assert_eq!((m, ur, uc), (vec![(0, 1), (1, 0)], vec![], vec![2]));
        let iou = iou_distance(&[[0.0, 0.0, 10.0, 10.0]], &[[5.0, 0.0, 15.0, 10.0]]);
        assert!((iou[0][0] - (1.0 - 50.0 / 150.0)).abs() < 1e-6);
    }

    /// Every partial matching of a small matrix, its cost with limit/2 per side left alone.
    fn best_by_enumeration(cost: &[Vec<f64>], cols: usize, limit: f64) -> f64 {
        fn go(cost: &[Vec<f64>], row: usize, used: &mut Vec<bool>, limit: f64) -> f64 {
            if row == cost.len() {
                return used.iter().filter(|u| !**u).count() as f64 * limit / 2.0;
            }
            let mut best = limit / 2.0 + go(cost, row + 1, used, limit);
            for j in 0..used.len() {
                if !used[j] {
                    used[j] = true;
                    best = best.min(cost[row][j] + go(cost, row + 1, used, limit));
                    used[j] = false;
                }
            }
            best
        }
        go(cost, 0, &mut vec![false; cols], limit)
    }

    #[test]
    fn the_grouped_rectangular_solve_is_optimal() {
        let mut seed = 7u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        for case in 0..300 {
            let (rows, cols) = (1 + case % 5, 1 + (case / 5) % 6);
            let cost: Vec<Vec<f64>> = (0..rows)
                .map(|_| (0..cols).map(|_| next() * 1.2).collect())
                .collect();
            let limit = 0.8;
            let (m, ur, uc) = linear_assignment(&cost, cols, limit);
            let total: f64 = m.iter().map(|&(i, j)| cost[i][j]).sum::<f64>()
                + (ur.len() + uc.len()) as f64 * limit / 2.0;
            let best = best_by_enumeration(&cost, cols, limit);
            assert!(
                (total - best).abs() < 1e-12,
                "case {case}: {total} vs {best}"
            );
        }
    }
}
