//! Decoding and encoding images with OpenCV.
//!
//! OpenCV returns BGR; everything in ferrovis is RGB, so the swap happens here and only here.

use std::path::Path;

use opencv::core::{Mat, Vector};
use opencv::prelude::*;
use opencv::{imgcodecs, imgproc};

use crate::error::{Error, Result};
use crate::image::RgbImage;

/// Reads an image file as 8-bit RGB, whatever its source depth or channel count (grayscale, alpha,
/// 16-bit, CMYK JPEG). OpenCV applies the EXIF orientation.
pub fn read_rgb(path: &Path) -> Result<RgbImage> {
    let name = path
        .to_str()
        .ok_or_else(|| Error::image(path, "path is not valid UTF-8"))?;
    if !path.is_file() {
        return Err(Error::image(path, "no such file"));
    }
    let bgr = imgcodecs::imread(name, imgcodecs::IMREAD_COLOR)
        .map_err(|e| Error::image(path, e.to_string()))?;
    if bgr.empty() {
        return Err(Error::image(
            path,
            "not a decodable image (corrupt or unsupported format)",
        ));
    }
    mat_to_rgb(&bgr).map_err(|e| Error::image(path, e.to_string()))
}

/// Converts an 8-bit 3-channel BGR `Mat` to an [`RgbImage`].
pub fn mat_to_rgb(bgr: &Mat) -> Result<RgbImage> {
    let mut rgb = Mat::default();
    imgproc::cvt_color_def(bgr, &mut rgb, imgproc::COLOR_BGR2RGB)?;
    let (width, height) = (rgb.cols() as usize, rgb.rows() as usize);
    let rgb = if rgb.is_continuous() {
        rgb
    } else {
        rgb.try_clone()?
    };
    let data = rgb.data_bytes()?.to_vec();
    Ok(RgbImage {
        width,
        height,
        data,
    })
}

/// Converts an [`RgbImage`] to an 8-bit 3-channel BGR `Mat` (what OpenCV functions expect).
pub fn rgb_to_mat(img: &RgbImage) -> Result<Mat> {
    let flat = Mat::from_slice(&img.data)?;
    let rgb = flat.reshape(3, img.height as i32)?.try_clone()?;
    let mut bgr = Mat::default();
    imgproc::cvt_color_def(&rgb, &mut bgr, imgproc::COLOR_RGB2BGR)?;
    Ok(bgr)
}

/// Writes an [`RgbImage`]; the format follows the extension (`.png`, `.jpg`, …).
pub fn write_rgb(path: &Path, img: &RgbImage) -> Result<()> {
    let name = path
        .to_str()
        .ok_or_else(|| Error::image(path, "path is not valid UTF-8"))?;
    let bgr = rgb_to_mat(img).map_err(|e| Error::image(path, e.to_string()))?;
    let ok = imgcodecs::imwrite(name, &bgr, &Vector::new())
        .map_err(|e| Error::image(path, e.to_string()))?;
    if !ok {
        return Err(Error::image(
            path,
            "OpenCV could not write this file (unknown extension?)",
        ));
    }
    Ok(())
}
