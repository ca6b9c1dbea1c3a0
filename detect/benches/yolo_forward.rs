//! The libtorch forward an exported YOLO graph replaces: `Model::predict` (network, box decoding,
//! class probabilities: `output0`) at batch 1 and batch 8, for `bench/onnx_export.py`, which runs
//! ONNX Runtime on the exported model beside it. `FERROVIS_BENCH_WEIGHTS` names the checkpoint
//! (the script's Ultralytics-saved YOLOv8n); `FERROVIS_BENCH_IMGSZ` the size (default 640).

use criterion::{criterion_group, criterion_main, Criterion};
use ferrovis_detect::yolo::predict::load_model;
use tch::{Device, Kind, Tensor};

fn bench(c: &mut Criterion) {
    tch::set_num_threads(2);
    let Some(weights) = std::env::var_os("FERROVIS_BENCH_WEIGHTS") else {
        eprintln!("yolo_forward: set FERROVIS_BENCH_WEIGHTS to a YOLO checkpoint (bench/onnx_export.py does)");
        return;
    };
    let size: i64 = std::env::var("FERROVIS_BENCH_IMGSZ")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(640);
    let m = load_model(std::path::Path::new(&weights), Device::Cpu, true).expect("the checkpoint");
    let mut group = c.benchmark_group("yolo_forward");
    group.sample_size(10);
    for batch in [1, 8] {
        let x = Tensor::rand([batch, 3, size, size], (Kind::Float, Device::Cpu));
        group.bench_function(format!("batch{batch}"), |b| {
            b.iter(|| tch::no_grad(|| m.model.predict(&x)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
