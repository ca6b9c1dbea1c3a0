//! `core::neck::Fpn` against torchvision's `FeaturePyramidNetwork` (`reference/fpn.py`): the
//! state dict loads strictly by name and every output level agrees, for both extra blocks, P6
//! from C5 and from P5, with BatchNorm, and from a checkpoint with the old key spellings.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ferrovis_core::checkpoint::{self, LoadOptions};
use ferrovis_core::neck::{ExtraBlock, Fpn, FpnConfig};
use ferrovis_tests::write_reference;
use tch::nn::VarStore;
use tch::{Device, Tensor};

fn references() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        write_reference(
            "fpn.py",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("fpn-reference"),
        )
    })
}

fn build(extra: ExtraBlock, batch_norm: bool) -> (VarStore, Fpn) {
    let vs = VarStore::new(Device::Cpu);
    let fpn = Fpn::new(
        &vs.root(),
        FpnConfig {
            in_channels: vec![64, 128, 256, 512],
            out_channels: 256,
            extra,
            batch_norm,
        },
    )
    .unwrap();
    (vs, fpn)
}

/// Loads `weights` with `opts` and compares every output with `case`'s.
fn check(case: &str, weights: &str, opts: LoadOptions, extra: ExtraBlock, batch_norm: bool) {
    let dir = references();
    let (vs, fpn) = build(extra, batch_norm);
    let report = checkpoint::load_file(&vs, dir.join(weights), &opts.strict(true)).unwrap();
    assert_eq!(report.loaded.len(), report.total(), "{case}: {report}");
    let expected = checkpoint::read(dir.join(format!("{case}.safetensors"))).unwrap();
    let inputs: Vec<Tensor> = (0..4)
        .map(|i| expected.get(&format!("in{i}")).unwrap().shallow_clone())
        .collect();
    let outputs = tch::no_grad(|| fpn.forward_t(&inputs, false)).unwrap();
    let names = fpn.names();
    assert_eq!(outputs.len(), names.len());
    for (name, ours) in names.iter().zip(&outputs) {
        let theirs = expected
            .get(&format!("out_{name}"))
            .unwrap_or_else(|| panic!("{case}: torchvision has no level {name}"));
        assert_eq!(ours.size(), theirs.size(), "{case} {name}");
        let d = (ours - theirs).abs().max().double_value(&[]);
        println!("{case} ({weights}) level {name}: max abs difference {d:.1e}");
        assert!(d <= 1e-5, "{case} level {name}: {d:e}");
    }
}

#[test]
fn fpn_matches_torchvision() {
    // One thread on both sides (the reference sets it too): the same summation order, so the
    // comparison holds at 1e-5 whatever the CPU's kernels split the sums into.
    tch::set_num_threads(1);
    let plain = LoadOptions::default;
    check(
        "maxpool",
        "maxpool.pth",
        plain(),
        ExtraBlock::LastLevelMaxPool,
        false,
    );
    let c5 = ExtraBlock::LastLevelP6P7 { in_channels: 512 };
    check("p6p7_c5", "p6p7_c5.pth", plain(), c5, false);
    let p5 = ExtraBlock::LastLevelP6P7 { in_channels: 256 };
    check("p6p7_p5", "p6p7_p5.pth", plain(), p5, false);
    check("bn", "bn.pth", plain(), ExtraBlock::LastLevelMaxPool, true);
    // The old spellings, renamed as torchvision renames them on load.
    let legacy = Fpn::legacy_renames(plain(), "").unwrap();
    check(
        "maxpool",
        "maxpool_legacy.pth",
        legacy,
        ExtraBlock::LastLevelMaxPool,
        false,
    );
}

#[test]
fn fpn_names_and_bad_input() {
    let (_vs, fpn) = build(ExtraBlock::LastLevelMaxPool, false);
    assert_eq!(fpn.names(), ["0", "1", "2", "3", "pool"]);
    let x = Tensor::zeros([1, 64, 8, 8], (tch::Kind::Float, Device::Cpu));
    let e = fpn.forward_t(&[x], false).unwrap_err().to_string();
    assert!(e.contains("fpn: 1 feature maps for 4 levels"), "{e}");
    let vs = VarStore::new(Device::Cpu);
    let e = Fpn::new(
        &vs.root(),
        FpnConfig {
            in_channels: vec![],
            out_channels: 256,
            extra: ExtraBlock::None,
            batch_norm: false,
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("fpn: in_channels []"), "{e}");
}
