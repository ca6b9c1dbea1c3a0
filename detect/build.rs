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
    // pkg-config knows where the headers are; Debian's place is the fallback.
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
