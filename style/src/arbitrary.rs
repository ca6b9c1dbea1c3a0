//! Arbitrary style in one pass: encode content and style at relu3_1, move the content features'
//! statistics to the style's, decode.
//!
//! - **AdaIN** (Huang & Belongie, 2017): each channel's mean and standard deviation (unbiased
//!   variance + ε) replaced by the style's.
//! - **WCT** (Li et al., 2017): the content features whitened (their covariance, plus the
//!   identity, made the identity) and coloured with the style's covariance; eigenvalues below
//!   1e-5 are dropped; computed in float64.
//!
//! `alpha` blends the transferred features with the content's (1: full style). Several styles
//! blend their transferred features by weight.

use std::path::Path;

use anyhow::{bail, Context, Result};
use ferrovis_core::checkpoint::{self, LoadOptions};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use crate::r31::{DecoderR31, EncoderR31};

/// The statistics transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Transform {
    /// Adaptive instance normalisation.
    Adain,
    /// Whitening and colouring.
    Wct,
}

/// The relu3_1 encoder and decoder with their weights.
#[derive(Debug)]
pub struct AutoEncoder {
    /// Encoder variables (frozen).
    pub encoder_vs: VarStore,
    /// Decoder variables (frozen).
    pub decoder_vs: VarStore,
    /// The encoder.
    pub encoder: EncoderR31,
    /// The decoder.
    pub decoder: DecoderR31,
}

fn load_strict(vs: &VarStore, path: &Path) -> Result<()> {
    // `vgg_r31` / `dec_r31` as names: the registry's copies, fetched when needed.
    let path = &ferrovis_core::hub::local_or_named(path)?;
    if !path.is_file() {
        bail!(
            "{}: no such file; WCT and AdaIN need LinearStyleTransfer's relu3_1 encoder and \
             decoder (vgg_r31.pth, dec_r31.pth)",
            path.display()
        );
    }
    let sd = checkpoint::read(path).with_context(|| format!("reading {}", path.display()))?;
    checkpoint::load_into(vs, &sd, &LoadOptions::default().strict(true))
        .with_context(|| format!("loading {}", path.display()))?;
    Ok(())
}

impl AutoEncoder {
    /// Loads `vgg_r31.pth` and `dec_r31.pth` as they are (files, or the names `vgg_r31` and
    /// `dec_r31`, fetched into ferrovis' cache when needed).
    pub fn load(encoder: &Path, decoder: &Path, device: Device) -> Result<Self> {
        let mut encoder_vs = VarStore::new(device);
        let enc = EncoderR31::new(&encoder_vs.root());
        load_strict(&encoder_vs, encoder)?;
        let mut decoder_vs = VarStore::new(device);
        let dec = DecoderR31::new(&decoder_vs.root());
        load_strict(&decoder_vs, decoder)?;
        encoder_vs.freeze();
        decoder_vs.freeze();
        Ok(AutoEncoder {
            encoder_vs,
            decoder_vs,
            encoder: enc,
            decoder: dec,
        })
    }

    /// Encode then decode (how well the pair inverts itself), of `x` cropped to a multiple of 4.
    pub fn reconstruct(&self, x: &Tensor) -> Tensor {
        tch::no_grad(|| self.decoder.decode(&self.encoder.encode(&crop4(x))))
    }

    /// Stylises `content` `(1, 3, H, W)` with `(style, weight)` pairs; the result has the
    /// content's size cropped to multiples of 4 ([`crop4`]).
    pub fn stylize(
        &self,
        content: &Tensor,
        styles: &[(Tensor, f64)],
        transform: Transform,
        alpha: f64,
    ) -> Result<Tensor> {
        let total: f64 = styles.iter().map(|(_, w)| w).sum();
        if styles.is_empty() || total <= 0.0 {
            bail!("at least one style image with a positive weight is needed");
        }
        tch::no_grad(|| {
            let content = crop4(content);
            let fc = self.encoder.encode(&content);
            let mut mixed: Option<Tensor> = None;
            for (s, w) in styles {
                let fs = self.encoder.encode(&crop4(s));
                let t = match transform {
                    Transform::Adain => adain(&fc, &fs),
                    Transform::Wct => wct(&fc, &fs)?,
                } * (w / total);
                mixed = Some(match mixed {
                    Some(m) => m + t,
                    None => t,
                });
            }
            let t = mixed.expect("at least one style") * alpha + &fc * (1.0 - alpha);
            Ok(self.decoder.decode(&t).clamp(0.0, 1.0))
        })
    }
}

/// `x` cropped (bottom/right) to sides divisible by 4: the encoder pools twice and the decoder
/// doubles twice, so only those sizes come back unchanged.
pub fn crop4(x: &Tensor) -> Tensor {
    let (h, w) = (x.size()[2], x.size()[3]);
    x.narrow(2, 0, h - h % 4).narrow(3, 0, w - w % 4)
}

fn mean_std(f: &Tensor) -> (Tensor, Tensor) {
    let s = f.size();
    let flat = f.reshape([s[0], s[1], -1]);
    let mean = flat.mean_dim(2, true, Kind::Float).unsqueeze(-1);
    let std = (flat.var_dim(2, true, true) + 1e-5).sqrt().unsqueeze(-1);
    (mean, std)
}

/// AdaIN: content features with the style's per-channel mean and standard deviation.
pub fn adain(content: &Tensor, style: &Tensor) -> Tensor {
    let (mc, sc) = mean_std(content);
    let (ms, ss) = mean_std(style);
    (content - mc) / sc * ss + ms
}

/// Eigen-decomposition of a symmetric matrix with the eigenvalues above 1e-5.
fn eig_kept(cov: &Tensor) -> Result<(Tensor, Tensor)> {
    let (e, v) = cov.f_linalg_eigh("L")?;
    let keep = e.gt(1e-5);
    let idx = keep.nonzero().squeeze_dim(1);
    if idx.numel() == 0 {
        bail!("WCT: the feature covariance has no eigenvalue above 1e-5 (a flat image?)");
    }
    Ok((e.index_select(0, &idx), v.index_select(1, &idx)))
}

/// WCT for one image each `(1, C, H, W)`.
pub fn wct(content: &Tensor, style: &Tensor) -> Result<Tensor> {
    let shape = content.size();
    let c = shape[1];
    let flat = |t: &Tensor| t.get(0).reshape([c, -1]).to_kind(Kind::Double);
    let fc = flat(content);
    let fs = flat(style);
    let mc = fc.mean_dim(1, true, Kind::Double);
    let ms = fs.mean_dim(1, true, Kind::Double);
    let fc = fc - &mc;
    let fs = fs - &ms;
    let eye = Tensor::eye(c, (Kind::Double, content.device()));
    let cov_c = fc.mm(&fc.tr()) / (fc.size()[1] - 1).max(1) as f64 + eye;
    let cov_s = fs.mm(&fs.tr()) / (fs.size()[1] - 1).max(1) as f64;
    let (ec, vc) = eig_kept(&cov_c)?;
    let (es, vs) = eig_kept(&cov_s)?;
    let whitened = vc
        .mm(&ec.pow_tensor_scalar(-0.5).diag(0))
        .mm(&vc.tr())
        .mm(&fc);
    let colored = vs.mm(&es.sqrt().diag(0)).mm(&vs.tr()).mm(&whitened) + ms;
    Ok(colored.to_kind(content.kind()).reshape(&shape[..]))
}
