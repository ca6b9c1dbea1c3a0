//! Global motion compensation for BoT-SORT (Aharon et al., "BoT-SORT: Robust Associations
//! Multi-Pedestrian Tracking", 2022), as Ultralytics' default `gmc_method: sparseOptFlow` does
//! it: the frame, in grey and at half size, gives up to 400 Shi-Tomasi corners; the last frame's
//! corners are followed into this one by pyramidal Lucas-Kanade optical flow; a rotation,
//! uniform scale and translation is fitted to the pairs with RANSAC, its translation scaled back
//! to full size. The tracker moves its predictions by that warp, so a panning camera does not
//! read as every object jumping. The corner detection is the opencv crate's `imgproc`; the flow
//! and the fit are OpenCV's own, through `csrc/gmc.cpp`.

use std::ffi::{c_char, c_int, CStr};

use anyhow::{bail, Result};
use ferrovis_data::image::RgbImage;
use opencv::core::{Mat, Point2f, Size, Vector};
use opencv::imgproc;
use opencv::prelude::*;

extern "C" {
    fn ferrovis_lk_flow(
        prev: *const u8,
        next: *const u8,
        rows: c_int,
        cols: c_int,
        points: *const f32,
        n: c_int,
        moved: *mut f32,
        found: *mut u8,
        error: *mut c_char,
        error_len: c_int,
    ) -> c_int;
    fn ferrovis_affine_partial(
        from: *const f32,
        to: *const f32,
        n: c_int,
        matrix: *mut f64,
        error: *mut c_char,
        error_len: c_int,
    ) -> c_int;
}

/// A 2×3 affine warp from the last frame to this one.
pub type Warp = [[f64; 3]; 2];

/// The identity warp.
pub const IDENTITY: Warp = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]];

/// The sparse-optical-flow motion estimator, holding the last frame and its corners.
#[derive(Debug, Clone, Default)]
pub struct Gmc {
    previous: Option<Previous>,
}

#[derive(Debug, Clone)]
struct Previous {
    gray: Vec<u8>,
    rows: usize,
    cols: usize,
    corners: Vec<f32>,
}

/// Frames are analysed at 1/2 size (Ultralytics' `downscale`).
const DOWNSCALE: usize = 2;

impl Gmc {
    /// An estimator before its first frame.
    pub fn new() -> Gmc {
        Gmc::default()
    }

    /// The camera's motion from the last frame to `image` (the identity on the first frame,
    /// and when fewer than five corners could be followed).
    pub fn apply(&mut self, image: &RgbImage) -> Result<Warp> {
        let (gray, rows, cols) = small_gray(image)?;
        let corners = corners(&gray, rows, cols)?;
        let warp = match self.previous.take() {
            Some(prev) if !prev.corners.is_empty() && (prev.rows, prev.cols) == (rows, cols) => {
                estimate(&prev, &gray)?
            }
            _ => IDENTITY,
        };
        self.previous = Some(Previous {
            gray,
            rows,
            cols,
            corners,
        });
        Ok(warp)
    }
}

/// `image` in grey (OpenCV's weights), resized to 1/[`DOWNSCALE`] bilinearly: bytes, rows, cols.
fn small_gray(image: &RgbImage) -> Result<(Vec<u8>, usize, usize)> {
    // A view of the frame's own bytes: this runs on every frame, so no copy of it is made.
    let flat = Mat::from_slice(&image.data)?;
    let rgb = flat.reshape(3, image.height as i32)?;
    let mut gray = Mat::default();
    imgproc::cvt_color_def(&rgb, &mut gray, imgproc::COLOR_RGB2GRAY)?;
    let (cols, rows) = (image.width / DOWNSCALE, image.height / DOWNSCALE);
    if cols == 0 || rows == 0 {
        bail!(
            "a {}x{} frame is too small for motion compensation",
            image.width,
            image.height
        );
    }
    let mut small = Mat::default();
    imgproc::resize(
        &gray,
        &mut small,
        Size::new(cols as i32, rows as i32),
        0.0,
        0.0,
        imgproc::INTER_LINEAR,
    )?;
    let small = if small.is_continuous() {
        small
    } else {
        small.try_clone()?
    };
    Ok((small.data_bytes()?.to_vec(), rows, cols))
}

/// Up to 400 Shi-Tomasi corners (quality 0.01, no minimum distance, 3×3 blocks), as `x, y`
/// pairs.
fn corners(gray: &[u8], rows: usize, cols: usize) -> Result<Vec<f32>> {
    let mat = Mat::new_rows_cols_with_data(rows as i32, cols as i32, gray)?;
    let mut found: Vector<Point2f> = Vector::new();
    imgproc::good_features_to_track(
        &mat,
        &mut found,
        400,
        0.01,
        0.0,
        &Mat::default(),
        3,
        false,
        0.04,
    )?;
    Ok(found.iter().flat_map(|p| [p.x, p.y]).collect())
}

fn estimate(prev: &Previous, gray: &[u8]) -> Result<Warp> {
    let n = prev.corners.len() / 2;
    let mut moved = vec![0f32; 2 * n];
    let mut found = vec![0u8; n];
    let mut error = [0 as c_char; 512];
    // SAFETY: both frames hold rows*cols bytes; the point buffers hold 2n floats and n flags;
    // the shim writes at most error.len() bytes, NUL-terminated.
    let status = unsafe {
        ferrovis_lk_flow(
            prev.gray.as_ptr(),
            gray.as_ptr(),
            prev.rows as c_int,
            prev.cols as c_int,
            prev.corners.as_ptr(),
            n as c_int,
            moved.as_mut_ptr(),
            found.as_mut_ptr(),
            error.as_mut_ptr(),
            error.len() as c_int,
        )
    };
    if status < 0 {
        bail!("optical flow: {}", message(&error));
    }
    let (mut from, mut to) = (Vec::new(), Vec::new());
    for i in (0..n).filter(|&i| found[i] != 0) {
        from.extend_from_slice(&prev.corners[2 * i..2 * i + 2]);
        to.extend_from_slice(&moved[2 * i..2 * i + 2]);
    }
    let pairs = from.len() / 2;
    if pairs <= 4 {
        tracing::debug!(pairs, "motion compensation: not enough matching points");
        return Ok(IDENTITY);
    }
    let mut m = [0f64; 6];
    // SAFETY: `from` and `to` hold 2*pairs floats; `m` holds the 6 the shim writes.
    let status = unsafe {
        ferrovis_affine_partial(
            from.as_ptr(),
            to.as_ptr(),
            pairs as c_int,
            m.as_mut_ptr(),
            error.as_mut_ptr(),
            error.len() as c_int,
        )
    };
    match status {
        1 => Ok([
            [m[0], m[1], m[2] * DOWNSCALE as f64],
            [m[3], m[4], m[5] * DOWNSCALE as f64],
        ]),
        0 => Ok(IDENTITY),
        _ => bail!("affine fit: {}", message(&error)),
    }
}

fn message(buffer: &[c_char]) -> String {
    // SAFETY: the shim NUL-terminates within the buffer (it is zeroed beforehand too).
    unsafe { CStr::from_ptr(buffer.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A textured scene and the same scene 6 pixels to the right: the warp is that shift.
    #[test]
    fn a_panned_scene_gives_its_translation() {
        let scene = |dx: usize| {
            let mut img = RgbImage::filled(320, 240, [0, 0, 0]);
            for y in 0..240 {
                for x in 0..320 {
                    let (sx, sy) = ((x + 400 - dx) as u64, y as u64);
                    // Blocks of pseudo-random brightness: plenty of corners.
                    let v = ((sx / 8 * 7919 + sy / 8 * 104729) % 251) as u8;
                    img.set_pixel(x, y, [v, v, v]);
                }
            }
            img
        };
        let mut gmc = Gmc::new();
        assert_eq!(gmc.apply(&scene(0)).unwrap(), IDENTITY);
        let w = gmc.apply(&scene(6)).unwrap();
        assert!((w[0][2] - 6.0).abs() < 0.5 && w[1][2].abs() < 0.5, "{w:?}");
        assert!(
            (w[0][0] - 1.0).abs() < 0.01 && w[0][1].abs() < 0.01,
            "{w:?}"
        );
    }
}
