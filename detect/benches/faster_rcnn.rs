//! Faster R-CNN eval latency (one image) and training step (batch 2, forward + backward) for
//! `bench/faster_rcnn.py`, which times torchvision on the same weights and inputs: the folder
//! named by `FERROVIS_BENCH_FRCNN` holds `<arch>.pth` for each architecture and
//! `inputs.safetensors` (`image0`, `image1`, `boxes0`, `labels0`, `boxes1`, `labels1`).
//! Without that variable the bench builds randomly initialised models on random inputs.

use criterion::{criterion_group, criterion_main, Criterion};
use ferrovis_core::checkpoint::{self, LoadOptions};
use ferrovis_detect::torchvision::faster_rcnn::{FasterRcnn, FasterRcnnConfig};
use ferrovis_detect::torchvision::targets::Target;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

const ARCHS: [&str; 2] = [
    "fasterrcnn_mobilenet_v3_large_320_fpn",
    "fasterrcnn_resnet50_fpn",
];

fn inputs() -> (Vec<Tensor>, Vec<Target>) {
    if let Some(dir) = std::env::var_os("FERROVIS_BENCH_FRCNN") {
        let sd = checkpoint::read(std::path::Path::new(&dir).join("inputs.safetensors"))
            .expect("the inputs bench/faster_rcnn.py wrote");
        let get = |k: &str| sd.get(k).expect(k).shallow_clone();
        let images = vec![get("image0"), get("image1")];
        let targets = (0..2)
            .map(|i| Target {
                boxes: get(&format!("boxes{i}")),
                labels: get(&format!("labels{i}")),
            })
            .collect();
        return (images, targets);
    }
    tch::manual_seed(0);
    let opts = (Kind::Float, Device::Cpu);
    let images = vec![
        Tensor::rand([3, 480, 640], opts),
        Tensor::rand([3, 480, 640], opts),
    ];
    let target = || Target {
        boxes: Tensor::from_slice(&[50.0f32, 60.0, 200.0, 220.0, 300.0, 100.0, 500.0, 400.0])
            .view([2, 4]),
        labels: Tensor::from_slice(&[1i64, 2]),
    };
    (images, vec![target(), target()])
}

fn model(arch: &str) -> (VarStore, FasterRcnn) {
    let config = FasterRcnnConfig::by_name(arch, 91, false).expect("a known architecture");
    let vs = VarStore::new(Device::Cpu);
    let model = FasterRcnn::new(&vs.root(), &config).expect("builds");
    if let Some(dir) = std::env::var_os("FERROVIS_BENCH_FRCNN") {
        let file = std::path::Path::new(&dir).join(format!("{arch}.pth"));
        checkpoint::load_file(&vs, &file, &LoadOptions::default().strict(true))
            .expect("torchvision's weights load strictly");
    }
    (vs, model)
}

fn bench(c: &mut Criterion) {
    tch::set_num_threads(2);
    let (images, targets) = inputs();
    let mut group = c.benchmark_group("faster_rcnn");
    group.sample_size(10);
    for arch in ARCHS {
        let (vs, model) = model(arch);
        group.bench_function(format!("{arch}/eval"), |b| {
            b.iter(|| tch::no_grad(|| model.detect(&images[..1])).expect("detects"))
        });
        group.bench_function(format!("{arch}/train_step"), |b| {
            b.iter(|| {
                for t in vs.trainable_variables() {
                    let mut g = t.grad();
                    if g.defined() {
                        let _ = g.zero_();
                    }
                }
                let losses = model.losses(&images, &targets).expect("losses");
                losses.total().backward();
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
