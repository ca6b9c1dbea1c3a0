//! Compiles the camera-motion-compensation shim (`csrc/gmc.cpp`) against the system OpenCV
//! (Debian: `libopencv-dev`, which the opencv crate already needs), linking the two modules it
//! calls that the crate's enabled features leave out: `video` and `calib3d`.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=csrc/gmc.cpp");
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .file("csrc/gmc.cpp")
        .opt_level(2)
        .warnings(true);
    println!("cargo:rerun-if-env-changed=OPENCV_INCLUDE_PATHS");
    println!("cargo:rerun-if-env-changed=OPENCV_LINK_PATHS");
    // The opencv crate's own variables first (an OpenCV outside the system's places), then
    // pkg-config, then Debian's place.
    if let Ok(paths) = std::env::var("OPENCV_INCLUDE_PATHS") {
        for dir in paths.split(',').map(str::trim).filter(|d| !d.is_empty()) {
            build.include(dir.trim_start_matches('+'));
        }
    }
    if let Ok(paths) = std::env::var("OPENCV_LINK_PATHS") {
        for dir in paths.split(',').map(str::trim).filter(|d| !d.is_empty()) {
            println!(
                "cargo:rustc-link-search=native={}",
                dir.trim_start_matches('+')
            );
        }
    }
    let cflags = Command::new("pkg-config")
        .args(["--cflags", "opencv4"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    match cflags {
        Some(flags) => {
            for dir in flags
                .split_whitespace()
                .filter_map(|f| f.strip_prefix("-I"))
            {
                build.include(dir);
            }
        }
        None => {
            build.include("/usr/include/opencv4");
        }
    }
    build.compile("ferrovis_gmc");
    for lib in [
        "opencv_video",
        "opencv_calib3d",
        "opencv_imgproc",
        "opencv_core",
    ] {
        println!("cargo:rustc-link-lib={lib}");
    }
}
