//! Multi-object tracking on a detector's boxes, frame after frame (Ultralytics'
//! `trackers/`): [`ByteTracker`] (ByteTrack, and BoT-SORT with its camera-motion compensation,
//! [`gmc`]) with its Kalman filter ([`kalman`]) and assignment ([`matching`]), configured by
//! [`TrackerConfig`] (the keys of Ultralytics' tracker files); [`Tracker`] runs whichever the
//! configuration names.

pub mod byte_tracker;
pub mod config;
pub mod gmc;
pub mod kalman;
pub mod matching;

pub use byte_tracker::{ByteTracker, Detection, TrackedBox};
pub use config::{TrackerConfig, TrackerType};

use ferrovis_data::image::RgbImage;

/// The tracker a [`TrackerConfig`] names, fed one frame at a time.
#[derive(Debug, Clone)]
pub struct Tracker(ByteTracker);

impl Tracker {
    /// A fresh tracker (no tracks, frame 0) for one sequence.
    pub fn new(config: &TrackerConfig) -> Tracker {
        Tracker(match (config.tracker_type, config.gmc_method) {
            (TrackerType::BotSort, config::GmcMethod::SparseOptFlow) => {
                ByteTracker::bot_sort(*config)
            }
            (TrackerType::BotSort, config::GmcMethod::None) => ByteTracker::bot_sort_still(*config),
            (TrackerType::ByteTrack, _) => ByteTracker::new(*config),
        })
    }

    /// One frame's detections (and the frame itself, which motion compensation looks at):
    /// the confirmed tracks after it.
    pub fn update(&mut self, detections: &[Detection], image: &RgbImage) -> Vec<TrackedBox> {
        self.0.update_with_frame(detections, Some(image))
    }

    /// A frame that could not be read: tracks age as if it had no detections (and the camera
    /// stood still).
    pub fn skip_frame(&mut self) {
        self.0.update(&[]);
    }

    /// Frames seen so far.
    pub fn frame(&self) -> u64 {
        self.0.frame()
    }
}
