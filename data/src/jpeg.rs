//! Region decoding of JPEGs with libjpeg(-turbo), for the training fast path: decode only the
//! random crop, at the DCT scale M/8 that still covers the output resolution. Rows above the crop
//! are only entropy-decoded, columns beside it are not transformed, rows below are never read.
//! The C side (`csrc/jpeg_region.c`) exists because libjpeg's fatal errors longjmp, which must not
//! cross Rust frames. CMYK/YCCK JPEGs and files with an EXIF rotation go through OpenCV instead.

use std::ffi::{c_char, c_int, c_uchar, c_ulong, CStr};
use std::path::Path;

use crate::error::{Error, Result};
use crate::image::RgbImage;

extern "C" {
    fn fv_jpeg_decode_region(
        data: *const c_uchar,
        len: c_ulong,
        scale_num: c_int,
        x0: c_int,
        y0: c_int,
        x1: c_int,
        y1: c_int,
        out: *mut c_uchar,
        out_x0: *mut c_int,
        out_width: *mut c_int,
        message: *mut c_char,
        message_len: c_int,
    ) -> c_int;
}

/// The size libjpeg decodes a `width`×`height` JPEG to at scale `m`/8.
pub fn scaled_size(width: usize, height: usize, m: usize) -> (usize, usize) {
    ((width * m).div_ceil(8), (height * m).div_ceil(8))
}

/// Decodes columns `x0..x1` and rows `y0..y1` of the JPEG scaled by `m`/8 (1 ≤ m ≤ 8), as RGB.
/// `Ok(None)`: a CMYK/YCCK JPEG, which the caller decodes with OpenCV.
pub fn decode_region(
    path: &Path,
    bytes: &[u8],
    m: usize,
    (x0, y0, x1, y1): (usize, usize, usize, usize),
) -> Result<Option<RgbImage>> {
    if !(1..=8).contains(&m) || x0 >= x1 || y0 >= y1 {
        return Err(Error::Invalid(format!(
            "JPEG region {x0}..{x1} × {y0}..{y1} at scale {m}/8"
        )));
    }
    let (w, h) = (x1 - x0, y1 - y0);
    // libjpeg widens the columns to whole blocks on the left: at most 16 more at any scale.
    let padded = w + 32;
    let mut out = vec![0u8; padded * h * 3];
    let mut message = [0 as c_char; 256];
    let (mut out_x0, mut out_width) = (0 as c_int, 0 as c_int);
    let to_int = |v: usize| c_int::try_from(v).map_err(|_| Error::image(path, "image too large"));
    // SAFETY: `bytes` and `out` outlive the call; `out` holds the widened region (checked below
    // against what the decoder reports before any read); `message` is NUL-terminated by snprintf.
    let status = unsafe {
        fv_jpeg_decode_region(
            bytes.as_ptr(),
            bytes.len() as c_ulong,
            m as c_int,
            to_int(x0)?,
            to_int(y0)?,
            to_int(x1)?,
            to_int(y1)?,
            out.as_mut_ptr(),
            &mut out_x0,
            &mut out_width,
            message.as_mut_ptr(),
            message.len() as c_int,
        )
    };
    match status {
        0 => {}
        1 => return Ok(None),
        _ => {
            // SAFETY: the C side wrote a NUL-terminated string into `message`.
            let text = unsafe { CStr::from_ptr(message.as_ptr()) };
            return Err(Error::image(
                path,
                format!("JPEG: {}", text.to_string_lossy()),
            ));
        }
    }
    let (out_x0, out_width) = (out_x0 as usize, out_width as usize);
    if out_x0 > x0 || out_x0 + out_width < x1 || out_width > padded {
        return Err(Error::image(
            path,
            format!(
                "JPEG decoder returned columns {out_x0}..{} for {x0}..{x1}",
                out_x0 + out_width
            ),
        ));
    }
    let skip = x0 - out_x0;
    let mut data = Vec::with_capacity(w * h * 3);
    for row in out.chunks_exact(out_width * 3).take(h) {
        data.extend_from_slice(&row[skip * 3..(skip + w) * 3]);
    }
    Ok(Some(RgbImage {
        width: w,
        height: h,
        data,
    }))
}
