//! Parallel batch loading: rayon decodes and augments the samples of each batch on a dedicated
//! thread pool, a background thread collates batches into a bounded queue ahead of the training
//! loop, and every sample draws its randomness from `(seed, epoch, index)` so an epoch's batches
//! are the same whatever the thread count.

use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use rand::seq::SliceRandom;
use rand::Rng as _;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::rng::{derive, Rng};

/// Something the loader can index, load and collate.
pub trait Dataset: Send + Sync + 'static {
    /// One loaded, augmented sample.
    type Sample: Send + 'static;
    /// A collated batch.
    type Batch: Send + 'static;

    /// Number of samples.
    fn len(&self) -> usize;

    /// True when there are no samples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Loads sample `index` for `epoch`, drawing any randomness from `rng`.
    fn get(&self, index: usize, epoch: usize, rng: &mut Rng) -> Result<Self::Sample>;

    /// Collates loaded samples (in batch order) into a batch.
    fn collate(&self, samples: Vec<(usize, Self::Sample)>) -> Result<Self::Batch>;

    /// The file behind sample `index`, for failure reports.
    fn source(&self, index: usize) -> Option<PathBuf> {
        let _ = index;
        None
    }
}

/// The order samples are drawn in.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Sampler {
    /// 0, 1, 2, … every epoch.
    Sequential,
    /// A new permutation each epoch.
    #[default]
    Shuffle,
    /// `len` draws with replacement, sample `i` with probability ∝ `weights[i]` (for imbalanced
    /// data, as PyTorch's `WeightedRandomSampler`).
    Weighted(Vec<f64>),
    /// A new permutation each epoch, arranged so that each batch holds samples of one group
    /// (`groups[i]` is sample `i`'s), as torchvision's detection references'
    /// `GroupedBatchSampler` batches images of similar aspect ratio: a batch is emitted when its
    /// group has `batch_size` samples waiting. The samples left waiting at the end come last,
    /// group after group; unlike torchvision's, nothing is repeated to fill them, so an epoch
    /// still has every sample once.
    Grouped(Vec<usize>),
}

/// torchvision's `create_aspect_ratio_groups` with factor `k`: the group of each width/height
/// ratio among the `2k + 2` bins split at `2^(i/k)` for `i` in `−k..=k` (k = 3: 8 groups, ratios
/// of 1 in group 4).
pub fn aspect_ratio_groups(ratios: &[f64], k: usize) -> Vec<usize> {
    let bins: Vec<f64> = (0..=2 * k)
        .map(|i| 2f64.powf(-1.0 + 2.0 * i as f64 / (2 * k) as f64))
        .collect();
    // Python's bisect_right: the number of bins at most the ratio.
    ratios
        .iter()
        .map(|r| bins.partition_point(|b| b <= r))
        .collect()
}

/// Loader settings.
#[derive(Debug, Clone, PartialEq)]
pub struct LoaderOptions {
    /// Samples per batch.
    pub batch_size: usize,
    /// Sample order.
    pub sampler: Sampler,
    /// Drop the last batch when it is smaller than `batch_size`.
    pub drop_last: bool,
    /// Seed of the order and of every augmentation.
    pub seed: u64,
    /// Batches prepared ahead of the training loop.
    pub prefetch: usize,
    /// Worker threads decoding and augmenting (0: one per core).
    pub workers: usize,
}

impl Default for LoaderOptions {
    fn default() -> Self {
        Self {
            batch_size: 32,
            sampler: Sampler::Shuffle,
            drop_last: false,
            seed: 0,
            prefetch: 2,
            workers: 0,
        }
    }
}

/// A sample that failed to load during an epoch and was left out of its batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadFailure {
    /// The epoch.
    pub epoch: usize,
    /// The sample index.
    pub index: usize,
    /// The file, when the data set knows it.
    pub source: Option<PathBuf>,
    /// What went wrong (without the file name when `source` names it).
    pub message: String,
}

/// One process's share of every epoch in data-parallel training, as PyTorch's
/// `DistributedSampler` gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This process's rank, `0..world_size`.
    pub rank: usize,
    /// Number of processes.
    pub world_size: usize,
    /// Pad the order to a multiple of `world_size` by repeating its start, so every rank runs the
    /// same number of steps (training); without it every sample goes to exactly one rank and
    /// the shares differ by at most one (validation, where a repeat would count twice).
    pub pad: bool,
}

impl Shard {
    /// Rank `rank` of `world_size`, padded or not (see [`pad`](Self::pad)).
    pub fn new(rank: usize, world_size: usize, pad: bool) -> Self {
        Shard {
            rank,
            world_size,
            pad,
        }
    }

    /// [`take`](Self::take) for an order drawn as a 1-D int64 tensor (`randperm`, by a task that
    /// shuffles its own in-memory samples): this rank's part, on the CPU.
    pub fn take_tensor(&self, order: &tch::Tensor) -> Result<tch::Tensor> {
        let all: Vec<usize> = Vec::<i64>::try_from(order)
            .map_err(|e| Error::Invalid(format!("a sample order: {e}")))?
            .into_iter()
            .map(|i| i as usize)
            .collect();
        let mine: Vec<i64> = self.take(&all).into_iter().map(|i| i as i64).collect();
        Ok(tch::Tensor::from_slice(&mine))
    }

    /// Samples this rank gets out of `n`.
    pub fn len(&self, n: usize) -> usize {
        if self.world_size <= 1 {
            n
        } else if self.pad {
            n.div_ceil(self.world_size)
        } else {
            (n + self.world_size - 1 - self.rank.min(self.world_size - 1)) / self.world_size
        }
    }

    /// This rank's part of `order`: every `world_size`-th sample from position `rank`, after
    /// padding when [`pad`](Self::pad) is set.
    pub fn take(&self, order: &[usize]) -> Vec<usize> {
        if self.world_size <= 1 || order.is_empty() {
            return order.to_vec();
        }
        let total = if self.pad {
            order.len().div_ceil(self.world_size) * self.world_size
        } else {
            order.len()
        };
        (self.rank..total)
            .step_by(self.world_size)
            .map(|i| order[i % order.len()])
            .collect()
    }
}

/// Loads batches of a [`Dataset`] in parallel, ahead of their use.
pub struct Loader<D: Dataset> {
    dataset: Arc<D>,
    options: LoaderOptions,
    shard: Option<Shard>,
    pool: Arc<rayon::ThreadPool>,
    failures: Arc<Mutex<Vec<LoadFailure>>>,
}

impl<D: Dataset> Loader<D> {
    /// A loader over `dataset`.
    pub fn new(dataset: D, options: LoaderOptions) -> Result<Self> {
        Self::from_arc(Arc::new(dataset), options)
    }

    /// A loader over a shared data set.
    pub fn from_arc(dataset: Arc<D>, options: LoaderOptions) -> Result<Self> {
        if options.batch_size == 0 {
            return Err(Error::Invalid("batch size must be at least 1".into()));
        }
        if let Sampler::Grouped(g) = &options.sampler {
            if g.len() != dataset.len() {
                return Err(Error::Invalid(format!(
                    "sampler groups: {} for {} samples",
                    g.len(),
                    dataset.len()
                )));
            }
        }
        if let Sampler::Weighted(w) = &options.sampler {
            if w.len() != dataset.len()
                || w.iter().any(|x| !x.is_finite() || *x < 0.0)
                || w.iter().sum::<f64>() <= 0.0
            {
                return Err(Error::Invalid(format!(
                    "sampler weights must be {} finite non-negative numbers, not all zero",
                    dataset.len()
                )));
            }
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(options.workers)
            .thread_name(|i| format!("ferrovis-loader-{i}"))
            .build()
            .map_err(|e| Error::Invalid(format!("cannot start loader threads: {e}")))?;
        Ok(Self {
            dataset,
            options,
            shard: None,
            pool: Arc::new(pool),
            failures: Arc::new(Mutex::new(Vec::new())),
        })
    }

    /// This loader giving only `shard`'s part of each epoch (data-parallel training): the
    /// epoch's order is drawn as without it (the same seed on every rank), then shared out; the
    /// grouped sampler groups within the share.
    pub fn with_shard(mut self, shard: Option<Shard>) -> Self {
        self.shard = shard.filter(|s| s.world_size > 1);
        self
    }

    /// The shard set by [`with_shard`](Self::with_shard).
    pub fn shard(&self) -> Option<Shard> {
        self.shard
    }

    /// The data set.
    pub fn dataset(&self) -> &D {
        &self.dataset
    }

    /// The settings.
    pub fn options(&self) -> &LoaderOptions {
        &self.options
    }

    /// Batches per epoch.
    pub fn num_batches(&self) -> usize {
        let n = self.dataset.len();
        let n = self.shard.map_or(n, |s| s.len(n));
        let b = self.options.batch_size;
        if self.options.drop_last {
            n / b
        } else {
            n.div_ceil(b)
        }
    }

    /// The sample indices of `epoch` (this rank's share of them under a [`Shard`]), in order.
    pub fn order(&self, epoch: usize) -> Vec<usize> {
        let n = self.dataset.len();
        let mut rng = derive(self.options.seed, &[u64::MAX, epoch as u64]);
        let share = |order: Vec<usize>| match self.shard {
            Some(s) => s.take(&order),
            None => order,
        };
        match &self.options.sampler {
            Sampler::Sequential => share((0..n).collect()),
            Sampler::Shuffle => {
                let mut order: Vec<usize> = (0..n).collect();
                order.shuffle(&mut rng);
                share(order)
            }
            Sampler::Grouped(groups) => {
                let mut shuffled: Vec<usize> = (0..n).collect();
                shuffled.shuffle(&mut rng);
                let shuffled = share(shuffled);
                let b = self.options.batch_size;
                let mut waiting: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
                let mut order = Vec::with_capacity(shuffled.len());
                for i in shuffled {
                    let buffer = waiting.entry(groups[i]).or_default();
                    buffer.push(i);
                    if buffer.len() == b {
                        order.append(buffer);
                    }
                }
                for (_, rest) in waiting {
                    order.extend(rest);
                }
                order
            }
            Sampler::Weighted(weights) => {
                let total: f64 = weights.iter().sum();
                let cumulative: Vec<f64> = weights
                    .iter()
                    .scan(0.0, |acc, w| {
                        *acc += w / total;
                        Some(*acc)
                    })
                    .collect();
                share(
                    (0..n)
                        .map(|_| {
                            let u: f64 = rng.gen();
                            cumulative.partition_point(|&c| c <= u).min(n - 1)
                        })
                        .collect(),
                )
            }
        }
    }

    /// Starts loading `epoch` on a background thread and returns its batches in order. Samples
    /// that fail to load are left out of their batch and recorded (see [`failures`](Self::failures));
    /// an error while collating ends the epoch with that error.
    pub fn epoch(&self, epoch: usize) -> EpochBatches<D::Batch> {
        let mut order = self.order(epoch);
        if self.options.drop_last {
            order.truncate(self.num_batches() * self.options.batch_size);
        }
        let (sender, receiver) = sync_channel(self.options.prefetch.max(1));
        let dataset = Arc::clone(&self.dataset);
        let pool = Arc::clone(&self.pool);
        let failures = Arc::clone(&self.failures);
        let (seed, batch_size) = (self.options.seed, self.options.batch_size);
        let handle = std::thread::Builder::new()
            .name("ferrovis-prefetch".into())
            .spawn(move || {
                for chunk in order.chunks(batch_size) {
                    let loaded: Vec<(usize, Result<D::Sample>)> = pool.install(|| {
                        chunk
                            .par_iter()
                            .map(|&i| {
                                let mut rng = derive(seed, &[epoch as u64, i as u64]);
                                (i, dataset.get(i, epoch, &mut rng))
                            })
                            .collect()
                    });
                    let mut samples = Vec::with_capacity(loaded.len());
                    for (index, result) in loaded {
                        match result {
                            Ok(s) => samples.push((index, s)),
                            Err(e) => {
                                tracing::warn!(index, error = %e, "sample skipped");
                                if let Ok(mut f) = failures.lock() {
                                    f.push(LoadFailure {
                                        epoch,
                                        index,
                                        source: dataset.source(index),
                                        message: e.reason(),
                                    });
                                }
                            }
                        }
                    }
                    if samples.is_empty() {
                        continue;
                    }
                    let batch = dataset.collate(samples);
                    let stop = batch.is_err();
                    if sender.send(batch).is_err() || stop {
                        return; // the consumer went away, or the epoch ended on an error
                    }
                }
            })
            .expect("spawning a thread only fails when the OS is out of resources");
        EpochBatches {
            receiver: Some(receiver),
            handle: Some(handle),
        }
    }

    /// Every sample that failed to load so far, in the order they failed.
    pub fn failures(&self) -> Vec<LoadFailure> {
        self.failures.lock().map(|f| f.clone()).unwrap_or_default()
    }
}

/// The batches of one epoch, produced ahead on a background thread.
pub struct EpochBatches<B> {
    receiver: Option<Receiver<Result<B>>>,
    handle: Option<JoinHandle<()>>,
}

impl<B> Iterator for EpochBatches<B> {
    type Item = Result<B>;

    fn next(&mut self) -> Option<Self::Item> {
        self.receiver.as_ref()?.recv().ok()
    }
}

impl<B> Drop for EpochBatches<B> {
    fn drop(&mut self) {
        // Closing the queue first makes the producer's next send fail, so the join is short.
        self.receiver.take();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
