//! ferrovis' L-BFGS against `torch.optim.LBFGS` (tests/reference/lbfgs.py): the same iterates
//! after each `step` call, the same evaluation and iteration counts, with and without the
//! strong-Wolfe line search, on the Rosenbrock function and a least-squares problem (float64).

use ferrovis_core::optim::{Lbfgs, LbfgsConfig};
use ferrovis_tests::run_reference;
use tch::{Kind, Tensor};

fn settings(case: &str) -> LbfgsConfig {
    let base = LbfgsConfig::default();
    match case {
        "rosenbrock_wolfe" => LbfgsConfig {
            max_iter: 5,
            history_size: 10,
            strong_wolfe: true,
            ..base
        },
        "rosenbrock_fixed" => LbfgsConfig {
            lr: 0.05,
            max_iter: 5,
            history_size: 10,
            ..base
        },
        "rosenbrock_wolfe_history3" => LbfgsConfig {
            max_iter: 4,
            history_size: 3,
            strong_wolfe: true,
            ..base
        },
        "least_squares_wolfe" => LbfgsConfig {
            max_iter: 3,
            history_size: 5,
            strong_wolfe: true,
            ..base
        },
        "least_squares_fixed" => LbfgsConfig {
            lr: 0.5,
            max_iter: 4,
            ..base
        },
        other => panic!("unknown case {other}"),
    }
}

/// The same A and b as the script: torch's generator seeded with 0, float64 normals.
fn least_squares(x: &Tensor) -> Tensor {
    let (a, b) = LEAST_SQUARES.with(|ab| {
        let (a, b) = ab;
        (a.shallow_clone(), b.shallow_clone())
    });
    (a.mv(x) - b).square().sum(Kind::Double) * 0.5
}

thread_local! {
    static LEAST_SQUARES: (Tensor, Tensor) = {
        let v: serde_json::Value =
            serde_json::from_str(&run_reference("lbfgs_problem.py", &[])).unwrap();
        let to = |key: &str, shape: &[i64]| {
            let vals: Vec<f64> = v[key].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
            Tensor::from_slice(&vals).view(shape)
        };
        (to("a", &[20, 5]), to("b", &[20]))
    };
}

fn rosenbrock(x: &Tensor) -> Tensor {
    let (x0, x1) = (x.get(0), x.get(1));
    (x0.neg() + 1.0).square() + (x1 - x0.square()).square() * 100.0
}

#[test]
fn iterates_match_torch_optim_lbfgs() {
    let expected: serde_json::Value =
        serde_json::from_str(&run_reference("lbfgs.py", &[])).unwrap();
    for (case, want) in expected.as_object().unwrap() {
        let rosen = case.starts_with("rosenbrock");
        let x = if rosen {
            Tensor::from_slice(&[-1.5f64, 2.0])
        } else {
            Tensor::zeros([5], (Kind::Double, tch::Device::Cpu))
        }
        .set_requires_grad(true);
        let mut opt = Lbfgs::new(vec![x.shallow_clone()], settings(case));
        let mut closure = || {
            let mut g = x.grad();
            if g.defined() {
                let _ = g.zero_();
            }
            let loss = if rosen {
                rosenbrock(&x)
            } else {
                least_squares(&x)
            };
            loss.backward();
            loss
        };
        for (call, iterate) in want["iterates"].as_array().unwrap().iter().enumerate() {
            opt.step(&mut closure);
            let ours = Vec::<f64>::try_from(&x.detach()).unwrap();
            for (o, t) in ours.iter().zip(iterate.as_array().unwrap()) {
                let t = t.as_f64().unwrap();
                assert!(
                    (o - t).abs() <= 1e-5,
                    "{case} call {}: {ours:?} vs {iterate}",
                    call + 1
                );
            }
        }
        println!(
            "{case}: {} calls match; func_evals {} n_iter {}",
            want["iterates"].as_array().unwrap().len(),
            opt.func_evals,
            opt.n_iter
        );
        assert_eq!(
            opt.func_evals as u64,
            want["func_evals"].as_u64().unwrap(),
            "{case}"
        );
        assert_eq!(
            opt.n_iter as u64,
            want["n_iter"].as_u64().unwrap(),
            "{case}"
        );
    }
}
