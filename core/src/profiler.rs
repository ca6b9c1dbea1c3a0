//! Per-operator profiles of a piece of work, from libtorch's own profiler (the one
//! `torch.profiler` drives), so a Rust training step can be compared operator by operator with
//! the same step in PyTorch.
//!
//! ```no_run
//! # fn main() -> ferrovis_core::Result<()> {
//! let recording = ferrovis_core::profiler::Recording::start(true)?;
//! // … forward, backward, optimizer step …
//! let profile = recording.stop()?;
//! println!("{}", profile.table(false, 20));
//! # Ok(())
//! # }
//! ```
//!
//! Every ATen operator and autograd function run on the CPU while recording is an [`Event`].
//! A [`Summary`] row has PyTorch's `key_averages()` meaning: *total* is the time inside the
//! operator, *self* that time less its child operators'.

use std::collections::HashMap;
use std::os::raw::{c_char, c_int};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::shim::{status, take_string};
use crate::{Error, Result};

extern "C" {
    fn fv_profiler_start(record_shapes: c_int, err: *mut *mut c_char) -> c_int;
    fn fv_profiler_stop(events: *mut *mut c_char, err: *mut *mut c_char) -> c_int;
}

/// libtorch has one profiler per process.
static RECORDING: AtomicBool = AtomicBool::new(false);

/// A recording in progress; [`Recording::stop`] ends it (dropping it ends it too, discarding the
/// events).
#[derive(Debug)]
pub struct Recording {
    stopped: bool,
}

impl Recording {
    /// Starts recording every operator run on the CPU, with the shapes of its inputs when
    /// `record_shapes`. Only one recording can run at a time in a process.
    pub fn start(record_shapes: bool) -> Result<Recording> {
        if RECORDING.swap(true, Ordering::SeqCst) {
            return Err(Error::Invalid(
                "the profiler is already recording in this process".into(),
            ));
        }
        let mut err = std::ptr::null_mut();
        // SAFETY: `err` is an out-pointer the shim fills only on failure.
        let rc = unsafe { fv_profiler_start(c_int::from(record_shapes), &mut err) };
        if let Err(e) = status(rc, err, "starting the profiler") {
            RECORDING.store(false, Ordering::SeqCst);
            return Err(e);
        }
        Ok(Recording { stopped: false })
    }

    /// Stops recording and returns what was recorded.
    pub fn stop(mut self) -> Result<Profile> {
        self.stopped = true;
        let text = stop_profiler()?;
        Ok(Profile {
            events: text.lines().filter_map(Event::parse).collect(),
        })
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        if !self.stopped {
            let _ = stop_profiler();
        }
    }
}

fn stop_profiler() -> Result<String> {
    let mut events = std::ptr::null_mut();
    let mut err = std::ptr::null_mut();
    // SAFETY: both are out-pointers; on success `events` is a malloc'd NUL-terminated string.
    let rc = unsafe { fv_profiler_stop(&mut events, &mut err) };
    RECORDING.store(false, Ordering::SeqCst);
    status(rc, err, "stopping the profiler")?;
    Ok(take_string(events).unwrap_or_default())
}

/// One operator call.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The operator (`aten::convolution`, `autograd::engine::evaluate_function: …`).
    pub name: String,
    /// The thread that started it.
    pub thread: u64,
    /// Start, in nanoseconds on the profiler's clock.
    pub start_ns: u64,
    /// Wall time inside the call.
    pub duration_ns: u64,
    /// Its inputs' shapes (`[4, 3, 256, 256];[64, 3, 7, 7];[]`), empty unless recorded.
    pub shapes: String,
}

impl Event {
    fn parse(line: &str) -> Option<Event> {
        let mut f = line.split('\t');
        Some(Event {
            name: f.next()?.to_string(),
            thread: f.next()?.parse().ok()?,
            start_ns: f.next()?.parse().ok()?,
            duration_ns: f.next()?.parse().ok()?,
            shapes: f.next().unwrap_or("").to_string(),
        })
    }
}

/// The operators of one name (and input shapes, when grouped by them), added up.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// The operator.
    pub name: String,
    /// Input shapes; empty when not grouped by them.
    pub shapes: String,
    /// Calls.
    pub count: usize,
    /// Time inside the calls, children included.
    pub total_ns: u64,
    /// Time inside the calls less their child operators'.
    pub self_ns: u64,
}

/// What a [`Recording`] saw.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    /// Every call, in the order the profiler returned them.
    pub events: Vec<Event>,
}

impl Profile {
    /// Each event's self time: its duration less the durations of the events nested directly
    /// inside it on the same thread.
    pub fn self_times(&self) -> Vec<u64> {
        let mut self_ns: Vec<u64> = self.events.iter().map(|e| e.duration_ns).collect();
        let mut by_thread: HashMap<u64, Vec<usize>> = HashMap::new();
        for (i, e) in self.events.iter().enumerate() {
            by_thread.entry(e.thread).or_default().push(i);
        }
        for mut order in by_thread.into_values() {
            // Parents first: earlier start, and the longer of two that start together.
            order.sort_by_key(|&i| {
                let e = &self.events[i];
                (e.start_ns, std::cmp::Reverse(e.duration_ns))
            });
            let mut open: Vec<usize> = Vec::new();
            for i in order {
                let e = &self.events[i];
                while let Some(&top) = open.last() {
                    let t = &self.events[top];
                    if t.start_ns + t.duration_ns <= e.start_ns {
                        open.pop();
                    } else {
                        break;
                    }
                }
                if let Some(&parent) = open.last() {
                    self_ns[parent] = self_ns[parent].saturating_sub(e.duration_ns);
                }
                open.push(i);
            }
        }
        self_ns
    }

    /// Rows per operator name (and per input shapes when `by_shapes`), most self time first.
    pub fn summary(&self, by_shapes: bool) -> Vec<Summary> {
        let self_ns = self.self_times();
        let mut rows: HashMap<(String, String), Summary> = HashMap::new();
        for (e, s) in self.events.iter().zip(self_ns) {
            let shapes = if by_shapes {
                e.shapes.clone()
            } else {
                String::new()
            };
            let row = rows
                .entry((e.name.clone(), shapes.clone()))
                .or_insert_with(|| Summary {
                    name: e.name.clone(),
                    shapes,
                    count: 0,
                    total_ns: 0,
                    self_ns: 0,
                });
            row.count += 1;
            row.total_ns += e.duration_ns;
            row.self_ns += s;
        }
        let mut rows: Vec<Summary> = rows.into_values().collect();
        rows.sort_by(|a, b| b.self_ns.cmp(&a.self_ns).then(a.name.cmp(&b.name)));
        rows
    }

    /// Self time of all events together (the profiled wall time of each thread, summed).
    pub fn self_total_ns(&self) -> u64 {
        self.self_times().iter().sum()
    }

    /// The first `rows` rows of [`Profile::summary`] as a text table, as PyTorch prints
    /// `key_averages().table(sort_by="self_cpu_time_total")`.
    pub fn table(&self, by_shapes: bool, rows: usize) -> String {
        let total = self.self_total_ns().max(1) as f64;
        let mut out = format!(
            "{:<48} {:>7} {:>11} {:>11} {:>6}  {}\n",
            "operator", "self %", "self ms", "total ms", "calls", "input shapes"
        );
        for r in self.summary(by_shapes).into_iter().take(rows) {
            let mut name = r.name.clone();
            if name.chars().count() > 48 {
                name = name.chars().take(45).collect::<String>() + "...";
            }
            out += &format!(
                "{:<48} {:>6.2}% {:>11.3} {:>11.3} {:>6}  {}\n",
                name,
                100.0 * r.self_ns as f64 / total,
                r.self_ns as f64 / 1e6,
                r.total_ns as f64 / 1e6,
                r.count,
                r.shapes
            );
        }
        out += &format!("self time, all operators: {:.3} ms\n", total / 1e6);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind, Tensor};

    fn event(name: &str, start_ns: u64, duration_ns: u64) -> Event {
        Event {
            name: name.into(),
            thread: 1,
            start_ns,
            duration_ns,
            shapes: String::new(),
        }
    }

    #[test]
    fn self_time_is_duration_less_direct_children() {
        // a [0, 100) holds b [10, 40) and c [50, 90); b holds d [20, 30); e [100, 110) follows.
        let profile = Profile {
            events: vec![
                event("a", 0, 100),
                event("b", 10, 30),
                event("d", 20, 10),
                event("c", 50, 40),
                event("e", 100, 10),
            ],
        };
        assert_eq!(profile.self_times(), vec![30, 20, 10, 40, 10]);
        assert_eq!(profile.self_total_ns(), 110);
    }

    #[test]
    fn a_convolution_step_is_recorded_with_its_shapes() -> Result<()> {
        let x = Tensor::randn([2, 3, 16, 16], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let w = Tensor::randn([4, 3, 3, 3], (Kind::Float, Device::Cpu));
        let recording = Recording::start(true)?;
        assert!(
            Recording::start(false).is_err(),
            "a second recording is refused"
        );
        let y = x.conv2d(&w, None::<Tensor>, [1, 1], [1, 1], [1, 1], 1);
        y.sum(Kind::Float).backward();
        let profile = recording.stop()?;
        // Other tests' threads may run operators meanwhile (the profiler sees every thread):
        // this one is found by its input shapes.
        let rows = profile.summary(true);
        let conv = rows
            .iter()
            .find(|r| {
                r.name == "aten::convolution" && r.shapes.starts_with("[2, 3, 16, 16];[4, 3, 3, 3]")
            })
            .expect("convolution recorded with its input shapes");
        assert_eq!(conv.count, 1);
        assert!(conv.total_ns >= conv.self_ns && conv.self_ns > 0);
        assert!(rows.iter().any(|r| r.name.contains("ConvolutionBackward0")));
        // Stopped, it can start again.
        drop(Recording::start(false)?);
        Ok(())
    }
}
