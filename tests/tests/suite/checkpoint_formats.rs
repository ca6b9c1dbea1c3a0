//! PyTorch writes checkpoints in every layout users meet; ferrovis must read each bit for bit,
//! load them into a VarStore with a PyTorch-like report, and write weights PyTorch loads back.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ferrovis_core::checkpoint::{self, Format, LoadOptions, ReadOptions, StateDict};
use ferrovis_tests::{assert_tensor_matches, run_reference, tensor_sha256};
use serde_json::Value;
use tch::nn::{self, Module, ModuleT, VarStore};
use tch::{Device, Kind, Tensor};

/// Fixtures written once per test process by `checkpoints.py fixtures`.
fn fixtures() -> &'static (PathBuf, Value) {
    static FIXTURES: OnceLock<(PathBuf, Value)> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("checkpoint-fixtures");
        let _ = std::fs::remove_dir_all(&dir);
        run_reference("checkpoints.py", &["fixtures".as_ref(), dir.as_os_str()]);
        let expected = std::fs::read_to_string(dir.join("expected.json")).unwrap();
        (dir.clone(), serde_json::from_str(&expected).unwrap())
    })
}

fn fixture(name: &str) -> PathBuf {
    fixtures().0.join(name)
}

fn assert_matches_reference(file: &str, sd: &StateDict) {
    let expected = fixtures().1[file].as_array().unwrap();
    let mut names: Vec<&str> = sd.names().collect();
    let mut want: Vec<&str> = expected
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    if file.ends_with(".safetensors") {
        // safetensors keeps no insertion order (writers sort by dtype and name).
        names.sort();
        want.sort();
    }
    assert_eq!(names, want, "{file}: tensor names or order");
    for e in expected {
        let name = e["name"].as_str().unwrap();
        assert_tensor_matches(file, sd.get(name).unwrap(), e);
    }
}

#[test]
fn every_layout_torch_writes_reads_bit_exactly() {
    let formats = [
        ("plain_zip.pt", Format::TorchZip),
        ("plain_legacy.pt", Format::TorchLegacy),
        ("plain_protocol4.pt", Format::TorchZip),
        ("ordered_dict_zip.pth", Format::TorchZip),
        ("ordered_dict_legacy.pth", Format::TorchLegacy),
        ("dtypes_zip.pt", Format::TorchZip),
        ("dtypes_legacy.pt", Format::TorchLegacy),
        ("views_zip.pt", Format::TorchZip),
        ("views_legacy.pt", Format::TorchLegacy),
        ("nested.pt", Format::TorchZip),
        ("data_parallel.pt", Format::TorchZip),
        ("pickled_module.pt", Format::TorchZip),
        ("hub.safetensors", Format::Safetensors),
    ];
    let listed: Vec<&str> = fixtures()
        .1
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(listed.len(), formats.len(), "every fixture is checked");
    for (file, format) in formats {
        let ckpt = checkpoint::open(fixture(file), &ReadOptions::default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ckpt.format, format, "{file}");
        assert_matches_reference(file, &ckpt.state_dict);
        let stripped = ckpt.stripped_prefix.as_deref();
        assert_eq!(
            stripped,
            (file == "data_parallel.pt").then_some("module."),
            "{file}"
        );
    }
}

#[test]
fn nested_keys_can_be_named_and_errors_list_what_is_there() {
    let sd = checkpoint::open(
        fixture("nested.pt"),
        &ReadOptions {
            key: Some("model".into()),
            ..Default::default()
        },
    )
    .unwrap()
    .state_dict;
    assert_matches_reference("nested.pt", &sd);

    let err = checkpoint::open(
        fixture("nested.pt"),
        &ReadOptions {
            key: Some("weights".into()),
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("nested.pt"), "{err}");
    assert!(err.contains("no key \"weights\""), "{err}");
    assert!(err.contains("[model, epoch, optimizer, note]"), "{err}");

    let err = checkpoint::open(
        fixture("nested.pt"),
        &ReadOptions {
            key: Some("optimizer".into()),
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("found no tensors to load under \"optimizer\""),
        "{err}"
    );

    // A tensor beside an object: the key refused and why, not "found no tensors".
    let err = checkpoint::open(fixture("tensor_beside_object.pt"), &ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "key \"x\" holds an object of class fractions.Fraction, not a tensor, beside 1 \
             tensors"
        ),
        "{err}"
    );

    let kept = checkpoint::open(
        fixture("data_parallel.pt"),
        &ReadOptions {
            keep_module_prefix: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(kept.state_dict.names().all(|n| n.starts_with("module.")));
    assert_eq!(kept.stripped_prefix, None);
}

/// The reference script's `small_cnn`: Conv(3→8, 3×3), BatchNorm, ReLU, Flatten, Linear(288→classes).
struct SmallCnn {
    conv: nn::Conv2D,
    bn: nn::BatchNorm,
    fc: nn::Linear,
}

impl SmallCnn {
    fn new(vs: &VarStore, classes: i64) -> Self {
        let p = vs.root();
        SmallCnn {
            conv: nn::conv2d(&p / "0", 3, 8, 3, Default::default()),
            bn: nn::batch_norm2d(&p / "1", 8, Default::default()),
            fc: nn::linear(&p / "4", 8 * 6 * 6, classes, Default::default()),
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let x = self.bn.forward_t(&self.conv.forward(x), false).relu();
        self.fc.forward(&x.flatten(1, -1))
    }
}

#[test]
fn weights_written_by_ferrovis_load_in_pytorch_with_equal_outputs() {
    tch::manual_seed(7);
    let vs = VarStore::new(Device::Cpu);
    let model = SmallCnn::new(&vs, 4);
    tch::no_grad(|| {
        // Non-trivial statistics, so a mix-up of running_mean/var would show in the outputs.
        model
            .bn
            .running_mean
            .shallow_clone()
            .copy_(&Tensor::randn([8], (Kind::Float, Device::Cpu)));
        model
            .bn
            .running_var
            .shallow_clone()
            .copy_(&Tensor::rand([8], (Kind::Float, Device::Cpu)).g_add_scalar(0.5));
    });
    let input = Tensor::randn([2, 3, 8, 8], (Kind::Float, Device::Cpu));
    let output = tch::no_grad(|| model.forward(&input));

    let dir = tempfile::tempdir().unwrap();
    checkpoint::save_varstore(&vs, dir.path().join("weights.safetensors")).unwrap();
    checkpoint::save_safetensors(
        dir.path().join("io.safetensors"),
        [("input", &input), ("output", &output)],
    )
    .unwrap();
    let said = run_reference(
        "checkpoints.py",
        &["roundtrip".as_ref(), dir.path().as_os_str()],
    );
    assert!(said.contains("max abs difference"), "{said}");

    // And our own reader gives the exact bytes back.
    let back = checkpoint::read(dir.path().join("weights.safetensors")).unwrap();
    let vars = vs.variables();
    assert_eq!(back.len(), vars.len());
    for (name, t) in back.iter() {
        assert_eq!(tensor_sha256(t), tensor_sha256(&vars[name]), "{name}");
    }
}

#[test]
fn load_into_reports_loaded_missing_unexpected_and_mismatched() {
    let sd = checkpoint::read(fixture("hub.safetensors")).unwrap();

    // Same architecture: everything loads, values equal. tch's BatchNorm keeps no
    // num_batches_tracked: PyTorch's step counter, which holds no weight, is skipped (as
    // torchvision's FrozenBatchNorm2d drops it), so even a strict load succeeds.
    let vs = VarStore::new(Device::Cpu);
    let _m = SmallCnn::new(&vs, 4);
    let report = checkpoint::load_into(&vs, &sd, &LoadOptions::default()).unwrap();
    assert_eq!(report.loaded.len(), 8);
    assert!(report.unexpected.is_empty(), "{report}");
    assert_eq!(report.skipped, ["1.num_batches_tracked"]);
    let strict = LoadOptions::default().strict(true);
    let report = checkpoint::load_into(&vs, &sd, &strict).unwrap();
    assert!(report.is_complete());
    let vars = vs.variables();
    for name in &report.loaded {
        assert_eq!(
            tensor_sha256(&vars[name]),
            tensor_sha256(sd.get(name).unwrap()),
            "{name}"
        );
    }

    // A new head with 5 classes: the old one is mismatched (not loaded), or skipped on request.
    let vs5 = VarStore::new(Device::Cpu);
    let _m = SmallCnn::new(&vs5, 5);
    let report = checkpoint::load_into(&vs5, &sd, &LoadOptions::default()).unwrap();
    assert_eq!(report.loaded.len(), 6);
    let mut mismatched: Vec<&str> = report.mismatched.iter().map(|m| m.name.as_str()).collect();
    mismatched.sort();
    assert_eq!(mismatched, ["4.bias", "4.weight"]);
    assert_eq!(
        report
            .mismatched
            .iter()
            .find(|m| m.name == "4.weight")
            .unwrap()
            .found,
        [4, 288]
    );
    assert!(checkpoint::load_into(&vs5, &sd, &LoadOptions::default().strict(true)).is_err());

    let opts = LoadOptions::default()
        .skip(r"^4\.|num_batches_tracked")
        .unwrap();
    let report = checkpoint::load_into(&vs5, &sd, &opts).unwrap();
    let mut skipped = report.skipped.clone();
    skipped.sort();
    assert_eq!(skipped, ["1.num_batches_tracked", "4.bias", "4.weight"]);
    assert_eq!(report.missing, ["4.bias", "4.weight"]);
    let text = report.to_string();
    assert!(text.starts_with("loaded 6 of 8 tensors"), "{text}");

    // Renaming: a checkpoint whose names carry a prefix the model lacks.
    let prefixed: StateDict = sd
        .iter()
        .map(|(n, t)| (format!("backbone.{n}"), t.shallow_clone()))
        .collect();
    let report = checkpoint::load_into(&vs, &prefixed, &LoadOptions::default()).unwrap();
    // Every weight is unexpected under the prefix; the step counter is skipped as ever.
    assert_eq!(report.unexpected.len(), 8);
    assert_eq!(report.skipped, ["backbone.1.num_batches_tracked"]);
    let opts = LoadOptions::default().rename_prefix("backbone.", "");
    assert_eq!(
        checkpoint::load_into(&vs, &prefixed, &opts)
            .unwrap()
            .loaded
            .len(),
        8
    );
    let opts = LoadOptions::default()
        .rename_regex(r"^backbone\.(\d+)\.", "$1.")
        .unwrap();
    assert_eq!(
        checkpoint::load_into(&vs, &prefixed, &opts)
            .unwrap()
            .loaded
            .len(),
        8
    );
    assert!(LoadOptions::default().skip("(").is_err());
}

#[test]
fn float16_module_checkpoint_converts_to_the_variable_dtype() {
    let sd = checkpoint::read(fixture("pickled_module.pt")).unwrap();
    let w = sd.get("stem.conv.weight").unwrap();
    assert_eq!(w.kind(), Kind::Half);
    let vs = VarStore::new(Device::Cpu);
    let var = vs
        .root()
        .sub("stem")
        .sub("conv")
        .zeros("weight", &[4, 3, 3, 3]);
    let report = checkpoint::load_into(&vs, &sd, &LoadOptions::default()).unwrap();
    assert_eq!(report.loaded, ["stem.conv.weight"]);
    assert_eq!(var.kind(), Kind::Float);
    let diff = (&var - w.to_kind(Kind::Float))
        .abs()
        .max()
        .double_value(&[]);
    assert_eq!(diff, 0.0);
    // The non-persistent buffer `stem.scratch` is not part of the state dict.
    assert!(sd.get("stem.scratch").is_none());
}

#[test]
fn tch_ot_archives_read_through_libtorch() {
    tch::manual_seed(3);
    let vs = VarStore::new(Device::Cpu);
    let _m = SmallCnn::new(&vs, 4);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.ot");
    vs.save(&path).unwrap();
    let ckpt = checkpoint::open(&path, &ReadOptions::default()).unwrap();
    assert_eq!(ckpt.format, Format::TorchScript);
    let vars = vs.variables();
    assert_eq!(ckpt.state_dict.len(), vars.len());
    for (n, t) in ckpt.state_dict.iter() {
        assert_eq!(tensor_sha256(t), tensor_sha256(&vars[n]), "{n}");
    }
}

#[test]
fn unknown_bytes_are_named_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("notes.pth");
    std::fs::write(&p, b"hello, this is not a checkpoint").unwrap();
    let err = checkpoint::read(&p).unwrap_err().to_string();
    assert!(
        err.contains("notes.pth") && err.contains("unrecognised format"),
        "{err}"
    );
    let err = checkpoint::read(dir.path().join("absent.pt"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("absent.pt"), "{err}");
}

/// Every prefix truncation of real files must be an error, every single-byte corruption an error
/// or a load; never a panic.
#[test]
fn truncated_and_corrupted_files_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("damaged.pt");
    for file in [
        "plain_legacy.pt",
        "views_legacy.pt",
        "ordered_dict_legacy.pth",
        "plain_zip.pt",
        "hub.safetensors",
    ] {
        let good = std::fs::read(fixture(file)).unwrap();
        let expected_count = fixtures().1[file].as_array().unwrap().len();
        for len in 0..good.len() {
            std::fs::write(&target, &good[..len]).unwrap();
            let r = std::panic::catch_unwind(|| checkpoint::read(&target));
            match r {
                Ok(Err(e)) => assert!(e.to_string().contains("damaged.pt"), "{e}"),
                Ok(Ok(sd)) => panic!(
                    "{file} truncated to {len} bytes loaded {} tensors",
                    sd.len()
                ),
                Err(_) => panic!("{file} truncated to {len} bytes panicked"),
            }
        }
        for pos in 0..good.len() {
            for flip in [0x00u8, 0xff, good[pos] ^ 0x01] {
                let mut bad = good.clone();
                bad[pos] = flip;
                std::fs::write(&target, &bad).unwrap();
                match std::panic::catch_unwind(|| checkpoint::read(&target)) {
                    Ok(Ok(sd)) => {
                        // A corrupted data byte legitimately changes values; structure must hold.
                        assert!(sd.len() <= expected_count + 1, "{file} byte {pos}");
                    }
                    Ok(Err(_)) => {}
                    Err(_) => panic!("{file} with byte {pos} set to {flip:#04x} panicked"),
                }
            }
        }
    }
}

/// A tiny pickle writer for hand-crafted hostile files.
struct Pickler(Vec<u8>);

impl Pickler {
    fn new() -> Self {
        Pickler(vec![0x80, 2])
    }
    fn op(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
    fn str(&mut self, s: &str) -> &mut Self {
        self.0.push(b'X');
        self.0.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
        self
    }
    fn int(&mut self, i: i64) -> &mut Self {
        self.0.push(0x8a);
        self.0.push(8);
        self.0.extend_from_slice(&i.to_le_bytes());
        self
    }
    fn global(&mut self, module: &str, name: &str) -> &mut Self {
        self.op(format!("c{module}\n{name}\n").as_bytes())
    }
    fn stop(&mut self) -> Vec<u8> {
        self.0.push(b'.');
        std::mem::take(&mut self.0)
    }
}

/// A legacy file holding `{'x': tensor}` with the given storage class, size and stride, whose one
/// storage claims `claimed` elements and actually holds `data`.
fn legacy_file(storage: &str, size: i64, stride: i64, claimed: u64, data: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend(
        Pickler::new()
            .op(&[0x8a, 10])
            .op(&[0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19])
            .stop(),
    );
    f.extend(Pickler::new().int(1001).stop());
    f.extend(Pickler::new().op(b"}").stop());
    let mut p = Pickler::new();
    p.op(b"}")
        .str("x")
        .global("torch._utils", "_rebuild_tensor_v2")
        .op(b"(");
    p.op(b"(")
        .str("storage")
        .global("torch", storage)
        .str("0")
        .str("cpu")
        .int(claimed as i64)
        .op(b"Nt")
        .op(b"Q");
    p.int(0)
        .op(b"(")
        .int(size)
        .op(b"t(")
        .int(stride)
        .op(b"t")
        .op(&[0x89])
        .op(b"}t")
        .op(b"R")
        .op(b"s");
    f.extend(p.stop());
    f.extend(Pickler::new().op(b"(").str("0").op(b"l").stop());
    f.extend_from_slice(&claimed.to_le_bytes());
    f.extend_from_slice(data);
    f
}

#[test]
fn hostile_headers_are_refused_without_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("crafted.pt");
    let read = |bytes: Vec<u8>| {
        std::fs::write(&p, bytes).unwrap();
        checkpoint::read(&p).map_err(|e| e.to_string())
    };

    // Sanity: the hand-written file is valid when honest.
    let sd = read(legacy_file(
        "FloatStorage",
        2,
        1,
        2,
        &[0, 0, 128, 63, 0, 0, 0, 64],
    ))
    .unwrap();
    let x = sd.get("x").unwrap();
    assert_eq!(Vec::<f32>::try_from(x).unwrap(), [1.0, 2.0]);

    // A storage claiming 10^15 elements in a tiny file.
    let err = read(legacy_file(
        "FloatStorage",
        2,
        1,
        1_000_000_000_000_000,
        &[0; 8],
    ))
    .unwrap_err();
    assert!(err.contains("claims 1000000000000000 elements"), "{err}");

    // A tensor of 10^15 elements broadcast (stride 0) from one real element.
    let err = read(legacy_file(
        "FloatStorage",
        1_000_000_000_000_000,
        0,
        1,
        &[0; 4],
    ))
    .unwrap_err();
    assert!(err.contains("refusing"), "{err}");

    // A tensor reaching past its storage.
    let err = read(legacy_file("FloatStorage", 3, 1, 2, &[0; 8])).unwrap_err();
    assert!(
        err.contains("needs 3 elements but its storage 0 has 2"),
        "{err}"
    );

    // An element type we do not support is named.
    let err = read(legacy_file("ComplexFloatStorage", 1, 1, 1, &[0; 8])).unwrap_err();
    assert!(
        err.contains("unsupported storage type torch.ComplexFloatStorage"),
        "{err}"
    );

    // A wrong magic number.
    let mut wrong = legacy_file("FloatStorage", 2, 1, 2, &[0; 8]);
    wrong[5] ^= 0xff;
    let err = read(wrong).unwrap_err();
    assert!(err.contains("crafted.pt"), "{err}");
}
