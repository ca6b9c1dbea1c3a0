//! Multi-object tracking on a detector's boxes, frame after frame (Ultralytics'
//! `trackers/`): [`ByteTracker`] with its Kalman filter ([`kalman`]) and assignment
//! ([`matching`]), configured by [`TrackerConfig`] (the keys of Ultralytics' `bytetrack.yaml`).

pub mod byte_tracker;
pub mod config;
pub mod kalman;
pub mod matching;

pub use byte_tracker::{ByteTracker, Detection, TrackedBox};
pub use config::TrackerConfig;
