//! torchvision's `BalancedPositiveNegativeSampler`, seeded: `core::ops::sampler` draws the same
//! positives and negatives as PyTorch after the same `manual_seed`. Here, not in the parallel
//! suite, because the draws come from libtorch's process-global generator.

use std::path::Path;

use ferrovis_core::checkpoint;
use ferrovis_core::ops::sampler::BalancedPositiveNegativeSampler;
use ferrovis_tests::run_reference;
use tch::{Kind, Tensor};

#[test]
fn balanced_sampler_draws_as_torchvision() {
    let _serial = crate::serial();
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sampler.safetensors");
    run_reference("sampler.py", &[path.as_os_str()]);
    let r = checkpoint::read(&path).unwrap();
    let labels: Vec<Tensor> = (0..3)
        .map(|i| r.get(&format!("labels{i}")).unwrap().shallow_clone())
        .collect();
    for (size, fraction) in [(256, 0.5), (512, 0.25)] {
        let sampler = BalancedPositiveNegativeSampler {
            batch_size_per_image: size,
            positive_fraction: fraction,
        };
        tch::manual_seed(5);
        let masks = sampler.sample(&labels).unwrap();
        for (i, (pos, neg)) in masks.iter().enumerate() {
            let (want_pos, want_neg) = (
                r.get(&format!("pos_{size}_{i}")).unwrap(),
                r.get(&format!("neg_{size}_{i}")).unwrap(),
            );
            let count = |t: &Tensor| t.sum(Kind::Int64).int64_value(&[]);
            println!(
                "sampler ({size}, {fraction}) image {i}: {} positives, {} negatives",
                count(pos),
                count(neg)
            );
            assert!(
                pos.equal(want_pos),
                "({size}, {fraction}) image {i}: positives"
            );
            assert!(
                neg.equal(want_neg),
                "({size}, {fraction}) image {i}: negatives"
            );
        }
    }
    let bad = BalancedPositiveNegativeSampler {
        batch_size_per_image: 256,
        positive_fraction: 1.5,
    };
    let e = bad.sample(&labels).unwrap_err().to_string();
    assert!(e.contains("positive_fraction 1.5"), "{e}");
}
