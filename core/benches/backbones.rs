//! Forward (eval) and forward+backward (train) time of backbones, batch 8 at 224, on the CPU, in
//! PyTorch's default (contiguous) layout and channels-last. `bench/backbones.py` runs this and
//! torchvision's equivalent side by side.
//!
//! The cases come from `FERROVIS_BENCH_BACKBONES` (`name:mode[:cl],…`, e.g.
//! `convnext_tiny:eval,convnext_tiny:eval:cl,vit_b_16:train`); by default resnet18 and
//! mobilenet_v2 in both modes, contiguous.

use criterion::{criterion_group, criterion_main, Criterion};
use ferrovis_core::backbone::{self, BackboneOptions};
use ferrovis_core::memory_format;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

fn backbones(c: &mut Criterion) {
    let cases = std::env::var("FERROVIS_BENCH_BACKBONES").unwrap_or_else(|_| {
        "resnet18:eval,resnet18:train,mobilenet_v2:eval,mobilenet_v2:train".into()
    });
    for case in cases.split(',').filter(|c| !c.is_empty()) {
        let parts: Vec<&str> = case.split(':').collect();
        let (name, mode) = (parts[0], parts.get(1).copied().unwrap_or("eval"));
        let channels_last = parts.get(2) == Some(&"cl");
        let vs = VarStore::new(Device::Cpu);
        let model = backbone::create(name, &vs.root(), &BackboneOptions::default())
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        let mut x = Tensor::randn([8, 3, 224, 224], (Kind::Float, Device::Cpu));
        if channels_last {
            memory_format::vars_to_channels_last(&vs).unwrap();
            x = memory_format::channels_last(&x).unwrap();
        }
        let mut group = c.benchmark_group(name);
        group.sample_size(10);
        let id = if channels_last {
            format!("{mode}_cl")
        } else {
            mode.to_string()
        };
        if mode == "eval" {
            group.bench_function(&id, |b| {
                b.iter(|| tch::no_grad(|| model.forward_t(&x, false)))
            });
        } else {
            let mut params = vs.trainable_variables();
            group.bench_function(&id, |b| {
                b.iter(|| {
                    model.forward_t(&x, true).mean(Kind::Float).backward();
                    for p in params.iter_mut() {
                        p.zero_grad();
                    }
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, backbones);
criterion_main!(benches);
