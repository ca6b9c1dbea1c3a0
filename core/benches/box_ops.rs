//! `batched_nms` of 5,000 boxes over 80 classes (YOLO- or Faster R-CNN-sized post-processing), for
//! `bench/box_ops.py`, which compares it with torchvision's on the same boxes: it writes them to
//! the file named by `FERROVIS_BENCH_BOXES` (`boxes`, `scores`, `idxs`). Without that variable the
//! bench draws its own.

use criterion::{criterion_group, criterion_main, Criterion};
use ferrovis_core::checkpoint;
use ferrovis_core::ops::detection::{batched_nms, nms};
use tch::{Kind, Tensor};

fn inputs() -> (Tensor, Tensor, Tensor) {
    if let Some(path) = std::env::var_os("FERROVIS_BENCH_BOXES") {
        let sd = checkpoint::read(&path).expect("the boxes bench/box_ops.py wrote");
        let get = |k: &str| sd.get(k).expect(k).shallow_clone();
        return (get("boxes"), get("scores"), get("idxs"));
    }
    tch::manual_seed(0);
    let opts = (Kind::Float, tch::Device::Cpu);
    let xy = Tensor::rand([5000, 2], opts) * 600.0;
    let wh = Tensor::rand([5000, 2], opts) * 80.0;
    let boxes = Tensor::cat(&[&xy, &(&xy + wh)], 1);
    let idxs = Tensor::randint(80, [5000], (Kind::Int64, tch::Device::Cpu));
    (boxes, Tensor::rand([5000], opts), idxs)
}

fn bench(c: &mut Criterion) {
    tch::set_num_threads(2);
    let (boxes, scores, idxs) = inputs();
    c.bench_function("box_ops/batched_nms_5000x80", |b| {
        b.iter(|| batched_nms(&boxes, &scores, &idxs, 0.5).expect("valid boxes"))
    });
    let (b1000, s1000) = (boxes.narrow(0, 0, 1000), scores.narrow(0, 0, 1000));
    c.bench_function("box_ops/nms_1000", |b| {
        b.iter(|| nms(&b1000, &s1000, 0.5).expect("valid boxes"))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
