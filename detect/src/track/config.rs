//! The tracker's settings: the keys of Ultralytics' tracker files (`bytetrack.yaml`,
//! `botsort.yaml`), read from such a file or taken by name.

use std::path::Path;

use anyhow::{bail, Context, Result};
use yaml_rust2::{Yaml, YamlLoader};

/// Which tracker (`tracker_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackerType {
    /// ByteTrack.
    ByteTrack,
    /// BoT-SORT (without re-identification).
    BotSort,
}

/// BoT-SORT's camera-motion compensation (`gmc_method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GmcMethod {
    /// Sparse optical flow (Ultralytics' default).
    SparseOptFlow,
    /// None: the camera is taken as still.
    None,
}

/// The tracker's settings, named as Ultralytics' tracker files name them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrackerConfig {
    /// ByteTrack or BoT-SORT.
    pub tracker_type: TrackerType,
    /// Detections at least this confident are associated first.
    pub track_high_thresh: f64,
    /// Detections above this (and below the high threshold) are associated second.
    pub track_low_thresh: f64,
    /// A confident detection left unmatched starts a track when it reaches this.
    pub new_track_thresh: f64,
    /// Frames a lost track is kept for.
    pub track_buffer: u64,
    /// Cost limit of the first association.
    pub match_thresh: f64,
    /// Weigh IoU by the detection score in the first association.
    pub fuse_score: bool,
    /// BoT-SORT: how the camera's motion is estimated.
    pub gmc_method: GmcMethod,
    /// BoT-SORT: the IoU below which appearance may not match (re-identification only; kept
    /// so files read whole).
    pub proximity_thresh: f64,
    /// BoT-SORT: the appearance similarity a match needs (re-identification only).
    pub appearance_thresh: f64,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            tracker_type: TrackerType::ByteTrack,
            track_high_thresh: 0.25,
            track_low_thresh: 0.1,
            new_track_thresh: 0.25,
            track_buffer: 30,
            match_thresh: 0.8,
            fuse_score: true,
            gmc_method: GmcMethod::SparseOptFlow,
            proximity_thresh: 0.5,
            appearance_thresh: 0.8,
        }
    }
}

impl TrackerConfig {
    /// BoT-SORT with Ultralytics' `botsort.yaml` settings.
    pub fn bot_sort() -> Self {
        TrackerConfig {
            tracker_type: TrackerType::BotSort,
            ..Self::default()
        }
    }

    /// The tracker `spec` names: `bytetrack.yaml` or `botsort.yaml` (or without `.yaml`),
    /// Ultralytics' settings; or a YAML file with the keys (any left out keep their defaults).
    pub fn load(spec: &str) -> Result<Self> {
        match spec {
            "bytetrack.yaml" | "bytetrack" => return Ok(Self::default()),
            "botsort.yaml" | "botsort" => return Ok(Self::bot_sort()),
            _ => {}
        }
        let path = Path::new(spec);
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("tracker={spec}: no such tracker name or file"))?;
        Self::from_yaml(&text).with_context(|| format!("reading {}", path.display()))
    }

    /// Parses a tracker file's text; an unknown key or a value of the wrong type is an error
    /// naming it.
    pub fn from_yaml(text: &str) -> Result<Self> {
        let docs = YamlLoader::load_from_str(text).context("not YAML")?;
        let mut cfg = Self::default();
        let Some(Yaml::Hash(map)) = docs.first() else {
            return Ok(cfg);
        };
        for (k, v) in map {
            let key = k.as_str().unwrap_or_default();
            let number = || -> Result<f64> {
                v.as_f64()
                    .or_else(|| v.as_i64().map(|i| i as f64))
                    .with_context(|| format!("{key}: expected a number, got {v:?}"))
            };
            match key {
                "tracker_type" => {
                    cfg.tracker_type = match v.as_str().unwrap_or_default() {
                        "bytetrack" => TrackerType::ByteTrack,
                        "botsort" => TrackerType::BotSort,
                        t => bail!("tracker_type: {t:?}: expected bytetrack or botsort"),
                    }
                }
                "gmc_method" => {
                    cfg.gmc_method = match v.as_str() {
                        Some("sparseOptFlow") => GmcMethod::SparseOptFlow,
                        Some("none" | "None") => GmcMethod::None,
                        None if v.is_null() => GmcMethod::None,
                        Some(m @ ("orb" | "sift" | "ecc")) => bail!(
                            "gmc_method: {m}: not built; sparseOptFlow (Ultralytics' default) \
                             or none"
                        ),
                        _ => bail!("gmc_method: {v:?}: expected sparseOptFlow or none"),
                    }
                }
                "proximity_thresh" => cfg.proximity_thresh = number()?,
                "appearance_thresh" => cfg.appearance_thresh = number()?,
                "with_reid" => {
                    if yaml_bool(v).with_context(|| format!("with_reid: {v:?}"))? {
                        bail!(
                            "with_reid: True: re-identification is not built; BoT-SORT tracks \
                             by motion and IoU with with_reid: False"
                        );
                    }
                }
                // The re-identification model; without re-identification nothing reads it.
                "model" => {}
                "track_high_thresh" => cfg.track_high_thresh = number()?,
                "track_low_thresh" => cfg.track_low_thresh = number()?,
                "new_track_thresh" => cfg.new_track_thresh = number()?,
                "match_thresh" => cfg.match_thresh = number()?,
                "track_buffer" => {
                    cfg.track_buffer = v
                        .as_i64()
                        .and_then(|i| u64::try_from(i).ok())
                        .with_context(|| format!("track_buffer: expected frames, got {v:?}"))?
                }
                "fuse_score" => {
                    cfg.fuse_score = yaml_bool(v).with_context(|| format!("fuse_score: {v:?}"))?
                }
                other => bail!(
                    "unknown key {other:?}; a tracker file has tracker_type, track_high_thresh, \
                     track_low_thresh, new_track_thresh, track_buffer, match_thresh, fuse_score \
                     and, for BoT-SORT, gmc_method, proximity_thresh, appearance_thresh, \
                     with_reid, model"
                ),
            }
        }
        Ok(cfg)
    }
}

/// A YAML 1.1 boolean as Ultralytics' files (PyYAML) write them: `True`, `yes`, `on`, ….
fn yaml_bool(v: &Yaml) -> Result<bool> {
    let text = v.as_str().map(str::to_ascii_lowercase);
    Ok(match (v.as_bool(), text.as_deref()) {
        (Some(b), _) => b,
        (None, Some("true" | "yes" | "on")) => true,
        (None, Some("false" | "no" | "off")) => false,
        _ => bail!("expected true or false"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ultralytics_files_read_and_bad_keys_are_named() {
        let text = "# Ultralytics-style\ntracker_type: bytetrack\ntrack_high_thresh: 0.5\n\
                    track_low_thresh: 0.1\nnew_track_thresh: 0.6\ntrack_buffer: 60\n\
                    match_thresh: 0.8\nfuse_score: False\n";
        let cfg = TrackerConfig::from_yaml(text).unwrap();
        assert_eq!(
            (
                cfg.track_high_thresh,
                cfg.new_track_thresh,
                cfg.track_buffer,
                cfg.fuse_score
            ),
            (0.5, 0.6, 60, false)
        );
        let err = TrackerConfig::from_yaml("gmc_method: orb\n").unwrap_err();
        assert!(err.to_string().contains("gmc_method: orb"), "{err}");
        let err = TrackerConfig::from_yaml("with_reid: True\n").unwrap_err();
        assert!(err.to_string().contains("re-identification"), "{err}");
        let err = TrackerConfig::from_yaml("iou: 0.5\n").unwrap_err();
        assert!(err.to_string().contains("unknown key \"iou\""), "{err}");
        let bot = "tracker_type: botsort\ntrack_high_thresh: 0.25\ntrack_low_thresh: 0.1\n\
                   new_track_thresh: 0.25\ntrack_buffer: 30\nmatch_thresh: 0.8\nfuse_score: True\n\
                   gmc_method: sparseOptFlow\nproximity_thresh: 0.5\nappearance_thresh: 0.8\n\
                   with_reid: False\nmodel: auto\n";
        assert_eq!(
            TrackerConfig::from_yaml(bot).unwrap(),
            TrackerConfig::load("botsort.yaml").unwrap()
        );
        assert_eq!(
            TrackerConfig::load("bytetrack.yaml").unwrap(),
            TrackerConfig::default()
        );
    }
}
