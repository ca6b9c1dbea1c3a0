//! Data-parallel training on PyTorch's own distributed runtime (c10d, the engine under
//! `torch.distributed` and `DistributedDataParallel`): a process group over a `TCPStore`
//! rendezvous, Gloo between CPU processes, NCCL between GPUs (when built with it; see
//! `build.rs`), and the collectives training needs. Nothing is reduced in Rust: every
//! collective is c10d's, through a small C++ shim (`csrc/distributed.cpp`).
//!
//! Launch with `torchrun`, which sets `RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR` and
//! `MASTER_PORT` (and serves the store itself); by hand, set them the same way and rank 0 serves
//! the store:
//!
//! ```text
//! torchrun --nproc-per-node 2 --no-python classify train --data shapes --arch resnet18
//! ```
//!
//! [`group`] is the process group of this process (created on first use from the environment);
//! the training engine ([`crate::engine::fit`]) uses it to broadcast the initial weights, average
//! gradients and keep the run folder to rank 0; the task crates shard each epoch with
//! `ferrovis_data::loader::Shard`.

mod ffi;

use std::ffi::CString;
use std::os::raw::c_int;
use std::sync::OnceLock;
use std::time::Duration;

use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};

/// Which c10d backend carries the collectives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Gloo: CPU tensors (and the choice for CPU training).
    Gloo,
    /// NCCL: CUDA tensors, one GPU per rank.
    Nccl,
}

/// How an all-reduce combines the ranks' tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReduceOp {
    /// Element-wise sum.
    Sum,
    /// Element-wise mean (a sum divided by the world size: Gloo has no average).
    Avg,
    /// Element-wise maximum.
    Max,
    /// Element-wise minimum.
    Min,
}

/// Where this process stands in a distributed run, as the launcher describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchEnv {
    /// This process's rank, `0..world_size`.
    pub rank: usize,
    /// Number of processes.
    pub world_size: usize,
    /// Rank among the processes on this machine (its GPU index under torchrun).
    pub local_rank: usize,
    /// Address of the store (rank 0's machine).
    pub master_addr: String,
    /// Port of the store.
    pub master_port: u16,
    /// torchrun's agent already serves the store (`TORCHELASTIC_USE_AGENT_STORE=True`); else
    /// rank 0 serves it.
    pub agent_store: bool,
    /// torchrun's restart count, part of the store prefix so a restarted group never reads a
    /// previous attempt's keys.
    pub restart: u32,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn env_number<T: std::str::FromStr>(name: &str) -> Result<Option<T>> {
    env(name)
        .map(|v| {
            v.trim().parse::<T>().map_err(|_| {
                Error::Invalid(format!("environment variable {name}={v:?} is not a number"))
            })
        })
        .transpose()
}

impl LaunchEnv {
    /// The launch from `WORLD_SIZE` & co.; `None` when no launcher set it. A world of one is a
    /// group too (`torchrun --nproc-per-node 1`: the backend checked end to end on one GPU).
    pub fn from_env() -> Result<Option<LaunchEnv>> {
        let world_size: usize = match env_number("WORLD_SIZE")? {
            None | Some(0) => return Ok(None),
            Some(n) => n,
        };
        let rank: usize = env_number("RANK")?.ok_or_else(|| {
            Error::Invalid(format!("WORLD_SIZE={world_size} is set but RANK is not"))
        })?;
        if rank >= world_size {
            return Err(Error::Invalid(format!(
                "RANK={rank} is not below WORLD_SIZE={world_size}"
            )));
        }
        let master_addr = env("MASTER_ADDR").ok_or_else(|| {
            Error::Invalid(format!(
                "WORLD_SIZE={world_size} is set but MASTER_ADDR is not (the address of rank 0's \
                 machine; torchrun sets it)"
            ))
        })?;
        let master_port: u16 = env_number("MASTER_PORT")?.ok_or_else(|| {
            Error::Invalid(format!(
                "WORLD_SIZE={world_size} is set but MASTER_PORT is not (torchrun sets it)"
            ))
        })?;
        Ok(Some(LaunchEnv {
            rank,
            world_size,
            local_rank: env_number("LOCAL_RANK")?.unwrap_or(rank),
            master_addr,
            master_port,
            agent_store: env("TORCHELASTIC_USE_AGENT_STORE")
                .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1"),
            restart: env_number("TORCHELASTIC_RESTART_COUNT")?.unwrap_or(0),
        }))
    }
}

/// How long a collective (or the rendezvous) may wait for the other ranks before failing:
/// `$FERROVIS_DIST_TIMEOUT` seconds, else 300 (a dead rank is usually noticed at once, when its
/// connections close; the timeout bounds the rest).
pub fn timeout_from_env() -> Result<Duration> {
    let secs: f64 = env_number("FERROVIS_DIST_TIMEOUT")?.unwrap_or(300.0);
    if !(secs > 0.0 && secs.is_finite()) {
        return Err(Error::Invalid(format!(
            "FERROVIS_DIST_TIMEOUT={secs} must be a positive number of seconds"
        )));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A c10d process group (store + backend) this process belongs to.
pub struct ProcessGroup {
    raw: *mut ffi::FvGroup,
    rank: usize,
    world_size: usize,
    local_rank: usize,
    backend: Backend,
}

// SAFETY: c10d process groups are used from any thread (DDP's reducer calls them from autograd
// threads); the handle is only freed on drop.
unsafe impl Send for ProcessGroup {}
// SAFETY: as above; every collective takes `&self` and c10d serialises work on its own queue.
unsafe impl Sync for ProcessGroup {}

impl std::fmt::Debug for ProcessGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessGroup")
            .field("rank", &self.rank)
            .field("world_size", &self.world_size)
            .field("local_rank", &self.local_rank)
            .field("backend", &self.backend)
            .finish()
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // SAFETY: `raw` came from fv_group_new and is freed once.
        unsafe { ffi::fv_group_free(self.raw) };
    }
}

impl ProcessGroup {
    /// Joins the group `launch` describes over `backend`; collectives wait at most `timeout`.
    pub fn connect(launch: &LaunchEnv, backend: Backend, timeout: Duration) -> Result<Self> {
        let host = CString::new(launch.master_addr.clone())
            .map_err(|_| Error::Invalid("MASTER_ADDR contains a NUL byte".into()))?;
        let prefix = CString::new(format!("ferrovis/{}/", launch.restart))
            .map_err(|_| Error::Invalid("store prefix".into()))?;
        let mut err = std::ptr::null_mut();
        // SAFETY: the strings outlive the call; the shim copies what it keeps.
        let raw = unsafe {
            ffi::fv_group_new(
                host.as_ptr(),
                launch.master_port as c_int,
                (!launch.agent_store && launch.rank == 0) as c_int,
                launch.rank as c_int,
                launch.world_size as c_int,
                (backend == Backend::Nccl) as c_int,
                prefix.as_ptr(),
                timeout.as_secs_f64(),
                &mut err,
            )
        };
        if let Some(message) = crate::shim::take_string(err) {
            return Err(Error::Invalid(format!(
                "rank {} of {}: joining the process group at {}:{} ({backend:?}) failed: \
                 {message}",
                launch.rank, launch.world_size, launch.master_addr, launch.master_port
            )));
        }
        if raw.is_null() {
            return Err(Error::Invalid(
                "the process group could not be created".into(),
            ));
        }
        Ok(ProcessGroup {
            raw,
            rank: launch.rank,
            world_size: launch.world_size,
            local_rank: launch.local_rank,
            backend,
        })
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Number of processes.
    pub fn world_size(&self) -> usize {
        self.world_size
    }

    /// Rank on this machine.
    pub fn local_rank(&self) -> usize {
        self.local_rank
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Rank 0: the one that writes files and prints.
    pub fn is_main(&self) -> bool {
        self.rank == 0
    }

    fn check(&self, what: &str, status: c_int, err: *mut std::os::raw::c_char) -> Result<()> {
        match crate::shim::take_string(err) {
            Some(message) => Err(Error::Invalid(format!(
                "rank {} of {}: {what} failed (another rank stopped or timed out?): {message}",
                self.rank, self.world_size
            ))),
            None if status != 0 => Err(Error::Invalid(format!(
                "rank {} of {}: {what} failed",
                self.rank, self.world_size
            ))),
            None => Ok(()),
        }
    }

    /// `tensors` split by element kind and device, in first-seen order: one backend call takes
    /// tensors of one kind (Gloo refuses a mix, and a model holds float weights beside integer
    /// counters).
    fn by_kind<'a>(tensors: &[&'a Tensor]) -> Vec<Vec<&'a Tensor>> {
        let mut groups: Vec<((Kind, Device), Vec<&'a Tensor>)> = Vec::new();
        for t in tensors {
            let key = (t.kind(), t.device());
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, v)) => v.push(t),
                None => groups.push((key, vec![t])),
            }
        }
        groups.into_iter().map(|(_, v)| v).collect()
    }

    fn handles(tensors: &[&Tensor], what: &str) -> Result<Vec<*mut ffi::CTensor>> {
        tensors
            .iter()
            .map(|t| {
                if !t.is_contiguous() {
                    return Err(Error::Invalid(format!(
                        "{what}: tensors must be contiguous (got strides {:?})",
                        t.stride()
                    )));
                }
                Ok(t.as_ptr() as *mut ffi::CTensor)
            })
            .collect()
    }

    /// Combines `tensors` (contiguous, the same shapes and kinds on every rank) across the ranks,
    /// in place.
    pub fn all_reduce(&self, tensors: &[&Tensor], op: ReduceOp) -> Result<()> {
        for group in Self::by_kind(tensors) {
            self.all_reduce_one_kind(&group, op)?;
        }
        Ok(())
    }

    fn all_reduce_one_kind(&self, tensors: &[&Tensor], op: ReduceOp) -> Result<()> {
        let mut handles = Self::handles(tensors, "all_reduce")?;
        let code = match op {
            ReduceOp::Sum | ReduceOp::Avg => 0,
            ReduceOp::Max => 1,
            ReduceOp::Min => 2,
        };
        let mut err = std::ptr::null_mut();
        // SAFETY: the handles point at live tensors borrowed for the call.
        let status = unsafe {
            ffi::fv_all_reduce(
                self.raw,
                handles.as_mut_ptr(),
                handles.len() as c_int,
                code,
                &mut err,
            )
        };
        self.check("all_reduce", status, err)?;
        if op == ReduceOp::Avg {
            tch::no_grad(|| {
                for t in tensors {
                    let _ = t.shallow_clone().g_div_scalar_(self.world_size as f64);
                }
            });
        }
        Ok(())
    }

    /// Overwrites `tensors` on every rank with rank `root`'s.
    pub fn broadcast(&self, tensors: &[&Tensor], root: usize) -> Result<()> {
        for group in Self::by_kind(tensors) {
            self.broadcast_one_kind(&group, root)?;
        }
        Ok(())
    }

    fn broadcast_one_kind(&self, tensors: &[&Tensor], root: usize) -> Result<()> {
        let mut handles = Self::handles(tensors, "broadcast")?;
        let mut err = std::ptr::null_mut();
        // SAFETY: as in all_reduce.
        let status = unsafe {
            ffi::fv_broadcast(
                self.raw,
                handles.as_mut_ptr(),
                handles.len() as c_int,
                root as c_int,
                &mut err,
            )
        };
        self.check("broadcast", status, err)
    }

    /// Every rank's `tensor` (the same shape everywhere), in rank order.
    pub fn all_gather(&self, tensor: &Tensor) -> Result<Vec<Tensor>> {
        let input = tensor.contiguous();
        let outputs: Vec<Tensor> = (0..self.world_size).map(|_| input.empty_like()).collect();
        let refs: Vec<&Tensor> = outputs.iter().collect();
        let mut handles = Self::handles(&refs, "all_gather")?;
        let mut err = std::ptr::null_mut();
        // SAFETY: as in all_reduce; `outputs` are `world_size` tensors shaped like the input.
        let status = unsafe {
            ffi::fv_all_gather(
                self.raw,
                handles.as_mut_ptr(),
                self.world_size as c_int,
                input.as_ptr() as *mut ffi::CTensor,
                &mut err,
            )
        };
        self.check("all_gather", status, err)?;
        Ok(outputs)
    }

    /// Waits until every rank reaches it.
    pub fn barrier(&self) -> Result<()> {
        let mut err = std::ptr::null_mut();
        // SAFETY: a live group.
        let status = unsafe { ffi::fv_barrier(self.raw, &mut err) };
        self.check("barrier", status, err)
    }

    /// The device collectives run on: the CPU for Gloo, this rank's GPU for NCCL.
    pub fn device(&self) -> Device {
        match self.backend {
            Backend::Gloo => Device::Cpu,
            Backend::Nccl => Device::Cuda(self.local_rank),
        }
    }

    /// Sums (or otherwise combines) plain numbers across the ranks: metric statistics, loss sums.
    pub fn all_reduce_f64(&self, values: &mut [f64], op: ReduceOp) -> Result<()> {
        self.through_tensor(values, "all_reduce_f64", |t| self.all_reduce(&[t], op))
    }

    /// Rank `root`'s `values` on every rank.
    pub fn broadcast_f64(&self, values: &mut [f64], root: usize) -> Result<()> {
        self.through_tensor(values, "broadcast_f64", |t| self.broadcast(&[t], root))
    }

    /// Counts (confusion matrices, images per class) summed over the ranks; exact below 2⁵³.
    pub fn sum_counts(&self, counts: &mut [u64]) -> Result<()> {
        let mut values: Vec<f64> = counts.iter().map(|&c| c as f64).collect();
        self.all_reduce_f64(&mut values, ReduceOp::Sum)?;
        for (c, v) in counts.iter_mut().zip(values) {
            *c = v as u64;
        }
        Ok(())
    }

    /// `values` sent through `collective` as one float64 tensor on the backend's device.
    fn through_tensor(
        &self,
        values: &mut [f64],
        what: &str,
        collective: impl FnOnce(&Tensor) -> Result<()>,
    ) -> Result<()> {
        if values.is_empty() {
            return Ok(());
        }
        let t = Tensor::from_slice(values).to_device(self.device());
        collective(&t)?;
        let back = Vec::<f64>::try_from(t.to_device(Device::Cpu))
            .map_err(|e| Error::Invalid(format!("{what}: {e}")))?;
        values.copy_from_slice(&back);
        Ok(())
    }

    /// Every rank's rows of `rows` (`(n_r, …)`, `n_r` may differ by rank), concatenated in rank
    /// order: predictions of a sharded validation, gathered so that every rank computes the
    /// metrics of the whole set.
    pub fn gather_rows(&self, rows: &Tensor) -> Result<Tensor> {
        let n = rows.size().first().copied().unwrap_or(0);
        let mut counts = vec![0.0; self.world_size];
        counts[self.rank] = n as f64;
        self.all_reduce_f64(&mut counts, ReduceOp::Sum)?;
        let max = counts.iter().fold(0.0f64, |a, &b| a.max(b)) as i64;
        let mut shape = rows.size();
        let device = rows.device();
        let padded = if n < max {
            shape[0] = max - n;
            Tensor::cat(
                &[
                    rows.shallow_clone(),
                    Tensor::zeros(shape.as_slice(), (rows.kind(), device)),
                ],
                0,
            )
        } else {
            rows.shallow_clone()
        };
        let padded = padded.to_device(self.device()).contiguous();
        let parts = self.all_gather(&padded)?;
        let kept: Vec<Tensor> = parts
            .iter()
            .zip(&counts)
            .map(|(p, &c)| p.narrow(0, 0, c as i64).to_device(device))
            .collect();
        Ok(Tensor::cat(&kept, 0))
    }

    /// Rank `root`'s `text` on every rank (a run folder's name, say).
    pub fn broadcast_string(&self, text: &str, root: usize) -> Result<String> {
        let mut len = [text.len() as f64];
        if self.rank != root {
            len[0] = 0.0;
        }
        self.all_reduce_f64(&mut len, ReduceOp::Max)?;
        let n = len[0] as usize;
        let bytes = if self.rank == root {
            Tensor::from_slice(text.as_bytes())
        } else {
            Tensor::zeros([n as i64], (Kind::Uint8, Device::Cpu))
        }
        .to_device(self.device());
        self.broadcast(&[&bytes], root)?;
        let v = Vec::<u8>::try_from(bytes.to_device(Device::Cpu))
            .map_err(|e| Error::Invalid(format!("broadcast_string: {e}")))?;
        String::from_utf8(v).map_err(|e| Error::Invalid(format!("broadcast_string: {e}")))
    }
}

/// Bucket size of the bucketed collectives: about DDP's default `bucket_cap_mb` (25 MB), so a
/// ResNet-50's 25.6 M gradients go in four calls rather than 161.
pub const BUCKET_BYTES: usize = 25 << 20;

/// Runs `collective` on `tensors` packed into flat buckets of at most `bucket_bytes` (one kind
/// and device per bucket), then copies each bucket's result back into its tensors. Packing makes
/// any layout (channels-last weights included) contiguous and turns many small calls into few.
pub fn bucketed(
    tensors: &[Tensor],
    bucket_bytes: usize,
    mut collective: impl FnMut(&Tensor) -> Result<()>,
) -> Result<()> {
    let refs: Vec<&Tensor> = tensors.iter().filter(|t| t.defined()).collect();
    for group in ProcessGroup::by_kind(&refs) {
        let mut start = 0;
        while start < group.len() {
            let mut end = start;
            let mut bytes = 0usize;
            while end < group.len() && (end == start || bytes < bucket_bytes) {
                bytes += group[end].numel() * group[end].kind().elt_size_in_bytes();
                end += 1;
            }
            let part = &group[start..end];
            tch::no_grad(|| -> Result<()> {
                let flat =
                    Tensor::cat(&part.iter().map(|t| t.reshape([-1])).collect::<Vec<_>>(), 0);
                collective(&flat)?;
                let mut offset = 0i64;
                for t in part {
                    let n = t.numel() as i64;
                    t.shallow_clone()
                        .copy_(&flat.narrow(0, offset, n).view(t.size().as_slice()));
                    offset += n;
                }
                Ok(())
            })?;
            start = end;
        }
    }
    Ok(())
}

/// Every variable of `vs` (weights and buffers) set to rank 0's: the start of data-parallel
/// training, as DDP's constructor does, so every replica begins from the loaded checkpoint.
pub fn broadcast_variables(g: &ProcessGroup, vs: &tch::nn::VarStore) -> Result<()> {
    bucketed(&sorted_variables(vs, |_| true), BUCKET_BYTES, |flat| {
        g.broadcast(&[flat], 0)
    })
}

/// The variables of `vs` that do not train (BatchNorm running statistics, frozen layers) set to
/// rank 0's. DDP broadcasts buffers before each forward (`broadcast_buffers=True`); the engine
/// does it before each validation, so every rank validates and rank 0 saves one model.
pub fn broadcast_buffers(g: &ProcessGroup, vs: &tch::nn::VarStore) -> Result<()> {
    bucketed(
        &sorted_variables(vs, |t| !t.requires_grad()),
        BUCKET_BYTES,
        |flat| g.broadcast(&[flat], 0),
    )
}

/// `grads` replaced by their mean over the ranks, in [`BUCKET_BYTES`] buckets: what DDP's reducer
/// does after the backward pass (here after it, not overlapped with it).
pub fn average_gradients(g: &ProcessGroup, grads: &[Tensor]) -> Result<()> {
    bucketed(grads, BUCKET_BYTES, |flat| {
        g.all_reduce(&[flat], ReduceOp::Avg)
    })
}

/// The variables of `vs` that `keep` selects, sorted by name (the same order on every rank).
fn sorted_variables(vs: &tch::nn::VarStore, keep: impl Fn(&Tensor) -> bool) -> Vec<Tensor> {
    let mut v: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v.into_iter()
        .filter(|(_, t)| keep(t))
        .map(|(_, t)| t)
        .collect()
}

static GROUP: OnceLock<Option<ProcessGroup>> = OnceLock::new();

/// The process group of this process when it was launched as one of several (`WORLD_SIZE` > 1):
/// created on the first call from the environment ([`LaunchEnv`]), with NCCL when `device` is
/// CUDA and Gloo otherwise; `None` for a single process. Later calls return the same group.
pub fn group(device: Device) -> Result<Option<&'static ProcessGroup>> {
    if let Some(g) = GROUP.get() {
        return Ok(g.as_ref());
    }
    let created = match LaunchEnv::from_env()? {
        None => None,
        Some(launch) => {
            let backend = if device.is_cuda() {
                Backend::Nccl
            } else {
                Backend::Gloo
            };
            let g = ProcessGroup::connect(&launch, backend, timeout_from_env()?)?;
            tracing::info!(
                rank = g.rank(),
                world_size = g.world_size(),
                ?backend,
                "joined the process group"
            );
            if !g.is_main() && env("FERROVIS_LOG_ALL_RANKS").is_none() {
                silence_stdout();
            }
            Some(g)
        }
    };
    // A race between two threads creating it would leave one group unused (and dropped).
    let _ = GROUP.set(created);
    Ok(GROUP.get().and_then(|g| g.as_ref()))
}

/// Sends this process's standard output to /dev/null: ranks other than 0 print nothing but
/// errors (standard error stays), as the task crates' progress lines would otherwise repeat once
/// per rank. `FERROVIS_LOG_ALL_RANKS=1` keeps them.
fn silence_stdout() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::io::Write;
        use std::os::fd::AsRawFd;
        let _ = std::io::stdout().flush();
        if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
            // SAFETY: both descriptors are open; dup2 replaces fd 1 atomically.
            unsafe { libc::dup2(null.as_raw_fd(), 1) };
        }
    }
}

/// The group already joined, if any (no environment is read).
pub fn current() -> Option<&'static ProcessGroup> {
    GROUP.get().and_then(|g| g.as_ref())
}

/// True unless this process is a rank other than 0 of a joined group: whether it writes files
/// and progress.
pub fn is_main_process() -> bool {
    current().is_none_or(|g| g.is_main())
}

/// The device `--device cuda` means under torchrun: `cuda:$LOCAL_RANK` (each rank its own GPU);
/// other devices unchanged.
pub fn rank_device(device: Device) -> Device {
    match device {
        Device::Cuda(0) => match std::env::var("LOCAL_RANK")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
        {
            Some(local) if LaunchEnv::from_env().ok().flatten().is_some() => Device::Cuda(local),
            _ => device,
        },
        other => other,
    }
}
