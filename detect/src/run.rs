//! What a detection run folder records about its model (`<run>/detect.json`), so `val`,
//! `predict` and `export` need no flags.

use std::path::{Path, PathBuf};

use ferrovis_core::engine::{RunControl, Session, SessionConfig};
use serde::{Deserialize, Serialize};

use crate::config::DetectConfig;

/// `<run>/detect.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunMeta {
    /// `n`, `s`, `m`, `l` or `x`.
    pub scale: char,
    /// Class names, index order.
    pub names: Vec<String>,
    /// Training input size.
    pub imgsz: usize,
    /// The architecture: `yolov8`, `yolo11` or a torchvision one (`fasterrcnn_resnet50_fpn`, …);
    /// absent in runs written before YOLO11, which were all YOLOv8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
}

impl ferrovis_core::run::RunMeta for RunMeta {
    const FILE: &'static str = "detect.json";
    const TASK: &'static str = "detect";
}

/// What a finished training reports.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    /// The run folder.
    pub run: PathBuf,
    /// Metrics of the best weights on the validation split.
    pub map50: f64,
    /// mAP50-95 of the best weights.
    pub map50_95: f64,
}

/// Starts a training session as `cfg` says (device, seed, `project/name` or the run `resume`
/// continues), whichever family trains in it.
pub fn start_session(
    cfg: &DetectConfig,
    control: &RunControl,
    resume: Option<&Path>,
) -> anyhow::Result<Session> {
    Ok(Session::start(
        &SessionConfig {
            device: ferrovis_core::parse_device(&cfg.device_name())?,
            seed: cfg.seed,
            project: Path::new(&cfg.project),
            name: &cfg.name,
            resume,
            config_toml: ferrovis_core::config::to_toml(cfg)?,
        },
        control,
    )?)
}
