//! Forward (eval) and forward+backward (train) time of resnet18 and mobilenet_v2, batch 8 at 224,
//! on the CPU. `bench/backbones.py` runs this and torchvision's equivalent side by side.

use criterion::{criterion_group, criterion_main, Criterion};
use ferrovis_core::backbone::{self, BackboneOptions};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

fn backbones(c: &mut Criterion) {
    for name in ["resnet18", "mobilenet_v2"] {
        let vs = VarStore::new(Device::Cpu);
        let model = backbone::create(name, &vs.root(), &BackboneOptions::default()).unwrap();
        let x = Tensor::randn([8, 3, 224, 224], (Kind::Float, Device::Cpu));
        let mut group = c.benchmark_group(name);
        group.sample_size(10);
        group.bench_function("eval", |b| {
            b.iter(|| tch::no_grad(|| model.forward_t(&x, false)))
        });
        let mut params = vs.trainable_variables();
        group.bench_function("train", |b| {
            b.iter(|| {
                model.forward_t(&x, true).mean(Kind::Float).backward();
                for p in params.iter_mut() {
                    p.zero_grad();
                }
            })
        });
        group.finish();
    }
}

criterion_group!(benches, backbones);
criterion_main!(benches);
