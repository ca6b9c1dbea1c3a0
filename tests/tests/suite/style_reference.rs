//! Style transfer against PyTorch (tests/reference/style.py): torchvision's vgg19 (random init)
//! loads by name and every named trunk activation matches within 1e-4; the Gram matrix and the
//! content, style and total-variation losses equal PyTorch's; the PyTorch examples'
//! TransformerNet checkpoint loads and gives the same image.

use std::path::Path;

use ferrovis_core::checkpoint;
use ferrovis_style::fast::load_transformer;
use ferrovis_style::features::FeatureNet;
use ferrovis_style::loss::{content_loss, gram, style_loss, tv_loss};
use ferrovis_tests::run_reference;
use tch::Device;

#[test]
fn vgg19_activations_and_losses_match_pytorch() {
    tch::set_num_threads(1);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("style-reference");
    let _ = std::fs::remove_dir_all(&dir);
    let out = run_reference("style.py", &[dir.as_os_str()]);
    // 16 convolutions and their ReLUs, 5 pools.
    assert!(out.contains("activations 37"), "{out}");

    let net = FeatureNet::load(&dir.join("vgg19_features.pth"), Device::Cpu).unwrap();
    assert_eq!(net.name, "vgg19");
    let exp = checkpoint::read(dir.join("vgg19_activations.safetensors")).unwrap();
    let names = net.layer_names();
    assert_eq!(names.len(), 37);
    let x = exp.get("input").unwrap();
    let ours = tch::no_grad(|| net.activations(x, &names)).unwrap();
    for (name, t) in names.iter().zip(&ours) {
        let theirs = exp.get(name).unwrap();
        assert_eq!(t.size(), theirs.size(), "{name}");
        let d = (t - theirs).abs().max().double_value(&[]);
        assert!(d <= 1e-4, "{name}: {d:e}");
    }
    println!("vgg19: {} activations within 1e-4", names.len());
    // Asking for one shallow layer runs only that far and gives the same tensor.
    let one = net.activations(x, &["relu2_1".to_string()]).unwrap();
    let d = (&one[0] - exp.get("relu2_1").unwrap())
        .abs()
        .max()
        .double_value(&[]);
    assert!(d <= 1e-4, "relu2_1 alone: {d:e}");
    let err = net
        .activations(x, &["conv6_1".to_string()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("conv6_1") && err.contains("conv5_4"), "{err}");

    let l = checkpoint::read(dir.join("losses.safetensors")).unwrap();
    let t = |n: &str| l.get(n).unwrap().shallow_clone();
    let g = gram(&t("f"));
    assert!((&g - t("gram")).abs().max().double_value(&[]) < 1e-6);
    for (name, ours) in [
        ("content", content_loss(&t("f"), &t("target"))),
        ("style", style_loss(&t("f"), &gram(&t("target")))),
        ("tv", tv_loss(&t("image"))),
    ] {
        let (o, e) = (ours.double_value(&[]), t(name).double_value(&[0]));
        println!("{name}: {o:.8} vs PyTorch {e:.8}");
        assert!(
            (o - e).abs() <= 1e-6 * e.abs().max(1.0),
            "{name}: {o} vs {e}"
        );
    }

    // Johnson's network from a PyTorch state dict: same pixels, on our [0, 1] scale.
    let (_vs, net) = load_transformer(&dir.join("transformer.pth"), Device::Cpu).unwrap();
    let t = checkpoint::read(dir.join("transformer.safetensors")).unwrap();
    let ours = tch::no_grad(|| net.forward(t.get("image").unwrap()));
    let theirs = t.get("stylised").unwrap();
    assert_eq!(ours.size(), theirs.size());
    let scale = theirs.abs().max().double_value(&[]);
    let d = (&ours - theirs).abs().max().double_value(&[]);
    println!("transformer: max |Δ| {d:.3e} (outputs up to {scale:.3})");
    assert!(scale > 0.05, "the reference output is degenerate: {scale}");
    assert!(d <= 1e-4 * scale.max(1.0), "{d:e}");
}
