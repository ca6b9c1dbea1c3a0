//! `make validate`: the classification architectures too large for `make test`'s budget
//! (`reference/zoo.py`'s LARGE list: ViT-L and ViT-H, RegNet's 16–128 GF, ConvNeXt-L, …) give
//! torchvision's logits and feature levels from the same seeded weights, as the others do in
//! `make test`. Needs no `../shared` data, only time and memory.

use ferrovis_tests::zoo;

#[test]
#[ignore = "make validate"]
fn the_largest_architectures_give_torchvisions_outputs() {
    let (small, large) =
        zoo::check_cases(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")), "large");
    assert_eq!(small.len() + large.len(), 80);
    println!(
        "{} large architectures checked: {}",
        large.len(),
        large.join(", ")
    );
}
