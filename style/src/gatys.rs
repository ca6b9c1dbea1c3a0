//! Style transfer by optimisation (Gatys, Ecker & Bethge, 2016): the output image itself is the
//! variable; it is moved (L-BFGS or Adam) to match the content image's features at the content
//! layers and the style images' Gram matrices at the style layers, with an optional total
//! variation term. Several style images blend by weighting their Gram matrices.

use std::path::PathBuf;

use anyhow::{bail, Result};
use ferrovis_core::optim::{Lbfgs, LbfgsConfig, Optimizer, OptimizerKind, ParamGroup};
use tch::{Kind, Tensor};

use crate::features::{DefaultLayers, FeatureNet};
use crate::image;
use crate::loss::{gram, PerceptualLoss};

/// Where the optimisation starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum Init {
    /// The content image (converges fastest).
    Content,
    /// Uniform noise (the paper's start).
    Noise,
}

/// Which optimiser moves the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum Method {
    /// L-BFGS with the strong-Wolfe line search (the PyTorch tutorial's choice, without it).
    Lbfgs,
    /// Adam.
    Adam,
}

/// Settings of one transfer.
#[derive(Debug, Clone, PartialEq)]
pub struct GatysConfig {
    /// Layers and weights of the loss.
    pub loss: PerceptualLoss,
    /// Start image.
    pub init: Init,
    /// Optimiser.
    pub method: Method,
    /// Loss evaluations (L-BFGS: line-search evaluations included; Adam: steps).
    pub iterations: usize,
    /// Adam's learning rate (L-BFGS uses 1 with the line search).
    pub lr: f64,
    /// Write the current image every this many evaluations into `frames` (0: never).
    pub frame_every: usize,
    /// Where frames go.
    pub frames: Option<PathBuf>,
    /// Print the loss terms every this many evaluations (0: never).
    pub log_every: usize,
    /// Seed of the noise start.
    pub seed: i64,
}

impl Default for GatysConfig {
    fn default() -> Self {
        GatysConfig {
            loss: PerceptualLoss::default(),
            init: Init::Content,
            method: Method::Lbfgs,
            iterations: 300,
            lr: 0.02,
            frame_every: 0,
            frames: None,
            log_every: 50,
            seed: 0,
        }
    }
}

/// The loss terms at one evaluation.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct LossTerms {
    /// Evaluation number (1-based).
    pub evaluation: usize,
    /// Weighted content term.
    pub content: f64,
    /// Weighted style term.
    pub style: f64,
    /// Weighted total variation.
    pub tv: f64,
    /// Their sum.
    pub total: f64,
}

/// The stylised image `(1, 3, H, W)` in [0, 1] and the loss at every evaluation.
pub struct Transfer {
    /// The result.
    pub image: Tensor,
    /// Loss terms per evaluation.
    pub history: Vec<LossTerms>,
}

/// Runs the optimisation for `content` `(1, 3, H, W)` and `(style image, weight)` pairs.
pub fn transfer(
    net: &FeatureNet,
    content: &Tensor,
    styles: &[(Tensor, f64)],
    cfg: &GatysConfig,
) -> Result<Transfer> {
    if styles.is_empty() {
        bail!("at least one style image is needed");
    }
    let loss = cfg.loss.resolved(net, DefaultLayers::Gatys)?;
    let weight_sum: f64 = styles.iter().map(|(_, w)| w).sum();
    if weight_sum <= 0.0 {
        bail!("style weights must add up to more than 0");
    }
    // Targets: content activations and the weighted mean of the styles' Gram matrices.
    let content_targets: Vec<Tensor> =
        tch::no_grad(|| net.activations(content, &loss.content_layers))?
            .into_iter()
            .map(|t| t.detach())
            .collect();
    let mut style_targets: Vec<Tensor> = Vec::new();
    for (img, w) in styles {
        let feats = tch::no_grad(|| net.activations(img, &loss.style_layers))?;
        for (i, f) in feats.iter().enumerate() {
            let g = gram(f) * (w / weight_sum);
            if i < style_targets.len() {
                style_targets[i] = &style_targets[i] + g;
            } else {
                style_targets.push(g);
            }
        }
    }
    let x = match cfg.init {
        Init::Content => content.detach().copy(),
        Init::Noise => {
            tch::manual_seed(cfg.seed);
            Tensor::rand_like(content)
        }
    }
    .set_requires_grad(true);
    let mut history: Vec<LossTerms> = Vec::new();
    let evaluate = |history: &mut Vec<LossTerms>| -> Result<Tensor> {
        // Keep the image in range before each evaluation, as the PyTorch tutorial does.
        tch::no_grad(|| {
            let _ = x.shallow_clone().clamp_(0.0, 1.0);
        });
        let mut g = x.grad();
        if g.defined() {
            let _ = g.zero_();
        }
        let weighted = loss.terms(net, &x, &content_targets, &style_targets)?;
        let total = weighted.total();
        total.backward();
        let terms = LossTerms {
            evaluation: history.len() + 1,
            content: weighted.content.double_value(&[]),
            style: weighted.style.double_value(&[]),
            tv: weighted.tv.double_value(&[]),
            total: total.double_value(&[]),
        };
        if cfg.log_every > 0
            && (terms.evaluation == 1 || terms.evaluation.is_multiple_of(cfg.log_every))
        {
            println!(
                "evaluation {:>4}: total {:.4e}  content {:.4e}  style {:.4e}  tv {:.4e}",
                terms.evaluation, terms.total, terms.content, terms.style, terms.tv
            );
        }
        if let (Some(dir), true) = (&cfg.frames, cfg.frame_every > 0) {
            if terms.evaluation.is_multiple_of(cfg.frame_every) {
                image::save(&x, &dir.join(format!("frame_{:05}.png", terms.evaluation)))?;
            }
        }
        history.push(terms);
        Ok(total)
    };
    match cfg.method {
        Method::Lbfgs => {
            let mut opt = Lbfgs::new(
                vec![x.shallow_clone()],
                LbfgsConfig {
                    max_iter: 20,
                    history_size: 100,
                    strong_wolfe: true,
                    ..Default::default()
                },
            );
            let mut failure: Option<anyhow::Error> = None;
            while history.len() < cfg.iterations && failure.is_none() {
                let before = history.len();
                let remaining = cfg.iterations - history.len();
                opt.config.max_eval = Some(remaining.max(1));
                opt.config.max_iter = remaining.clamp(1, 20);
                let mut closure = || match evaluate(&mut history) {
                    Ok(t) => t,
                    Err(e) => {
                        failure.get_or_insert(e);
                        Tensor::zeros([], (Kind::Float, x.device()))
                    }
                };
                opt.step(&mut closure);
                if history.len() == before + 1 && failure.is_none() {
                    break; // converged: the gradient vanished at the first evaluation
                }
            }
            if let Some(e) = failure {
                return Err(e);
            }
        }
        Method::Adam => {
            let group = ParamGroup {
                name: "image".into(),
                params: vec![("image".into(), x.shallow_clone())],
                lr_scale: 1.0,
                weight_decay: 0.0,
            };
            let kind = OptimizerKind::from_name("adam", 0.0)?;
            let mut opt = Optimizer::new(kind, vec![group], cfg.lr);
            for _ in 0..cfg.iterations {
                let _ = evaluate(&mut history)?;
                opt.step()?;
            }
        }
    }
    let image = x.detach().clamp(0.0, 1.0);
    Ok(Transfer { image, history })
}
