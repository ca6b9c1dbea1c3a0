//! A tour of checkpoint I/O: build a small model, save it with PyTorch names, read it back with the
//! format-detecting reader, then load it into a model with a new head, as transfer learning does.
//!
//! Run with `cargo run -p ferrovis-core --example checkpoint_tour [-- OUT_DIR]`; pass a real
//! checkpoint with `-- --inspect FILE` to list its tensors instead.

use ferrovis_core::checkpoint::{self, inspect::Summary, LoadOptions, ReadOptions};
use tch::nn::{self, VarStore};
use tch::Device;

/// A model with torchvision-style names: `features.0` (conv), `features.1` (BatchNorm), `classifier`.
fn build(vs: &VarStore, classes: i64) {
    let p = vs.root();
    let f = &p / "features";
    nn::conv2d(&f / "0", 3, 16, 3, Default::default());
    nn::batch_norm2d(&f / "1", 16, Default::default());
    nn::linear(&p / "classifier", 16, classes, Default::default());
}

fn main() -> ferrovis_core::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, file] = args.as_slice() {
        if flag == "--inspect" {
            println!(
                "{}",
                Summary::of(&checkpoint::open(file, &ReadOptions::default())?)
            );
            return Ok(());
        }
    }
    let out = std::path::PathBuf::from(args.first().map_or("runs/demo", String::as_str));
    std::fs::create_dir_all(&out).map_err(|e| ferrovis_core::Error::io(&out, e))?;

    // "Pretrained" model with 1000 classes, saved as safetensors with PyTorch names.
    tch::manual_seed(0);
    let pretrained = VarStore::new(Device::Cpu);
    build(&pretrained, 1000);
    let file = out.join("pretrained.safetensors");
    checkpoint::save_varstore(&pretrained, &file)?;

    let ckpt = checkpoint::open(&file, &ReadOptions::default())?;
    println!("{}\n", Summary::of(&ckpt));

    // Transfer: same backbone, a new 5-class head; the old head is dropped on purpose.
    let model = VarStore::new(Device::cuda_if_available());
    build(&model, 5);
    let opts = LoadOptions::default().skip(r"^classifier\.")?;
    let report = checkpoint::load_into(&model, &ckpt.state_dict, &opts)?;
    println!("{report}");
    println!("\nwrote {}", file.display());
    Ok(())
}
