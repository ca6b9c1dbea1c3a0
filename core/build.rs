//! Builds the C++ shims over libtorch's c10d (`csrc/distributed.cpp`, see `src/distributed`) and
//! its operator profiler (`csrc/profiler.cpp`, see `src/profiler.rs`) and fused optimiser kernels
//! (`csrc/optim.cpp`, see `src/optim/optimizer.rs`) and tracer (`csrc/trace_graph.cpp`, see
//! `src/onnx`)
//! against the same libtorch `tch` links, with the same C++ standard and ABI flags as tch's own
//! shim. Gloo's headers (which the PyTorch wheel does not ship) come from Debian's `libgloo-dev`;
//! without them the shim is built as a stub whose process groups fail with a message saying so,
//! so the library still builds. NCCL is compiled in when `FERROVIS_NCCL=1` (setup sets it where
//! a GPU is present), libtorch has `libtorch_cuda.so`, and the NCCL and CUDA runtime headers are
//! found beside it (a CUDA toolkit, or the `nvidia-*` wheels setup installs).

use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=csrc/distributed.cpp");
    println!("cargo:rerun-if-changed=csrc/profiler.cpp");
    println!("cargo:rerun-if-changed=csrc/optim.cpp");
    println!("cargo:rerun-if-changed=csrc/trace_graph.cpp");
    println!("cargo:rerun-if-changed=csrc/ffi_boundary.h");
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-env-changed=FERROVIS_GLOO_INCLUDE");
    println!("cargo:rerun-if-env-changed=CUDA_HOME");
    println!("cargo:rerun-if-env-changed=FERROVIS_NCCL");
    let libtorch = match libtorch_root() {
        Ok(dir) => dir,
        Err(why) => panic!("{why}"),
    };
    let gloo = std::env::var_os("FERROVIS_GLOO_INCLUDE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/include"));
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .file("csrc/distributed.cpp")
        .file("csrc/profiler.cpp")
        .file("csrc/optim.cpp")
        .file("csrc/trace_graph.cpp")
        .include(libtorch.join("include"))
        .include(libtorch.join("include/torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag_if_supported("-Wno-c++20-extensions")
        .flag_if_supported("-Wno-unused-parameter")
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        .define("GLOG_USE_GLOG_EXPORT", None)
        .warnings(false);
    if gloo.join("gloo").is_dir() {
        println!("cargo:rerun-if-changed={}", gloo.join("gloo").display());
    }
    if gloo.join("gloo/algorithm.h").is_file() {
        build.include(&gloo).define("USE_C10D_GLOO", None);
    } else {
        println!(
            "cargo:warning=gloo headers not found in {} (install libgloo-dev, or set \
             FERROVIS_GLOO_INCLUDE): core::distributed is built without process groups",
            gloo.display()
        );
        build.define("FERROVIS_NO_GLOO", None);
    }
    // NCCL's process group lives in libtorch_cuda.so: compiling it in makes every binary load
    // the CUDA libraries (+0.2 s and ~400 MB mapped per process), so only where asked
    // (setup sets FERROVIS_NCCL=1 on machines with a GPU).
    let want_nccl = std::env::var("FERROVIS_NCCL").is_ok_and(|v| v == "1");
    if let Some(includes) = want_nccl.then(|| nccl_includes(&libtorch)).flatten() {
        for dir in includes {
            build.include(dir);
        }
        build
            .define("USE_C10D_NCCL", None)
            .define("FERROVIS_NCCL", None);
    }
    build.compile("ferrovis_distributed");
}

/// The libtorch `tch` links: the one torch-sys found (it hands its `lib` folder to direct
/// dependents as `DEP_TCH_LIBTORCH_LIB`, whichever way it found it: `LIBTORCH`,
/// `LIBTORCH_USE_PYTORCH`, a system install), else `$LIBTORCH`.
fn libtorch_root() -> Result<PathBuf, String> {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let from_tch = std::env::var_os("DEP_TCH_LIBTORCH_LIB")
        .map(PathBuf::from)
        .and_then(|lib| lib.parent().map(Path::to_path_buf));
    let root = from_tch
        .or_else(|| std::env::var_os("LIBTORCH").map(PathBuf::from))
        .ok_or_else(|| {
            "ferrovis-core compiles small C++ shims against libtorch's headers, but neither \
             torch-sys (DEP_TCH_LIBTORCH_LIB) nor LIBTORCH names a libtorch: run `make setup`, \
             or set LIBTORCH to a libtorch 2.13 folder (or LIBTORCH_USE_PYTORCH=1 with PyTorch \
             installed)"
                .to_string()
        })?;
    if !root.join("include/torch").is_dir() {
        return Err(format!(
            "{}: no include/torch here, so not a libtorch folder with headers (set LIBTORCH to \
             one)",
            root.display()
        ));
    }
    Ok(root)
}

/// The include folders NCCL needs (nccl.h and a complete CUDA runtime header set), when libtorch
/// was built with CUDA and they can be found; `None` otherwise (Gloo only).
fn nccl_includes(libtorch: &Path) -> Option<Vec<PathBuf>> {
    if !libtorch.join("lib/libtorch_cuda.so").is_file() {
        return None;
    }
    let nvidia = libtorch.join("../nvidia");
    let cuda_home = std::env::var_os("CUDA_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/local/cuda"));
    let candidates = [
        nvidia.join("nccl/include"),
        nvidia.join("cu13/include"),
        nvidia.join("cuda_runtime/include"),
        cuda_home.join("include"),
    ];
    // Installing the headers later (setup adds them) must rebuild the shim with NCCL.
    for dir in candidates.iter().filter(|d| d.is_dir()) {
        println!("cargo:rerun-if-changed={}", dir.display());
    }
    let has = |file: &str| candidates.iter().any(|d| d.join(file).exists());
    // cuda_runtime.h alone is not enough: it includes crt/host_config.h and nv/target, which
    // come in the nvidia-cuda-crt and nvidia-cuda-cccl wheels (setup installs them) or a toolkit.
    let found =
        has("nccl.h") && has("cuda_runtime.h") && has("crt/host_config.h") && has("nv/target");
    if !found {
        println!(
            "cargo:warning=libtorch has CUDA but NCCL's or CUDA's headers are missing (run \
             `make setup`, or set CUDA_HOME): core::distributed is built with Gloo only"
        );
    }
    found.then(|| candidates.iter().filter(|d| d.is_dir()).cloned().collect())
}
