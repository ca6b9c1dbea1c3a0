//! `MultiScaleRoiAlign` forward + backward at Faster R-CNN's training size (2 images of 800×1216,
//! 512 RoIs each, P2–P5 of 256 channels, 7×7 output, sampling ratio 2), for
//! `bench/roi_align.py`, which times torchvision's kernel on the same boxes (the file named by
//! `FERROVIS_BENCH_ROIS`: `boxes0`, `boxes1`). Without that variable the bench draws its own.
//!
//! Before timing, one pass is measured for its peak resident memory above the memory held
//! before it (`VmHWM` after resetting it through `/proc/self/clear_refs`), written to
//! `target/criterion/roi_align_peak_bytes` for the script.

use criterion::{criterion_group, criterion_main, Criterion};
use ferrovis_core::checkpoint;
use ferrovis_core::ops::roi_align::MultiScaleRoiAlign;
use tch::{Device, Kind, Tensor};

const IMAGE: (i64, i64) = (800, 1216);

fn boxes() -> Vec<Tensor> {
    if let Some(path) = std::env::var_os("FERROVIS_BENCH_ROIS") {
        let sd = checkpoint::read(&path).expect("the boxes bench/roi_align.py wrote");
        return ["boxes0", "boxes1"]
            .iter()
            .map(|k| sd.get(k).expect(k).shallow_clone())
            .collect();
    }
    tch::manual_seed(0);
    let opts = (Kind::Float, Device::Cpu);
    (0..2)
        .map(|_| {
            let xy = Tensor::rand([512, 2], opts) * Tensor::from_slice(&[1100.0f32, 700.0]);
            let wh = Tensor::rand([512, 2], opts) * 300.0 + 4.0;
            Tensor::cat(&[&xy, &(&xy + wh)], 1)
        })
        .collect()
}

fn status_kib(field: &str) -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn bench(c: &mut Criterion) {
    tch::set_num_threads(2);
    let boxes = boxes();
    let levels: Vec<Tensor> = [4, 8, 16, 32]
        .iter()
        .map(|s| {
            Tensor::randn(
                [2, 256, IMAGE.0 / s, IMAGE.1 / s],
                (Kind::Float, Device::Cpu),
            )
            .set_requires_grad(true)
        })
        .collect();
    let pooler = MultiScaleRoiAlign::new((7, 7), 2);
    let sizes = [IMAGE, IMAGE];
    let step = || {
        let y = pooler
            .forward(&levels, &boxes, &sizes)
            .expect("valid inputs");
        Tensor::run_backward(&[y.sum(Kind::Float)], &levels, false, false)
    };
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let before = status_kib("VmRSS:");
    drop(step());
    let peak = (status_kib("VmHWM:") - before) * 1024;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/criterion");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join("roi_align_peak_bytes"), peak.to_string());
    println!(
        "peak memory of one forward + backward: {:.0} MiB",
        peak as f64 / 1048576.0
    );
    let mut group = c.benchmark_group("roi_align");
    group.sample_size(10);
    group.bench_function("multiscale_fwd_bwd", |b| b.iter(step));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
