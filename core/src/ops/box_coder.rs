//! torchvision's `BoxCoder`: a box as offsets from a reference box, `(dx, dy, dw, dh)` = weighted
//! centre shift in units of the reference's size and log size ratio. Faster R-CNN's RPN uses
//! weights (1, 1, 1, 1), its RoI heads (10, 10, 5, 5), SSD (10, 10, 5, 5); decoding clamps the
//! log sizes at log(1000/16) so `exp` cannot overflow.
//!
//! [`BoxLinearCoder`] is torchvision's FCOS coder: a box as the distances from a reference box's
//! centre to its four sides, divided by the reference's size.

use tch::Tensor;

use crate::error::{Error, Result};

/// Encodes boxes against references and decodes them back, as torchvision does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoxCoder {
    /// `(wx, wy, ww, wh)`: the offsets are multiplied by these when encoding.
    pub weights: [f64; 4],
    /// Largest `dw`, `dh` decoded (torchvision's `bbox_xform_clip`).
    pub bbox_xform_clip: f64,
}

impl BoxCoder {
    /// With `weights` and torchvision's clip, log(1000/16).
    pub fn new(weights: [f64; 4]) -> Self {
        BoxCoder {
            weights,
            bbox_xform_clip: (1000.0f64 / 16.0).ln(),
        }
    }

    /// The offsets `(N, 4)` that take each of `proposals` to the matching `reference_boxes`
    /// (torchvision's `encode_single`).
    pub fn encode(&self, reference_boxes: &Tensor, proposals: &Tensor) -> Result<Tensor> {
        check_pair(reference_boxes, "reference_boxes", proposals, "proposals")?;
        let [wx, wy, ww, wh] = self.weights;
        let col = |t: &Tensor, i: i64| t.select(1, i).unsqueeze(1);
        let ex_w = col(proposals, 2) - col(proposals, 0);
        let ex_h = col(proposals, 3) - col(proposals, 1);
        let ex_cx = col(proposals, 0) + &ex_w * 0.5;
        let ex_cy = col(proposals, 1) + &ex_h * 0.5;
        let gt_w = col(reference_boxes, 2) - col(reference_boxes, 0);
        let gt_h = col(reference_boxes, 3) - col(reference_boxes, 1);
        let gt_cx = col(reference_boxes, 0) + &gt_w * 0.5;
        let gt_cy = col(reference_boxes, 1) + &gt_h * 0.5;
        let dx = (gt_cx - ex_cx) * wx / &ex_w;
        let dy = (gt_cy - ex_cy) * wy / &ex_h;
        let dw = (gt_w / ex_w).log() * ww;
        let dh = (gt_h / ex_h).log() * wh;
        Ok(Tensor::cat(&[dx, dy, dw, dh], 1))
    }

    /// The boxes `(N, 4k)` that offsets `rel_codes` `(N, 4k)` (k boxes per reference, e.g. one per
    /// class) give from `boxes` `(N, 4)` (torchvision's `decode_single`).
    pub fn decode(&self, rel_codes: &Tensor, boxes: &Tensor) -> Result<Tensor> {
        let size = rel_codes.size();
        if size.len() != 2 || size[1] % 4 != 0 || size[1] == 0 {
            return Err(Error::Invalid(format!(
                "rel_codes: expected shape (N, 4k), got {size:?}"
            )));
        }
        let bs = boxes.size();
        if bs.len() != 2 || bs[1] != 4 || bs[0] != size[0] {
            return Err(Error::Invalid(format!(
                "boxes: expected shape ({}, 4) (one per row of rel_codes), got {bs:?}",
                size[0]
            )));
        }
        let boxes = boxes.to_kind(rel_codes.kind());
        let widths = boxes.select(1, 2) - boxes.select(1, 0);
        let heights = boxes.select(1, 3) - boxes.select(1, 1);
        let ctr_x = boxes.select(1, 0) + &widths * 0.5;
        let ctr_y = boxes.select(1, 1) + &heights * 0.5;
        let [wx, wy, ww, wh] = self.weights;
        // Every 4th column from `start`: the k boxes' dx (or dy, dw, dh).
        let every4 = |start: i64| rel_codes.slice(1, start, size[1], 4);
        let dx = every4(0) / wx;
        let dy = every4(1) / wy;
        let dw = (every4(2) / ww).clamp_max(self.bbox_xform_clip);
        let dh = (every4(3) / wh).clamp_max(self.bbox_xform_clip);
        let pred_ctr_x = dx * widths.unsqueeze(1) + ctr_x.unsqueeze(1);
        let pred_ctr_y = dy * heights.unsqueeze(1) + ctr_y.unsqueeze(1);
        let half_w = dw.exp() * widths.unsqueeze(1) * 0.5;
        let half_h = dh.exp() * heights.unsqueeze(1) * 0.5;
        Ok(Tensor::stack(
            &[
                &pred_ctr_x - &half_w,
                &pred_ctr_y - &half_h,
                pred_ctr_x + half_w,
                pred_ctr_y + half_h,
            ],
            2,
        )
        .flatten(1, -1))
    }
}

/// torchvision's `BoxLinearCoder` (FCOS): a box as the distances `(l, t, r, b)` from a reference
/// box's centre to its left, top, right and bottom sides, divided by the reference's width and
/// height when `normalize_by_size` (FCOS's choice). Both directions work on any leading shape
/// `(…, 4)` and are element-wise, so a subset of rows codes exactly as it would in the whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoxLinearCoder {
    /// Divide the distances by the reference's width (l, r) and height (t, b).
    pub normalize_by_size: bool,
}

impl BoxLinearCoder {
    /// The coder, normalising by the reference's size or not.
    pub fn new(normalize_by_size: bool) -> Self {
        BoxLinearCoder { normalize_by_size }
    }

    /// The distances `(…, 4)` from the centres of `reference_boxes` to the sides of `proposals`
    /// (both `(…, 4)`, `[x1, y1, x2, y2]`).
    pub fn encode(&self, reference_boxes: &Tensor, proposals: &Tensor) -> Result<Tensor> {
        check_last4(reference_boxes, "reference_boxes")?;
        check_last4(proposals, "proposals")?;
        let r = |i: i64| reference_boxes.select(-1, i);
        let p = |i: i64| proposals.select(-1, i);
        let ctr_x = (r(0) + r(2)) * 0.5;
        let ctr_y = (r(1) + r(3)) * 0.5;
        let targets = Tensor::stack(
            &[&ctr_x - p(0), &ctr_y - p(1), p(2) - &ctr_x, p(3) - &ctr_y],
            -1,
        );
        if !self.normalize_by_size {
            return Ok(targets);
        }
        let (w, h) = (r(2) - r(0), r(3) - r(1));
        Ok(targets / Tensor::stack(&[&w, &h, &w, &h], -1))
    }

    /// The boxes `(…, 4)` that distances `rel_codes` give from the centres of `boxes` (same
    /// leading shape).
    pub fn decode(&self, rel_codes: &Tensor, boxes: &Tensor) -> Result<Tensor> {
        check_last4(rel_codes, "rel_codes")?;
        check_last4(boxes, "boxes")?;
        let boxes = boxes.to_kind(rel_codes.kind());
        let b = |i: i64| boxes.select(-1, i);
        let ctr_x = (b(0) + b(2)) * 0.5;
        let ctr_y = (b(1) + b(3)) * 0.5;
        let rel = if self.normalize_by_size {
            let (w, h) = (b(2) - b(0), b(3) - b(1));
            rel_codes * Tensor::stack(&[&w, &h, &w, &h], -1)
        } else {
            rel_codes.shallow_clone()
        };
        let d = |i: i64| rel.select(-1, i);
        Ok(Tensor::stack(
            &[&ctr_x - d(0), &ctr_y - d(1), &ctr_x + d(2), &ctr_y + d(3)],
            -1,
        ))
    }
}

fn check_last4(t: &Tensor, name: &str) -> Result<()> {
    let s = t.size();
    if s.last() != Some(&4) {
        return Err(Error::Invalid(format!(
            "{name}: expected boxes of shape (…, 4), got {s:?}"
        )));
    }
    Ok(())
}

fn check_pair(a: &Tensor, a_name: &str, b: &Tensor, b_name: &str) -> Result<()> {
    for (t, name) in [(a, a_name), (b, b_name)] {
        let s = t.size();
        if s.len() != 2 || s[1] != 4 {
            return Err(Error::Invalid(format!(
                "{name}: expected boxes of shape (N, 4), got {s:?}"
            )));
        }
    }
    if a.size()[0] != b.size()[0] {
        return Err(Error::Invalid(format!(
            "{a_name} and {b_name}: {} and {} boxes (one reference per proposal expected)",
            a.size()[0],
            b.size()[0]
        )));
    }
    Ok(())
}
