//! Helpers for the cross-crate tests: running the PyTorch reference scripts in
//! `tests/reference/` with the Python environment that `make setup` created, and comparing tensors
//! bit for bit.

pub mod zoo;

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};
use tch::Tensor;

/// The Python interpreter with torch and torchvision, as written by `scripts/setup.sh` into
/// `.cargo/config.toml`. Tests that need reference outputs fail (never skip) without it.
pub fn python() -> PathBuf {
    let p = std::env::var_os("FERROVIS_PYTHON")
        .map(PathBuf::from)
        .or_else(|| option_env!("FERROVIS_PYTHON").map(PathBuf::from))
        .expect("FERROVIS_PYTHON is not set: run `make setup` (it writes .cargo/config.toml)");
    assert!(
        p.exists(),
        "FERROVIS_PYTHON={} does not exist: run `make setup`",
        p.display()
    );
    p
}

/// Path of a reference script in `tests/reference/`.
pub fn reference_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("reference")
        .join(name)
}

/// Runs a reference script with arguments; panics with its output if it fails. Returns stdout.
pub fn run_reference(script: &str, args: &[&std::ffi::OsStr]) -> String {
    let out = Command::new(python())
        .arg(reference_script(script))
        .args(args)
        .output()
        .expect("could not start the reference Python");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Runs `script` into the folder `dir` (emptied first, passed as the script's first argument)
/// and returns `dir`: how a test file writes its reference outputs, once, behind a `OnceLock`.
pub fn write_reference(script: &str, dir: PathBuf) -> PathBuf {
    let _ = std::fs::remove_dir_all(&dir);
    run_reference(script, &[dir.as_os_str()]);
    dir
}

/// A hub whose Hugging Face cache is `hf_cache` (a reference's snapshots) and which may not use
/// the network: a name that is not cached there is an error, nothing is fetched.
pub fn offline_hub(hf_cache: &Path) -> ferrovis_core::hub::Hub {
    ferrovis_core::hub::Hub {
        torch_hub: hf_cache.join("torch"),
        hf_cache: hf_cache.to_path_buf(),
        hf_endpoint: "http://127.0.0.1:9".into(),
        ferrovis_cache: hf_cache.join("ferrovis"),
        offline: true,
    }
}

/// Runs `f` with the environment variables `vars` set (and `FERROVIS_OFFLINE=1`, so nothing is
/// fetched), removing them afterwards whether `f` returns or panics (the panic then goes on).
/// The hub reads these variables on every resolve: hold the workflows' serial lock around it.
pub fn with_offline_env<R>(vars: &[(&str, &Path)], f: impl FnOnce() -> R) -> R {
    for (k, v) in vars {
        std::env::set_var(k, v);
    }
    std::env::set_var("FERROVIS_OFFLINE", "1");
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    for (k, _) in vars {
        std::env::remove_var(k);
    }
    std::env::remove_var("FERROVIS_OFFLINE");
    match result {
        Ok(r) => r,
        Err(e) => std::panic::resume_unwind(e),
    }
}

/// SHA-256 of a tensor's contiguous little-endian bytes (same as the reference scripts compute).
pub fn tensor_sha256(t: &Tensor) -> String {
    let t = t.contiguous();
    let numel = t.numel();
    let mut bytes = vec![0u8; numel * t.kind().elt_size_in_bytes()];
    if numel > 0 {
        t.copy_data_u8(&mut bytes, numel);
    }
    let digest = Sha256::digest(&bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Asserts that `t` equals a reference description `{name, dtype, shape, sha256}` written by
/// `tests/reference/checkpoints.py`: same shape, same dtype, same bytes.
pub fn assert_tensor_matches(label: &str, t: &Tensor, reference: &serde_json::Value) {
    let name = reference["name"].as_str().unwrap_or("?");
    let shape: Vec<i64> = reference["shape"]
        .as_array()
        .expect("reference shape")
        .iter()
        .map(|v| v.as_i64().expect("integer dimension"))
        .collect();
    assert_eq!(t.size(), shape, "{label}: {name} shape");
    let dtype = ferrovis_core::checkpoint::inspect::dtype_name(t.kind());
    assert_eq!(
        dtype,
        reference["dtype"].as_str().unwrap_or("?"),
        "{label}: {name} dtype"
    );
    assert_eq!(
        tensor_sha256(t),
        reference["sha256"].as_str().unwrap_or("?"),
        "{label}: {name} bytes"
    );
}

/// The shared data folder for `make validate`: `$FERROVIS_SHARED`, which the Makefile sets.
pub fn shared_dir() -> PathBuf {
    let dir = std::env::var_os("FERROVIS_SHARED")
        .map(PathBuf::from)
        .expect("FERROVIS_SHARED is not set: run validation through `make validate`");
    assert!(
        dir.is_dir(),
        "FERROVIS_SHARED={} is not a folder",
        dir.display()
    );
    dir
}

/// Per row of a run folder's `results.csv`, the sum of the `columns` named (e.g. a detector's
/// training losses by epoch). Panics naming the file or the column that is missing.
pub fn results_column_sums(csv: &Path, columns: &[&str]) -> Vec<f64> {
    let text = std::fs::read_to_string(csv).unwrap_or_else(|e| panic!("{}: {e}", csv.display()));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let at: Vec<usize> = columns
        .iter()
        .map(|name| {
            header
                .iter()
                .position(|c| c == name)
                .unwrap_or_else(|| panic!("{}: no column {name}", csv.display()))
        })
        .collect();
    lines
        .map(|line| {
            let row: Vec<&str> = line.split(',').collect();
            at.iter()
                .map(|&i| {
                    row.get(i)
                        .and_then(|v| v.parse::<f64>().ok())
                        .unwrap_or(f64::NAN)
                })
                .sum()
        })
        .collect()
}

/// Runs the TorchScript file `module` in Python (`torch.jit.load`) on `input` and returns the
/// largest absolute difference from `expected`, what ferrovis computed. Panics when the shapes
/// differ or the script fails.
pub fn torchscript_max_diff(module: &Path, input: &Tensor, expected: &Tensor) -> f64 {
    let io = module.with_extension("io.safetensors");
    Tensor::write_safetensors(&[("input", input), ("output", expected)], &io)
        .expect("writing the inputs and outputs for torchscript.py");
    let out = run_reference("torchscript.py", &[module.as_os_str(), io.as_os_str()]);
    let reply: serde_json::Value =
        serde_json::from_str(out.trim()).expect("torchscript.py prints one JSON line");
    assert_eq!(
        reply["shape"],
        serde_json::json!(expected.size()),
        "{}: Python's output has another shape",
        module.display()
    );
    reply["max_abs_diff"]
        .as_f64()
        .expect("max_abs_diff is a number")
}
