//! torchvision's `BoxCoder`: a box as offsets from a reference box, `(dx, dy, dw, dh)` = weighted
//! centre shift in units of the reference's size and log size ratio. Faster R-CNN's RPN uses
//! weights (1, 1, 1, 1), its RoI heads (10, 10, 5, 5), SSD (10, 10, 5, 5); decoding clamps the
//! log sizes at log(1000/16) so `exp` cannot overflow.

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
