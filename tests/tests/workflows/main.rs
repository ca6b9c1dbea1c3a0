//! End-to-end training tests: the engine, then each task's train → val → predict workflow.
//!
//! They run one at a time. libtorch's CPU generator is one per process, the engine reseeds it at
//! every epoch, and several tests assert that a resumed run is bit-identical to an uninterrupted
//! one: a test drawing random numbers (even to initialise a model) during another's run would
//! break that. Each test therefore holds [`serial`] for its whole body.

use std::sync::{Mutex, MutexGuard};

mod classify_workflow;
mod classify_zoo;
mod demo_report;
mod detect_support;
mod detect_workflow;
mod distributed_training;
mod engine;
mod faster_rcnn_training;
mod faster_rcnn_workflow;
mod fcos_workflow;
mod resume_after_kill;
mod retinanet_workflow;
mod sampler;
mod segment_workflow;
mod ssd_workflow;
mod style_workflow;
mod warnings;

static SERIAL: Mutex<()> = Mutex::new(());

/// The lock every test here holds while it runs (a test that panicked does not poison it).
fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}
