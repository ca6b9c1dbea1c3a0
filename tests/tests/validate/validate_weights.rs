//! `make validate`: the real pretrained files in `../shared/weights` load in their original
//! on-disk formats, and every tensor equals what `torch.load` gives, bit for bit.

use ferrovis_core::checkpoint::{self, Format, ReadOptions};
use ferrovis_tests::{assert_tensor_matches, run_reference, shared_dir};

#[test]
#[ignore = "needs ../shared: run `make validate`"]
fn validate_shared_weights_match_torch_load() {
    let weights = shared_dir().join("weights");
    let files = [
        ("mobilenet_v2-b0353104.pth", 314),
        ("efficientnet-lite0-57934424.pth", 296),
        ("vgg_r31.pth", 12),
        ("dec_r31.pth", 10),
    ];
    let out = tempfile::tempdir().unwrap();
    for (file, count) in files {
        let path = weights.join(file);
        let ckpt =
            checkpoint::open(&path, &ReadOptions::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ckpt.format, Format::TorchLegacy, "{file}");
        assert_eq!(ckpt.state_dict.len(), count, "{file}: tensor count");

        let json = out.path().join(format!("{file}.json"));
        run_reference(
            "checkpoints.py",
            &["describe".as_ref(), path.as_os_str(), json.as_os_str()],
        );
        let expected: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        let expected = expected.as_array().unwrap();
        assert_eq!(expected.len(), count, "{file}: torch.load tensor count");
        for (e, (name, t)) in expected.iter().zip(ckpt.state_dict.iter()) {
            assert_eq!(name, e["name"].as_str().unwrap(), "{file}: order");
            assert_tensor_matches(file, t, e);
        }
        println!(
            "{file}: {count} tensors, {} elements, bit-identical to torch.load",
            ckpt.state_dict.numel()
        );
    }
}
