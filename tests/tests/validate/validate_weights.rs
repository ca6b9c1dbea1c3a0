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

/// The registry's `vgg_r31` and `dec_r31` (members of LinearStyleTransfer's `models.zip`, which
/// cannot be fetched from here) carry the SHA-256 of the files in `../shared/weights`: a zip laid
/// out as the authors' (`models/…`) gives them up through the registry's own hashes, and the
/// extracted pair loads into the style commands' encoder and decoder.
#[test]
#[ignore = "needs ../shared: run `make validate`"]
fn validate_registry_style_pair_is_the_shared_one() {
    use ferrovis_core::hub::{archive, Hub, ENTRIES};
    use std::io::Write;

    let weights = shared_dir().join("weights");
    let dir = tempfile::tempdir().unwrap();
    let zip_path = dir.path().join("models.zip");
    let mut z = zip::ZipWriter::new(std::fs::File::create(&zip_path).unwrap());
    for file in ["vgg_r31.pth", "dec_r31.pth", "r31.pth"] {
        // r31.pth (the linear transform) stands in for the members ferrovis does not take.
        let data = std::fs::read(weights.join(file)).unwrap_or_else(|_| b"other".to_vec());
        z.start_file(
            format!("models/{file}"),
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        z.write_all(&data).unwrap();
    }
    z.finish().unwrap();

    let hub = Hub {
        ferrovis_cache: dir.path().join("cache"),
        offline: true,
        ..Hub::from_env()
    };
    let entries: Vec<_> = ENTRIES.iter().filter(|e| e.member.is_some()).collect();
    assert_eq!(
        entries.iter().map(|e| e.name()).collect::<Vec<_>>(),
        ["vgg_r31", "dec_r31"]
    );
    let wanted = hub.archive_members(entries[0].url);
    assert_eq!(wanted.len(), 2);
    archive::extract(&zip_path, &wanted.iter().collect::<Vec<_>>())
        .unwrap_or_else(|e| panic!("{e}"));
    for w in &wanted {
        assert_eq!(
            std::fs::read(&w.dest).unwrap(),
            std::fs::read(weights.join(&w.file_name)).unwrap()
        );
    }
    // Cached now: the names resolve offline, and the pair loads strictly.
    let enc = hub.resolve("vgg_r31").unwrap();
    let dec = hub.resolve("dec_r31").unwrap();
    ferrovis_style::arbitrary::AutoEncoder::load(&enc, &dec, tch::Device::Cpu)
        .unwrap_or_else(|e| panic!("{e:#}"));
    println!("vgg_r31, dec_r31: the registry's SHA-256 are the shared files'; the pair loads");
}
