//! DINOv2 checkpoints saved by Hugging Face transformers (`hf-hub:facebook/dinov2-small|base|
//! large|giant`, `hf-hub:facebook/dinov2-with-registers-*`, or a folder holding the same files):
//! `config.json` (`model_type` `dinov2` or `dinov2_with_registers`), `model.safetensors` in
//! transformers' names, and optionally `preprocessor_config.json`, read into
//! [`crate::backbone::Dinov2`]'s names (the reference implementation's).
//!
//! transformers splits the attention's projection into `query`, `key` and `value` and names
//! the layer scales `lambda1`; the reference fuses `qkv` and names them `gamma`. Each tensor of
//! the file is either renamed, fused, or (the pre-training `mask_token`) dropped; anything else
//! is an error naming it. A `Dinov2ForImageClassification` checkpoint's `classifier` is the
//! linear probe's `head`, with its class names (`id2label`).

use std::collections::BTreeMap;
use std::path::Path;

use regex::Regex;
use serde_json::Value;
use tch::Tensor;

use crate::backbone::{
    Dinov2Config, Interpolation, PosEmbedResize, SourceOptions, IMAGENET_MEAN, IMAGENET_STD,
};
use crate::checkpoint::{self, StateDict};
use crate::error::{Error, Result};
use crate::hub::{Hub, HubCheckpoint};
use crate::timm::{TimmConfig, CONFIG_FILE, WEIGHTS_FILE};

/// transformers' image-processor settings beside the weights (optional).
pub const PREPROCESSOR_FILE: &str = "preprocessor_config.json";

/// Whether `spec` names a transformers DINOv2 checkpoint: `hf-hub:facebook/dinov2…`, or a
/// folder whose `config.json` has a transformers `model_type`.
pub fn is_transformers(spec: &str) -> bool {
    if let Some(repo) = spec.strip_prefix("hf-hub:") {
        return repo.starts_with("facebook/dinov2");
    }
    let config = Path::new(spec).join(CONFIG_FILE);
    std::fs::read_to_string(config)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .is_some_and(|v| v.get("model_type").is_some())
}

/// The Hub repository holding `arch`'s pre-trained DINOv2 weights in transformers' layout
/// (`dinov2_vits14` → `facebook/dinov2-small`, `dinov2_vitb14_reg` →
/// `facebook/dinov2-with-registers-base`); `None` for other architectures.
pub fn default_repo(arch: &str) -> Option<String> {
    let (base, reg) = match arch.strip_suffix("_reg") {
        Some(b) => (b, "with-registers-"),
        None => (arch, ""),
    };
    let size = match base {
        "dinov2_vits14" => "small",
        "dinov2_vitb14" => "base",
        "dinov2_vitl14" => "large",
        "dinov2_vitg14" => "giant",
        _ => return None,
    };
    Some(format!("facebook/dinov2-{reg}{size}"))
}

/// Reads the checkpoint `spec` names into DINOv2's reference names (see the module's text).
pub fn read_in(hub: &Hub, spec: &str) -> Result<HubCheckpoint> {
    let (config_file, weights, preprocessor) = match spec.strip_prefix("hf-hub:") {
        Some(repo) => {
            let config = hub.fetch_hf_file(repo, CONFIG_FILE)?;
            let weights = hub.fetch_hf_file(repo, WEIGHTS_FILE)?;
            // Optional: a repository without it uses DINOv2's evaluation transform.
            let pre = hub.fetch_hf_file(repo, PREPROCESSOR_FILE).ok();
            (config, weights, pre)
        }
        None => {
            let dir = Path::new(spec);
            let (config, weights) = (dir.join(CONFIG_FILE), dir.join(WEIGHTS_FILE));
            for f in [&config, &weights] {
                if !f.is_file() {
                    return Err(Error::Invalid(format!(
                        "{}: a transformers checkpoint folder holds {CONFIG_FILE} and \
                         {WEIGHTS_FILE}; {} is missing",
                        dir.display(),
                        f.display()
                    )));
                }
            }
            let pre = dir.join(PREPROCESSOR_FILE);
            (config, weights, pre.is_file().then_some(pre))
        }
    };
    let in_file = |path: &Path, e: String| Error::Invalid(format!("{}: {e}", path.display()));
    let config = read_json(&config_file)?;
    let model = ModelConfig::from_json(&config).map_err(|e| in_file(&config_file, e))?;
    let mut timm_cfg = match &preprocessor {
        Some(p) => preprocessing(&read_json(p)?).map_err(|e| in_file(p, e))?,
        None => default_preprocessing(),
    };
    timm_cfg.architecture = model.architecture.clone();
    timm_cfg.num_classes = model.label_names.as_ref().map_or(0, |l| l.len() as i64);
    timm_cfg.label_names = model.label_names.clone();
    let sd = checkpoint::read(&weights)?;
    let state_dict = to_reference(&sd).map_err(|e| in_file(&weights, e))?;
    Ok(HubCheckpoint {
        arch: model.arch,
        image_size: model.image_size,
        config: timm_cfg,
        state_dict,
        weights,
        build: SourceOptions {
            pos_embed_resize: Some(model.pos_embed_resize),
            ..Default::default()
        },
    })
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text)
        .map_err(|e| Error::Invalid(format!("{}: not JSON: {e}", path.display())))
}

/// What `config.json` says about the network.
#[derive(Debug)]
struct ModelConfig {
    /// The ferrovis architecture (`dinov2_vits14_reg`).
    arch: String,
    /// transformers' class name (`Dinov2Model`).
    architecture: String,
    image_size: i64,
    label_names: Option<Vec<String>>,
    pos_embed_resize: PosEmbedResize,
}

impl ModelConfig {
    /// Errors name the key.
    fn from_json(v: &Value) -> std::result::Result<Self, String> {
        let int = |key: &str| {
            v.get(key)
                .and_then(Value::as_i64)
                .ok_or_else(|| format!("no integer `{key}`"))
        };
        let model_type = v
            .get("model_type")
            .and_then(Value::as_str)
            .ok_or("no `model_type`")?;
        let registers = match model_type {
            "dinov2" => 0,
            "dinov2_with_registers" => v
                .get("num_register_tokens")
                .and_then(Value::as_i64)
                .unwrap_or(4),
            other => {
                return Err(format!(
                    "model_type {other:?} is not built: ferrovis reads transformers' DINOv2 \
                     (`dinov2`, `dinov2_with_registers`)"
                ))
            }
        };
        let (hidden, layers, heads) = (
            int("hidden_size")?,
            int("num_hidden_layers")?,
            int("num_attention_heads")?,
        );
        let base = match (hidden, layers, heads) {
            (384, 12, 6) => "dinov2_vits14",
            (768, 12, 12) => "dinov2_vitb14",
            (1024, 24, 16) => "dinov2_vitl14",
            (1536, 40, 24) => "dinov2_vitg14",
            _ => {
                return Err(format!(
                    "hidden_size {hidden}, num_hidden_layers {layers}, num_attention_heads \
                     {heads} is no DINOv2 ViT-S/B/L/g"
                ))
            }
        };
        let arch = match registers {
            0 => base.to_string(),
            4 => format!("{base}_reg"),
            n => return Err(format!("num_register_tokens {n}: the models have 0 or 4")),
        };
        let built = Dinov2Config::by_name(&arch).ok_or("no such DINOv2 variant")?;
        let swiglu = v
            .get("use_swiglu_ffn")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if swiglu != built.swiglu {
            return Err(format!(
                "use_swiglu_ffn {swiglu}: DINOv2's {arch} has {}",
                if built.swiglu { "SwiGLU" } else { "a GELU MLP" }
            ));
        }
        // The settings every published DINOv2 has; another value is another network.
        let expect = |key: &str, want: Value| match v.get(key) {
            None => Ok(()),
            Some(got) if *got == want || (got.is_number() && got.as_f64() == want.as_f64()) => {
                Ok(())
            }
            Some(got) => Err(format!("`{key}` {got}: ferrovis builds DINOv2 with {want}")),
        };
        expect("patch_size", 14.into())?;
        expect("mlp_ratio", 4.into())?;
        expect("layer_norm_eps", 1e-6.into())?;
        expect("qkv_bias", true.into())?;
        expect("num_channels", 3.into())?;
        if !swiglu {
            expect("hidden_act", "gelu".into())?;
        }
        let image_size = v.get("image_size").and_then(Value::as_i64).unwrap_or(518);
        let architecture = v
            .get("architectures")
            .and_then(|a| a.get(0))
            .and_then(Value::as_str)
            .unwrap_or(model_type)
            .to_string();
        let label_names = if architecture.ends_with("ForImageClassification") {
            let map = v
                .get("id2label")
                .and_then(Value::as_object)
                .ok_or("an image-classification checkpoint without `id2label`")?;
            let mut by_id = BTreeMap::new();
            for (k, name) in map {
                let id: usize = k
                    .parse()
                    .map_err(|_| format!("`id2label`: key {k:?} is no class index"))?;
                let name = name
                    .as_str()
                    .ok_or_else(|| format!("`id2label`: {k} is no string"))?;
                by_id.insert(id, name.to_string());
            }
            if by_id.keys().copied().ne(0..by_id.len()) {
                return Err("`id2label`: the class indices are not 0..n".into());
            }
            Some(by_id.into_values().collect())
        } else {
            None
        };
        // transformers resizes to the new size; with antialiasing only in the register models.
        let pos_embed_resize = PosEmbedResize::Size {
            antialias: registers > 0,
        };
        Ok(ModelConfig {
            arch,
            architecture,
            image_size,
            label_names,
            pos_embed_resize,
        })
    }
}

/// DINOv2's evaluation transform (what `facebook/dinov2-*` ship as `BitImageProcessor`): short
/// side 256, centre crop 224, bicubic, ImageNet statistics.
fn default_preprocessing() -> TimmConfig {
    TimmConfig {
        architecture: String::new(),
        num_classes: 0,
        label_names: None,
        input_size: [3, 224, 224],
        interpolation: Interpolation::Bicubic,
        crop_pct: 224.0 / 256.0,
        crop_mode: "center".into(),
        mean: IMAGENET_MEAN,
        std: IMAGENET_STD,
    }
}

/// A `BitImageProcessor` / `ViTImageProcessor` configuration in timm's terms; a setting that
/// timm's centre-crop transform cannot express is an error naming it.
fn preprocessing(v: &Value) -> std::result::Result<TimmConfig, String> {
    let mut cfg = default_preprocessing();
    let flag = |key: &str| v.get(key).and_then(Value::as_bool).unwrap_or(true);
    if !flag("do_resize") || !flag("do_normalize") || !flag("do_rescale") {
        return Err("do_resize, do_rescale and do_normalize must be on".into());
    }
    let size = |key: &str, sub: &str| v.get(key).and_then(|s| s.get(sub)).and_then(Value::as_i64);
    let resize = size("size", "shortest_edge")
        .ok_or("`size`: only {\"shortest_edge\": n} (resize the short side) is built")?;
    let crop = if v.get("do_center_crop").and_then(Value::as_bool) == Some(false) {
        return Err("do_center_crop false: only resize-then-centre-crop is built".into());
    } else {
        match (size("crop_size", "height"), size("crop_size", "width")) {
            (Some(h), Some(w)) if h == w => h,
            (None, None) => 224,
            _ => return Err("`crop_size`: only square crops are built".into()),
        }
    };
    cfg.input_size = [3, crop, crop];
    cfg.crop_pct = crop as f64 / resize as f64;
    // PIL's resampling codes.
    cfg.interpolation = match v.get("resample").and_then(Value::as_i64) {
        None | Some(3) => Interpolation::Bicubic,
        Some(2) => Interpolation::Bilinear,
        Some(other) => return Err(format!("`resample` {other}: bilinear (2) or bicubic (3)")),
    };
    let triple = |key: &str| -> std::result::Result<Option<[f64; 3]>, String> {
        v.get(key)
            .map(|x| {
                serde_json::from_value(x.clone())
                    .map_err(|_| format!("`{key}`: expected three numbers, got {x}"))
            })
            .transpose()
    };
    if let Some(m) = triple("image_mean")? {
        cfg.mean = m;
    }
    if let Some(s) = triple("image_std")? {
        cfg.std = s;
    }
    Ok(cfg)
}

/// A transformers DINOv2 state dict (`Dinov2Model`, `Dinov2WithRegistersModel` or
/// `Dinov2ForImageClassification`) in the reference's names, fusing `query`/`key`/`value` into `qkv` (and, for a
/// model saved with the gate and up projections apart, `gate_proj`/`up_proj` into `w12`).
pub fn to_reference(sd: &StateDict) -> std::result::Result<StateDict, String> {
    const RULES: &[(&str, &str)] = &[
        (r"^embeddings\.cls_token$", "cls_token"),
        (r"^embeddings\.position_embeddings$", "pos_embed"),
        (r"^embeddings\.register_tokens$", "register_tokens"),
        (
            r"^embeddings\.patch_embeddings\.projection\.(weight|bias)$",
            "patch_embed.proj.$1",
        ),
        (
            r"^encoder\.layer\.(\d+)\.(norm1|norm2)\.(weight|bias)$",
            "blocks.$1.$2.$3",
        ),
        (
            r"^encoder\.layer\.(\d+)\.attention\.(?:output\.dense|o_proj)\.(weight|bias)$",
            "blocks.$1.attn.proj.$2",
        ),
        (
            r"^encoder\.layer\.(\d+)\.layer_scale1\.lambda1$",
            "blocks.$1.ls1.gamma",
        ),
        (
            r"^encoder\.layer\.(\d+)\.layer_scale2\.lambda1$",
            "blocks.$1.ls2.gamma",
        ),
        (
            r"^encoder\.layer\.(\d+)\.mlp\.(fc1|fc2)\.(weight|bias)$",
            "blocks.$1.mlp.$2.$3",
        ),
        (
            r"^encoder\.layer\.(\d+)\.mlp\.weights_in\.(weight|bias)$",
            "blocks.$1.mlp.w12.$2",
        ),
        (
            r"^encoder\.layer\.(\d+)\.mlp\.(?:weights_out|down_proj)\.(weight|bias)$",
            "blocks.$1.mlp.w3.$2",
        ),
        (r"^layernorm\.(weight|bias)$", "norm.$1"),
        (r"^classifier\.(weight|bias)$", "head.$1"),
    ];
    let compile = |p: &str| Regex::new(p).map_err(|e| format!("renaming table: {e}"));
    let rules: Vec<(Regex, &str)> = RULES
        .iter()
        .map(|(p, r)| compile(p).map(|re| (re, *r)))
        .collect::<std::result::Result<_, _>>()?;
    // Tensors that are fused: (block, what, weight|bias) → (part, tensor).
    // (transformers 5 holds them as `attention.q_proj` … in memory and saves the Hub's names;
    // a state dict written from memory has the former.)
    let split = compile(
        r"^encoder\.layer\.(\d+)\.(?:attention\.(?:attention\.)?(query|key|value|q_proj|k_proj|v_proj)|mlp\.(gate_proj|up_proj))\.(weight|bias)$",
    )?;
    let mut parts: BTreeMap<String, Vec<(usize, Tensor)>> = BTreeMap::new();
    let mut out = StateDict::new();
    for (name, t) in sd.iter() {
        // The ForImageClassification models keep the backbone under `dinov2.` or
        // `dinov2_with_registers.`.
        let key = name
            .strip_prefix("dinov2.")
            .or_else(|| name.strip_prefix("dinov2_with_registers."))
            .unwrap_or(name);
        if key == "embeddings.mask_token" {
            continue;
        }
        if let Some(c) = split.captures(key) {
            let (fused, order) = match (c.get(2), c.get(3)) {
                (Some(qkv), _) => (
                    "attn.qkv",
                    ["query", "key", "value"]
                        .iter()
                        .position(|p| qkv.as_str().starts_with(&p[..1])),
                ),
                (_, Some(glu)) => (
                    "mlp.w12",
                    ["gate_proj", "up_proj"]
                        .iter()
                        .position(|p| *p == glu.as_str()),
                ),
                _ => ("", None),
            };
            let order = order.ok_or_else(|| format!("tensor {name}: unexpected part"))?;
            let target = format!("blocks.{}.{fused}.{}", &c[1], &c[4]);
            parts
                .entry(target)
                .or_default()
                .push((order, t.shallow_clone()));
            continue;
        }
        let (re, replacement) = rules
            .iter()
            .find(|(re, _)| re.is_match(key))
            .ok_or_else(|| {
                format!("tensor {name} has no counterpart in DINOv2 (not a DINOv2 checkpoint?)")
            })?;
        out.insert(
            re.replace(key, *replacement).into_owned(),
            t.shallow_clone(),
        );
    }
    for (target, mut pieces) in parts {
        pieces.sort_by_key(|(i, _)| *i);
        let want = if target.contains("qkv") { 3 } else { 2 };
        if pieces.len() != want || pieces.iter().enumerate().any(|(i, (k, _))| i != *k) {
            return Err(format!(
                "{target}: {} of its {want} projections are in the file",
                pieces.len()
            ));
        }
        let tensors: Vec<Tensor> = pieces.into_iter().map(|(_, t)| t).collect();
        out.insert(target, Tensor::cat(&tensors, 0));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_name_the_variant_or_the_key_that_differs() {
        let small = serde_json::json!({"model_type": "dinov2", "hidden_size": 384,
            "num_hidden_layers": 12, "num_attention_heads": 6, "patch_size": 14,
            "mlp_ratio": 4, "layer_norm_eps": 1e-6, "architectures": ["Dinov2Model"]});
        let m = ModelConfig::from_json(&small).unwrap();
        assert_eq!((m.arch.as_str(), m.image_size), ("dinov2_vits14", 518));
        assert_eq!(
            m.pos_embed_resize,
            PosEmbedResize::Size { antialias: false }
        );
        let mut reg = small.clone();
        reg["model_type"] = "dinov2_with_registers".into();
        assert_eq!(
            ModelConfig::from_json(&reg).unwrap().arch,
            "dinov2_vits14_reg"
        );
        let mut odd = small.clone();
        odd["patch_size"] = 16.into();
        let err = ModelConfig::from_json(&odd).unwrap_err();
        assert!(err.contains("`patch_size` 16"), "{err}");
        let mut vit = small;
        vit["model_type"] = "vit".into();
        assert!(ModelConfig::from_json(&vit)
            .unwrap_err()
            .contains("\"vit\""));
    }

    #[test]
    fn the_image_processor_becomes_a_centre_crop() {
        let v = serde_json::json!({"crop_size": {"height": 224, "width": 224},
            "do_center_crop": true, "resample": 3, "size": {"shortest_edge": 256},
            "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]});
        let cfg = preprocessing(&v).unwrap().pretrained_cfg().unwrap();
        assert_eq!((cfg.input_size, cfg.resize_size), (224, 256));
        assert_eq!(cfg.interpolation, Interpolation::Bicubic);
        let bad = serde_json::json!({"size": {"height": 224, "width": 224}});
        assert!(preprocessing(&bad).unwrap_err().contains("shortest_edge"));
    }
}
