//! Builds the C++ shim over libtorch's c10d (`csrc/distributed.cpp`, see `src/distributed`)
//! against the same libtorch `tch` links, with the same C++ standard and ABI flags as tch's own
//! shim. Gloo's headers (which the PyTorch wheel does not ship) come from Debian's `libgloo-dev`;
//! without them the shim is built as a stub whose process groups fail with a message saying so,
//! so the library still builds. NCCL is compiled in when libtorch has `libtorch_cuda.so` and the
//! NCCL and CUDA runtime headers are found beside it (a CUDA toolkit, or the `nvidia-*` wheels).

use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=csrc/distributed.cpp");
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-env-changed=FERROVIS_GLOO_INCLUDE");
    println!("cargo:rerun-if-env-changed=CUDA_HOME");
    let Some(libtorch) = std::env::var_os("LIBTORCH").map(PathBuf::from) else {
        panic!(
            "LIBTORCH is not set: ferrovis-core compiles a small C++ shim against libtorch's \
             headers (run `make setup`, which writes .cargo/config.toml, or set LIBTORCH)"
        );
    };
    let gloo = std::env::var_os("FERROVIS_GLOO_INCLUDE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/include"));
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .file("csrc/distributed.cpp")
        .include(libtorch.join("include"))
        .include(libtorch.join("include/torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag_if_supported("-Wno-c++20-extensions")
        .flag_if_supported("-Wno-unused-parameter")
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        .define("GLOG_USE_GLOG_EXPORT", None)
        .warnings(false);
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
    if let Some(includes) = nccl_includes(&libtorch) {
        for dir in includes {
            build.include(dir);
        }
        build
            .define("USE_C10D_NCCL", None)
            .define("FERROVIS_NCCL", None);
    }
    build.compile("ferrovis_distributed");
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
    let has = |file: &str| candidates.iter().any(|d| d.join(file).is_file());
    // cuda_runtime.h alone is not enough: the wheels lack crt/host_config.h, which it includes.
    (has("nccl.h") && has("cuda_runtime.h") && has("crt/host_config.h"))
        .then(|| candidates.iter().filter(|d| d.is_dir()).cloned().collect())
}
