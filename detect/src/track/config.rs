//! The tracker's settings: the keys of Ultralytics' tracker files (`bytetrack.yaml`), read from
//! such a file or taken by name.

use std::path::Path;

use anyhow::{bail, Context, Result};
use yaml_rust2::{Yaml, YamlLoader};

/// The tracker's settings, named as Ultralytics' `bytetrack.yaml` names them (its
/// `tracker_type` can only be `bytetrack`: it is checked when a file is read, not kept).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrackerConfig {
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
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            track_high_thresh: 0.25,
            track_low_thresh: 0.1,
            new_track_thresh: 0.25,
            track_buffer: 30,
            match_thresh: 0.8,
            fuse_score: true,
        }
    }
}

impl TrackerConfig {
    /// The tracker `spec` names: `bytetrack.yaml` (or `bytetrack`), Ultralytics' defaults; or a
    /// YAML file with its keys (any left out keep their defaults). BoT-SORT is refused: it is
    /// not built.
    pub fn load(spec: &str) -> Result<Self> {
        match spec {
            "bytetrack.yaml" | "bytetrack" => return Ok(Self::default()),
            "botsort.yaml" | "botsort" => bail!(
                "tracker={spec}: BoT-SORT is not built yet; tracker=bytetrack.yaml tracks with \
                 ByteTrack"
            ),
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
                    let t = v.as_str().unwrap_or_default();
                    if t != "bytetrack" {
                        bail!("tracker_type: {t:?}: only bytetrack is built (BoT-SORT is not yet)");
                    }
                }
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
                    // Ultralytics' files are YAML 1.1 (PyYAML): `True`, `yes`, `on` are booleans.
                    let text = v.as_str().map(str::to_ascii_lowercase);
                    cfg.fuse_score = match (v.as_bool(), text.as_deref()) {
                        (Some(b), _) => b,
                        (None, Some("true" | "yes" | "on")) => true,
                        (None, Some("false" | "no" | "off")) => false,
                        _ => bail!("fuse_score: expected true or false, got {v:?}"),
                    }
                }
                other => bail!(
                    "unknown key {other:?}; a ByteTrack file has tracker_type, track_high_thresh, \
                     track_low_thresh, new_track_thresh, track_buffer, match_thresh, fuse_score"
                ),
            }
        }
        Ok(cfg)
    }
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
        let err = TrackerConfig::from_yaml("gmc_method: sparseOptFlow\n").unwrap_err();
        assert!(err.to_string().contains("gmc_method"), "{err}");
        let err = TrackerConfig::load("botsort.yaml").unwrap_err().to_string();
        assert!(err.contains("BoT-SORT"), "{err}");
        assert_eq!(
            TrackerConfig::load("bytetrack.yaml").unwrap(),
            TrackerConfig::default()
        );
    }
}
