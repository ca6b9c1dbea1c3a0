//! torchvision's `deeplabv3_resnet50` (random init, seeded, saved with `torch.save`) loads into
//! ferrovis' DeepLabV3 by name, strictly, and gives torchvision's outputs (main and auxiliary).

use std::path::Path;

use ferrovis_core::checkpoint::{self, LoadOptions};
use ferrovis_segment::deeplab::{DeepLabConfig, DeepLabV3};
use ferrovis_tests::run_reference;
use tch::nn::VarStore;
use tch::Device;

#[test]
fn deeplabv3_resnet50_matches_torchvision() {
    tch::set_num_threads(1);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("deeplab-reference");
    let _ = std::fs::remove_dir_all(&dir);
    let out = run_reference("deeplab.py", &[dir.as_os_str()]);
    assert!(out.contains("parameters 42004074"), "{out}");
    let sd = checkpoint::read(dir.join("weights.pth")).unwrap();
    let vs = VarStore::new(Device::Cpu);
    let model = DeepLabV3::new(
        &vs.root(),
        DeepLabConfig {
            backbone: "resnet50".into(),
            num_classes: 21,
            aux: true,
        },
    )
    .unwrap();
    let report = checkpoint::load_into(&vs, &sd, &LoadOptions::default().strict(true)).unwrap();
    assert_eq!(report.loaded.len(), sd.len());
    let exp = checkpoint::read(dir.join("expected.safetensors")).unwrap();
    let y = tch::no_grad(|| model.forward_t(exp.get("input").unwrap(), false));
    for (name, ours) in [("out", &y.out), ("aux", y.aux.as_ref().unwrap())] {
        let theirs = exp.get(name).unwrap();
        assert_eq!(ours.size(), theirs.size(), "{name}");
        let d = (ours - theirs).abs().max().double_value(&[]);
        println!("{name}: max abs difference {d:.3e}");
        assert!(d <= 1e-4, "{name}: {d:e}");
    }
}
