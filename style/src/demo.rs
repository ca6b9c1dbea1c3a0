//! `style demo`: the embedded CC0 cat (scikit-image's chelsea) in the style of van Gogh's Starry
//! Night (public domain), by WCT, AdaIN and Gatys' optimisation, at a small size on the CPU.
//!
//! Style transfer is transfer learning of another kind: every method stands on an encoder
//! trained on natural images (ImageNet VGG19, here its relu3_1 encoder with the decoder trained
//! to invert it). With that pair the demo compares Gatys' optimisation on the ImageNet features
//! against the same optimisation, same budget, on a randomly initialised VGG19 (the "scratch"
//! features), both judged by the style loss the ImageNet encoder measures. Without the pair it
//! says plainly that it cannot show real style transfer, and why, and shows what random features
//! give. The row goes into the demo folder's summary ([`ferrovis_app::demo_report`]).

use std::path::Path;

use anyhow::Result;
use ferrovis_app::demo_report::{self, DemoRow, Picture};
use ferrovis_core::backbone::{BackboneOptions, Vgg, VggConfig};
use ferrovis_core::device::parse_device;
use tch::nn::VarStore;
use tch::{Device, Tensor};

use crate::arbitrary::{AutoEncoder, Transform};
use crate::cli::{existing, DemoArgs};
use crate::features::{DefaultLayers, FeatureNet, VGG19_HINT};
use crate::gatys::{self, GatysConfig};
use crate::image;
use crate::loss::{gram, style_loss};

const CONTENT: &[u8] = include_bytes!("../assets/chelsea.png");
const STYLE: &[u8] = include_bytes!("../assets/starry_night.jpg");

/// A VGG19 with random weights (seeded): the features a model trained from scratch on nothing
/// would have.
fn random_vgg19(device: Device) -> FeatureNet {
    tch::manual_seed(0);
    let vs = VarStore::new(device);
    let vgg = Vgg::new(
        &vs.root(),
        &VggConfig::by_name("vgg19").expect("vgg19 is known"),
        &BackboneOptions::classes(0),
    );
    FeatureNet::from_vgg(vs, vgg, "vgg19 (random)")
}

/// The style loss of `image` against `style` as `judge` measures it: the Gram-matrix errors
/// summed over its Gatys style layers.
fn judged_style_loss(judge: &FeatureNet, image: &Tensor, style: &Tensor) -> Result<f64> {
    let (_, layers) = judge.default_layers(DefaultLayers::Gatys);
    let got = judge.activations(image, &layers)?;
    let want = judge.activations(style, &layers)?;
    let mut total = 0.0;
    for (g, w) in got.iter().zip(&want) {
        total += tch::no_grad(|| style_loss(g, &gram(w))).double_value(&[]);
    }
    Ok(total)
}

/// Writes the inputs, stylises them, records the row, prints where the results are.
pub fn run(args: &DemoArgs) -> Result<()> {
    let root = &args.out;
    let out = root.join("style");
    let dir = ferrovis_app::args::renamed(
        args.weights.clone(),
        args.weights_dir.clone(),
        "--weights-dir",
        "--weights",
    )
    .or_else(crate::cli::r31_dir_from_env);
    std::fs::create_dir_all(&out)?;
    let content_path = out.join("content_chelsea.png");
    let style_path = out.join("style_starry_night.jpg");
    std::fs::write(&content_path, CONTENT)?;
    std::fs::write(&style_path, STYLE)?;
    let device = parse_device("auto")?;
    let started = std::time::Instant::now();
    let inputs = vec![
        Picture::new(root, &content_path, "content (CC0)")?,
        Picture::new(root, &style_path, "style (public domain)")?,
    ];
    // A folder given or in $FERROVIS_WEIGHTS, else the registry's copies (cached, or fetched
    // from LinearStyleTransfer's archive unless offline).
    let pair = dir
        .as_deref()
        .and_then(|d| Some((existing(d, "vgg_r31.pth")?, existing(d, "dec_r31.pth")?)))
        .or_else(|| {
            let enc = ferrovis_app::pretrained::demo_weights(&["vgg_r31.pth"], "vgg_r31")?;
            let dec = ferrovis_app::pretrained::demo_weights(&["dec_r31.pth"], "dec_r31")?;
            Some((enc, dec))
        });
    let Some((enc, dec)) = pair else {
        let place = dir.map_or("(no folder given)".to_string(), |d| {
            format!(" in {}", d.display())
        });
        let why = format!(
            "cannot show real style transfer: no vgg_r31.pth / dec_r31.pth{place} and the names \
             vgg_r31 / dec_r31 are neither cached nor fetchable (pass --weights DIR, set \
             FERROVIS_WEIGHTS=DIR, or run `style weights download vgg_r31 dec_r31` online). Style lives in the statistics of features learnt \
             from natural images (ImageNet VGG19); a network trained here on synthetic shapes, or \
             not at all, has no such features, so WCT, AdaIN and a trained decoder cannot be shown \
             honestly without them. Shown instead: Gatys on a randomly initialised VGG19, which \
             carries some texture, far less than trained features"
        );
        println!("{why}; for real results, {VGG19_HINT}");
        // Small and short: it illustrates, it is not the point of the demo.
        let size = args.size.min(128);
        let content = image::load(&content_path, size, device)?;
        let style = image::load(&style_path, size, device)?;
        let net = random_vgg19(device);
        let (path, _) = gatys_demo(
            &net,
            &content,
            &[(style, 1.0)],
            args.iterations.min(50),
            &out.join("gatys_random_vgg19.png"),
        )?;
        let row = DemoRow {
            task: "style".into(),
            model: "Gatys on VGG19".into(),
            source: "ImageNet VGG19 relu3_1 encoder (absent)".into(),
            target: "chelsea in Starry Night's style".into(),
            metric: "style loss".into(),
            transferred: None,
            scratch: None,
            seconds: started.elapsed().as_secs_f64(),
            note: why,
            pictures: [
                inputs,
                vec![Picture::new(root, &path, "Gatys on a random VGG19")?],
            ]
            .concat(),
        };
        return finish(root, row);
    };

    let content = image::load(&content_path, args.size, device)?;
    let style = image::load(&style_path, args.size, device)?;
    let styles = [(style.shallow_clone(), 1.0)];
    let mut pictures = inputs;
    let ae = AutoEncoder::load(&enc, &dec, device)?;
    for (t, name) in [(Transform::Wct, "wct.png"), (Transform::Adain, "adain.png")] {
        let t0 = std::time::Instant::now();
        let result = ae.stylize(&content, &styles, t, 1.0)?;
        let path = out.join(name);
        image::save(&result, &path)?;
        println!(
            "{t:?}: {} ({:.2} s)",
            path.display(),
            t0.elapsed().as_secs_f64()
        );
        pictures.push(Picture::new(
            root,
            &path,
            format!("{t:?} (relu3_1 encoder/decoder)"),
        )?);
    }

    let judge = FeatureNet::load(&enc, device)?;
    let (trained_path, trained) = gatys_demo(
        &judge,
        &content,
        &styles,
        args.iterations,
        &out.join("gatys.png"),
    )?;
    let random = random_vgg19(device);
    let (random_path, from_random) = gatys_demo(
        &random,
        &content,
        &styles,
        args.iterations,
        &out.join("gatys_random_vgg19.png"),
    )?;
    let transferred = judged_style_loss(&judge, &trained, &style)?;
    let scratch = judged_style_loss(&judge, &from_random, &style)?;
    let content_only = judged_style_loss(&judge, &content, &style)?;
    println!(
        "style loss under the ImageNet encoder (lower is closer to the painting): content image \
         {content_only:.3e}, Gatys on ImageNet features {transferred:.3e}, on random features \
         {scratch:.3e}"
    );
    pictures.push(Picture::new(
        root,
        &trained_path,
        "Gatys on the ImageNet relu3_1 encoder",
    )?);
    pictures.push(Picture::new(root, &random_path, "Gatys on a random VGG19")?);
    let row = DemoRow {
        task: "style".into(),
        model: format!("Gatys, {} evaluations", args.iterations),
        source: "ImageNet VGG19 relu3_1 encoder".into(),
        target: "chelsea in Starry Night's style".into(),
        metric: "style loss (lower is better)".into(),
        transferred: Some(transferred),
        scratch: Some(scratch),
        seconds: started.elapsed().as_secs_f64(),
        note: format!(
            "scratch: the same optimisation on a random VGG19; both judged by the ImageNet \
             encoder (the content image itself: {content_only:.3e}). WCT and AdaIN in the pictures"
        ),
        pictures,
    };
    finish(root, row)
}

fn finish(root: &Path, row: DemoRow) -> Result<()> {
    let all = demo_report::record(root, "style", vec![row])?;
    println!("\n{}", demo_report::table(&all));
    println!("report: {}", demo_report::report_path(root).display());
    Ok(())
}

/// Gatys' optimisation on `net` for `iterations` evaluations, saved to `path`; returns the path
/// and the image.
fn gatys_demo(
    net: &FeatureNet,
    content: &Tensor,
    styles: &[(Tensor, f64)],
    iterations: usize,
    path: &Path,
) -> Result<(std::path::PathBuf, Tensor)> {
    let cfg = GatysConfig {
        iterations,
        frames: None,
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let result = gatys::transfer(net, content, styles, &cfg)?;
    image::save(&result.image, path)?;
    let first = result.history.first().map(|h| h.total).unwrap_or(0.0);
    let last = result.history.last().map(|h| h.total).unwrap_or(0.0);
    println!(
        "Gatys (L-BFGS on {} features, {} evaluations): loss {first:.3e} -> {last:.3e} ({:.0}% \
         lower), {} ({:.0} s)",
        net.name,
        result.history.len(),
        100.0 * (1.0 - last / first.max(1e-12)),
        path.display(),
        started.elapsed().as_secs_f64()
    );
    Ok((path.to_path_buf(), result.image))
}
