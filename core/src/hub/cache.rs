//! Where downloaded weights live: where the tools our users come from keep them, so a file
//! PyTorch or the Hugging Face hub already downloaded is used as it is.

use std::path::PathBuf;

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// `$XDG_CACHE_HOME`, else `~/.cache`.
fn cache_home() -> PathBuf {
    env_path("XDG_CACHE_HOME")
        .or_else(|| env_path("HOME").map(|h| h.join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"))
}

/// torch.hub's checkpoint folder: `$TORCH_HOME/hub/checkpoints`, `$TORCH_HOME` defaulting to
/// `$XDG_CACHE_HOME/torch` (`~/.cache/torch`), as `torch.hub.get_dir()` computes it.
pub fn torch_hub_checkpoints() -> PathBuf {
    env_path("TORCH_HOME")
        .unwrap_or_else(|| cache_home().join("torch"))
        .join("hub")
        .join("checkpoints")
}

/// The Hugging Face hub cache: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, `$HF_HOME` defaulting to
/// `$XDG_CACHE_HOME/huggingface` (`~/.cache/huggingface`), as `huggingface_hub` computes it.
pub fn hf_hub_cache() -> PathBuf {
    env_path("HF_HUB_CACHE").unwrap_or_else(|| {
        env_path("HF_HOME")
            .unwrap_or_else(|| cache_home().join("huggingface"))
            .join("hub")
    })
}

/// The Hugging Face endpoint: `$HF_ENDPOINT`, else `https://huggingface.co`.
pub fn hf_endpoint() -> String {
    std::env::var("HF_ENDPOINT")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "https://huggingface.co".into())
        .trim_end_matches('/')
        .to_string()
}

/// ferrovis' own weights folder for files no other tool caches (Ultralytics' releases):
/// `$FERROVIS_CACHE`, else `$XDG_CACHE_HOME/ferrovis/weights`.
pub fn ferrovis_cache() -> PathBuf {
    env_path("FERROVIS_CACHE").unwrap_or_else(|| cache_home().join("ferrovis").join("weights"))
}

/// True when `FERROVIS_OFFLINE` or `HF_HUB_OFFLINE` is set to 1, true or yes: no request is made.
pub fn offline() -> bool {
    ["FERROVIS_OFFLINE", "HF_HUB_OFFLINE"].iter().any(|name| {
        std::env::var(name)
            .map(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
            .unwrap_or(false)
    })
}
