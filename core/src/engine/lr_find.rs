//! The learning-rate range test (Smith's; fastai's `Learner.lr_find`): train for a few steps
//! while the learning rate grows exponentially from `start_lr` to `end_lr`, record the smoothed
//! loss, and suggest a rate from the curve. The model and the optimiser are restored afterwards,
//! so the test leaves nothing behind.
//!
//! The behaviour is fastai's, from its documentation and published schedule: the rate at
//! iteration `i` of `num_it` is `start · (end / start)^(i / num_it)`; the loss is smoothed by an
//! exponential moving average (β = 0.98) debiased by `1 − β^n`; the test stops after `num_it`
//! iterations, or once the smoothed loss exceeds 4× the best seen (`stop_div`); the suggestions
//! read the curve without its first `num_it / 10` and last 5 points, cut at the first NaN.

use tch::nn::VarStore;
use tch::Tensor;

use super::TrainTask;
use crate::checkpoint::StateDict;
use crate::error::{Error, Result};
use crate::optim::Optimizer;

/// The sweep's settings (fastai's defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct LrFindConfig {
    /// The first rate.
    pub start_lr: f64,
    /// The rate reached at the last iteration.
    pub end_lr: f64,
    /// Iterations (at least 6).
    pub num_it: usize,
    /// Stop once the smoothed loss exceeds 4× its best.
    pub stop_div: bool,
}

impl Default for LrFindConfig {
    fn default() -> Self {
        Self {
            start_lr: 1e-7,
            end_lr: 10.0,
            num_it: 100,
            stop_div: true,
        }
    }
}

/// The recorded curve.
#[derive(Debug, Clone, PartialEq)]
pub struct LrFindCurve {
    /// The rate of each iteration run (the base rate; each group gets it times its scale).
    pub lrs: Vec<f64>,
    /// The smoothed loss after each iteration.
    pub losses: Vec<f64>,
    /// The iterations asked for (what the suggestions' trimming is computed from).
    pub num_it: usize,
    /// Whether the loss diverged before `num_it` iterations.
    pub diverged: bool,
}

/// What the range test suggests, fastai's four rules: each is `(rate, (rate at the marked
/// point, loss there))`, `None` where the curve is too short for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Suggestions {
    /// The middle of the longest decreasing stretch, a third and a sixth into it (fastai's
    /// default).
    pub valley: Option<(f64, (f64, f64))>,
    /// A tenth of the rate at the lowest loss.
    pub minimum: Option<(f64, (f64, f64))>,
    /// The rate where the loss falls fastest per unit of log-rate.
    pub steep: Option<(f64, (f64, f64))>,
    /// Where the loss gradient stops changing, walking back from the end (15 points apart,
    /// threshold 0.005).
    pub slide: Option<(f64, (f64, f64))>,
}

/// Runs the range test of `task` with `opt` (its groups as they are: frozen parameters stay
/// out), then puts every variable of `vs` and the optimiser's state and rates back.
pub fn lr_find(
    vs: &VarStore,
    task: &mut dyn TrainTask,
    opt: &mut Optimizer,
    cfg: &LrFindConfig,
) -> Result<LrFindCurve> {
    if !(cfg.start_lr > 0.0 && cfg.end_lr > cfg.start_lr) {
        return Err(Error::Invalid(format!(
            "lr-find: start_lr {} and end_lr {} must satisfy 0 < start < end",
            cfg.start_lr, cfg.end_lr
        )));
    }
    let num_it = cfg.num_it.max(6);
    let steps = task.steps_per_epoch();
    if steps == 0 {
        return Err(Error::Invalid(
            "lr-find: the task has no training steps".into(),
        ));
    }
    // What to put back: the weights (and buffers), the optimiser's state and rates.
    let weights: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .map(|(n, t)| (n, t.detach().copy()))
        .collect();
    let mut state = StateDict::new();
    for (name, t) in opt.state_dict().iter() {
        state.insert(name, t.copy());
    }
    let rates = opt.lrs().to_vec();
    let scales: Vec<f64> = opt.groups().iter().map(|g| g.lr_scale).collect();
    let result = sweep(task, opt, cfg, num_it, steps, &scales);
    // Restored whatever the sweep did, error or not.
    tch::no_grad(|| {
        let vars = vs.variables();
        for (name, saved) in &weights {
            if let Some(t) = vars.get(name) {
                let mut t = t.shallow_clone();
                t.copy_(saved);
            }
        }
    });
    opt.load_state_dict(&state)?;
    for (g, lr) in rates.into_iter().enumerate() {
        opt.set_group_lr(g, lr);
    }
    opt.zero_grad()?;
    result
}

fn sweep(
    task: &mut dyn TrainTask,
    opt: &mut Optimizer,
    cfg: &LrFindConfig,
    num_it: usize,
    steps: usize,
    scales: &[f64],
) -> Result<LrFindCurve> {
    const BETA: f64 = 0.98;
    let mut curve = LrFindCurve {
        lrs: Vec::new(),
        losses: Vec::new(),
        num_it,
        diverged: false,
    };
    let (mut average, mut best) = (0.0f64, f64::INFINITY);
    for it in 0..num_it {
        let (epoch, step) = (it / steps, it % steps);
        if step == 0 {
            task.on_epoch_start(epoch)?;
        }
        let lr = cfg.start_lr * (cfg.end_lr / cfg.start_lr).powf(it as f64 / num_it as f64);
        for (g, scale) in scales.iter().enumerate() {
            opt.set_group_lr(g, lr * scale);
        }
        opt.zero_grad()?;
        let loss = task.train_step(epoch, step)?;
        loss.backward();
        opt.step()?;
        let value = loss.double_value(&[]);
        average = BETA * average + (1.0 - BETA) * value;
        let smoothed = average / (1.0 - BETA.powi(it as i32 + 1));
        curve.lrs.push(lr);
        curve.losses.push(smoothed);
        if smoothed < best {
            best = smoothed;
        }
        if cfg.stop_div && (smoothed > 4.0 * best || smoothed.is_nan()) {
            curve.diverged = true;
            break;
        }
    }
    Ok(curve)
}

impl LrFindCurve {
    /// The part of the curve the suggestions read: without the first `num_it / 10` and the last
    /// 5 points, and cut at the first NaN.
    pub fn trimmed(&self) -> (Vec<f64>, Vec<f64>) {
        let n = self.losses.len();
        let start = (self.num_it / 10).min(n);
        let end = n.saturating_sub(5).max(start);
        let mut lrs = self.lrs[start..end].to_vec();
        let mut losses = self.losses[start..end].to_vec();
        if let Some(nan) = losses.iter().position(|l| l.is_nan()) {
            lrs.truncate(nan);
            losses.truncate(nan);
        }
        (lrs, losses)
    }

    /// fastai's four suggestions on [`LrFindCurve::trimmed`].
    pub fn suggestions(&self) -> Suggestions {
        let (lrs, losses) = self.trimmed();
        Suggestions {
            valley: valley(&lrs, &losses),
            minimum: minimum(&lrs, &losses),
            steep: steep(&lrs, &losses),
            slide: slide(&lrs, &losses),
        }
    }
}

/// The longest strictly decreasing subsequence of losses (its first and last index), then the
/// point a third plus a sixth of the way along it.
pub fn valley(lrs: &[f64], losses: &[f64]) -> Option<(f64, (f64, f64))> {
    let n = losses.len();
    if n == 0 {
        return None;
    }
    let mut lds = vec![1isize; n];
    let (mut max_start, mut max_end) = (0isize, 0usize);
    for i in 1..n {
        for j in 0..i {
            if losses[i] < losses[j] && lds[i] < lds[j] + 1 {
                lds[i] = lds[j] + 1;
            }
            if lds[max_end] < lds[i] {
                max_end = i;
                // One before the run's first index (as the reference computes it): -1 for a
                // run from the curve's start.
                max_start = max_end as isize - lds[max_end];
            }
        }
    }
    let sections = (max_end as isize - max_start) as f64 / 3.0;
    let idx = max_start + sections as isize + (sections / 2.0) as isize;
    // A negative index counts from the end, as Python's does.
    let idx = if idx < 0 { idx + n as isize } else { idx } as usize;
    Some((lrs[idx], (lrs[idx], losses[idx])))
}

/// A tenth of the rate at the lowest loss.
pub fn minimum(lrs: &[f64], losses: &[f64]) -> Option<(f64, (f64, f64))> {
    let i = argmin(losses.iter().copied())?;
    Some((lrs[i] / 10.0, (lrs[i], losses[i])))
}

/// The rate where `Δloss / Δlog(lr)` is most negative.
pub fn steep(lrs: &[f64], losses: &[f64]) -> Option<(f64, (f64, f64))> {
    if losses.len() < 2 {
        return None;
    }
    let grads =
        (1..losses.len()).map(|i| (losses[i] - losses[i - 1]) / (lrs[i].ln() - lrs[i - 1].ln()));
    let i = argmin(grads)?;
    Some((lrs[i], (lrs[i], losses[i])))
}

/// Walking back from the last point, the left end of the first 15-point interval whose loss
/// gradients (NumPy's `gradient`) differ by at most 0.005; the loss there interpolated in
/// log10(rate).
pub fn slide(lrs: &[f64], losses: &[f64]) -> Option<(f64, (f64, f64))> {
    const LR_DIFF: usize = 15;
    const THRESH: f64 = 0.005;
    let n = losses.len();
    if n <= LR_DIFF || n < 2 {
        return None;
    }
    let grad = gradient(losses);
    // Indices counted from the end, as in the reference: r = n - 1, l = r - 15.
    let (mut r, mut l) = (n as isize - 1, n as isize - 1 - LR_DIFF as isize);
    let mut local_min_lr = lrs[l as usize];
    while l >= 0 && (grad[r as usize] - grad[l as usize]).abs() > THRESH {
        local_min_lr = lrs[l as usize];
        r -= 1;
        l -= 1;
    }
    let log_lrs: Vec<f64> = lrs.iter().map(|v| v.log10()).collect();
    Some((
        local_min_lr,
        (local_min_lr, interp(local_min_lr.log10(), &log_lrs, losses)),
    ))
}

fn argmin(values: impl Iterator<Item = f64>) -> Option<usize> {
    values
        .enumerate()
        .fold(None, |best: Option<(usize, f64)>, (i, v)| match best {
            Some((_, b)) if v.partial_cmp(&b) != Some(std::cmp::Ordering::Less) => best,
            _ => Some((i, v)),
        })
        .map(|(i, _)| i)
}

/// NumPy's `gradient` with unit spacing: central differences inside, one-sided at the ends.
fn gradient(y: &[f64]) -> Vec<f64> {
    let n = y.len();
    (0..n)
        .map(|i| match i {
            0 => y[1] - y[0],
            _ if i == n - 1 => y[n - 1] - y[n - 2],
            _ => (y[i + 1] - y[i - 1]) / 2.0,
        })
        .collect()
}

/// NumPy's `interp`: `x` on the piecewise-linear function through `(xs, ys)` (xs increasing),
/// clamped to the end values outside.
fn interp(x: f64, xs: &[f64], ys: &[f64]) -> f64 {
    if x <= xs[0] {
        return ys[0];
    }
    if x >= xs[xs.len() - 1] {
        return ys[ys.len() - 1];
    }
    let i = xs.partition_point(|&v| v <= x);
    let (x0, x1, y0, y1) = (xs[i - 1], xs[i], ys[i - 1], ys[i]);
    y0 + (y1 - y0) * (x - x0) / (x1 - x0)
}
