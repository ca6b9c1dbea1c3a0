//! Decode + augment throughput: one epoch of the classification loader (OpenCV decode,
//! RandomResizedCrop 224, horizontal flip, normalise, collate into batches of 32) over an image
//! folder, with 2 worker threads. Criterion's throughput line is images/s.
//!
//! The folder is `$FERROVIS_BENCH_IMAGES` (an ImageFolder root, e.g. the ants/bees `train/`), or
//! else 240 synthetic 500×375 JPEGs written to a temporary folder. `bench/data_pipeline.py` runs
//! this bench and torchvision's equivalent on the same folder and prints the ratio.

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ferrovis_data::dataset::{image_folder, ClassificationDataset, ScanOptions};
use ferrovis_data::decode::write_rgb;
use ferrovis_data::loader::{Loader, LoaderOptions};
use ferrovis_data::synthetic::{scene, ShapesConfig};
use ferrovis_data::transform::{resize, ClassifyTransform, Filter};

fn folder() -> (PathBuf, Option<tempfile::TempDir>) {
    if let Some(dir) = std::env::var_os("FERROVIS_BENCH_IMAGES") {
        return (PathBuf::from(dir), None);
    }
    let tmp = tempfile::tempdir().expect("temporary folder");
    let config = ShapesConfig {
        image_size: 375,
        ..Default::default()
    };
    for i in 0..240u64 {
        let class = (i % 2) as usize;
        let dir = tmp.path().join(["a", "b"][class]);
        std::fs::create_dir_all(&dir).expect("class folder");
        let s = scene(&config, &[class], &mut ferrovis_data::rng::derive(0, &[i])).expect("scene");
        let img = resize(&s.image, 500, 375, Filter::Bilinear).expect("resize");
        write_rgb(&dir.join(format!("{i:03}.jpg")), &img).expect("write");
    }
    (tmp.path().to_path_buf(), Some(tmp))
}

fn bench(c: &mut Criterion) {
    let (root, _keep) = folder();
    let data = image_folder(&root, ScanOptions::default()).expect("image folder");
    let n = data.items.len();
    let loader = Loader::new(
        ClassificationDataset::new(data.items, ClassifyTransform::train(224)),
        LoaderOptions {
            batch_size: 32,
            workers: 2,
            ..Default::default()
        },
    )
    .expect("loader");
    let mut group = c.benchmark_group("data_pipeline");
    group.sample_size(10);
    group.throughput(Throughput::Elements(n as u64));
    let mut epoch = 0;
    group.bench_function("train_epoch", |b| {
        b.iter(|| {
            let mut images = 0;
            for batch in loader.epoch(epoch) {
                images += batch.expect("batch").indices.len();
            }
            epoch += 1;
            images
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
