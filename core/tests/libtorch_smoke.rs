//! A broken libtorch install must fail loudly: a matmul and a reduction checked against values
//! computed by hand.

use approx::assert_relative_eq;
use tch::{Device, Kind, Tensor};

#[test]
fn matmul_matches_hand_computed_product() {
    // [[1, 2], [3, 4]] x [[5, 6], [7, 8]] = [[19, 22], [43, 50]]
    let a = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0]).view([2, 2]);
    let b = Tensor::from_slice(&[5.0f32, 6.0, 7.0, 8.0]).view([2, 2]);
    let c = a.matmul(&b);
    let got = Vec::<f32>::try_from(c.flatten(0, -1)).unwrap();
    assert_eq!(got, [19.0, 22.0, 43.0, 50.0]);
}

#[test]
fn softmax_and_autograd_match_closed_forms() {
    // softmax([0, ln 3]) = [1/4, 3/4]
    let x = Tensor::from_slice(&[0.0f64, 3.0f64.ln()]);
    let s = Vec::<f64>::try_from(x.softmax(0, Kind::Double)).unwrap();
    assert_relative_eq!(s[0], 0.25, epsilon = 1e-12);
    assert_relative_eq!(s[1], 0.75, epsilon = 1e-12);

    // d/dx sum(x^3) = 3 x^2 at x = [1, 2, -3]
    let x = Tensor::from_slice(&[1.0f64, 2.0, -3.0]).set_requires_grad(true);
    x.pow_tensor_scalar(3).sum(Kind::Double).backward();
    let g = Vec::<f64>::try_from(x.grad()).unwrap();
    assert_eq!(g, [3.0, 12.0, 27.0]);
    assert_eq!(x.device(), Device::Cpu);
}
