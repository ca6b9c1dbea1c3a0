//! Drawing labelled boxes onto a copy of an image (OpenCV), for prediction outputs a person looks
//! at.

use opencv::core::{Point, Rect, Scalar};
use opencv::imgproc;

use crate::decode::{rgb_from_mat, rgb_mat};
use crate::error::Result;
use crate::image::RgbImage;

/// A box to draw: corners in the image's pixels, a caption, an RGB colour.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledBox {
    /// `[x1, y1, x2, y2]`.
    pub xyxy: [f32; 4],
    /// Text drawn on a filled tab above the box (e.g. "dog 0.87").
    pub caption: String,
    /// RGB colour of the frame and tab.
    pub color: [u8; 3],
}

/// A distinct colour for class `i` (a fixed 20-colour palette, repeating).
pub fn class_color(i: usize) -> [u8; 3] {
    const PALETTE: [[u8; 3]; 20] = [
        [255, 56, 56],
        [255, 157, 151],
        [255, 112, 31],
        [255, 178, 29],
        [207, 210, 49],
        [72, 249, 10],
        [146, 204, 23],
        [61, 219, 134],
        [26, 147, 52],
        [0, 212, 187],
        [44, 153, 168],
        [0, 194, 255],
        [52, 69, 147],
        [100, 115, 255],
        [0, 24, 236],
        [132, 56, 255],
        [82, 0, 133],
        [203, 56, 255],
        [255, 149, 200],
        [255, 55, 199],
    ];
    PALETTE[i % PALETTE.len()]
}

/// A copy of `img` with each box framed and captioned; line width and font scale follow the
/// image size.
pub fn draw_boxes(img: &RgbImage, boxes: &[LabelledBox]) -> Result<RgbImage> {
    let mut mat = rgb_mat(img)?;
    let side = img.width.max(img.height) as f64;
    let thickness = ((side / 400.0).round() as i32).max(1);
    let font_scale = (side / 1000.0).max(0.35);
    for b in boxes {
        let [r, g, bl] = b.color;
        // The Mat holds RGB bytes, so the scalar is given in the same order.
        let color = Scalar::new(r as f64, g as f64, bl as f64, 0.0);
        let (x1, y1) = (b.xyxy[0].round() as i32, b.xyxy[1].round() as i32);
        let (x2, y2) = (b.xyxy[2].round() as i32, b.xyxy[3].round() as i32);
        imgproc::rectangle(
            &mut mat,
            Rect::new(x1, y1, (x2 - x1).max(1), (y2 - y1).max(1)),
            color,
            thickness,
            // Axis-aligned frames need no antialiasing: they stay the exact class colour.
            imgproc::LINE_8,
            0,
        )?;
        if b.caption.is_empty() {
            continue;
        }
        let mut baseline = 0;
        let text = imgproc::get_text_size(
            &b.caption,
            imgproc::FONT_HERSHEY_SIMPLEX,
            font_scale,
            thickness.max(1),
            &mut baseline,
        )?;
        // The tab sits above the box, or inside it when the box touches the top edge.
        let top = if y1 - text.height - 4 >= 0 {
            y1 - text.height - 4
        } else {
            y1
        };
        imgproc::rectangle(
            &mut mat,
            Rect::new(x1, top, text.width + 4, text.height + 4),
            color,
            imgproc::FILLED,
            imgproc::LINE_8,
            0,
        )?;
        imgproc::put_text(
            &mut mat,
            &b.caption,
            Point::new(x1 + 2, top + text.height + 1),
            imgproc::FONT_HERSHEY_SIMPLEX,
            font_scale,
            Scalar::new(255.0, 255.0, 255.0, 0.0),
            thickness.max(1),
            imgproc::LINE_AA,
            false,
        )?;
    }
    rgb_from_mat(&mat)
}

/// A copy of `img` with `lines` of text in its top-left corner, white on a dark tab (a
/// classifier's top classes on a video frame, as Ultralytics writes them).
pub fn draw_lines(img: &RgbImage, lines: &[String]) -> Result<RgbImage> {
    let mut mat = rgb_mat(img)?;
    let side = img.width.max(img.height) as f64;
    let thickness = ((side / 600.0).round() as i32).max(1);
    let font_scale = (side / 1200.0).max(0.4);
    let mut y = 4;
    for line in lines {
        let mut baseline = 0;
        let text = imgproc::get_text_size(
            line,
            imgproc::FONT_HERSHEY_SIMPLEX,
            font_scale,
            thickness,
            &mut baseline,
        )?;
        imgproc::rectangle(
            &mut mat,
            Rect::new(4, y, text.width + 8, text.height + baseline + 6),
            Scalar::new(30.0, 30.0, 30.0, 0.0),
            imgproc::FILLED,
            imgproc::LINE_8,
            0,
        )?;
        imgproc::put_text(
            &mut mat,
            line,
            Point::new(8, y + text.height + 3),
            imgproc::FONT_HERSHEY_SIMPLEX,
            font_scale,
            Scalar::new(255.0, 255.0, 255.0, 0.0),
            thickness,
            imgproc::LINE_AA,
            false,
        )?;
        y += text.height + baseline + 8;
    }
    rgb_from_mat(&mat)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_is_drawn_in_the_given_colour() {
        let img = RgbImage::filled(100, 80, [0, 0, 0]);
        let out = draw_boxes(
            &img,
            &[LabelledBox {
                xyxy: [20.0, 30.0, 60.0, 70.0],
                caption: String::new(),
                color: [255, 0, 0],
            }],
        )
        .expect("draw");
        let px = |x: usize, y: usize| {
            let i = (y * 100 + x) * 3;
            [out.data[i], out.data[i + 1], out.data[i + 2]]
        };
        assert_eq!(px(40, 30), [255, 0, 0]);
        assert_eq!(px(40, 50), [0, 0, 0]);
        assert_eq!(img.data.iter().map(|&v| v as u32).sum::<u32>(), 0);
    }
}
