//! Times the engine's gradient all-reduce on ResNet-50-sized gradients (25.6 M float32 values in
//! its 161 tensors' sizes, ~102 MB), over whatever the launcher set up:
//!
//! ```text
//! torchrun --nproc-per-node 2 --no-python target/release/examples/allreduce
//! ```
//!
//! Rank 0 prints the median of 5 calls and the bytes each rank moved per second (a ring
//! all-reduce sends and receives 2·(w−1)/w of the buffer).

use std::time::Instant;

use ferrovis_core::backbone::{self, BackboneOptions};
use ferrovis_core::distributed;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let g = distributed::group(Device::Cpu)?.ok_or("launch with torchrun (WORLD_SIZE > 1)")?;
    // The gradients of torchvision's resnet50, shaped as they are.
    let vs = VarStore::new(Device::Cpu);
    let _net = backbone::create("resnet50", &vs.root(), &BackboneOptions::default())?;
    let grads: Vec<Tensor> = vs
        .trainable_variables()
        .iter()
        .map(|t| Tensor::ones(t.size(), (Kind::Float, Device::Cpu)))
        .collect();
    let values: i64 = grads.iter().map(|t| t.numel() as i64).sum();
    let mut times = Vec::new();
    for _ in 0..6 {
        g.barrier()?;
        let t = Instant::now();
        distributed::average_gradients(g, &grads)?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.remove(0); // the first call sets up Gloo's pairs
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let bytes = values as f64 * 4.0;
    let w = g.world_size() as f64;
    if g.is_main() {
        eprintln!(
            "{} tensors, {values} values ({:.1} MB) across {} ranks ({:?}): median {:.1} ms, \
             {:.2} GB/s per rank (ring traffic 2(w-1)/w of the buffer)",
            grads.len(),
            bytes / 1e6,
            g.world_size(),
            g.backend(),
            median * 1e3,
            2.0 * (w - 1.0) / w * bytes / median / 1e9
        );
    }
    Ok(())
}
