//! Detection transforms: the boxes move with the image. Definitions follow Ultralytics' published
//! behaviour: letterbox with grey 114 padding, 4-image mosaic on a 2s×2s canvas, random affine
//! (rotation, scale, shear, translation) with boxes clipped and degenerate ones dropped, flips.

use opencv::core::{Mat, Scalar, Size, BORDER_CONSTANT};
use opencv::imgproc;
use opencv::prelude::*;
use rand::Rng as _;

use super::classify::{resize, Filter};
use super::color::HsvGain;
use super::geometry::{hflip, pad, vflip};
use crate::decode::{rgb_from_mat, rgb_mat};
use crate::error::Result;
use crate::image::RgbImage;
use crate::rng::Rng;

/// The grey Ultralytics pads and fills with.
pub const PAD_GREY: [u8; 3] = [114, 114, 114];

/// A labelled box in pixel coordinates: corners `[x1, y1, x2, y2]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoxLabel {
    /// Class index.
    pub class: usize,
    /// `[x1, y1, x2, y2]` in pixels.
    pub xyxy: [f32; 4],
}

impl BoxLabel {
    /// Width in pixels.
    pub fn width(&self) -> f32 {
        self.xyxy[2] - self.xyxy[0]
    }

    /// Height in pixels.
    pub fn height(&self) -> f32 {
        self.xyxy[3] - self.xyxy[1]
    }
}

/// An image with its boxes.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectionSample {
    /// The image.
    pub image: RgbImage,
    /// Its boxes, in the image's pixel coordinates.
    pub boxes: Vec<BoxLabel>,
}

/// How a letterboxed image maps back to the original: `original = (letterboxed − pad) / scale`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    /// The resize factor applied to the original.
    pub scale: f32,
    /// Columns of padding on the left.
    pub pad_left: f32,
    /// Rows of padding on top.
    pub pad_top: f32,
}

impl Letterbox {
    /// Maps a box predicted on the letterboxed image back to the original image.
    pub fn to_original(&self, xyxy: [f32; 4]) -> [f32; 4] {
        [
            (xyxy[0] - self.pad_left) / self.scale,
            (xyxy[1] - self.pad_top) / self.scale,
            (xyxy[2] - self.pad_left) / self.scale,
            (xyxy[3] - self.pad_top) / self.scale,
        ]
    }
}

fn scale_boxes(boxes: &mut [BoxLabel], sx: f32, sy: f32, dx: f32, dy: f32) {
    for b in boxes {
        b.xyxy = [
            b.xyxy[0] * sx + dx,
            b.xyxy[1] * sy + dy,
            b.xyxy[2] * sx + dx,
            b.xyxy[3] * sy + dy,
        ];
    }
}

/// Resizes so the longer side is `size` (Ultralytics' image loading step before mosaic/letterbox):
/// sides `min(⌈side·r⌉, size)`, OpenCV bilinear, as Ultralytics 8.4 loads every image (8.3 shrank
/// validation images with the area filter and rounded).
pub fn resize_long_side(sample: &DetectionSample, size: usize) -> Result<DetectionSample> {
    let (w, h) = (sample.image.width, sample.image.height);
    if w.max(h) == size {
        return Ok(sample.clone());
    }
    let r = size as f64 / w.max(h) as f64;
    let (nw, nh) = (
        ((w as f64 * r).ceil() as usize).clamp(1, size),
        ((h as f64 * r).ceil() as usize).clamp(1, size),
    );
    let image = resize(&sample.image, nw, nh, Filter::Linear)?;
    let mut boxes = sample.boxes.clone();
    scale_boxes(
        &mut boxes,
        nw as f32 / w as f32,
        nh as f32 / h as f32,
        0.0,
        0.0,
    );
    Ok(DetectionSample { image, boxes })
}

/// Fits the image into a `size`×`size` square, keeping its aspect ratio, and pads the rest with
/// grey 114 split evenly (the odd pixel goes to the bottom/right). With `scale_up` false, small
/// images are only padded, never enlarged.
pub fn letterbox(
    sample: &DetectionSample,
    size: usize,
    scale_up: bool,
) -> Result<(DetectionSample, Letterbox)> {
    letterbox_to(sample, size, scale_up, None)
}

/// [`letterbox`], but with `stride` Some(s) the padding is only what makes each side a multiple
/// of `s` (Ultralytics' `LetterBox(auto=True)` for prediction): a 640×480 image at size 640
/// becomes 640×480, not 640×640.
pub fn letterbox_to(
    sample: &DetectionSample,
    size: usize,
    scale_up: bool,
    stride: Option<usize>,
) -> Result<(DetectionSample, Letterbox)> {
    let (w, h) = (sample.image.width, sample.image.height);
    let mut r = (size as f32 / h as f32).min(size as f32 / w as f32);
    if !scale_up {
        r = r.min(1.0);
    }
    let (nw, nh) = (
        ((w as f32 * r).round() as usize).clamp(1, size),
        ((h as f32 * r).round() as usize).clamp(1, size),
    );
    let (mut dw, mut dh) = (size - nw, size - nh);
    if let Some(stride) = stride.filter(|&s| s > 0) {
        (dw, dh) = (dw % stride, dh % stride);
    }
    resize_and_pad(sample, r, (nw, nh), (dw, dh))
}

/// Fits the image into a `width`×`height` canvas without enlarging it, keeping its aspect ratio,
/// and pads the rest with grey 114 split evenly (the odd pixel goes to the bottom/right): how
/// Ultralytics letterboxes a validation image into its batch's rectangular shape (see
/// [`rect_batch_shapes`]).
pub fn letterbox_rect(
    sample: &DetectionSample,
    width: usize,
    height: usize,
) -> Result<(DetectionSample, Letterbox)> {
    let (w, h) = (sample.image.width, sample.image.height);
    let r = (height as f32 / h as f32)
        .min(width as f32 / w as f32)
        .min(1.0);
    let (nw, nh) = (
        ((w as f32 * r).round() as usize).clamp(1, width),
        ((h as f32 * r).round() as usize).clamp(1, height),
    );
    resize_and_pad(sample, r, (nw, nh), (width - nw, height - nh))
}

/// The letterbox both shapes share: `sample` resized (bilinear) to `nw`×`nh` at scale `r`, then
/// padded with grey by `dw`, `dh` split evenly (the odd pixel bottom/right), boxes moved along.
fn resize_and_pad(
    sample: &DetectionSample,
    r: f32,
    (nw, nh): (usize, usize),
    (dw, dh): (usize, usize),
) -> Result<(DetectionSample, Letterbox)> {
    let (w, h) = (sample.image.width, sample.image.height);
    let resized = if (nw, nh) == (w, h) {
        sample.image.clone()
    } else {
        resize(&sample.image, nw, nh, Filter::Linear)?
    };
    let (left, top) = (dw / 2, dh / 2);
    let image = pad(&resized, left, top, dw - left, dh - top, PAD_GREY);
    let mut boxes = sample.boxes.clone();
    let (sx, sy) = (nw as f32 / w as f32, nh as f32 / h as f32);
    scale_boxes(&mut boxes, sx, sy, left as f32, top as f32);
    let info = Letterbox {
        scale: r,
        pad_left: left as f32,
        pad_top: top as f32,
    };
    Ok((DetectionSample { image, boxes }, info))
}

/// Ultralytics' rectangular validation batches: with images sorted by aspect ratio `h / w`
/// (`ratios`, already in that order) and grouped `batch` at a time, each batch gets the
/// `(width, height)` that fits its images at `size` with the shorter side cut to the widest
/// ratio it must hold, rounded up to a multiple of `stride` after adding `pad` strides
/// (`⌈shape·size/stride + pad⌉·stride`). Returns one shape per image.
pub fn rect_batch_shapes(
    ratios: &[f64],
    batch: usize,
    size: usize,
    stride: usize,
    pad: f64,
) -> Vec<(usize, usize)> {
    let side =
        |fraction: f64| ((fraction * size as f64 / stride as f64 + pad).ceil() as usize) * stride;
    ratios
        .chunks(batch.max(1))
        .flat_map(|group| {
            let lo = group.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = group.iter().copied().fold(0.0, f64::max);
            // (h, w) as fractions of `size`.
            let (fh, fw) = if hi < 1.0 {
                (hi, 1.0)
            } else if lo > 1.0 {
                (1.0, 1.0 / lo)
            } else {
                (1.0, 1.0)
            };
            std::iter::repeat_n((side(fw), side(fh)), group.len())
        })
        .collect()
}

/// Places four samples (each already resized so its longer side is `size`, see
/// [`resize_long_side`]) around a random centre of a `2·size` square canvas filled with grey:
/// the first ends at the centre top-left, then top-right, bottom-left, bottom-right. Boxes are
/// shifted and clipped to the canvas. Follow with [`RandomAffine::apply`] with border `size / 2`
/// to get back to `size`×`size`.
pub fn mosaic(samples: [&DetectionSample; 4], size: usize, rng: &mut Rng) -> DetectionSample {
    let s = size as i64;
    let xc = rng.gen_range(s / 2..=3 * s / 2);
    let yc = rng.gen_range(s / 2..=3 * s / 2);
    let canvas_side = 2 * size;
    let mut canvas = RgbImage::filled(canvas_side, canvas_side, PAD_GREY);
    let mut boxes = Vec::new();
    for (i, sample) in samples.iter().enumerate() {
        let (w, h) = (sample.image.width as i64, sample.image.height as i64);
        // (x1a, y1a, x2a, y2a): region on the canvas; (x1b, y1b): where it starts in the image.
        let (x1a, y1a, x2a, y2a) = match i {
            0 => ((xc - w).max(0), (yc - h).max(0), xc, yc),
            1 => (xc, (yc - h).max(0), (xc + w).min(2 * s), yc),
            2 => ((xc - w).max(0), yc, xc, (yc + h).min(2 * s)),
            _ => (xc, yc, (xc + w).min(2 * s), (yc + h).min(2 * s)),
        };
        let (rw, rh) = (x2a - x1a, y2a - y1a);
        let x1b = if i % 2 == 0 { w - rw } else { 0 };
        let y1b = if i < 2 { h - rh } else { 0 };
        for row in 0..rh {
            let src = (((y1b + row) * w + x1b) * 3) as usize;
            let dst = (((y1a + row) * 2 * s + x1a) * 3) as usize;
            canvas.data[dst..dst + rw as usize * 3]
                .copy_from_slice(&sample.image.data[src..src + rw as usize * 3]);
        }
        let (dx, dy) = ((x1a - x1b) as f32, (y1a - y1b) as f32);
        for b in &sample.boxes {
            let side = canvas_side as f32;
            let xyxy = [
                (b.xyxy[0] + dx).clamp(0.0, side),
                (b.xyxy[1] + dy).clamp(0.0, side),
                (b.xyxy[2] + dx).clamp(0.0, side),
                (b.xyxy[3] + dy).clamp(0.0, side),
            ];
            boxes.push(BoxLabel {
                class: b.class,
                xyxy,
            });
        }
    }
    boxes.retain(|b| b.width() > 0.0 && b.height() > 0.0);
    DetectionSample {
        image: canvas,
        boxes,
    }
}

/// Random rotation, scale, shear and translation about the image centre, as YOLO training's
/// `random_perspective` without the perspective part. Angles are in degrees; `translate` is a
/// fraction of the output size; `scale` draws the zoom from `1 ± scale`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RandomAffine {
    /// Rotation range ±degrees.
    pub degrees: f32,
    /// Translation range ± fraction of the output size.
    pub translate: f32,
    /// Zoom range 1 ± scale.
    pub scale: f32,
    /// Shear range ±degrees.
    pub shear: f32,
}

impl Default for RandomAffine {
    /// Ultralytics' defaults: no rotation or shear, translate 0.1, scale 0.5.
    fn default() -> Self {
        Self {
            degrees: 0.0,
            translate: 0.1,
            scale: 0.5,
            shear: 0.0,
        }
    }
}

/// A 2×3 affine matrix `[[a, b, c], [d, e, f]]` mapping input pixels to output pixels.
pub type Affine = [[f64; 3]; 2];

/// Applies an affine matrix to a point.
pub fn affine_point(m: &Affine, x: f32, y: f32) -> (f32, f32) {
    let (x, y) = (x as f64, y as f64);
    (
        (m[0][0] * x + m[0][1] * y + m[0][2]) as f32,
        (m[1][0] * x + m[1][1] * y + m[1][2]) as f32,
    )
}

impl RandomAffine {
    /// Draws a matrix for an input of `width`×`height`, producing an output of the input size
    /// minus `2·border` on each axis. Returns the matrix and the zoom drawn.
    pub fn matrix(
        &self,
        width: usize,
        height: usize,
        border: usize,
        rng: &mut Rng,
    ) -> (Affine, f64) {
        let out_w = (width - 2 * border) as f64;
        let out_h = (height - 2 * border) as f64;
        let angle = (rng.gen_range(-1.0..=1.0) * self.degrees as f64).to_radians();
        let zoom = rng.gen_range(1.0 - self.scale as f64..=1.0 + self.scale as f64);
        let shear_x = (rng.gen_range(-1.0..=1.0) * self.shear as f64)
            .to_radians()
            .tan();
        let shear_y = (rng.gen_range(-1.0..=1.0) * self.shear as f64)
            .to_radians()
            .tan();
        let tx = rng.gen_range(0.5 - self.translate as f64..=0.5 + self.translate as f64) * out_w;
        let ty = rng.gen_range(0.5 - self.translate as f64..=0.5 + self.translate as f64) * out_h;
        // M = T · S · R · C: centre the input at the origin, rotate+zoom (OpenCV's convention:
        // positive angles turn counter-clockwise on screen), shear, then move to (tx, ty).
        let (a, b) = (zoom * angle.cos(), zoom * angle.sin());
        let r = [[a, b], [-b, a]];
        let s = [[1.0, shear_x], [shear_y, 1.0]];
        let sr = [
            [
                s[0][0] * r[0][0] + s[0][1] * r[1][0],
                s[0][0] * r[0][1] + s[0][1] * r[1][1],
            ],
            [
                s[1][0] * r[0][0] + s[1][1] * r[1][0],
                s[1][0] * r[0][1] + s[1][1] * r[1][1],
            ],
        ];
        let (cx, cy) = (width as f64 / 2.0, height as f64 / 2.0);
        let m = [
            [sr[0][0], sr[0][1], tx - sr[0][0] * cx - sr[0][1] * cy],
            [sr[1][0], sr[1][1], ty - sr[1][0] * cx - sr[1][1] * cy],
        ];
        (m, zoom)
    }

    /// Warps the sample; the output is `(width − 2·border)` × `(height − 2·border)`.
    pub fn apply(
        &self,
        sample: &DetectionSample,
        border: usize,
        rng: &mut Rng,
    ) -> Result<DetectionSample> {
        let (w, h) = (sample.image.width, sample.image.height);
        let (m, zoom) = self.matrix(w, h, border, rng);
        warp(sample, &m, zoom, w - 2 * border, h - 2 * border)
    }
}

/// Warps an image and its boxes by `m` into an `out_w`×`out_h` image filled with grey, clips the
/// boxes and drops the ones that became degenerate (see [`keep_box`]); `zoom` is the scale part of
/// `m`, used to judge how much of a box survived.
pub fn warp(
    sample: &DetectionSample,
    m: &Affine,
    zoom: f64,
    out_w: usize,
    out_h: usize,
) -> Result<DetectionSample> {
    let flat: Vec<f64> = m.iter().flatten().copied().collect();
    let mat = Mat::from_slice(&flat)?.reshape(1, 2)?.try_clone()?;
    let mut dst = Mat::default();
    imgproc::warp_affine(
        &rgb_mat(&sample.image)?,
        &mut dst,
        &mat,
        Size::new(out_w as i32, out_h as i32),
        imgproc::INTER_LINEAR,
        BORDER_CONSTANT,
        Scalar::all(PAD_GREY[0] as f64),
    )?;
    let image = rgb_from_mat(&dst)?;
    let mut boxes = Vec::with_capacity(sample.boxes.len());
    for b in &sample.boxes {
        let [x1, y1, x2, y2] = b.xyxy;
        let corners = [(x1, y1), (x2, y1), (x1, y2), (x2, y2)].map(|(x, y)| affine_point(m, x, y));
        let xs = corners.map(|c| c.0);
        let ys = corners.map(|c| c.1);
        let fold = |v: [f32; 4], f: fn(f32, f32) -> f32, init| v.into_iter().fold(init, f);
        let new = BoxLabel {
            class: b.class,
            xyxy: [
                fold(xs, f32::min, f32::MAX).clamp(0.0, out_w as f32),
                fold(ys, f32::min, f32::MAX).clamp(0.0, out_h as f32),
                fold(xs, f32::max, f32::MIN).clamp(0.0, out_w as f32),
                fold(ys, f32::max, f32::MIN).clamp(0.0, out_h as f32),
            ],
        };
        if keep_box(b, &new, zoom as f32) {
            boxes.push(new);
        }
    }
    Ok(DetectionSample { image, boxes })
}

/// YOLO's box candidate rule after a warp: wider and taller than 2 px, keeping more than 10% of
/// its (zoomed) original area, and an aspect ratio under 100.
pub fn keep_box(before: &BoxLabel, after: &BoxLabel, zoom: f32) -> bool {
    const EPS: f32 = 1e-16;
    let (w1, h1) = (before.width() * zoom, before.height() * zoom);
    let (w2, h2) = (after.width(), after.height());
    let aspect = (w2 / (h2 + EPS)).max(h2 / (w2 + EPS));
    w2 > 2.0 && h2 > 2.0 && w2 * h2 / (w1 * h1 + EPS) > 0.1 && aspect < 100.0
}

/// Mirrors the sample left to right.
pub fn hflip_sample(sample: &mut DetectionSample) {
    hflip(&mut sample.image);
    let w = sample.image.width as f32;
    for b in &mut sample.boxes {
        b.xyxy = [w - b.xyxy[2], b.xyxy[1], w - b.xyxy[0], b.xyxy[3]];
    }
}

/// Mirrors the sample top to bottom.
pub fn vflip_sample(sample: &mut DetectionSample) {
    vflip(&mut sample.image);
    let h = sample.image.height as f32;
    for b in &mut sample.boxes {
        b.xyxy = [b.xyxy[0], h - b.xyxy[3], b.xyxy[2], h - b.xyxy[1]];
    }
}

/// YOLO training augmentation, with Ultralytics' default strengths.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectAugment {
    /// Probability of a 4-image mosaic.
    pub mosaic: f64,
    /// Mosaic is switched off from this epoch on (Ultralytics' `close_mosaic`: the last 10).
    pub mosaic_off_from_epoch: Option<usize>,
    /// Random affine after mosaic/letterbox.
    pub affine: RandomAffine,
    /// HSV gains.
    pub hsv: HsvGain,
    /// Probability of a left-right flip.
    pub fliplr: f64,
    /// Probability of an up-down flip.
    pub flipud: f64,
}

impl Default for DetectAugment {
    fn default() -> Self {
        Self {
            mosaic: 1.0,
            mosaic_off_from_epoch: None,
            affine: RandomAffine::default(),
            hsv: HsvGain::default(),
            fliplr: 0.5,
            flipud: 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::derive;

    fn sample(w: usize, h: usize, boxes: &[[f32; 4]]) -> DetectionSample {
        DetectionSample {
            image: RgbImage::filled(w, h, [10, 20, 30]),
            boxes: boxes
                .iter()
                .map(|&xyxy| BoxLabel { class: 1, xyxy })
                .collect(),
        }
    }

    #[test]
    fn letterbox_scales_pads_and_maps_back() {
        // 640x480 into 320: scale 0.5 -> 320x240, 80 rows of grey split 40/40.
        let s = sample(640, 480, &[[100.0, 50.0, 300.0, 450.0]]);
        let (out, info) = letterbox(&s, 320, true).unwrap();
        assert_eq!((out.image.width, out.image.height), (320, 320));
        assert_eq!(
            info,
            Letterbox {
                scale: 0.5,
                pad_left: 0.0,
                pad_top: 40.0
            }
        );
        assert_eq!(out.boxes[0].xyxy, [50.0, 65.0, 150.0, 265.0]);
        assert_eq!(out.image.pixel(0, 39), PAD_GREY);
        assert_eq!(out.image.pixel(0, 40), [10, 20, 30]);
        assert_eq!(out.image.pixel(319, 280), PAD_GREY);
        assert_eq!(
            info.to_original(out.boxes[0].xyxy),
            [100.0, 50.0, 300.0, 450.0]
        );
        // Odd padding: 100x67 into 100 pads 33 rows, 16 on top and 17 below.
        let (out, info) = letterbox(&sample(100, 67, &[]), 100, true).unwrap();
        assert_eq!(info.pad_top, 16.0);
        assert_eq!(out.image.pixel(50, 15), PAD_GREY);
        assert_eq!(out.image.pixel(50, 16), [10, 20, 30]);
        assert_eq!(out.image.pixel(50, 82), [10, 20, 30]);
        assert_eq!(out.image.pixel(50, 83), PAD_GREY);
        // No scale-up: a small image is only padded.
        let (out, info) = letterbox_to(&sample(640, 427, &[]), 640, true, Some(32)).unwrap();
        // 427 rows padded to 448: 21 rows, 10 on top, 11 below.
        assert_eq!(
            (out.image.width, out.image.height, info.pad_top),
            (640, 448, 10.0)
        );
        let (_, info) = letterbox(&sample(50, 40, &[]), 100, false).unwrap();
        assert_eq!(
            info,
            Letterbox {
                scale: 1.0,
                pad_left: 25.0,
                pad_top: 30.0
            }
        );
    }

    #[test]
    fn flips_mirror_boxes() {
        let mut s = sample(100, 50, &[[10.0, 5.0, 30.0, 20.0]]);
        hflip_sample(&mut s);
        assert_eq!(s.boxes[0].xyxy, [70.0, 5.0, 90.0, 20.0]);
        vflip_sample(&mut s);
        assert_eq!(s.boxes[0].xyxy, [70.0, 30.0, 90.0, 45.0]);
    }

    #[test]
    fn identity_affine_keeps_boxes_and_pure_translation_moves_them() {
        let s = sample(64, 48, &[[10.0, 10.0, 30.0, 20.0], [0.0, 0.0, 1.0, 1.0]]);
        let identity: Affine = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]];
        let out = warp(&s, &identity, 1.0, 64, 48).unwrap();
        // The 1x1 box is under the 2-pixel minimum and is dropped.
        assert_eq!(
            out.boxes,
            vec![BoxLabel {
                class: 1,
                xyxy: [10.0, 10.0, 30.0, 20.0]
            }]
        );
        let shift: Affine = [[1.0, 0.0, 50.0], [0.0, 1.0, -5.0]];
        let out = warp(&s, &shift, 1.0, 64, 48).unwrap();
        // x: 60..80 clipped to 60..64 keeps 4x10 = 40 of 200 px² (20%): kept.
        assert_eq!(out.boxes[0].xyxy, [60.0, 5.0, 64.0, 15.0]);
        assert_eq!(out.image.pixel(0, 47), PAD_GREY);
        assert_eq!(out.image.pixel(55, 10), [10, 20, 30]);
    }

    #[test]
    fn rotation_by_90_degrees_swaps_box_sides() {
        let rot = RandomAffine {
            degrees: 0.0,
            translate: 0.0,
            scale: 0.0,
            shear: 0.0,
        };
        let (m, zoom) = rot.matrix(100, 100, 0, &mut derive(0, &[]));
        assert_eq!(zoom, 1.0);
        // No randomness: the matrix is the identity.
        let (x, y) = affine_point(&m, 12.0, 34.0);
        assert!((x - 12.0).abs() < 1e-4 && (y - 34.0).abs() < 1e-4);
        // An explicit 90° turn about the centre (50, 50): (x, y) -> (y, 100 - x).
        let m: Affine = [[0.0, 1.0, 0.0], [-1.0, 0.0, 100.0]];
        let s = sample(100, 100, &[[10.0, 40.0, 30.0, 60.0]]);
        let out = warp(&s, &m, 1.0, 100, 100).unwrap();
        assert_eq!(out.boxes[0].xyxy, [40.0, 70.0, 60.0, 90.0]);
    }

    #[test]
    fn mosaic_places_four_images_around_the_centre() {
        let colours = [[200, 0, 0], [0, 200, 0], [0, 0, 200], [200, 200, 0]];
        let samples: Vec<DetectionSample> = colours
            .iter()
            .map(|&c| DetectionSample {
                image: RgbImage::filled(64, 48, c),
                boxes: vec![BoxLabel {
                    class: 0,
                    xyxy: [0.0, 0.0, 64.0, 48.0],
                }],
            })
            .collect();
        let m = mosaic(
            [&samples[0], &samples[1], &samples[2], &samples[3]],
            64,
            &mut derive(9, &[]),
        );
        assert_eq!((m.image.width, m.image.height), (128, 128));
        // The boxes meet at the centre: find it from the first box's bottom-right corner.
        let (xc, yc) = (m.boxes[0].xyxy[2], m.boxes[0].xyxy[3]);
        assert!((32.0..=96.0).contains(&xc) && (32.0..=96.0).contains(&yc));
        assert_eq!(m.boxes[1].xyxy[0], xc);
        assert_eq!(m.boxes[2].xyxy[1], yc);
        assert_eq!(m.boxes[3].xyxy[..2], [xc, yc]);
        let (xc, yc) = (xc as usize, yc as usize);
        assert_eq!(m.image.pixel(xc - 1, yc - 1), [200, 0, 0]);
        assert_eq!(m.image.pixel(xc, yc - 1), [0, 200, 0]);
        assert_eq!(m.image.pixel(xc - 1, yc), [0, 0, 200]);
        assert_eq!(m.image.pixel(xc, yc), [200, 200, 0]);
        // Each box covers exactly its image's painted area.
        for (b, c) in m.boxes.iter().zip(colours) {
            let [x1, y1, x2, y2] = b.xyxy.map(|v| v as usize);
            assert_eq!(m.image.pixel(x1, y1), c);
            assert_eq!(m.image.pixel(x2 - 1, y2 - 1), c);
        }
    }
}
