//! SSD's training augmentation, as torchvision's detection references define it (presets `ssd`:
//! photometric distortion, zoom-out, IoU crop, horizontal flip; `ssdlite`: IoU crop and flip),
//! after the SSD paper's section 2.2 "data augmentation". The boxes move with the image; boxes
//! whose centre leaves a crop are dropped.

use rand::seq::SliceRandom;
use rand::Rng as _;

use super::color::ColorJitter;
use super::detect::{hflip_sample, BoxLabel, DetectionSample};
use super::geometry::{crop, pad, Rect};
use crate::error::Result;
use crate::rng::Rng;

/// The Caffe/ImageNet mean colour SSD's zoom-out fills with (123, 117, 104).
pub const MEAN_FILL: [u8; 3] = [123, 117, 104];

/// The minimum IoUs [`iou_crop`] draws from; 1.0 means "keep the image whole".
pub const IOU_CROP_OPTIONS: [f32; 7] = [0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0];

/// Which of the steps run, in this order: photometric distortion, zoom-out, IoU crop, flip.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SsdAugment {
    /// torchvision's `RandomPhotometricDistort` with its defaults.
    pub photometric: bool,
    /// `RandomZoomOut` onto a canvas of this colour (probability 0.5, sides 1–4×).
    pub zoom_out: Option<[u8; 3]>,
    /// `RandomIoUCrop` with its defaults.
    pub iou_crop: bool,
    /// Probability of a left-right flip.
    pub fliplr: f64,
}

impl SsdAugment {
    /// torchvision's `ssd` preset (SSD300).
    pub fn ssd() -> Self {
        SsdAugment {
            photometric: true,
            zoom_out: Some(MEAN_FILL),
            iou_crop: true,
            fliplr: 0.5,
        }
    }

    /// torchvision's `ssdlite` preset.
    pub fn ssdlite() -> Self {
        SsdAugment {
            photometric: false,
            zoom_out: None,
            iou_crop: true,
            fliplr: 0.5,
        }
    }

    /// The preset by torchvision's name (`ssd`, `ssdlite`, or `hflip`: flips only).
    pub fn by_name(name: &str) -> Option<Self> {
        match name {
            "ssd" => Some(Self::ssd()),
            "ssdlite" => Some(Self::ssdlite()),
            "hflip" => Some(SsdAugment {
                photometric: false,
                zoom_out: None,
                iou_crop: false,
                fliplr: 0.5,
            }),
            _ => None,
        }
    }

    /// Applies the steps to `sample`.
    pub fn apply(&self, mut sample: DetectionSample, rng: &mut Rng) -> Result<DetectionSample> {
        if self.photometric {
            photometric_distort(&mut sample, rng);
        }
        if let Some(fill) = self.zoom_out {
            sample = zoom_out(sample, fill, 0.5, rng);
        }
        if self.iou_crop {
            sample = iou_crop(sample, rng)?;
        }
        if self.fliplr > 0.0 && rng.gen::<f64>() < self.fliplr {
            hflip_sample(&mut sample);
        }
        Ok(sample)
    }
}

/// torchvision's `RandomPhotometricDistort`: each with probability 0.5, brightness ×[0.875,
/// 1.125], contrast ×[0.5, 1.5] (before or after the next two, at random), saturation ×[0.5,
/// 1.5], hue shift [−0.05, 0.05], and a random permutation of the channels.
pub fn photometric_distort(sample: &mut DetectionSample, rng: &mut Rng) {
    let r: [f64; 7] = std::array::from_fn(|_| rng.gen());
    let one = |jitter: ColorJitter, img: &mut crate::image::RgbImage, rng: &mut Rng| {
        jitter.apply(img, rng)
    };
    let img = &mut sample.image;
    let contrast = ColorJitter {
        contrast: 0.5,
        ..Default::default()
    };
    if r[0] < 0.5 {
        one(
            ColorJitter {
                brightness: 0.125,
                ..Default::default()
            },
            img,
            rng,
        );
    }
    let contrast_before = r[1] < 0.5;
    if contrast_before && r[2] < 0.5 {
        one(contrast, img, rng);
    }
    if r[3] < 0.5 {
        one(
            ColorJitter {
                saturation: 0.5,
                ..Default::default()
            },
            img,
            rng,
        );
    }
    if r[4] < 0.5 {
        one(
            ColorJitter {
                hue: 0.05,
                ..Default::default()
            },
            img,
            rng,
        );
    }
    if !contrast_before && r[5] < 0.5 {
        one(contrast, img, rng);
    }
    if r[6] < 0.5 {
        let mut order = [0usize, 1, 2];
        order.shuffle(rng);
        for px in img.data.chunks_exact_mut(3) {
            let p = [px[0], px[1], px[2]];
            for (c, &o) in order.iter().enumerate() {
                px[c] = p[o];
            }
        }
    }
}

/// torchvision's `RandomZoomOut`: with probability `p`, the image placed at a random position on
/// a `fill` canvas `r` times its size (`r` uniform in [1, 4], sides truncated to whole pixels).
pub fn zoom_out(sample: DetectionSample, fill: [u8; 3], p: f64, rng: &mut Rng) -> DetectionSample {
    if rng.gen::<f64>() >= p {
        return sample;
    }
    let (w, h) = (sample.image.width, sample.image.height);
    let r = 1.0 + 3.0 * rng.gen::<f64>();
    let (canvas_w, canvas_h) = ((w as f64 * r) as usize, (h as f64 * r) as usize);
    let left = ((canvas_w - w) as f64 * rng.gen::<f64>()) as usize;
    let top = ((canvas_h - h) as f64 * rng.gen::<f64>()) as usize;
    let image = pad(
        &sample.image,
        left,
        top,
        canvas_w - left - w,
        canvas_h - top - h,
        fill,
    );
    let (dx, dy) = (left as f32, top as f32);
    let boxes = sample
        .boxes
        .iter()
        .map(|b| BoxLabel {
            class: b.class,
            xyxy: [
                b.xyxy[0] + dx,
                b.xyxy[1] + dy,
                b.xyxy[2] + dx,
                b.xyxy[3] + dy,
            ],
        })
        .collect();
    DetectionSample { image, boxes }
}

/// torchvision's `RandomIoUCrop` (the SSD paper's patch sampling): a minimum IoU drawn from
/// [`IOU_CROP_OPTIONS`] (1.0 keeps the image), then up to 40 trials of a crop with sides 0.3–1×
/// the image's and aspect ratio 0.5–2 at a random position, accepted when it holds the centre
/// of some box and one of those boxes overlaps it at least that much. The boxes with their
/// centre inside are kept, shifted and clipped to the crop. An image without boxes is returned
/// as it is; when every trial fails, a new minimum IoU is drawn.
pub fn iou_crop(sample: DetectionSample, rng: &mut Rng) -> Result<DetectionSample> {
    if sample.boxes.is_empty() {
        return Ok(sample);
    }
    let (w, h) = (sample.image.width, sample.image.height);
    loop {
        let min_iou = IOU_CROP_OPTIONS[rng.gen_range(0..IOU_CROP_OPTIONS.len())];
        if min_iou >= 1.0 {
            return Ok(sample);
        }
        for _ in 0..40 {
            let (rw, rh) = (0.3 + 0.7 * rng.gen::<f64>(), 0.3 + 0.7 * rng.gen::<f64>());
            let (new_w, new_h) = ((w as f64 * rw) as usize, (h as f64 * rh) as usize);
            if new_h == 0 || !(0.5..=2.0).contains(&(new_w as f64 / new_h as f64)) {
                continue;
            }
            let left = ((w - new_w) as f64 * rng.gen::<f64>()) as usize;
            let top = ((h - new_h) as f64 * rng.gen::<f64>()) as usize;
            if new_w == 0 {
                continue;
            }
            let (l, t, r, b) = (
                left as f32,
                top as f32,
                (left + new_w) as f32,
                (top + new_h) as f32,
            );
            let inside: Vec<&BoxLabel> = sample
                .boxes
                .iter()
                .filter(|bx| {
                    let cx = 0.5 * (bx.xyxy[0] + bx.xyxy[2]);
                    let cy = 0.5 * (bx.xyxy[1] + bx.xyxy[3]);
                    l < cx && cx < r && t < cy && cy < b
                })
                .collect();
            if inside.is_empty() {
                continue;
            }
            let best = inside
                .iter()
                .map(|bx| iou(&bx.xyxy, &[l, t, r, b]))
                .fold(f32::MIN, f32::max);
            if best < min_iou {
                continue;
            }
            let boxes = inside
                .iter()
                .map(|bx| BoxLabel {
                    class: bx.class,
                    xyxy: [
                        (bx.xyxy[0] - l).clamp(0.0, new_w as f32),
                        (bx.xyxy[1] - t).clamp(0.0, new_h as f32),
                        (bx.xyxy[2] - l).clamp(0.0, new_w as f32),
                        (bx.xyxy[3] - t).clamp(0.0, new_h as f32),
                    ],
                })
                .collect();
            let image = crop(
                &sample.image,
                Rect {
                    left,
                    top,
                    width: new_w,
                    height: new_h,
                },
            )?;
            return Ok(DetectionSample { image, boxes });
        }
    }
}

fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let area = |x: &[f32; 4]| (x[2] - x[0]) * (x[3] - x[1]);
    inter / (area(a) + area(b) - inter)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::RgbImage;
    use crate::rng::derive;

    fn sample(w: usize, h: usize, boxes: &[[f32; 4]]) -> DetectionSample {
        // A gradient, so a crop's pixels say where it came from.
        let mut image = RgbImage::filled(w, h, [0, 0, 0]);
        for y in 0..h {
            for x in 0..w {
                image.set_pixel(x, y, [x as u8, y as u8, 7]);
            }
        }
        DetectionSample {
            image,
            boxes: boxes
                .iter()
                .enumerate()
                .map(|(i, &xyxy)| BoxLabel { class: i, xyxy })
                .collect(),
        }
    }

    #[test]
    fn zoom_out_places_the_image_on_a_mean_canvas_and_shifts_the_boxes() {
        let s = sample(40, 30, &[[5.0, 6.0, 20.0, 25.0]]);
        let mut zoomed = 0;
        for seed in 0..20 {
            let mut rng = derive(seed, &[]);
            let out = zoom_out(s.clone(), MEAN_FILL, 0.5, &mut rng);
            if out.image.width == 40 && out.image.height == 30 {
                assert_eq!(out, s, "no zoom leaves the sample alone");
                continue;
            }
            zoomed += 1;
            let (w, h) = (out.image.width, out.image.height);
            assert!(
                (40..=160).contains(&w) && (30..=120).contains(&h),
                "{w}x{h}"
            );
            // The same factor on both sides, up to truncation.
            assert!((w as f64 / 40.0 - h as f64 / 30.0).abs() < 0.04, "{w}x{h}");
            let b = out.boxes[0].xyxy;
            let (dx, dy) = (b[0] - 5.0, b[1] - 6.0);
            assert_eq!([b[2] - dx, b[3] - dy], [20.0, 25.0]);
            // The original pixel (x, y) = (3, 4) moved by (dx, dy); the corner is the fill.
            let (x, y) = (3 + dx as usize, 4 + dy as usize);
            assert_eq!(out.image.pixel(x, y), [3, 4, 7]);
            if dx > 0.0 {
                assert_eq!(out.image.pixel(0, y), MEAN_FILL);
            }
        }
        assert!(
            (5..=15).contains(&zoomed),
            "{zoomed} of 20 zoomed at p = 0.5"
        );
    }

    #[test]
    fn iou_crop_keeps_boxes_whose_centre_is_inside_shifted_and_clipped() {
        // Box 0 on the left, box 1 on the right: a crop holding one centre drops the other.
        let s = sample(100, 80, &[[2.0, 2.0, 30.0, 30.0], [60.0, 40.0, 98.0, 78.0]]);
        let mut cropped = 0;
        for seed in 0..40 {
            let mut rng = derive(seed, &[1]);
            let out = iou_crop(s.clone(), &mut rng).unwrap();
            if out == s {
                continue;
            }
            cropped += 1;
            let (w, h) = (out.image.width as f32, out.image.height as f32);
            assert!((30.0..=100.0).contains(&w) && (24.0..=80.0).contains(&h));
            assert!((0.5..=2.0).contains(&(w / h)), "{w}x{h}");
            // The crop's origin in the original, from the gradient's pixel values.
            let [ox, oy, _] = out.image.pixel(0, 0);
            assert!(!out.boxes.is_empty());
            for b in &out.boxes {
                let orig = s.boxes[b.class].xyxy;
                let (cx, cy) = (0.5 * (orig[0] + orig[2]), 0.5 * (orig[1] + orig[3]));
                assert!(
                    ox as f32 <= cx
                        && cx <= ox as f32 + w
                        && oy as f32 <= cy
                        && cy <= oy as f32 + h
                );
                let expect = [
                    (orig[0] - ox as f32).clamp(0.0, w),
                    (orig[1] - oy as f32).clamp(0.0, h),
                    (orig[2] - ox as f32).clamp(0.0, w),
                    (orig[3] - oy as f32).clamp(0.0, h),
                ];
                assert_eq!(b.xyxy, expect);
            }
            // A dropped box had its centre outside.
            for (i, orig) in s.boxes.iter().enumerate() {
                if out.boxes.iter().all(|b| b.class != i) {
                    let o = orig.xyxy;
                    let (cx, cy) = (0.5 * (o[0] + o[2]), 0.5 * (o[1] + o[3]));
                    let inside = (ox as f32) < cx
                        && cx < ox as f32 + w
                        && (oy as f32) < cy
                        && cy < oy as f32 + h;
                    assert!(!inside, "box {i} dropped with its centre inside");
                }
            }
        }
        // 1.0 is one option of seven: most draws crop.
        assert!(cropped >= 25, "{cropped} of 40 cropped");
    }

    #[test]
    fn iou_crop_leaves_an_image_without_boxes_alone() {
        let s = sample(50, 50, &[]);
        assert_eq!(iou_crop(s.clone(), &mut derive(3, &[])).unwrap(), s);
    }

    #[test]
    fn photometric_distortion_changes_colours_only() {
        let s = sample(20, 10, &[[1.0, 1.0, 5.0, 5.0]]);
        let mut changed = 0;
        for seed in 0..10 {
            let mut out = s.clone();
            photometric_distort(&mut out, &mut derive(seed, &[2]));
            assert_eq!((out.image.width, out.image.height), (20, 10));
            assert_eq!(out.boxes, s.boxes);
            changed += usize::from(out.image != s.image);
        }
        assert!(changed >= 8, "{changed} of 10 changed");
    }

    #[test]
    fn presets_are_torchvisions() {
        assert_eq!(SsdAugment::by_name("ssd"), Some(SsdAugment::ssd()));
        let lite = SsdAugment::by_name("ssdlite").unwrap();
        assert!(lite.iou_crop && !lite.photometric && lite.zoom_out.is_none());
        assert!(SsdAugment::by_name("lsj").is_none());
    }
}
