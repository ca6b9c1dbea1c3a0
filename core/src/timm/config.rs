//! timm's `config.json` beside a Hub checkpoint, in both forms timm reads: the current one
//! (`architecture`, `num_classes`, `pretrained_cfg: {…}`, as `save_for_hf` writes it) and the
//! older flat one, where every key but `architecture` and `num_features` is the pretrained
//! configuration and `labels` stands for `label_names`.

use std::path::Path;

use serde_json::{Map, Value};

use crate::backbone::{Interpolation, PretrainedCfg};
use crate::error::{Error, Result};

/// What a timm checkpoint's `config.json` says about the network and its preprocessing.
#[derive(Debug, Clone, PartialEq)]
pub struct TimmConfig {
    /// timm's architecture name (`convnext_tiny`, `vit_base_patch16_224`).
    pub architecture: String,
    /// Outputs of the classifier.
    pub num_classes: i64,
    /// The class names, when the file lists them.
    pub label_names: Option<Vec<String>>,
    /// `(channels, height, width)` the network was trained at.
    pub input_size: [i64; 3],
    /// Resize interpolation (`bilinear` or `bicubic`).
    pub interpolation: Interpolation,
    /// The centre crop's share of the resized image (timm's `crop_pct`): the short side is
    /// resized to `floor(size / crop_pct)` first.
    pub crop_pct: f64,
    /// timm's `crop_mode`: only `center` (resize the short side, then crop) is built.
    pub crop_mode: String,
    /// Per-channel mean of the 0–1 input.
    pub mean: [f64; 3],
    /// Per-channel standard deviation of the 0–1 input.
    pub std: [f64; 3],
}

impl TimmConfig {
    /// Reads `path` (a timm `config.json`).
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| Error::Invalid(format!("{}: not JSON: {e}", path.display())))?;
        Self::from_json(&value).map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))
    }

    /// Parses a `config.json` value; errors name the key.
    pub fn from_json(value: &Value) -> std::result::Result<Self, String> {
        let top = value.as_object().ok_or("expected a JSON object")?;
        let architecture = top
            .get("architecture")
            .and_then(Value::as_str)
            .ok_or("no `architecture` (the timm model name)")?
            .to_string();
        // The current form nests the preprocessing; the flat one is the preprocessing itself.
        let cfg: Map<String, Value> = match top.get("pretrained_cfg") {
            Some(Value::Object(m)) => m.clone(),
            Some(_) => return Err("`pretrained_cfg` is not an object".into()),
            None => top
                .iter()
                .filter(|(k, _)| *k != "architecture" && *k != "num_features")
                .map(|(k, v)| {
                    let k = if k == "labels" {
                        "label_names"
                    } else {
                        k.as_str()
                    };
                    (k.to_string(), v.clone())
                })
                .collect(),
        };
        let get = |key: &str| top.get(key).or_else(|| cfg.get(key));
        let num_classes = get("num_classes")
            .and_then(Value::as_i64)
            .ok_or("no integer `num_classes`")?;
        let label_names = match get("label_names") {
            None | Some(Value::Null) => None,
            Some(Value::Array(a)) => Some(
                a.iter()
                    .map(|v| v.as_str().map(String::from))
                    .collect::<Option<Vec<_>>>()
                    .ok_or("`label_names`: expected strings")?,
            ),
            Some(_) => return Err("`label_names`: expected a list".into()),
        };
        let input_size: [i64; 3] = match cfg.get("input_size") {
            None => [3, 224, 224],
            Some(v) => serde_json::from_value(v.clone()).map_err(|_| {
                format!("`input_size`: expected [channels, height, width], got {v}")
            })?,
        };
        if input_size[1] != input_size[2] || input_size[1] <= 0 {
            return Err(format!(
                "`input_size` {input_size:?}: only square positive sizes are built"
            ));
        }
        let interpolation = match cfg.get("interpolation").and_then(Value::as_str) {
            None | Some("bicubic") => Interpolation::Bicubic,
            Some("bilinear") => Interpolation::Bilinear,
            Some(other) => {
                return Err(format!(
                    "`interpolation` {other:?}: bilinear or bicubic are built"
                ))
            }
        };
        let crop_pct = match cfg.get("crop_pct") {
            None | Some(Value::Null) => 0.875,
            Some(v) => v.as_f64().ok_or("`crop_pct`: expected a number")?,
        };
        if !(crop_pct > 0.0 && crop_pct <= 1.0) {
            return Err(format!("`crop_pct` {crop_pct}: expected (0, 1]"));
        }
        let crop_mode = cfg
            .get("crop_mode")
            .and_then(Value::as_str)
            .unwrap_or("center")
            .to_string();
        let triple = |key: &str, default: [f64; 3]| -> std::result::Result<[f64; 3], String> {
            match cfg.get(key) {
                None => Ok(default),
                Some(v) => serde_json::from_value(v.clone())
                    .map_err(|_| format!("`{key}`: expected three numbers, got {v}")),
            }
        };
        Ok(TimmConfig {
            architecture,
            num_classes,
            label_names,
            input_size,
            interpolation,
            crop_pct,
            crop_mode,
            mean: triple("mean", crate::backbone::IMAGENET_MEAN)?,
            std: triple("std", crate::backbone::IMAGENET_STD)?,
        })
    }

    /// The evaluation preprocessing as timm's `create_transform` builds it for this
    /// configuration (`crop_mode` center): the short side resized to `floor(size / crop_pct)`,
    /// a centre crop of `size`, normalised by `mean`/`std`.
    pub fn pretrained_cfg(&self) -> Result<PretrainedCfg> {
        if self.crop_mode != "center" {
            return Err(Error::Invalid(format!(
                "{}: crop_mode {:?}: only timm's `center` crop is built",
                self.architecture, self.crop_mode
            )));
        }
        let size = self.input_size[1];
        Ok(PretrainedCfg {
            input_size: size,
            resize_size: (size as f64 / self.crop_pct).floor() as i64,
            interpolation: self.interpolation,
            mean: self.mean,
            std: self.std,
        })
    }
}
