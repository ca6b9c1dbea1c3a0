//! Compiles the libjpeg region decoder (`csrc/jpeg_region.c`) against the system libjpeg(-turbo),
//! the same library OpenCV decodes JPEGs with (Debian: `libjpeg-dev`, pulled in by `libopencv-dev`).

fn main() {
    println!("cargo:rerun-if-changed=csrc/jpeg_region.c");
    cc::Build::new()
        .file("csrc/jpeg_region.c")
        .opt_level(2)
        .warnings(true)
        .compile("ferrovis_jpeg_region");
    println!("cargo:rustc-link-lib=jpeg");
}
