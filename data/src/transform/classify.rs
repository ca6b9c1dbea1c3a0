//! Classification transforms: resize the shorter side, centre crop.

use opencv::core::Size;
use opencv::imgproc;

use crate::decode::{mat_to_rgb, rgb_to_mat};
use crate::error::{Error, Result};
use crate::image::RgbImage;

/// Interpolation for enlarging; shrinking always uses OpenCV's area filter, which averages all
/// covered pixels like PIL's/torchvision's antialiased resize does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// Bilinear.
    Bilinear,
    /// Bicubic.
    Bicubic,
}

/// Resizes `img` so its shorter side is `size`, keeping the aspect ratio; the longer side is
/// `floor(size · long / short)`, as torchvision's `Resize(size)` computes it.
pub fn resize_shorter(img: &RgbImage, size: usize, filter: Filter) -> Result<RgbImage> {
    let (w, h) = (img.width, img.height);
    if w == 0 || h == 0 || size == 0 {
        return Err(Error::image(
            "<image>",
            format!("cannot resize a {w}x{h} image to {size}"),
        ));
    }
    let (nw, nh) = if w <= h {
        (size, size * h / w)
    } else {
        (size * w / h, size)
    };
    resize(img, nw, nh, filter)
}

/// Resizes `img` to exactly `width`×`height`.
pub fn resize(img: &RgbImage, width: usize, height: usize, filter: Filter) -> Result<RgbImage> {
    if (width, height) == (img.width, img.height) {
        return Ok(img.clone());
    }
    let shrinking = width < img.width || height < img.height;
    let interpolation = match (shrinking, filter) {
        (true, _) => imgproc::INTER_AREA,
        (false, Filter::Bilinear) => imgproc::INTER_LINEAR,
        (false, Filter::Bicubic) => imgproc::INTER_CUBIC,
    };
    let src = rgb_to_mat(img)?;
    let mut dst = opencv::core::Mat::default();
    imgproc::resize(
        &src,
        &mut dst,
        Size::new(width as i32, height as i32),
        0.0,
        0.0,
        interpolation,
    )?;
    mat_to_rgb(&dst)
}

/// Crops the central `size`×`size` square; offsets are `round((h − size) / 2)` as in torchvision.
pub fn center_crop(img: &RgbImage, size: usize) -> Result<RgbImage> {
    if img.width < size || img.height < size {
        return Err(Error::image(
            "<image>",
            format!(
                "cannot centre-crop {size}x{size} from a {}x{} image",
                img.width, img.height
            ),
        ));
    }
    let top = ((img.height - size) as f64 / 2.0).round() as usize;
    let left = ((img.width - size) as f64 / 2.0).round() as usize;
    let mut data = Vec::with_capacity(size * size * 3);
    for y in top..top + size {
        let row = (y * img.width + left) * 3;
        data.extend_from_slice(&img.data[row..row + size * 3]);
    }
    Ok(RgbImage {
        width: size,
        height: size,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbered(w: usize, h: usize) -> RgbImage {
        let mut img = RgbImage::filled(w, h, [0, 0, 0]);
        for y in 0..h {
            for x in 0..w {
                img.set_pixel(x, y, [x as u8, y as u8, 7]);
            }
        }
        img
    }

    #[test]
    fn centre_crop_offsets_round_like_torchvision() {
        // (7 - 4) / 2 = 1.5 rounds to 2 (banker's rounding in Python gives 2 as well).
        let c = center_crop(&numbered(7, 6), 4).unwrap();
        assert_eq!((c.width, c.height), (4, 4));
        assert_eq!(c.pixel(0, 0), [2, 1, 7]);
        assert_eq!(c.pixel(3, 3), [5, 4, 7]);
        assert!(center_crop(&numbered(3, 3), 4).is_err());
    }

    #[test]
    fn shorter_side_resize_keeps_aspect_with_floor() {
        // 451x300 -> shorter 256: long side floor(256 * 451 / 300) = 384.
        let r = resize_shorter(&numbered(451, 300), 256, Filter::Bilinear).unwrap();
        assert_eq!((r.width, r.height), (384, 256));
        let r = resize_shorter(&numbered(100, 150), 256, Filter::Bicubic).unwrap();
        assert_eq!((r.width, r.height), (256, 384));
        // Area shrinking of a constant image is exact.
        let flat = RgbImage::filled(90, 60, [10, 200, 30]);
        let r = resize_shorter(&flat, 20, Filter::Bilinear).unwrap();
        assert!(r.data.chunks(3).all(|p| p == [10, 200, 30]));
    }
}
