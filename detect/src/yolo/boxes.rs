//! Box geometry: format conversion, complete IoU, and the mapping from letterboxed model input
//! back to original image pixels.

use ferrovis_data::transform::detect::Letterbox;
use tch::Tensor;

/// Centre/size boxes `(…, 4)` to corners.
pub fn xywh_to_xyxy(b: &Tensor) -> Tensor {
    let c = b.narrow(-1, 0, 2);
    let half = b.narrow(-1, 2, 2) / 2.0;
    Tensor::cat(&[&c - &half, &c + &half], -1)
}

/// Complete IoU (Zheng et al., 2020) of corner boxes `(…, 4)` paired element-wise, `(…, 1)`:
/// IoU − ρ²/c² − α·v, where ρ is the distance between centres, c the diagonal of the smallest
/// enclosing box, v = 4/π²·(atan(w₂/h₂) − atan(w₁/h₁))² the aspect-ratio term and α = v/(v − IoU +
/// 1) its weight, which carries no gradient (as in the paper's reference implementation).
pub fn ciou(b1: &Tensor, b2: &Tensor) -> Tensor {
    const EPS: f64 = 1e-7;
    let p = |t: &Tensor, i: i64| t.narrow(-1, i, 1);
    let (x1a, y1a, x2a, y2a) = (p(b1, 0), p(b1, 1), p(b1, 2), p(b1, 3));
    let (x1b, y1b, x2b, y2b) = (p(b2, 0), p(b2, 1), p(b2, 2), p(b2, 3));
    let (w1, h1) = (&x2a - &x1a, &y2a - &y1a + EPS);
    let (w2, h2) = (&x2b - &x1b, &y2b - &y1b + EPS);
    let inter = (x2a.minimum(&x2b) - x1a.maximum(&x1b)).clamp_min(0.0)
        * (y2a.minimum(&y2b) - y1a.maximum(&y1b)).clamp_min(0.0);
    let union = &w1 * &h1 + &w2 * &h2 - &inter + EPS;
    let iou = &inter / union;
    let cw = x2a.maximum(&x2b) - x1a.minimum(&x1b);
    let ch = y2a.maximum(&y2b) - y1a.minimum(&y1b);
    let c2 = cw.square() + ch.square() + EPS;
    let rho2 = ((&x1b + &x2b - &x1a - &x2a).square() + (&y1b + &y2b - &y1a - &y2a).square()) / 4.0;
    let v =
        ((&w2 / &h2).atan() - (&w1 / &h1).atan()).square() * (4.0 / std::f64::consts::PI.powi(2));
    let alpha = tch::no_grad(|| &v / (&v - &iou + (1.0 + EPS)));
    iou - (rho2 / c2 + v * alpha)
}

/// A corner box on the letterboxed input mapped back to the original image and clipped to it.
pub fn to_original(lb: &Letterbox, b: [f32; 4], original: (usize, usize)) -> [f32; 4] {
    let [x1, y1, x2, y2] = lb.to_original(b);
    let (w, h) = (original.0 as f32, original.1 as f32);
    [
        x1.clamp(0.0, w),
        y1.clamp(0.0, h),
        x2.clamp(0.0, w),
        y2.clamp(0.0, h),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn t(v: &[f32]) -> Tensor {
        Tensor::from_slice(v).view([-1, 4])
    }

    #[test]
    fn ciou_hand_computed() {
        // Identical boxes: IoU 1, no penalty.
        let a = t(&[0.0, 0.0, 2.0, 2.0]);
        assert!((ciou(&a, &a).double_value(&[0, 0]) - 1.0).abs() < 1e-6);
        // Same size, shifted by 1 in x: IoU = 2/6, centres 1 apart, enclosing box 3×2 → c² = 13,
        // same aspect ratio so v = 0: 1/3 − 1/13.
        let b = t(&[1.0, 0.0, 3.0, 2.0]);
        let got = ciou(&a, &b).double_value(&[0, 0]);
        assert!((got - (1.0 / 3.0 - 1.0 / 13.0)).abs() < 1e-6, "{got}");
        // Disjoint boxes give a negative value.
        let c = t(&[5.0, 5.0, 6.0, 7.0]);
        assert!(ciou(&a, &c).double_value(&[0, 0]) < 0.0);
        let _ = Tensor::zeros([1], (Kind::Float, Device::Cpu));
    }

    #[test]
    fn letterbox_maps_back() {
        // A 640×480 image letterboxed into 640×640: scale 1, 80 px top padding; clipped.
        let lb = Letterbox {
            scale: 1.0,
            pad_left: 0.0,
            pad_top: 80.0,
        };
        assert_eq!(
            to_original(&lb, [10.0, 90.0, 20.0, 600.0], (640, 480)),
            [10.0, 10.0, 20.0, 480.0]
        );
        // 1280×720 into 640: scale 0.5, 140 px on top; (100, 200)-(300, 400) → (200, 120)-(600, 520).
        let lb = Letterbox {
            scale: 0.5,
            pad_left: 0.0,
            pad_top: 140.0,
        };
        assert_eq!(
            to_original(&lb, [100.0, 200.0, 300.0, 400.0], (1280, 720)),
            [200.0, 120.0, 600.0, 520.0]
        );
    }
}
