//! torchvision's detection losses (`torchvision.ops.sigmoid_focal_loss`,
//! `generalized_box_iou_loss`), on tensors, differentiable through libtorch's autograd: what
//! RetinaNet's classification and its v2 box regression are trained with.

use tch::{Reduction, Tensor};

use super::detection::check_boxes;
use crate::error::{Error, Result};

/// The focal loss of Lin et al. ("Focal Loss for Dense Object Detection", 2017) for logits
/// `inputs` against `targets` of the same shape (1 positive, 0 negative):
/// `α_t · (1 − p_t)^γ · BCE(inputs, targets)` elementwise, `p_t` the probability given to the
/// target and `α_t = α` for positives, `1 − α` for negatives (`alpha < 0`: no weighting), then
/// reduced (torchvision's defaults: α 0.25, γ 2, no reduction).
///
/// `1 − p_t` is computed as `p + t(1 − 2p)` and `α_t` as `(1 − α) + t(2α − 1)`, torchvision's
/// expressions multiplied out: fewer passes over what is, for RetinaNet, anchors × classes
/// elements, equal up to float rounding.
pub fn sigmoid_focal_loss(
    inputs: &Tensor,
    targets: &Tensor,
    alpha: f64,
    gamma: f64,
    reduction: Reduction,
) -> Result<Tensor> {
    if inputs.size() != targets.size() {
        return Err(Error::Invalid(format!(
            "sigmoid_focal_loss: inputs {:?} and targets {:?} differ in shape",
            inputs.size(),
            targets.size()
        )));
    }
    if !(0.0..=1.0).contains(&alpha) && alpha != -1.0 {
        return Err(Error::Invalid(format!(
            "sigmoid_focal_loss: alpha {alpha} outside [0, 1] (or -1 for no weighting)"
        )));
    }
    let p = inputs.sigmoid();
    let ce =
        inputs.binary_cross_entropy_with_logits::<Tensor>(targets, None, None, Reduction::None);
    // 1 − p_t = p + t·(1 − 2p).
    let one_minus_pt = (&p * -2.0 + 1.0) * targets + &p;
    let modulating = if gamma == 2.0 {
        one_minus_pt.square()
    } else {
        one_minus_pt.pow_tensor_scalar(gamma)
    };
    let mut loss = ce * modulating;
    if alpha >= 0.0 {
        // α_t = α·t + (1 − α)·(1 − t).
        loss *= targets * (2.0 * alpha - 1.0) + (1.0 - alpha);
    }
    Ok(reduce(loss, reduction))
}

/// The generalised IoU loss of Rezatofighi et al. (2019) of box pairs `boxes1[i]`, `boxes2[i]`
/// (`(N, 4)`, `[x1, y1, x2, y2]`): `1 − IoU + (C − U) / C`, `C` the area of the smallest box
/// enclosing both, `U` their union, `eps` added to both denominators (torchvision's 1e-7), then
/// reduced (`Mean` of no boxes is 0, as torchvision's).
pub fn generalized_box_iou_loss(
    boxes1: &Tensor,
    boxes2: &Tensor,
    reduction: Reduction,
    eps: f64,
) -> Result<Tensor> {
    check_boxes(boxes1, "boxes1")?;
    check_boxes(boxes2, "boxes2")?;
    if boxes1.size()[0] != boxes2.size()[0] {
        return Err(Error::Invalid(format!(
            "generalized_box_iou_loss: {} and {} boxes (pairs expected)",
            boxes1.size()[0],
            boxes2.size()[0]
        )));
    }
    let c = |t: &Tensor, i: i64| t.select(1, i);
    let (x1, y1, x2, y2) = (c(boxes1, 0), c(boxes1, 1), c(boxes1, 2), c(boxes1, 3));
    let (x1g, y1g, x2g, y2g) = (c(boxes2, 0), c(boxes2, 1), c(boxes2, 2), c(boxes2, 3));
    // The intersection, zero where the boxes do not overlap (torchvision masks it there).
    let iw = x2.minimum(&x2g) - x1.maximum(&x1g);
    let ih = y2.minimum(&y2g) - y1.maximum(&y1g);
    let overlap = iw.gt(0.0).logical_and(&ih.gt(0.0));
    let inter = (iw * ih).where_scalarother(&overlap, 0.0);
    let union = (&x2 - &x1) * (&y2 - &y1) + (&x2g - &x1g) * (&y2g - &y1g) - &inter;
    let iou = inter / (&union + eps);
    let area_c = (x2.maximum(&x2g) - x1.minimum(&x1g)) * (y2.maximum(&y2g) - y1.minimum(&y1g));
    let giou = iou - (&area_c - union) / (area_c + eps);
    let loss = -giou + 1.0;
    Ok(match reduction {
        Reduction::Mean if loss.numel() == 0 => loss.sum(loss.kind()) * 0.0,
        r => reduce(loss, r),
    })
}

fn reduce(loss: Tensor, reduction: Reduction) -> Tensor {
    match reduction {
        Reduction::Sum => loss.sum(loss.kind()),
        Reduction::Mean => loss.mean(loss.kind()),
        _ => loss,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The multiplied-out focal loss equals the textbook one, `−α_t (1 − p_t)^γ log p_t`.
    #[test]
    fn focal_loss_is_the_papers() {
        let x = Tensor::from_slice(&[-3.0f64, -0.5, 0.0, 0.7, 2.5, 4.0]);
        let t = Tensor::from_slice(&[0.0f64, 1.0, 0.0, 1.0, 0.0, 1.0]);
        let ours = sigmoid_focal_loss(&x, &t, 0.25, 2.0, Reduction::None).unwrap();
        let p = x.sigmoid();
        let (q, u): (Tensor, Tensor) = (p.ones_like() - &p, t.ones_like() - &t);
        let pt: Tensor = &p * &t + &q * &u;
        let at: Tensor = &t * 0.25 + &u * 0.75;
        let theirs = -(at * (pt.ones_like() - &pt).square() * pt.log());
        let d = (ours - theirs).abs().max().double_value(&[]);
        assert!(d < 1e-12, "{d}");
        let err = sigmoid_focal_loss(&x, &t.narrow(0, 0, 2), 0.25, 2.0, Reduction::Sum);
        assert!(err.unwrap_err().to_string().contains("shape"));
        let err = sigmoid_focal_loss(&x, &t, 1.5, 2.0, Reduction::Sum);
        assert!(err.unwrap_err().to_string().contains("alpha 1.5"));
    }

    /// Identical boxes lose 0; side-by-side unit squares a unit apart lose 1 + (3 − 2)/3.
    #[test]
    fn giou_loss_of_known_pairs() {
        let a = Tensor::from_slice(&[0.0f64, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0]).view([2, 4]);
        let b = Tensor::from_slice(&[0.0f64, 0.0, 1.0, 1.0, 2.0, 0.0, 3.0, 1.0]).view([2, 4]);
        let loss = generalized_box_iou_loss(&a, &b, Reduction::None, 0.0).unwrap();
        let v: Vec<f64> = Vec::try_from(&loss).unwrap();
        assert!(
            v[0].abs() < 1e-12 && (v[1] - 4.0 / 3.0).abs() < 1e-12,
            "{v:?}"
        );
        let empty = Tensor::zeros([0, 4], (tch::Kind::Float, tch::Device::Cpu));
        let mean = generalized_box_iou_loss(&empty, &empty, Reduction::Mean, 1e-7).unwrap();
        assert_eq!(mean.double_value(&[]), 0.0);
        let err = generalized_box_iou_loss(&a, &b.narrow(0, 0, 1), Reduction::Sum, 1e-7);
        assert!(err.unwrap_err().to_string().contains("2 and 1 boxes"));
    }
}
