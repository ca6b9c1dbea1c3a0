//! ONNX export of ResNet-50 (batch 1 at 224, opset 18: trace, convert, BatchNorm folding, write
//! and parse-back check) for `bench/onnx_export.py`, which times `torch.onnx.export` of
//! torchvision's ResNet-50 beside it. The model is built once; each iteration exports it.

use criterion::{criterion_group, criterion_main, Criterion};
use ferrovis_core::onnx::{export, OnnxOptions};
use ferrovis_core::{create_backbone, BackboneOptions};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

fn bench(c: &mut Criterion) {
    tch::set_num_threads(2);
    let mut vs = VarStore::new(Device::Cpu);
    let net = create_backbone("resnet50", &vs.root(), &BackboneOptions::default())
        .expect("resnet50 is built in");
    vs.freeze();
    let x = Tensor::rand([1, 3, 224, 224], (Kind::Float, Device::Cpu));
    let dir = tempfile::tempdir().expect("a temporary folder");
    let out = dir.path().join("resnet50.onnx");
    let mut group = c.benchmark_group("onnx_export");
    group.sample_size(10);
    group.bench_function("resnet50", |b| {
        b.iter(|| {
            export(
                &vs,
                std::slice::from_ref(&x),
                |i| Ok(vec![net.forward_t(&i[0], false)]),
                &OnnxOptions::default(),
                &out,
            )
            .expect("resnet50 exports")
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
