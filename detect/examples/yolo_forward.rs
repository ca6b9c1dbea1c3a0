//! Times the eval-mode forward of a YOLO model at one input size, fused or not, channels-last or
//! not: `cargo run --release -p ferrovis-detect --example yolo_forward -- yolo11n 480 640`.

use std::time::Instant;

use ferrovis_detect::yolo::model::{Version, Yolo, YoloConfig};
use tch::{nn::VarStore, Device, Kind, Tensor};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let name = args.get(1).map_or("yolo11n", String::as_str);
    let h: i64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(480);
    let w: i64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(640);
    let (version, scale) = Version::parse_model_name(name).expect("a YOLO model name");
    let x = Tensor::rand([1, 3, h, w], (Kind::Float, Device::Cpu));
    for (fuse, cl) in [(false, false), (true, false), (true, true)] {
        let vs = VarStore::new(Device::Cpu);
        let mut model = Yolo::new(
            &vs.root(),
            YoloConfig {
                version,
                scale,
                num_classes: 80,
            },
        );
        if fuse {
            model.fuse(cl);
        }
        let mut times = Vec::new();
        for _ in 0..12 {
            let t = Instant::now();
            let _ = tch::no_grad(|| model.predict(&x));
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        println!(
            "{name} {h}x{w} fuse={fuse} channels_last={cl}: median {:.1} ms",
            times[6]
        );
    }
}
