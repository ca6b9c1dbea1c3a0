//! L-BFGS with the semantics of `torch.optim.LBFGS` (tch has none): one [`Lbfgs::step`] runs up
//! to `max_iter` iterations on a closure that recomputes the loss and its gradients; the inverse
//! Hessian is approximated from the last `history_size` curvature pairs by the two-loop
//! recursion (Nocedal & Wright, algorithm 7.4) scaled by `yᵀs / yᵀy`; the step is either fixed
//! (`lr`, the first one shrunk to `min(1, 1/‖g‖₁)·lr`) or found by a line search satisfying the
//! strong Wolfe conditions (algorithms 3.5 and 3.6, with safeguarded cubic interpolation).
//! State (history, direction, step, evaluation counts) carries over between calls, as in PyTorch.
//!
//! All parameters are treated as one flat vector; scalars are kept in `f64`.

use tch::{Kind, Tensor};

/// Settings, with `torch.optim.LBFGS`'s defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LbfgsConfig {
    /// Step length (with the line search: its first trial step).
    pub lr: f64,
    /// Iterations per [`Lbfgs::step`].
    pub max_iter: usize,
    /// Closure evaluations per step (default `max_iter · 5/4`).
    pub max_eval: Option<usize>,
    /// Stop when the largest gradient component is at most this.
    pub tolerance_grad: f64,
    /// Stop when the loss or the step changes by less than this.
    pub tolerance_change: f64,
    /// Curvature pairs kept.
    pub history_size: usize,
    /// Use the strong-Wolfe line search (`line_search_fn="strong_wolfe"`).
    pub strong_wolfe: bool,
}

impl Default for LbfgsConfig {
    fn default() -> Self {
        LbfgsConfig {
            lr: 1.0,
            max_iter: 20,
            max_eval: None,
            tolerance_grad: 1e-7,
            tolerance_change: 1e-9,
            history_size: 100,
            strong_wolfe: false,
        }
    }
}

/// The optimiser: parameters (leaves with `requires_grad`) and the carried state.
#[derive(Debug)]
pub struct Lbfgs {
    params: Vec<Tensor>,
    /// The settings.
    pub config: LbfgsConfig,
    /// Closure evaluations so far.
    pub func_evals: usize,
    /// Iterations so far.
    pub n_iter: usize,
    d: Option<Tensor>,
    t: f64,
    old_dirs: Vec<Tensor>,
    old_stps: Vec<Tensor>,
    ro: Vec<f64>,
    h_diag: f64,
    prev_flat_grad: Option<Tensor>,
    prev_loss: Option<f64>,
}

fn dot(a: &Tensor, b: &Tensor) -> f64 {
    a.dot(b).double_value(&[])
}

fn abs_max(a: &Tensor) -> f64 {
    a.abs().max().double_value(&[])
}

/// The minimiser of the cubic interpolating `(x1, f1, g1)` and `(x2, f2, g2)`, clamped to
/// `bounds` (default: the interval between the points); their midpoint when the cubic has none.
fn cubic_interpolate(
    (x1, f1, g1): (f64, f64, f64),
    (x2, f2, g2): (f64, f64, f64),
    bounds: Option<(f64, f64)>,
) -> f64 {
    let (lo, hi) = bounds.unwrap_or(if x1 <= x2 { (x1, x2) } else { (x2, x1) });
    let d1 = g1 + g2 - 3.0 * (f1 - f2) / (x1 - x2);
    let d2_square = d1 * d1 - g1 * g2;
    if d2_square >= 0.0 {
        let d2 = d2_square.sqrt();
        let min_pos = if x1 <= x2 {
            x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2.0 * d2))
        } else {
            x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2.0 * d2))
        };
        min_pos.max(lo).min(hi)
    } else {
        (lo + hi) / 2.0
    }
}

/// One point of the line search: step, loss, gradient, directional derivative.
#[derive(Debug)]
struct Point {
    t: f64,
    f: f64,
    g: Tensor,
    gtd: f64,
}

impl Point {
    fn copy(&self) -> Point {
        Point {
            t: self.t,
            f: self.f,
            g: self.g.copy(),
            gtd: self.gtd,
        }
    }
}

impl Lbfgs {
    /// An optimiser over `params`.
    pub fn new(params: Vec<Tensor>, config: LbfgsConfig) -> Self {
        Lbfgs {
            params,
            config,
            func_evals: 0,
            n_iter: 0,
            d: None,
            t: 0.0,
            old_dirs: Vec::new(),
            old_stps: Vec::new(),
            ro: Vec::new(),
            h_diag: 1.0,
            prev_flat_grad: None,
            prev_loss: None,
        }
    }

    fn flat_grad(&self) -> Tensor {
        let parts: Vec<Tensor> = self
            .params
            .iter()
            .map(|p| {
                let g = p.grad();
                if g.defined() {
                    g.reshape([-1])
                } else {
                    p.zeros_like().reshape([-1])
                }
            })
            .collect();
        Tensor::cat(&parts, 0)
    }

    /// `params += t · d` (d flat).
    fn add_dir(&self, t: f64, d: &Tensor) {
        tch::no_grad(|| {
            let mut offset = 0;
            for p in &self.params {
                let n = p.numel() as i64;
                let part = d.narrow(0, offset, n).view_as(p);
                let _ = p.shallow_clone().g_add_(&(part * t));
                offset += n;
            }
        });
    }

    fn clone_params(&self) -> Vec<Tensor> {
        self.params.iter().map(|p| p.detach().copy()).collect()
    }

    fn set_params(&self, values: &[Tensor]) {
        tch::no_grad(|| {
            for (p, v) in self.params.iter().zip(values) {
                p.shallow_clone().copy_(v);
            }
        });
    }

    /// Loss and flat gradient at `x + t·d`; the parameters are restored to `x` afterwards.
    fn directional_evaluate(
        &self,
        closure: &mut dyn FnMut() -> Tensor,
        x: &[Tensor],
        t: f64,
        d: &Tensor,
    ) -> (f64, Tensor) {
        self.add_dir(t, d);
        let loss = closure().double_value(&[]);
        let g = self.flat_grad();
        self.set_params(x);
        (loss, g)
    }

    /// The strong-Wolfe line search from `t` along `d` (c1 = 1e-4, c2 = 0.9, 25 trials).
    /// Returns the accepted point and the evaluations spent.
    #[allow(clippy::too_many_arguments)]
    fn strong_wolfe(
        &self,
        closure: &mut dyn FnMut() -> Tensor,
        x: &[Tensor],
        t: f64,
        d: &Tensor,
        f: f64,
        g: &Tensor,
        gtd: f64,
    ) -> (Point, usize) {
        let (c1, c2, max_ls) = (1e-4, 0.9, 25);
        let tol = self.config.tolerance_change;
        let d_norm = abs_max(d);
        let (f_new, g_new) = self.directional_evaluate(closure, x, t, d);
        let mut evals = 1;
        let mut new = Point {
            t,
            f: f_new,
            gtd: dot(&g_new, d),
            g: g_new,
        };
        let mut prev = Point {
            t: 0.0,
            f,
            g: g.copy(),
            gtd,
        };
        let mut done = false;
        let mut ls_iter = 0;
        // Bracketing phase: find an interval holding a point that satisfies the conditions.
        let mut bracket: Vec<Point> = loop {
            if ls_iter >= max_ls {
                break vec![
                    Point {
                        t: 0.0,
                        f,
                        g: g.copy(),
                        gtd,
                    },
                    new,
                ];
            }
            if new.f > f + c1 * new.t * gtd || (ls_iter > 1 && new.f >= prev.f) {
                break vec![prev, new];
            }
            if new.gtd.abs() <= -c2 * gtd {
                done = true;
                break vec![new];
            }
            if new.gtd >= 0.0 {
                break vec![prev, new];
            }
            let min_step = new.t + 0.01 * (new.t - prev.t);
            let max_step = new.t * 10.0;
            let t_next = cubic_interpolate(
                (prev.t, prev.f, prev.gtd),
                (new.t, new.f, new.gtd),
                Some((min_step, max_step)),
            );
            prev = new.copy();
            let (f_next, g_next) = self.directional_evaluate(closure, x, t_next, d);
            evals += 1;
            new = Point {
                t: t_next,
                f: f_next,
                gtd: dot(&g_next, d),
                g: g_next,
            };
            ls_iter += 1;
        };
        // Zoom phase: shrink the bracket until a point satisfies the conditions.
        let order = |b: &[Point]| {
            if b[0].f <= b[b.len() - 1].f {
                (0, 1)
            } else {
                (1, 0)
            }
        };
        let (mut low, mut high) = order(&bracket);
        let mut insufficient_progress = false;
        while !done && ls_iter < max_ls {
            if (bracket[1].t - bracket[0].t).abs() * d_norm < tol {
                break;
            }
            let mut t = cubic_interpolate(
                (bracket[0].t, bracket[0].f, bracket[0].gtd),
                (bracket[1].t, bracket[1].f, bracket[1].gtd),
                None,
            );
            let (b_min, b_max) = (
                bracket[0].t.min(bracket[1].t),
                bracket[0].t.max(bracket[1].t),
            );
            // Safeguard: a trial too close to an end of the bracket makes little progress.
            let eps = 0.1 * (b_max - b_min);
            if (b_max - t).min(t - b_min) < eps {
                if insufficient_progress || t >= b_max || t <= b_min {
                    t = if (t - b_max).abs() < (t - b_min).abs() {
                        b_max - eps
                    } else {
                        b_min + eps
                    };
                    insufficient_progress = false;
                } else {
                    insufficient_progress = true;
                }
            } else {
                insufficient_progress = false;
            }
            let (f_t, g_t) = self.directional_evaluate(closure, x, t, d);
            evals += 1;
            ls_iter += 1;
            let trial = Point {
                t,
                f: f_t,
                gtd: dot(&g_t, d),
                g: g_t,
            };
            if trial.f > f + c1 * t * gtd || trial.f >= bracket[low].f {
                bracket[high] = trial;
                (low, high) = order(&bracket);
            } else {
                if trial.gtd.abs() <= -c2 * gtd {
                    done = true;
                } else if trial.gtd * (bracket[high].t - bracket[low].t) >= 0.0 {
                    bracket[high] = bracket[low].copy();
                }
                bracket[low] = trial;
            }
        }
        (bracket.swap_remove(low), evals)
    }

    /// One optimisation step: `closure` must zero the gradients, compute the loss, call
    /// `backward` and return the loss. Returns the loss of the first evaluation (as PyTorch).
    pub fn step(&mut self, closure: &mut dyn FnMut() -> Tensor) -> f64 {
        let cfg = self.config;
        let max_eval = cfg.max_eval.unwrap_or(cfg.max_iter * 5 / 4);
        let orig_loss = closure().double_value(&[]);
        let mut loss = orig_loss;
        let mut current_evals = 1;
        self.func_evals += 1;
        let mut flat_grad = self.flat_grad();
        if abs_max(&flat_grad) <= cfg.tolerance_grad {
            return orig_loss;
        }
        let mut n_iter = 0;
        while n_iter < cfg.max_iter {
            n_iter += 1;
            self.n_iter += 1;
            let d = if self.n_iter == 1 {
                self.old_dirs.clear();
                self.old_stps.clear();
                self.ro.clear();
                self.h_diag = 1.0;
                flat_grad.neg()
            } else {
                let prev = self
                    .prev_flat_grad
                    .as_ref()
                    .expect("set after the first iteration");
                let d_prev = self.d.as_ref().expect("set after the first iteration");
                let y = &flat_grad - prev;
                let s = d_prev * self.t;
                let ys = dot(&y, &s);
                // Keep the pair only when the curvature condition holds (the update stays
                // positive definite).
                if ys > 1e-10 {
                    if self.old_dirs.len() == cfg.history_size {
                        let _ = self.old_dirs.remove(0);
                        let _ = self.old_stps.remove(0);
                        let _ = self.ro.remove(0);
                    }
                    self.h_diag = ys / dot(&y, &y);
                    self.old_dirs.push(y);
                    self.old_stps.push(s);
                    self.ro.push(1.0 / ys);
                }
                // Two-loop recursion: d = −H·g.
                let k = self.old_dirs.len();
                let mut al = vec![0.0; k];
                let mut q = flat_grad.neg();
                for i in (0..k).rev() {
                    al[i] = dot(&self.old_stps[i], &q) * self.ro[i];
                    q -= &self.old_dirs[i] * al[i];
                }
                let mut r = q * self.h_diag;
                let pairs = self.old_dirs.iter().zip(&self.old_stps).zip(&self.ro);
                for (((y, s), ro), a) in pairs.zip(&al) {
                    let be = dot(y, &r) * ro;
                    r += s * (a - be);
                }
                r
            };
            self.prev_flat_grad = Some(flat_grad.copy());
            self.prev_loss = Some(loss);
            self.t = if self.n_iter == 1 {
                (1.0 / flat_grad.abs().sum(Kind::Double).double_value(&[])).min(1.0) * cfg.lr
            } else {
                cfg.lr
            };
            let gtd = dot(&flat_grad, &d);
            if gtd > -cfg.tolerance_change {
                self.d = Some(d);
                break;
            }
            let ls_evals;
            let mut opt_cond = false;
            if cfg.strong_wolfe {
                let x = self.clone_params();
                let (point, evals) =
                    self.strong_wolfe(closure, &x, self.t, &d, loss, &flat_grad, gtd);
                loss = point.f;
                flat_grad = point.g;
                self.t = point.t;
                ls_evals = evals;
                self.add_dir(self.t, &d);
                opt_cond = abs_max(&flat_grad) <= cfg.tolerance_grad;
            } else {
                self.add_dir(self.t, &d);
                if n_iter != cfg.max_iter {
                    loss = closure().double_value(&[]);
                    flat_grad = self.flat_grad();
                    opt_cond = abs_max(&flat_grad) <= cfg.tolerance_grad;
                    ls_evals = 1;
                } else {
                    ls_evals = 0;
                }
            }
            current_evals += ls_evals;
            self.func_evals += ls_evals;
            let step_size = abs_max(&d) * self.t.abs();
            self.d = Some(d);
            if n_iter == cfg.max_iter
                || current_evals >= max_eval
                || opt_cond
                || step_size <= cfg.tolerance_change
                || (loss - self.prev_loss.unwrap_or(loss)).abs() < cfg.tolerance_change
            {
                break;
            }
        }
        orig_loss
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cubic_interpolation_finds_a_quadratics_minimum() {
        // f(x) = (x − 0.3)²: f(0) = 0.09, f'(0) = −0.6; f(1) = 0.49, f'(1) = 1.4.
        let t = cubic_interpolate((0.0, 0.09, -0.6), (1.0, 0.49, 1.4), None);
        assert!((t - 0.3).abs() < 1e-12, "{t}");
        // No real minimiser: the midpoint of the bounds.
        let t = cubic_interpolate((0.0, 0.0, 1.0), (1.0, 2.0 / 3.0, 1.0), Some((2.0, 4.0)));
        assert!((t - 3.0).abs() < 1e-12, "{t}");
    }

    #[test]
    fn minimises_a_convex_quadratic() {
        let x = Tensor::from_slice(&[3.0f64, -2.0]).set_requires_grad(true);
        let a = Tensor::from_slice(&[1.0f64, 10.0]);
        let mut opt = Lbfgs::new(
            vec![x.shallow_clone()],
            LbfgsConfig {
                strong_wolfe: true,
                ..Default::default()
            },
        );
        let mut closure = || {
            let mut g = x.grad();
            if g.defined() {
                let _ = g.zero_();
            }
            let loss = (&x * &x * &a).sum(Kind::Double);
            loss.backward();
            loss
        };
        for _ in 0..3 {
            opt.step(&mut closure);
        }
        // Stops once the loss changes by less than tolerance_change (1e-9).
        assert!(x.abs().max().double_value(&[]) < 1e-4, "{x}");
    }
}
