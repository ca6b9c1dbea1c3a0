//! A broken OpenCV install (or a channel-order slip) must fail loudly: write a generated PNG, read it
//! back, compare every pixel, and check with OpenCV's own BGR reader that red is stored as red.

use ferrovis_data::decode::{read_rgb, write_rgb};
use ferrovis_data::RgbImage;
use opencv::prelude::*;

fn gradient(w: usize, h: usize) -> RgbImage {
    let mut img = RgbImage::filled(w, h, [0, 0, 0]);
    for y in 0..h {
        for x in 0..w {
            img.set_pixel(
                x,
                y,
                [
                    (x * 255 / (w - 1)) as u8,
                    (y * 255 / (h - 1)) as u8,
                    ((x + y) % 256) as u8,
                ],
            );
        }
    }
    img
}

#[test]
fn png_round_trip_is_lossless_and_rgb() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gradient.png");
    let mut img = gradient(37, 23);
    img.set_pixel(0, 0, [255, 0, 0]);
    write_rgb(&path, &img).unwrap();

    let back = read_rgb(&path).unwrap();
    assert_eq!((back.width, back.height), (37, 23));
    assert_eq!(back, img);

    // OpenCV's native order is BGR: a pure red pixel must have its 255 in channel 2.
    let raw =
        opencv::imgcodecs::imread(path.to_str().unwrap(), opencv::imgcodecs::IMREAD_COLOR).unwrap();
    let px = raw.at_2d::<opencv::core::Vec3b>(0, 0).unwrap();
    assert_eq!([px[0], px[1], px[2]], [0, 0, 255]);
}

#[test]
fn missing_and_corrupt_files_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.png");
    let err = read_rgb(&missing).unwrap_err().to_string();
    assert!(
        err.contains("nope.png") && err.contains("no such file"),
        "{err}"
    );

    let bad = dir.path().join("bad.jpg");
    std::fs::write(&bad, b"\xff\xd8\xff\xe0 this is not a jpeg").unwrap();
    let err = read_rgb(&bad).unwrap_err().to_string();
    assert!(
        err.contains("bad.jpg") && err.contains("truncated JPEG"),
        "{err}"
    );
    // Complete (it has an end marker) but still not an image.
    std::fs::write(&bad, b"\xff\xd8\xff\xe0 this is not a jpeg \xff\xd9").unwrap();
    let err = read_rgb(&bad).unwrap_err().to_string();
    assert!(
        err.contains("bad.jpg") && err.contains("not a decodable image"),
        "{err}"
    );
}
