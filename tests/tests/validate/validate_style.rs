//! `make validate`: style transfer with the real relu3_1 encoder/decoder from ../shared.
//!
//! - encoder → decoder reconstruction of chelsea: PSNR ≥ 30 dB (the weights are read right);
//! - WCT and AdaIN for every content × style image pair, PNGs kept for a person to look at;
//! - Gatys on chelsea × Starry Night with the encoder's features: the loss falls ≥ 90 %.
//!
//! Outputs stay in `target/tmp/validate-style`.

use std::path::{Path, PathBuf};

use ferrovis_style::arbitrary::{crop4, AutoEncoder, Transform};
use ferrovis_style::features::FeatureNet;
use ferrovis_style::gatys::{self, GatysConfig};
use ferrovis_style::image;
use ferrovis_tests::shared_dir;
use tch::Device;

fn images(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[test]
#[ignore = "needs ../shared (make validate)"]
fn validate_style_r31_wct_adain_gatys() {
    let shared = shared_dir();
    let weights = shared.join("weights");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("validate-style");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let ae = AutoEncoder::load(
        &weights.join("vgg_r31.pth"),
        &weights.join("dec_r31.pth"),
        Device::Cpu,
    )
    .unwrap();

    let chelsea_path = shared.join("datasets/images/content/chelsea.png");
    let chelsea = image::load(&chelsea_path, 0, Device::Cpu).unwrap();
    let rec = ae.reconstruct(&chelsea);
    let psnr = image::psnr(&rec.clamp(0.0, 1.0), &crop4(&chelsea));
    println!("chelsea reconstruction PSNR {psnr:.2} dB");
    image::save(&rec, &out.join("chelsea_reconstruction.png")).unwrap();
    assert!(psnr >= 30.0, "PSNR {psnr:.2} dB < 30");

    let contents = images(&shared.join("datasets/images/content"));
    let styles = images(&shared.join("datasets/images/style"));
    let t = std::time::Instant::now();
    let mut written = 0;
    for c in &contents {
        let content = image::load(c, 256, Device::Cpu).unwrap();
        for s in &styles {
            let style = image::load(s, 256, Device::Cpu).unwrap();
            for (transform, tag) in [(Transform::Wct, "wct"), (Transform::Adain, "adain")] {
                let y = ae
                    .stylize(&content, &[(style.shallow_clone(), 1.0)], transform, 1.0)
                    .unwrap();
                let stem = |p: &Path| p.file_stem().unwrap().to_string_lossy().into_owned();
                let name = format!("{}_{}_{tag}.png", stem(c), stem(s));
                image::save(&y, &out.join(&name)).unwrap();
                // The result differs from the content: the style arrived.
                let diff = (&y - crop4(&content))
                    .abs()
                    .mean(tch::Kind::Float)
                    .double_value(&[]);
                assert!(diff > 0.02, "{name}: mean change {diff}");
                written += 1;
            }
        }
    }
    println!(
        "{written} WCT/AdaIN images ({} contents × {} styles × 2) in {:.0} s, in {}",
        contents.len(),
        styles.len(),
        t.elapsed().as_secs_f64(),
        out.display()
    );

    let net = FeatureNet::load(&weights.join("vgg_r31.pth"), Device::Cpu).unwrap();
    let content = image::load(&chelsea_path, 256, Device::Cpu).unwrap();
    let style = image::load(
        &shared.join("datasets/images/style/starry_night.jpg"),
        256,
        Device::Cpu,
    )
    .unwrap();
    let cfg = GatysConfig {
        iterations: 100,
        log_every: 25,
        ..Default::default()
    };
    let t = std::time::Instant::now();
    let r = gatys::transfer(&net, &content, &[(style, 1.0)], &cfg).unwrap();
    image::save(&r.image, &out.join("chelsea_starry_night_gatys.png")).unwrap();
    let (first, last) = (r.history[0].total, r.history[r.history.len() - 1].total);
    let drop = 1.0 - last / first;
    println!(
        "Gatys, L-BFGS, {} evaluations at 256 px: loss {first:.4e} -> {last:.4e} ({:.1} % lower), {:.0} s",
        r.history.len(),
        drop * 100.0,
        t.elapsed().as_secs_f64()
    );
    assert!(drop >= 0.9, "the loss fell by only {:.1} %", drop * 100.0);
}
