//! The box operations torchvision's detectors use (`torchvision.ops.boxes`), on tensors and with
//! torchvision's semantics, so a Faster R-CNN or SSD built on them keeps and drops the same boxes:
//! boxes are `(N, 4)` floating-point tensors, `[x1, y1, x2, y2]` unless said otherwise.
//!
//! Every function checks its arguments (shapes, NaN, reversed boxes where they matter) and returns
//! an error naming the argument: none panics on bad input.

use tch::{Device, Kind, Tensor};

use super::boxes::{nms as greedy_nms, BoxXyxy};
use crate::error::{Error, Result};

/// A box layout, as torchvision's `box_convert` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoxFormat {
    /// Corners `[x1, y1, x2, y2]`.
    Xyxy,
    /// Corner and size `[x, y, w, h]`.
    Xywh,
    /// Centre and size `[cx, cy, w, h]`.
    Cxcywh,
}

/// Checks that `t` is `(N, 4)` and floating point; `name` is the argument's name for the error.
pub(crate) fn check_boxes(t: &Tensor, name: &str) -> Result<()> {
    let size = t.size();
    if size.len() != 2 || size[1] != 4 {
        return Err(Error::Invalid(format!(
            "{name}: expected boxes of shape (N, 4), got {size:?}"
        )));
    }
    if !t.is_floating_point() {
        return Err(Error::Invalid(format!(
            "{name}: expected floating-point boxes, got {:?}",
            t.kind()
        )));
    }
    Ok(())
}

/// Like [`check_boxes`], and every coordinate finite with `x2 ≥ x1`, `y2 ≥ y1`.
pub(crate) fn check_xyxy(t: &Tensor, name: &str) -> Result<()> {
    check_boxes(t, name)?;
    if t.numel() == 0 {
        return Ok(());
    }
    let finite = t.isfinite().all().int64_value(&[]) == 1;
    if !finite {
        return Err(Error::Invalid(format!(
            "{name}: a box has a NaN or infinite coordinate"
        )));
    }
    let w = t.select(1, 2) - t.select(1, 0);
    let h = t.select(1, 3) - t.select(1, 1);
    let reversed = w.lt(0.0).logical_or(&h.lt(0.0)).nonzero();
    if reversed.size()[0] > 0 {
        let i = reversed.int64_value(&[0, 0]);
        return Err(Error::Invalid(format!(
            "{name}: box {i} is reversed (x2 < x1 or y2 < y1): expected [x1, y1, x2, y2]"
        )));
    }
    Ok(())
}

/// Checks a per-box vector (`scores`, `idxs`) of length `n`.
fn check_vector(t: &Tensor, name: &str, n: i64) -> Result<()> {
    let size = t.size();
    if size != [n] {
        return Err(Error::Invalid(format!(
            "{name}: expected shape ({n},) (one per box), got {size:?}"
        )));
    }
    Ok(())
}

/// Converts boxes between layouts (torchvision's `box_convert`).
pub fn box_convert(boxes: &Tensor, from: BoxFormat, to: BoxFormat) -> Result<Tensor> {
    check_boxes(boxes, "boxes")?;
    if from == to {
        return Ok(boxes.shallow_clone());
    }
    let c = |i: i64| boxes.select(1, i);
    let xyxy = match from {
        BoxFormat::Xyxy => boxes.shallow_clone(),
        BoxFormat::Xywh => Tensor::stack(&[c(0), c(1), c(0) + c(2), c(1) + c(3)], 1),
        BoxFormat::Cxcywh => {
            let (hw, hh) = (c(2) * 0.5, c(3) * 0.5);
            Tensor::stack(&[c(0) - &hw, c(1) - &hh, c(0) + hw, c(1) + hh], 1)
        }
    };
    let x = |i: i64| xyxy.select(1, i);
    Ok(match to {
        BoxFormat::Xyxy => xyxy.shallow_clone(),
        BoxFormat::Xywh => Tensor::stack(&[x(0), x(1), x(2) - x(0), x(3) - x(1)], 1),
        BoxFormat::Cxcywh => Tensor::stack(
            &[
                (x(0) + x(2)) / 2.0,
                (x(1) + x(3)) / 2.0,
                x(2) - x(0),
                x(3) - x(1),
            ],
            1,
        ),
    })
}

/// Areas `(N,)` of `[x1, y1, x2, y2]` boxes (torchvision's `box_area`: `(x2 − x1)(y2 − y1)`).
pub fn box_area(boxes: &Tensor) -> Result<Tensor> {
    check_boxes(boxes, "boxes")?;
    Ok((boxes.select(1, 2) - boxes.select(1, 0)) * (boxes.select(1, 3) - boxes.select(1, 1)))
}

/// Pairwise IoU `(N, M)` of two box sets (torchvision's `box_iou`).
pub fn box_iou(boxes1: &Tensor, boxes2: &Tensor) -> Result<Tensor> {
    check_boxes(boxes1, "boxes1")?;
    check_boxes(boxes2, "boxes2")?;
    let (area1, area2) = (box_area(boxes1)?, box_area(boxes2)?);
    let lt = boxes1
        .narrow(1, 0, 2)
        .unsqueeze(1)
        .maximum(&boxes2.narrow(1, 0, 2).unsqueeze(0));
    let rb = boxes1
        .narrow(1, 2, 2)
        .unsqueeze(1)
        .minimum(&boxes2.narrow(1, 2, 2).unsqueeze(0));
    let wh = (rb - lt).clamp_min(0.0);
    let inter = wh.select(2, 0) * wh.select(2, 1);
    let union = area1.unsqueeze(1) + area2.unsqueeze(0) - &inter;
    Ok(inter / union)
}

/// Clips boxes to an image of `(height, width)` (torchvision's `clip_boxes_to_image`).
pub fn clip_boxes_to_image(boxes: &Tensor, size: (i64, i64)) -> Result<Tensor> {
    check_boxes(boxes, "boxes")?;
    let (h, w) = (size.0 as f64, size.1 as f64);
    let c = |i: i64, hi: f64| boxes.select(1, i).clamp(0.0, hi);
    Ok(Tensor::stack(&[c(0, w), c(1, h), c(2, w), c(3, h)], 1))
}

/// Indices (ascending) of the boxes whose width and height are both at least `min_size`
/// (torchvision's `remove_small_boxes`).
pub fn remove_small_boxes(boxes: &Tensor, min_size: f64) -> Result<Tensor> {
    check_boxes(boxes, "boxes")?;
    let ws = boxes.select(1, 2) - boxes.select(1, 0);
    let hs = boxes.select(1, 3) - boxes.select(1, 1);
    let keep = ws.ge(min_size).logical_and(&hs.ge(min_size));
    Ok(keep.nonzero().squeeze_dim(1))
}

fn to_boxes(t: &Tensor) -> Result<Vec<BoxXyxy>> {
    let flat: Vec<f32> =
        Vec::try_from(t.to_device(Device::Cpu).to_kind(Kind::Float).flatten(0, -1))?;
    Ok(flat
        .chunks_exact(4)
        .map(|c| [c[0], c[1], c[2], c[3]])
        .collect())
}

fn to_scores(t: &Tensor, name: &str) -> Result<Vec<f32>> {
    let v: Vec<f32> = Vec::try_from(t.to_device(Device::Cpu).to_kind(Kind::Float))?;
    if v.iter().any(|s| s.is_nan()) {
        return Err(Error::Invalid(format!("{name}: a score is NaN")));
    }
    Ok(v)
}

/// Greedy non-maximum suppression with torchvision's semantics: boxes in decreasing score order
/// (ties in index order), a box dropped when its IoU with a kept one is *greater than*
/// `iou_threshold`. Returns the kept indices (`Int64`, on the boxes' device) in that order.
pub fn nms(boxes: &Tensor, scores: &Tensor, iou_threshold: f64) -> Result<Tensor> {
    check_xyxy(boxes, "boxes")?;
    let n = boxes.size()[0];
    check_vector(scores, "scores", n)?;
    let keep = greedy_nms(
        &to_boxes(boxes)?,
        &to_scores(scores, "scores")?,
        None,
        iou_threshold,
    );
    Ok(indices(&keep, boxes.device()))
}

/// [`nms`] within each category of `idxs` (torchvision's `batched_nms`): boxes of different
/// categories never suppress each other. Kept indices in decreasing score order; ties in the
/// order torchvision leaves them (libtorch's sort of the kept scores, as its per-category path
/// sorts them), which decides who survives a cut to the best `k`.
pub fn batched_nms(
    boxes: &Tensor,
    scores: &Tensor,
    idxs: &Tensor,
    iou_threshold: f64,
) -> Result<Tensor> {
    check_xyxy(boxes, "boxes")?;
    let n = boxes.size()[0];
    check_vector(scores, "scores", n)?;
    check_vector(idxs, "idxs", n)?;
    if idxs.is_floating_point() {
        return Err(Error::Invalid(format!(
            "idxs: expected integer categories, got {:?}",
            idxs.kind()
        )));
    }
    // torchvision's two paths. Up to 1,000 boxes on the CPU (5,000 on CUDA) it shifts each
    // category's boxes by `idx · (max coordinate + 1)` and runs one NMS: the shifted coordinates
    // are rounded in the boxes' precision, which decides IoUs that lie close to the threshold,
    // so the same shift is made here. Above that it runs NMS per category on the boxes as they
    // are, as the loop below does.
    let limit = if boxes.device() == Device::Cpu {
        4000
    } else {
        20000
    };
    if boxes.numel() <= limit {
        if n == 0 {
            return Ok(indices(&[], boxes.device()));
        }
        let max_coordinate = boxes.max();
        let offsets = idxs.to_kind(boxes.kind()) * (max_coordinate + 1.0);
        return nms(&(boxes + offsets.unsqueeze(1)), scores, iou_threshold);
    }
    let all = to_boxes(boxes)?;
    let s = to_scores(scores, "scores")?;
    let cats: Vec<i64> = Vec::try_from(idxs.to_device(Device::Cpu).to_kind(Kind::Int64))?;
    // Per category, then merged: each category's candidates are compared only with each other,
    // which is what keeps 5,000 boxes over 80 classes cheap.
    let mut by_cat: std::collections::BTreeMap<i64, Vec<usize>> = Default::default();
    for (i, c) in cats.iter().enumerate() {
        by_cat.entry(*c).or_default().push(i);
    }
    let mut keep = Vec::new();
    for members in by_cat.values() {
        let b: Vec<BoxXyxy> = members.iter().map(|&i| all[i]).collect();
        let sc: Vec<f32> = members.iter().map(|&i| s[i]).collect();
        keep.extend(
            greedy_nms(&b, &sc, None, iou_threshold)
                .into_iter()
                .map(|k| members[k]),
        );
    }
    // torchvision: the kept indices in ascending order, reordered by an unstable descending
    // sort of their scores. libtorch's sort is deterministic, so the same call orders ties alike.
    keep.sort_unstable();
    let keep = indices(&keep, scores.device());
    let (_, order) = scores.index_select(0, &keep).sort(0, true);
    Ok(keep.index_select(0, &order).to_device(boxes.device()))
}

fn indices(keep: &[usize], device: Device) -> Tensor {
    let v: Vec<i64> = keep.iter().map(|&i| i as i64).collect();
    Tensor::from_slice(&v).to_device(device)
}
