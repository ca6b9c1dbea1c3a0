//! `make validate`: the classification architectures whose forward `make test` leaves out for its
//! budget (`reference/zoo.py`'s VALIDATE_ONLY: the LARGE ones — ViT-L and ViT-H, RegNet's 16–128
//! GF, ConvNeXt-B/L, … — and the SIZE_VARIANTS of families make test runs) give torchvision's
//! logits and feature levels from the same seeded weights, as the others do in `make test`. Needs
//! no `../shared` data, only time and memory.

use ferrovis_tests::zoo;

#[test]
#[ignore = "make validate"]
fn the_architectures_make_test_leaves_out_give_torchvisions_outputs() {
    let (small, large) =
        zoo::check_cases(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")), "large");
    assert_eq!(small.len() + large.len(), 80);
    println!(
        "{} large architectures checked: {}",
        large.len(),
        large.join(", ")
    );
}
