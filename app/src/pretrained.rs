//! Where a binary finds pretrained weights it was not given: `$FERROVIS_WEIGHTS`, torch.hub's
//! cache, then the registry ([`ferrovis_core::hub`]).

use std::path::PathBuf;

/// `FERROVIS_WEIGHTS`, the one variable every binary reads for its default pretrained weights: a
/// checkpoint file, or a folder holding the files a command needs by their usual names (see
/// [`weights_in`]). `FERROVIS_VGG` and `FERROVIS_WEIGHTS_DIR`, earlier spellings in the style
/// binary, are read too, with a note.
pub fn env_weights() -> Option<PathBuf> {
    // Empty counts as unset, so `make demo` can pass an empty FERROVIS_WEIGHTS when it has none.
    if let Some(p) = std::env::var_os("FERROVIS_WEIGHTS").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    ["FERROVIS_VGG", "FERROVIS_WEIGHTS_DIR"]
        .into_iter()
        .find_map(|old| {
            let p = std::env::var_os(old)?;
            eprintln!("note: {old} is deprecated; use FERROVIS_WEIGHTS (a file or a folder)");
            Some(PathBuf::from(p))
        })
}

/// The weights file `path` stands for: a file as it is; in a folder, the first of `names` found
/// there. `None` when neither exists.
pub fn weights_in(path: &std::path::Path, names: &[&str]) -> Option<PathBuf> {
    if path.is_file() {
        return Some(path.to_path_buf());
    }
    names.iter().map(|n| path.join(n)).find(|p| p.is_file())
}

/// The first of `names` that `$FERROVIS_WEIGHTS` stands for (see [`weights_in`]), else the
/// first of them in torch.hub's cache (`names` are torchvision's file names, so a copy PyTorch
/// downloaded is used; see [`ferrovis_core::hub`]); `None` when neither holds one. Nothing is downloaded.
pub fn env_weights_in(names: &[&str]) -> Option<PathBuf> {
    env_weights()
        .and_then(|w| weights_in(&w, names))
        .or_else(|| {
            let dir = ferrovis_core::hub::cache::torch_hub_checkpoints();
            names.iter().map(|n| dir.join(n)).find(|p| p.is_file())
        })
}

/// The pretrained weights a demo starts from: the first of `file_names` that
/// [`env_weights_in`] finds (`$FERROVIS_WEIGHTS`, torch.hub's cache), else the registry's `name`
/// fetched into its cache ([`ferrovis_core::hub`]) unless offline. `None`, with the reason on stderr,
/// when none is at hand: the demo then says what it does instead.
pub fn demo_weights(file_names: &[&str], name: &str) -> Option<PathBuf> {
    if let Some(found) = env_weights_in(file_names) {
        return Some(found);
    }
    match ferrovis_core::hub::resolve(name) {
        Ok(file) => Some(file),
        Err(e) => {
            eprintln!("weights {name}: {e}");
            None
        }
    }
}
