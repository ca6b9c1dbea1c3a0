//! Geometry shared by every task: crops, flips, padding, and nearest-neighbour mask resizing.

use opencv::core::{Mat, Size};
use opencv::imgproc;

use crate::decode::{mask_to_mat, mat_to_single_channel};
use crate::error::{Error, Result};
use crate::image::{Mask, RgbImage};

/// A rectangle in pixels: `left`, `top`, `width`, `height`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    /// Column of the left edge.
    pub left: usize,
    /// Row of the top edge.
    pub top: usize,
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
}

fn check_rect(rect: Rect, width: usize, height: usize) -> Result<()> {
    if rect.width == 0
        || rect.height == 0
        || rect.left + rect.width > width
        || rect.top + rect.height > height
    {
        return Err(Error::Invalid(format!(
            "crop {rect:?} does not fit a {width}x{height} image"
        )));
    }
    Ok(())
}

/// Copies `rect` out of a row-major buffer with `channels` bytes per pixel.
fn crop_bytes(data: &[u8], width: usize, channels: usize, rect: Rect) -> Vec<u8> {
    let mut out = Vec::with_capacity(rect.width * rect.height * channels);
    for y in rect.top..rect.top + rect.height {
        let start = (y * width + rect.left) * channels;
        out.extend_from_slice(&data[start..start + rect.width * channels]);
    }
    out
}

/// Mirrors each row of a row-major buffer with `channels` bytes per pixel.
fn hflip_bytes(data: &mut [u8], width: usize, channels: usize) {
    for row in data.chunks_exact_mut(width * channels) {
        for x in 0..width / 2 {
            let (a, b) = (x * channels, (width - 1 - x) * channels);
            for c in 0..channels {
                row.swap(a + c, b + c);
            }
        }
    }
}

/// Copies a rectangle out of an image.
pub fn crop(img: &RgbImage, rect: Rect) -> Result<RgbImage> {
    check_rect(rect, img.width, img.height)?;
    Ok(RgbImage {
        width: rect.width,
        height: rect.height,
        data: crop_bytes(&img.data, img.width, 3, rect),
    })
}

/// Copies a rectangle out of a mask.
pub fn crop_mask(mask: &Mask, rect: Rect) -> Result<Mask> {
    check_rect(rect, mask.width, mask.height)?;
    Ok(Mask {
        width: rect.width,
        height: rect.height,
        data: crop_bytes(&mask.data, mask.width, 1, rect),
    })
}

/// Mirrors an image left to right.
pub fn hflip(img: &mut RgbImage) {
    hflip_bytes(&mut img.data, img.width, 3);
}

/// Mirrors a mask left to right.
pub fn hflip_mask(mask: &mut Mask) {
    hflip_bytes(&mut mask.data, mask.width, 1);
}

/// Mirrors an image top to bottom.
pub fn vflip(img: &mut RgbImage) {
    let row = img.width * 3;
    for y in 0..img.height / 2 {
        let (top, bottom) = img.data.split_at_mut((img.height - 1 - y) * row);
        top[y * row..(y + 1) * row].swap_with_slice(&mut bottom[..row]);
    }
}

/// Turns an image by `quarter_turns` × 90° clockwise (any count; 4 is a full turn).
pub fn rot90(img: &RgbImage, quarter_turns: usize) -> RgbImage {
    let (width, height, data) = rot90_bytes(&img.data, img.width, img.height, 3, quarter_turns);
    RgbImage {
        width,
        height,
        data,
    }
}

/// Turns a mask as [`rot90`] turns an image.
pub fn rot90_mask(mask: &Mask, quarter_turns: usize) -> Mask {
    let (width, height, data) = rot90_bytes(&mask.data, mask.width, mask.height, 1, quarter_turns);
    Mask {
        width,
        height,
        data,
    }
}

/// `k` clockwise quarter turns of a `w`×`h` raster of `channels`-byte pixels: (width, height,
/// bytes) of the result.
fn rot90_bytes(
    data: &[u8],
    w: usize,
    h: usize,
    channels: usize,
    k: usize,
) -> (usize, usize, Vec<u8>) {
    let k = k % 4;
    let (ow, oh) = if k % 2 == 1 { (h, w) } else { (w, h) };
    let mut out = vec![0u8; data.len()];
    for y in 0..oh {
        for x in 0..ow {
            // The source pixel that lands at (x, y) after k clockwise turns.
            let (sx, sy) = match k {
                0 => (x, y),
                1 => (y, h - 1 - x),
                2 => (w - 1 - x, h - 1 - y),
                _ => (w - 1 - y, x),
            };
            let (o, i) = ((y * ow + x) * channels, (sy * w + sx) * channels);
            out[o..o + channels].copy_from_slice(&data[i..i + channels]);
        }
    }
    (ow, oh, out)
}

/// Pads an image on each side with a constant colour.
pub fn pad(
    img: &RgbImage,
    left: usize,
    top: usize,
    right: usize,
    bottom: usize,
    fill: [u8; 3],
) -> RgbImage {
    let width = img.width + left + right;
    let height = img.height + top + bottom;
    let mut out = RgbImage::filled(width, height, fill);
    for y in 0..img.height {
        let dst = ((y + top) * width + left) * 3;
        let src = y * img.width * 3;
        out.data[dst..dst + img.width * 3].copy_from_slice(&img.data[src..src + img.width * 3]);
    }
    out
}

/// Pads a mask on each side with a constant value (255 = ignore, usually).
pub fn pad_mask(
    mask: &Mask,
    left: usize,
    top: usize,
    right: usize,
    bottom: usize,
    fill: u8,
) -> Mask {
    let width = mask.width + left + right;
    let height = mask.height + top + bottom;
    let mut out = Mask::filled(width, height, fill);
    for y in 0..mask.height {
        let dst = (y + top) * width + left;
        let src = y * mask.width;
        out.data[dst..dst + mask.width].copy_from_slice(&mask.data[src..src + mask.width]);
    }
    out
}

/// Resizes a mask with nearest-neighbour interpolation, so every output value is an input value
/// (class indices never blend into other classes).
pub fn resize_mask(mask: &Mask, width: usize, height: usize) -> Result<Mask> {
    if (width, height) == (mask.width, mask.height) {
        return Ok(mask.clone());
    }
    if width == 0 || height == 0 {
        return Err(Error::Invalid(format!(
            "cannot resize a mask to {width}x{height}"
        )));
    }
    let src = mask_to_mat(mask)?;
    let mut dst = Mat::default();
    imgproc::resize(
        &src,
        &mut dst,
        Size::new(width as i32, height as i32),
        0.0,
        0.0,
        imgproc::INTER_NEAREST_EXACT,
    )?;
    mat_to_single_channel(&dst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_flip_pad_move_pixels_where_expected() {
        let img = RgbImage::numbered(5, 4, 9);
        let c = crop(
            &img,
            Rect {
                left: 1,
                top: 2,
                width: 3,
                height: 2,
            },
        )
        .unwrap();
        assert_eq!(c.pixel(0, 0), [1, 2, 9]);
        assert_eq!(c.pixel(2, 1), [3, 3, 9]);
        assert!(crop(
            &img,
            Rect {
                left: 3,
                top: 0,
                width: 3,
                height: 1
            }
        )
        .is_err());

        let mut f = img.clone();
        hflip(&mut f);
        assert_eq!(f.pixel(0, 1), [4, 1, 9]);
        let mut v = img.clone();
        vflip(&mut v);
        assert_eq!(v.pixel(2, 0), [2, 3, 9]);

        // A quarter turn clockwise: the bottom-left pixel comes to the top-left, the top-left
        // to the top-right; four turns are none, two are both flips.
        let r = rot90(&img, 1);
        assert_eq!((r.width, r.height), (img.height, img.width));
        assert_eq!(r.pixel(0, 0), img.pixel(0, img.height - 1));
        assert_eq!(r.pixel(r.width - 1, 0), img.pixel(0, 0));
        assert_eq!(rot90(&img, 4), img);
        let mut both = img.clone();
        hflip(&mut both);
        vflip(&mut both);
        assert_eq!(rot90(&img, 2), both);
        assert_eq!(rot90(&rot90(&img, 1), 3), img);

        let p = pad(&img, 1, 2, 0, 1, [114, 114, 114]);
        assert_eq!((p.width, p.height), (6, 7));
        assert_eq!(p.pixel(0, 0), [114, 114, 114]);
        assert_eq!(p.pixel(1, 2), [0, 0, 9]);
        assert_eq!(p.pixel(5, 5), [4, 3, 9]);
        assert_eq!(p.pixel(5, 6), [114, 114, 114]);
    }

    #[test]
    fn mask_resize_only_produces_existing_values() {
        let mut m = Mask::filled(7, 5, 0);
        for y in 0..5 {
            for x in 0..7 {
                m.set(x, y, [0, 3, 255][(x + y) % 3]);
            }
        }
        for (w, h) in [(3, 2), (13, 11), (7, 9), (1, 1)] {
            let r = resize_mask(&m, w, h).unwrap();
            assert_eq!((r.width, r.height), (w, h));
            assert!(r.data.iter().all(|v| [0, 3, 255].contains(v)));
        }
        // Integer upscaling by 2 repeats each value into a 2x2 block.
        let r = resize_mask(&m, 14, 10).unwrap();
        for y in 0..10 {
            for x in 0..14 {
                assert_eq!(r.get(x, y), m.get(x / 2, y / 2));
            }
        }
        let mut f = m.clone();
        hflip_mask(&mut f);
        assert_eq!(f.get(0, 0), m.get(6, 0));
        let p = pad_mask(&m, 0, 0, 2, 1, 255);
        assert_eq!(p.get(8, 5), 255);
        assert_eq!(p.get(6, 4), m.get(6, 4));
    }
}
