//! Feature extraction in a few lines: load a torchvision checkpoint into a backbone with a new
//! 2-class head, freeze everything else, and train the head.
//!
//! ```sh
//! cargo run -p ferrovis-core --example finetune_head -- mobilenet_v2 ../shared/weights/mobilenet_v2-b0353104.pth
//! ```
//! Without a checkpoint the backbone keeps its random initialisation. The "data set" here is
//! synthetic (bright-left vs bright-right images) so the example runs anywhere; the classify task
//! does the same on real folders.

use ferrovis_core::backbone::{self, BackboneOptions};
use ferrovis_core::checkpoint::{self, LoadOptions};
use tch::nn::{OptimizerConfig, VarStore};
use tch::{Device, Kind, Tensor};

fn main() -> ferrovis_core::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arch = args.first().map_or("resnet18", String::as_str);
    let device = Device::cuda_if_available();

    // 1. A backbone with a new 2-class head; the pretrained 1000-class head is skipped.
    let mut vs = VarStore::new(device);
    let model = backbone::create(arch, &vs.root(), &BackboneOptions::classes(2))?;
    if let Some(path) = args.get(1) {
        let opts = LoadOptions::default().skip(&model.head_pattern())?;
        println!(
            "{}",
            checkpoint::load_into(&vs, &checkpoint::read(path)?, &opts)?
        );
    }

    // 2. Freeze everything, then unfreeze the head (the last stage).
    vs.freeze();
    let head = model.stages().pop().map(|s| s.prefixes).unwrap_or_default();
    for (name, mut t) in vs.variables() {
        if head.iter().any(|p| name.starts_with(&format!("{p}."))) {
            let _ = t.requires_grad_(true);
        }
    }
    let mut opt = tch::nn::Adam::default().build(&vs, 1e-3)?;

    // 3. Train the head; the frozen backbone runs in eval mode so BatchNorm statistics stay put.
    let (n, size) = (16, 96);
    let labels = Tensor::arange(n, (Kind::Int64, device)).remainder(2);
    let x = Tensor::randn([n, 3, size, size], (Kind::Float, device)) * 0.1;
    // Class 0 images are bright on the left half, class 1 on the right half.
    let bright_left = labels.eq(0).to_kind(Kind::Float).view([n, 1, 1, 1]);
    let _ = x.narrow(3, 0, size / 2).g_add_(&bright_left);
    let _ = x
        .narrow(3, size / 2, size / 2)
        .g_add_(&(1.0 - &bright_left));
    for step in 0..30 {
        let feats = tch::no_grad(|| model.pooled_features(&x, false));
        let logits = model.forward_head(&feats, true);
        let loss = logits.cross_entropy_for_logits(&labels);
        opt.backward_step(&loss);
        if step % 10 == 9 {
            let acc = logits
                .argmax(-1, false)
                .eq_tensor(&labels)
                .to_kind(Kind::Float)
                .mean(Kind::Float);
            println!(
                "step {:>2}: loss {:.4} accuracy {:.2}",
                step + 1,
                loss.double_value(&[]),
                acc.double_value(&[])
            );
        }
    }
    Ok(())
}
