//! Decoding and encoding images and masks with OpenCV.
//!
//! OpenCV returns BGR; everything in ferrovis is RGB, so the swap happens here and only here.
//! Files are read into memory first and decoded with `imdecode`, so paths need not be UTF-8 and a
//! truncated JPEG (which libjpeg would silently decode as a half-grey picture) is caught by its
//! missing end-of-image marker.

use std::path::Path;

use opencv::core::{Mat, Vector, CV_16U, CV_8U};
use opencv::prelude::*;
use opencv::{imgcodecs, imgproc};

use crate::error::{Error, Result};
use crate::image::{Mask, RgbImage};

/// File extensions (lower case) treated as images by the data set scanners.
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "bmp", "tif", "tiff", "webp"];

/// True when `path` has one of [`IMAGE_EXTENSIONS`] (case-insensitive).
pub fn is_image_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        .unwrap_or(false)
}

/// Reads a whole file, naming it in the error.
pub fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    if !path.is_file() {
        return Err(Error::image(path, "no such file"));
    }
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

/// Checks that an encoded JPEG or PNG is complete (ends with its end marker). Other formats are
/// left to the decoder, which refuses truncated BMP/TIFF/WebP data by itself.
pub fn check_complete(path: &Path, bytes: &[u8]) -> Result<()> {
    const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    const PNG_IEND: &[u8] = b"IEND\xaeB`\x82";
    if bytes.is_empty() {
        return Err(Error::image(path, "empty file"));
    }
    if bytes.starts_with(&[0xff, 0xd8]) {
        // Some cameras pad after the end-of-image marker; only the marker's absence is fatal.
        let tail = &bytes[bytes.len().saturating_sub(64)..];
        if !tail.windows(2).any(|w| w == [0xff, 0xd9]) {
            return Err(Error::image(
                path,
                "truncated JPEG (no end-of-image marker)",
            ));
        }
    } else if bytes.starts_with(PNG_SIGNATURE) {
        let tail = &bytes[bytes.len().saturating_sub(64)..];
        if !tail.windows(PNG_IEND.len()).any(|w| w == PNG_IEND) {
            return Err(Error::image(path, "truncated PNG (no IEND chunk)"));
        }
    }
    Ok(())
}

/// Width and height from the file header, without decoding. This is the stored size: a JPEG whose
/// EXIF orientation turns it by 90° decodes (see [`read_rgb`]) with the two swapped.
pub fn image_size(path: &Path) -> Result<(usize, usize)> {
    let size = imagesize::size(path).map_err(|e| match e {
        // The header ended early: say so rather than "failed to fill whole buffer".
        imagesize::ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            match std::fs::metadata(path) {
                Ok(m) if m.len() == 0 => Error::image(path, "empty file"),
                _ => Error::image(path, "truncated image (the file ends inside its header)"),
            }
        }
        imagesize::ImageError::IoError(io) => Error::io(path, io),
        other => Error::image(path, format!("unreadable image header: {other}")),
    })?;
    if size.width == 0 || size.height == 0 {
        return Err(Error::image(path, "image has zero width or height"));
    }
    Ok((size.width, size.height))
}

/// Reads an image file as 8-bit RGB, whatever its source depth or channel count (grayscale, alpha,
/// 16-bit, CMYK JPEG); the EXIF orientation is applied.
pub fn read_rgb(path: &Path) -> Result<RgbImage> {
    let bytes = read_bytes(path)?;
    decode_rgb(path, &bytes)
}

/// Decodes an encoded image held in memory; `path` only names it in errors.
pub fn decode_rgb(path: &Path, bytes: &[u8]) -> Result<RgbImage> {
    check_complete(path, bytes)?;
    let bgr = imdecode(path, bytes, imgcodecs::IMREAD_COLOR)?;
    mat_to_rgb(&bgr).map_err(|e| Error::image(path, e.to_string()))
}

fn imdecode(path: &Path, bytes: &[u8], flags: i32) -> Result<Mat> {
    let buf = Vector::<u8>::from_slice(bytes);
    let mat = imgcodecs::imdecode(&buf, flags).map_err(|e| Error::image(path, e.to_string()))?;
    if mat.empty() {
        return Err(Error::image(
            path,
            "not a decodable image (corrupt or unsupported format)",
        ));
    }
    Ok(mat)
}

/// Reads a segmentation mask **unchanged**: one byte per pixel holding a class index (255 =
/// ignore). Palette PNGs (Pascal VOC `SegmentationClass`) give their palette indices, not colours;
/// grayscale stored as RGB is accepted when the three channels agree; 16-bit masks are accepted
/// when every value fits in a byte. Anything else (real colours, values > 255) is an error.
pub fn read_mask(path: &Path) -> Result<Mask> {
    let bytes = read_bytes(path)?;
    check_complete(path, &bytes)?;
    if let Some(mask) = palette_png_indices(path, &bytes)? {
        return Ok(mask);
    }
    let mat = imdecode(path, &bytes, imgcodecs::IMREAD_UNCHANGED)?;
    mat_to_mask(path, &mat)
}

/// A PNG with colour type 3 (palette) decoded to its index plane; `None` for any other file.
fn palette_png_indices(path: &Path, bytes: &[u8]) -> Result<Option<Mask>> {
    // IHDR is always first: signature (8) + length (4) + "IHDR" (4) + width, height (8) + depth (1).
    let is_palette_png = bytes.len() > 25
        && bytes.starts_with(b"\x89PNG")
        && &bytes[12..16] == b"IHDR"
        && bytes[25] == 3;
    if !is_palette_png {
        return Ok(None);
    }
    let bad = |e: png::DecodingError| Error::image(path, format!("palette PNG: {e}"));
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::IDENTITY);
    let mut reader = decoder.read_info().map_err(bad)?;
    let mut buf = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut buf).map_err(bad)?;
    let (width, height) = (frame.width as usize, frame.height as usize);
    let depth = frame.bit_depth as usize;
    let mut data = Vec::with_capacity(width * height);
    for row in buf.chunks(frame.line_size).take(height) {
        // Indices narrower than a byte are packed most significant bits first.
        let per_byte = 8 / depth;
        let mask = ((1u16 << depth) - 1) as u8;
        for x in 0..width {
            let byte = row[x / per_byte];
            let shift = 8 - depth * (x % per_byte + 1);
            data.push((byte >> shift) & mask);
        }
    }
    Ok(Some(Mask {
        width,
        height,
        data,
    }))
}

fn mat_to_mask(path: &Path, mat: &Mat) -> Result<Mask> {
    let bad = |reason: String| Error::image(path, reason);
    let mut mat = if mat.is_continuous() {
        mat.clone()
    } else {
        mat.try_clone()?
    };
    if mat.depth() == CV_16U {
        let mut max = 0f64;
        opencv::core::min_max_loc(
            &mat.reshape(1, 0)?,
            None,
            Some(&mut max),
            None,
            None,
            &opencv::core::no_array(),
        )?;
        if max > 255.0 {
            return Err(bad(format!(
                "16-bit mask holds value {max}; class indices must be at most 255"
            )));
        }
        let mut narrow = Mat::default();
        mat.convert_to_def(&mut narrow, CV_8U)?;
        mat = narrow;
    } else if mat.depth() != CV_8U {
        return Err(bad("mask must be 8- or 16-bit integers".into()));
    }
    let channels = mat.channels() as usize;
    let (width, height) = (mat.cols() as usize, mat.rows() as usize);
    let raw = mat.data_bytes()?;
    let data = match channels {
        1 => raw.to_vec(),
        3 | 4 => {
            let mut data = Vec::with_capacity(width * height);
            for px in raw.chunks_exact(channels) {
                if px[0] != px[1] || px[1] != px[2] {
                    return Err(bad(format!(
                        "mask has colour pixels ({}, {}, {}): expected one class index per pixel \
                         (a grayscale or palette PNG)",
                        px[2], px[1], px[0]
                    )));
                }
                data.push(px[0]);
            }
            data
        }
        n => return Err(bad(format!("mask has {n} channels"))),
    };
    Ok(Mask {
        width,
        height,
        data,
    })
}

/// Writes a mask as a single-channel PNG (or any lossless format OpenCV knows from the extension).
pub fn write_mask(path: &Path, mask: &Mask) -> Result<()> {
    let mat = mask_to_mat(mask)?;
    write_mat(path, &mat)
}

/// A `Mat` over a copy of `data`, `height` rows of `channels`-byte pixels.
fn mat_from_bytes(data: &[u8], channels: i32, height: usize) -> Result<Mat> {
    let flat = Mat::from_slice(data)?;
    Ok(flat.reshape(channels, height as i32)?.try_clone()?)
}

/// Width, height and the bytes of an 8-bit `Mat`, rows packed (regions of larger Mats included).
fn mat_pixels(mat: &Mat) -> Result<(usize, usize, Vec<u8>)> {
    let data = if mat.is_continuous() {
        mat.data_bytes()?.to_vec()
    } else {
        mat.try_clone()?.data_bytes()?.to_vec()
    };
    Ok((mat.cols() as usize, mat.rows() as usize, data))
}

/// Converts a [`Mask`] to a single-channel 8-bit `Mat`.
pub fn mask_to_mat(mask: &Mask) -> Result<Mat> {
    mat_from_bytes(&mask.data, 1, mask.height)
}

/// Converts a single-channel 8-bit `Mat` to a [`Mask`].
pub fn mat_to_single_channel(mat: &Mat) -> Result<Mask> {
    let (width, height, data) = mat_pixels(mat)?;
    Ok(Mask {
        width,
        height,
        data,
    })
}

/// Converts an 8-bit 3-channel BGR `Mat` to an [`RgbImage`].
pub fn mat_to_rgb(bgr: &Mat) -> Result<RgbImage> {
    let mut rgb = Mat::default();
    imgproc::cvt_color_def(bgr, &mut rgb, imgproc::COLOR_BGR2RGB)?;
    rgb_from_mat(&rgb)
}

/// Converts an [`RgbImage`] to an 8-bit 3-channel BGR `Mat` (what OpenCV functions expect).
pub fn rgb_to_mat(img: &RgbImage) -> Result<Mat> {
    let mut bgr = Mat::default();
    imgproc::cvt_color_def(&rgb_mat(img)?, &mut bgr, imgproc::COLOR_RGB2BGR)?;
    Ok(bgr)
}

/// An [`RgbImage`] as a 3-channel `Mat` in RGB order, for OpenCV functions that ignore channel
/// order (resize, warps, flips) so no BGR swap is paid.
pub fn rgb_mat(img: &RgbImage) -> Result<Mat> {
    mat_from_bytes(&img.data, 3, img.height)
}

/// The inverse of [`rgb_mat`]: a 3-channel 8-bit `Mat` already in RGB order.
pub fn rgb_from_mat(mat: &Mat) -> Result<RgbImage> {
    let (width, height, data) = mat_pixels(mat)?;
    Ok(RgbImage {
        width,
        height,
        data,
    })
}

/// Writes an [`RgbImage`]; the format follows the extension (`.png`, `.jpg`, …).
pub fn write_rgb(path: &Path, img: &RgbImage) -> Result<()> {
    let bgr = rgb_to_mat(img).map_err(|e| Error::image(path, e.to_string()))?;
    write_mat(path, &bgr)
}

fn write_mat(path: &Path, mat: &Mat) -> Result<()> {
    let name = path
        .to_str()
        .ok_or_else(|| Error::image(path, "path is not valid UTF-8"))?;
    let ok = imgcodecs::imwrite(name, mat, &Vector::new())
        .map_err(|e| Error::image(path, e.to_string()))?;
    if !ok {
        return Err(Error::image(
            path,
            "OpenCV could not write this file (unknown extension?)",
        ));
    }
    Ok(())
}

/// Checks an image without decoding it: a readable header with a non-zero size (see
/// [`image_size`]) and, for JPEG and PNG, an end marker in the last bytes (see [`check_complete`]).
/// Cheap enough for a scan of every file in a data set.
pub fn verify_image(path: &Path) -> Result<(usize, usize)> {
    use std::io::{Read, Seek, SeekFrom};
    let size = image_size(path)?;
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut head = [0u8; 8];
    let n = file.read(&mut head).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let tail_len = len.min(64);
    file.seek(SeekFrom::Start(len - tail_len))
        .map_err(|e| Error::io(path, e))?;
    let mut tail = Vec::with_capacity(tail_len as usize);
    file.read_to_end(&mut tail)
        .map_err(|e| Error::io(path, e))?;
    // check_complete looks at the start for the format and the end for the marker.
    let mut probe = head[..n].to_vec();
    probe.extend_from_slice(&tail);
    check_complete(path, &probe)?;
    Ok(size)
}

/// The EXIF orientation tag (1–8) of an encoded JPEG, if it has one.
fn exif_orientation(bytes: &[u8]) -> Option<u32> {
    let exif = exif::Reader::new()
        .read_from_container(&mut std::io::Cursor::new(bytes))
        .ok()?;
    exif.get_field(exif::Tag::Orientation, exif::In::PRIMARY)?
        .value
        .get_uint(0)
}

/// What the headers of an encoded image say, without decoding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// Width as [`decode_rgb`] returns it (EXIF orientation applied).
    pub width: usize,
    /// Height as [`decode_rgb`] returns it.
    pub height: usize,
    /// The file is a JPEG.
    pub jpeg: bool,
    /// The EXIF orientation (1 = stored upright; 5–8 turn by 90°).
    pub orientation: u32,
}

/// Reads the headers of an encoded image: its displayed size and orientation.
pub fn probe(path: &Path, bytes: &[u8]) -> Result<Probe> {
    if bytes.is_empty() {
        return Err(Error::image(path, "empty file"));
    }
    let size = imagesize::blob_size(bytes).map_err(|e| match e {
        // The header ended early: say so rather than "failed to fill whole buffer".
        imagesize::ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            Error::image(path, "truncated image (the file ends inside its header)")
        }
        other => Error::image(path, format!("unreadable image header: {other}")),
    })?;
    let (w, h) = (size.width, size.height);
    if w == 0 || h == 0 {
        return Err(Error::image(path, "image has zero width or height"));
    }
    let jpeg = bytes.starts_with(&[0xff, 0xd8]);
    let orientation = if jpeg {
        exif_orientation(bytes).unwrap_or(1)
    } else {
        1
    };
    let (width, height) = if (5..=8).contains(&orientation) {
        (h, w)
    } else {
        (w, h)
    };
    Ok(Probe {
        width,
        height,
        jpeg,
        orientation,
    })
}

/// Decodes an encoded image to an OpenCV BGR `Mat`, a JPEG at 1/`factor` scale (2, 4 or 8) using
/// libjpeg's DCT scaling, which skips most of the decoding work: the output is then
/// `ceil(w / factor)` × `ceil(h / factor)`. Other formats, and factor 1, decode at full size.
/// EXIF orientation is applied.
pub fn decode_bgr(path: &Path, bytes: &[u8], factor: usize) -> Result<Mat> {
    let jpeg = bytes.starts_with(&[0xff, 0xd8]);
    let flags = match (jpeg, factor) {
        (_, 1) | (false, 2 | 4 | 8) => imgcodecs::IMREAD_COLOR,
        (true, 2) => imgcodecs::IMREAD_REDUCED_COLOR_2,
        (true, 4) => imgcodecs::IMREAD_REDUCED_COLOR_4,
        (true, 8) => imgcodecs::IMREAD_REDUCED_COLOR_8,
        (_, other) => {
            return Err(Error::Invalid(format!(
                "reduced decoding factor must be 1, 2, 4 or 8, not {other}"
            )))
        }
    };
    check_complete(path, bytes)?;
    imdecode(path, bytes, flags)
}

/// Copies a BGR `Mat` (or a region of one) into an [`RgbImage`], swapping the channels on the way.
pub fn bgr_mat_to_rgb(bgr: &Mat) -> Result<RgbImage> {
    let (width, height) = (bgr.cols() as usize, bgr.rows() as usize);
    let mut data = Vec::with_capacity(width * height * 3);
    for y in 0..height {
        let row = bgr.ptr(y as i32)?;
        // SAFETY: row `y` of an 8-bit 3-channel Mat holds `width * 3` bytes from `ptr(y)`,
        // whether or not the Mat is a region of a larger one.
        let row = unsafe { std::slice::from_raw_parts(row, width * 3) };
        for px in row.chunks_exact(3) {
            data.extend_from_slice(&[px[2], px[1], px[0]]);
        }
    }
    Ok(RgbImage {
        width,
        height,
        data,
    })
}
