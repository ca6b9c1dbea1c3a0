//! `style demo`: the embedded CC0 cat (scikit-image's chelsea) in the style of van Gogh's Starry
//! Night (public domain), by WCT, AdaIN and Gatys' optimisation, at a small size on the CPU.
//! Without the relu3_1 encoder/decoder it says so and runs Gatys on a random VGG19, so
//! `make demo` completes on a fresh clone.

use anyhow::Result;
use ferrovis_core::backbone::{BackboneOptions, Vgg, VggConfig};
use ferrovis_core::device::parse_device;
use tch::nn::VarStore;
use tch::Tensor;

use crate::arbitrary::{AutoEncoder, Transform};
use crate::features::{FeatureNet, VGG19_HINT};
use crate::gatys::{self, GatysConfig};
use crate::{existing, image, DemoArgs};

const CONTENT: &[u8] = include_bytes!("../assets/chelsea.png");
const STYLE: &[u8] = include_bytes!("../assets/starry_night.jpg");

/// Writes the inputs, stylises them three ways, prints where the results are.
pub fn run(args: &DemoArgs) -> Result<()> {
    let dir = ferrovis_core::cli::renamed(
        args.weights.clone(),
        args.weights_dir.clone(),
        "--weights-dir",
        "--weights",
    )
    .or_else(crate::r31_dir_from_env);
    std::fs::create_dir_all(&args.out)?;
    let content_path = args.out.join("content_chelsea.png");
    let style_path = args.out.join("style_starry_night.jpg");
    std::fs::write(&content_path, CONTENT)?;
    std::fs::write(&style_path, STYLE)?;
    let device = parse_device("auto")?;
    let content = image::load(&content_path, args.size, device)?;
    let style = image::load(&style_path, args.size, device)?;
    let styles = [(style, 1.0)];
    let pair = dir
        .as_deref()
        .and_then(|d| Some((existing(d, "vgg_r31.pth")?, existing(d, "dec_r31.pth")?)));
    let Some((enc, dec)) = pair else {
        let place = dir.map_or("(no folder given)".to_string(), |d| {
            format!("in {}", d.display())
        });
        println!(
            "no vgg_r31.pth / dec_r31.pth{place} (pass --weights DIR or set \
             FERROVIS_WEIGHTS=DIR): WCT and AdaIN need them. Running Gatys with a randomly \
             initialised VGG19 instead (random features carry some texture, far less than \
             trained ones); for real results, {VGG19_HINT}"
        );
        tch::manual_seed(0);
        let vs = VarStore::new(device);
        let vgg = Vgg::new(
            &vs.root(),
            &VggConfig::by_name("vgg19").expect("vgg19 is known"),
            &BackboneOptions::classes(0),
        );
        let net = FeatureNet::from_vgg(vs, vgg, "vgg19 (random)");
        return gatys_demo(&net, &content, &styles, args);
    };

    let ae = AutoEncoder::load(&enc, &dec, device)?;
    for (t, name) in [(Transform::Wct, "wct.png"), (Transform::Adain, "adain.png")] {
        let started = std::time::Instant::now();
        let out = ae.stylize(&content, &styles, t, 1.0)?;
        image::save(&out, &args.out.join(name))?;
        println!(
            "{t:?}: {} ({:.2} s)",
            args.out.join(name).display(),
            started.elapsed().as_secs_f64()
        );
    }

    let net = FeatureNet::load(&enc, device)?;
    gatys_demo(&net, &content, &styles, args)
}

fn gatys_demo(
    net: &FeatureNet,
    content: &Tensor,
    styles: &[(Tensor, f64)],
    args: &DemoArgs,
) -> Result<()> {
    let cfg = GatysConfig {
        iterations: args.iterations,
        frames: None,
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let result = gatys::transfer(net, content, styles, &cfg)?;
    let path = args.out.join("gatys.png");
    image::save(&result.image, &path)?;
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
    Ok(())
}
