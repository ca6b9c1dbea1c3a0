//! RetinaNet eval latency (one image) and training step (batch 2, forward + backward) for
//! `bench/retinanet.py`, which times torchvision on the same weights and inputs: the folder named
//! by `FERROVIS_BENCH_RETINANET` holds `<arch>.pth` for each architecture and
//! `inputs.safetensors` (`image0..1`, `boxes0..1`, `labels0..1`). Without that variable the bench
//! builds randomly initialised models on random inputs.

use criterion::{criterion_group, criterion_main, Criterion};
use ferrovis_core::checkpoint::{self, LoadOptions};
use ferrovis_detect::torchvision::detector::Detector;
use ferrovis_detect::torchvision::retinanet::{RetinaNet, RetinaNetConfig};
use ferrovis_detect::torchvision::targets::Target;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

const ARCHS: [&str; 2] = ["retinanet_resnet50_fpn", "retinanet_resnet50_fpn_v2"];
const BATCH: usize = 2;
const VAR: &str = "FERROVIS_BENCH_RETINANET";

fn inputs() -> (Vec<Tensor>, Vec<Target>) {
    if let Some(dir) = std::env::var_os(VAR) {
        let sd = checkpoint::read(std::path::Path::new(&dir).join("inputs.safetensors"))
            .expect("the inputs bench/retinanet.py wrote");
        let get = |k: String| sd.get(&k).expect("an input").shallow_clone();
        let images = (0..BATCH).map(|i| get(format!("image{i}"))).collect();
        let targets = (0..BATCH)
            .map(|i| Target {
                boxes: get(format!("boxes{i}")),
                labels: get(format!("labels{i}")),
            })
            .collect();
        return (images, targets);
    }
    tch::manual_seed(0);
    let images = (0..BATCH)
        .map(|_| Tensor::rand([3, 480, 640], (Kind::Float, Device::Cpu)))
        .collect();
    let target = || Target {
        boxes: Tensor::from_slice(&[50.0f32, 60.0, 200.0, 220.0, 300.0, 100.0, 500.0, 400.0])
            .view([2, 4]),
        labels: Tensor::from_slice(&[1i64, 2]),
    };
    (images, (0..BATCH).map(|_| target()).collect())
}

fn model(arch: &str) -> (VarStore, RetinaNet) {
    let config = RetinaNetConfig::by_name(arch, 91, false).expect("a known architecture");
    let vs = VarStore::new(Device::Cpu);
    let model = RetinaNet::new(&vs.root(), &config).expect("builds");
    if let Some(dir) = std::env::var_os(VAR) {
        let file = std::path::Path::new(&dir).join(format!("{arch}.pth"));
        checkpoint::load_file(&vs, &file, &LoadOptions::default().strict(true))
            .expect("torchvision's weights load strictly");
    }
    // As the detect workflow runs it.
    model.prefer_layout(&vs).expect("layout");
    (vs, model)
}

fn bench(c: &mut Criterion) {
    tch::set_num_threads(2);
    let (images, targets) = inputs();
    let mut group = c.benchmark_group("retinanet");
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
                (losses.classification + losses.bbox_regression).backward();
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
