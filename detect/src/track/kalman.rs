//! The constant-velocity Kalman filter SORT and ByteTrack track boxes with, in the
//! `(x, y, a, h)` space (centre, aspect ratio w/h, height) with velocities: state
//! `[x, y, a, h, vx, vy, va, vh]`; and BoT-SORT's variant in the `(x, y, w, h)` space, whose
//! width has a noise of its own. Process and measurement noise scale with the box (position
//! 1/20, velocity 1/160 of its height, or of its width for the horizontal parts in `(x, y, w,
//! h)`), as in the published trackers, so a box's uncertainty is relative to its size.

/// An 8-dimensional state vector.
pub type Mean = [f64; 8];
/// Its covariance.
pub type Covariance = [[f64; 8]; 8];

const STD_POSITION: f64 = 1.0 / 20.0;
const STD_VELOCITY: f64 = 1.0 / 160.0;

/// The box parametrisation a filter tracks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Space {
    /// `(x, y, a, h)`: centre, aspect ratio w/h, height (SORT, ByteTrack).
    Xyah,
    /// `(x, y, w, h)`: centre, width, height (BoT-SORT).
    Xywh,
}

impl Space {
    /// The standard deviations of the four box parts, `scale` times the box's size: the
    /// height for each (the aspect ratio fixed at `ratio`) in `(x, y, a, h)`, the width for
    /// the horizontal ones in `(x, y, w, h)`.
    fn std(self, state: &[f64], scale: f64, ratio: f64) -> [f64; 4] {
        let (w, h) = (state[2], state[3]);
        match self {
            Space::Xyah => [scale * h, scale * h, ratio, scale * h],
            Space::Xywh => [scale * w, scale * h, scale * w, scale * h],
        }
    }
}

/// A track's state from its first measurement: zero velocity, uncertainty proportional to
/// the box.
pub fn initiate(space: Space, measurement: [f64; 4]) -> (Mean, Covariance) {
    let mut mean = [0.0; 8];
    mean[..4].copy_from_slice(&measurement);
    let position = space.std(&measurement, 2.0 * STD_POSITION, 1e-2);
    let velocity = space.std(&measurement, 10.0 * STD_VELOCITY, 1e-5);
    let std: [f64; 8] = std::array::from_fn(|i| if i < 4 { position[i] } else { velocity[i - 4] });
    (mean, diagonal(&std.map(|s| s * s)))
}

/// One step ahead: positions move by their velocities, the covariance grows by the process
/// noise.
pub fn predict(space: Space, mean: &Mean, cov: &Covariance) -> (Mean, Covariance) {
    let position = space.std(mean, STD_POSITION, 1e-2);
    let velocity = space.std(mean, STD_VELOCITY, 1e-5);
    let std: [f64; 8] = std::array::from_fn(|i| if i < 4 { position[i] } else { velocity[i - 4] });
    let mut next = *mean;
    for i in 0..4 {
        next[i] += mean[4 + i];
    }
    // F P Fᵀ with F = [[I, I], [0, I]]: rows then columns of the position block gain the
    // velocity block's.
    let mut fp = *cov;
    for i in 0..4 {
        for j in 0..8 {
            fp[i][j] += cov[4 + i][j];
        }
    }
    let mut p = fp;
    for row in p.iter_mut() {
        for j in 0..4 {
            row[j] += row[4 + j];
        }
    }
    for (i, s) in std.iter().enumerate() {
        p[i][i] += s * s;
    }
    (next, p)
}

/// The state corrected by a measurement in the filter's space.
pub fn update(
    space: Space,
    mean: &Mean,
    cov: &Covariance,
    measurement: [f64; 4],
) -> (Mean, Covariance) {
    let noise = space.std(mean, STD_POSITION, 1e-1);
    // S = H P Hᵀ + R, the projected covariance (the position block plus measurement noise).
    let mut s = [[0.0; 4]; 4];
    for i in 0..4 {
        for j in 0..4 {
            s[i][j] = cov[i][j];
        }
        s[i][i] += noise[i] * noise[i];
    }
    // K = P Hᵀ S⁻¹, solved as S Kᵀ = (P Hᵀ)ᵀ column by column.
    let mut gain = [[0.0; 4]; 8];
    for (r, row) in gain.iter_mut().enumerate() {
        let rhs = [cov[r][0], cov[r][1], cov[r][2], cov[r][3]];
        *row = solve4(&s, rhs);
    }
    let innovation: Vec<f64> = (0..4).map(|i| measurement[i] - mean[i]).collect();
    let mut new_mean = *mean;
    for (r, row) in gain.iter().enumerate() {
        new_mean[r] += (0..4).map(|k| innovation[k] * row[k]).sum::<f64>();
    }
    // P − K S Kᵀ.
    let mut ks = [[0.0; 4]; 8];
    for r in 0..8 {
        for c in 0..4 {
            ks[r][c] = (0..4).map(|k| gain[r][k] * s[k][c]).sum();
        }
    }
    let mut new_cov = *cov;
    for r in 0..8 {
        for c in 0..8 {
            new_cov[r][c] -= (0..4).map(|k| ks[r][k] * gain[c][k]).sum::<f64>();
        }
    }
    (new_mean, new_cov)
}

fn diagonal(values: &[f64; 8]) -> Covariance {
    let mut m = [[0.0; 8]; 8];
    for (i, v) in values.iter().enumerate() {
        m[i][i] = *v;
    }
    m
}

/// `x` with `a x = b` for a symmetric positive-definite 4×4 `a` (Gaussian elimination with
/// partial pivoting).
fn solve4(a: &[[f64; 4]; 4], b: [f64; 4]) -> [f64; 4] {
    let mut m = [[0.0; 5]; 4];
    for i in 0..4 {
        m[i][..4].copy_from_slice(&a[i]);
        m[i][4] = b[i];
    }
    for col in 0..4 {
        let pivot = (col..4)
            .max_by(|&i, &j| m[i][col].abs().total_cmp(&m[j][col].abs()))
            .unwrap_or(col);
        m.swap(col, pivot);
        let pivot_row = m[col];
        for row in m.iter_mut().skip(col + 1) {
            let f = row[col] / pivot_row[col];
            for (v, p) in row.iter_mut().zip(&pivot_row).skip(col) {
                *v -= f * p;
            }
        }
    }
    let mut x = [0.0; 4];
    for i in (0..4).rev() {
        let rest: f64 = (i + 1..4).map(|k| m[i][k] * x[k]).sum();
        x[i] = (m[i][4] - rest) / m[i][i];
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_box_keeps_its_place_and_grows_certain() {
        let z = [100.0, 50.0, 0.5, 80.0];
        for space in [Space::Xyah, Space::Xywh] {
            let (mut mean, mut cov) = initiate(space, z);
            let first = cov[0][0];
            for _ in 0..10 {
                (mean, cov) = predict(space, &mean, &cov);
                (mean, cov) = update(space, &mean, &cov, z);
            }
            for i in 0..4 {
                assert!((mean[i] - z[i]).abs() < 1e-6, "{mean:?}");
            }
            assert!(cov[0][0] < first);
        }
        // (x, y, w, h): the horizontal noise follows the width.
        let (_, cov) = initiate(Space::Xywh, [0.0, 0.0, 40.0, 80.0]);
        assert!((cov[0][0] - (0.1f64 * 40.0).powi(2)).abs() < 1e-12);
        assert!((cov[1][1] - (0.1f64 * 80.0).powi(2)).abs() < 1e-12);
        let x = solve4(
            &[
                [4.0, 1.0, 0.0, 0.0],
                [1.0, 3.0, 0.0, 0.0],
                [0.0, 0.0, 2.0, 0.0],
                [0.0, 0.0, 0.0, 1.0],
            ],
            [1.0, 2.0, 3.0, 4.0],
        );
        assert!((4.0 * x[0] + x[1] - 1.0).abs() < 1e-12 && (x[0] + 3.0 * x[1] - 2.0).abs() < 1e-12);
    }
}
