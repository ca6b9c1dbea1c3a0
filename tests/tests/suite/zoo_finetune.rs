//! One fine-tuning step of ConvNeXt-T, ViT-B/16 and Swin-T from the same weights as torch
//! (`reference/finetune_step.py`): the cross-entropy loss and the global gradient norm agree
//! within 1e-5 relative, in evaluation mode and in training mode with stochastic depth on
//! (libtorch's CPU generator, seeded alike on both sides, draws the same per-sample masks).
//!
//! That generator is one per process, and the suite's other tests draw from it (any model they
//! build initialises its weights from it) on other threads, so the Rust side runs in a child
//! process of its own: the same test binary, this test alone.

use std::path::Path;
use std::process::Command;

use ferrovis_core::backbone::{self, BackboneOptions};
use ferrovis_core::checkpoint::{self, LoadOptions, StateDict};
use ferrovis_tests::run_reference;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

const SEED: i64 = 1234;
/// Set in the child process to the directory the reference wrote.
const CHILD: &str = "FERROVIS_FINETUNE_STEP_DIR";
const NAME: &str = "zoo_finetune::a_fine_tuning_step_equals_torchs";

#[test]
fn a_fine_tuning_step_equals_torchs() {
    if let Some(dir) = std::env::var_os(CHILD) {
        return compare_with_reference(Path::new(&dir));
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("finetune-step");
    let _ = std::fs::remove_dir_all(&dir);
    run_reference("finetune_step.py", &[dir.as_os_str()]);
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD, &dir)
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{log}");
    // The harness exits 0 having run nothing when the filter matches no test.
    assert!(out.status.success(), "the child process failed:\n{log}");
    assert!(log.contains("1 passed"), "the child ran no test:\n{log}");
}

fn compare_with_reference(dir: &Path) {
    tch::set_num_threads(1);
    let mut failures = Vec::new();
    for arch in ["convnext_tiny", "vit_b_16", "swin_t"] {
        let sd = checkpoint::read(dir.join(arch).join("weights.pth")).unwrap();
        let expected: StateDict =
            checkpoint::read(dir.join(arch).join("expected.safetensors")).unwrap();
        let x = expected.get("input").unwrap();
        let labels = expected.get("labels").unwrap();
        let vs = VarStore::new(Device::Cpu);
        // torchvision's default stochastic depth and dropout, unchanged.
        let opts = BackboneOptions {
            num_classes: 5,
            image_size: Some(x.size()[2]),
            ..Default::default()
        };
        let model = backbone::create(arch, &vs.root(), &opts).unwrap();
        checkpoint::load_into(&vs, &sd, &LoadOptions::default().strict(true)).unwrap();
        for (mode, train) in [("eval", false), ("train", true)] {
            for v in vs.trainable_variables() {
                let mut g = v.grad();
                if g.defined() {
                    let _ = g.zero_();
                }
            }
            tch::manual_seed(SEED);
            let loss = model.forward_t(x, train).cross_entropy_for_logits(labels);
            loss.backward();
            let norm = vs
                .trainable_variables()
                .iter()
                .map(|v| v.grad())
                .filter(|g| g.defined())
                .map(|g| g.to_kind(Kind::Double).square().sum(Kind::Double))
                .fold(Tensor::from(0.0f64), |a, b| a + b)
                .sqrt()
                .double_value(&[]);
            let loss = loss.double_value(&[]);
            let want_loss = expected
                .get(&format!("loss_{mode}"))
                .unwrap()
                .double_value(&[0]);
            let want_norm = expected
                .get(&format!("gradnorm_{mode}"))
                .unwrap()
                .double_value(&[0]);
            let rel_loss = (loss - want_loss).abs() / want_loss.abs();
            let rel_norm = (norm - want_norm).abs() / want_norm.abs();
            println!(
                "{arch} {mode}: loss {loss:.7} (torch {want_loss:.7}, {rel_loss:.1e}), gradient \
                 norm {norm:.7} (torch {want_norm:.7}, {rel_norm:.1e})"
            );
            if rel_loss > 1e-5 || rel_norm > 1e-5 {
                failures.push(format!(
                    "{arch} {mode}: loss {loss} vs {want_loss}, gradient norm {norm} vs {want_norm}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
