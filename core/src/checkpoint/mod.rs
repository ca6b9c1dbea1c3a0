//! Reading and writing weights in the formats PyTorch users have on disk, with no Python.
//!
//! | format | typical names | detected by |
//! |---|---|---|
//! | PyTorch zip (torch ≥ 1.6 `torch.save`) | `.pth`, `.pt`, `.bin`, `.ckpt` | zip with `<name>/data.pkl` |
//! | PyTorch legacy (torch < 1.6, or `_use_new_zipfile_serialization=False`) | same | pickle magic number |
//! | safetensors | `.safetensors` | 8-byte header length then `{` |
//! | TorchScript archive (tch `.ot`) | `.ot` | zip with `constants.pkl`/`code/` |
//!
//! The format is always detected from the bytes, never from the extension. Pickles are interpreted
//! by [`pickle`], which executes nothing. Tensors come back contiguous, on the CPU, in the dtype the
//! file stored (float16 Ultralytics weights stay float16 until [`load_into`] converts them).
//!
//! ```no_run
//! use ferrovis_core::checkpoint::{self, LoadOptions};
//! # fn main() -> ferrovis_core::Result<()> {
//! let vs = tch::nn::VarStore::new(tch::Device::Cpu);
//! // … build a model under vs.root() …
//! let sd = checkpoint::read("resnet18-f37072fd.pth")?;
//! let opts = LoadOptions::default().skip("^fc\\.")?; // new head: drop the old classifier
//! let report = checkpoint::load_into(&vs, &sd, &opts)?;
//! println!("{report}");
//! # Ok(()) }
//! ```

mod class_names;
pub mod inspect;
mod loading;
pub mod pickle;
mod safetensors_file;
mod state_dict;
mod torch_format;

use std::path::{Path, PathBuf};

pub use class_names::class_names;
pub use loading::{load_file, load_into, LoadOptions, LoadReport, Mismatch};
pub use safetensors_file::{
    read_safetensors_metadata, save_safetensors, save_safetensors_with_metadata, save_varstore,
};
pub use state_dict::{StateDict, NESTED_KEYS};

use crate::error::{Error, Result};
use pickle::Object;

/// A checkpoint file layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Hugging Face safetensors.
    Safetensors,
    /// `torch.save` zip archive (torch ≥ 1.6).
    TorchZip,
    /// `torch.save` legacy stream of pickles (torch < 1.6).
    TorchLegacy,
    /// A TorchScript archive, as tch's `VarStore::save` writes (`.ot`).
    TorchScript,
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::Safetensors => "safetensors",
            Format::TorchZip => "PyTorch zip",
            Format::TorchLegacy => "PyTorch legacy",
            Format::TorchScript => "TorchScript archive (tch .ot)",
        })
    }
}

/// Tells the format from the first bytes of a file, or `None` when it is none we read.
/// Zip archives are reported as [`Format::TorchZip`]; [`open`] tells TorchScript archives apart
/// by their entries.
pub fn detect_format(head: &[u8]) -> Option<Format> {
    if head.starts_with(b"PK\x03\x04") {
        return Some(Format::TorchZip);
    }
    if head.len() >= 14
        && head[0] == 0x80
        && head[2] == 0x8a
        && head[3] == 10
        && head[4..14] == torch_format::LEGACY_MAGIC
    {
        return Some(Format::TorchLegacy);
    }
    if head.len() >= 9 && head[8] == b'{' {
        return Some(Format::Safetensors);
    }
    None
}

/// Where to find the weights inside a checkpoint.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// Dotted path to the state dict inside a nested checkpoint (`"model"`, `"ema"`,
    /// `"checkpoint.state_dict"`). `None` searches the usual places (see [`NESTED_KEYS`]).
    pub key: Option<String>,
    /// Keep a `module.` prefix (DataParallel) instead of stripping it when every name has it.
    pub keep_module_prefix: bool,
}

/// A checkpoint read from disk.
#[derive(Debug)]
pub struct Checkpoint {
    /// The file it came from.
    pub path: PathBuf,
    /// Its layout.
    pub format: Format,
    /// The tensors, with PyTorch state_dict names.
    pub state_dict: StateDict,
    /// A prefix that was removed from every name (`module.`), if any.
    pub stripped_prefix: Option<String>,
}

/// Reads the weights of any supported checkpoint with default options.
pub fn read(path: impl AsRef<Path>) -> Result<StateDict> {
    Ok(open(path, &ReadOptions::default())?.state_dict)
}

/// Reads a checkpoint, reporting its format and any prefix stripped.
pub fn open(path: impl AsRef<Path>, opts: &ReadOptions) -> Result<Checkpoint> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let fail = |reason: String| Error::checkpoint(path, reason);
    let format = detect_format(&bytes).ok_or_else(|| {
        fail(format!(
            "unrecognised format (first bytes {:02x?}): expected a PyTorch .pt/.pth, .safetensors or tch .ot file",
            &bytes[..bytes.len().min(8)]
        ))
    })?;
    let (format, sd) = match format {
        Format::Safetensors => (format, safetensors_file::read(&bytes).map_err(fail)?),
        Format::TorchLegacy => {
            let f = torch_format::read_legacy(&bytes).map_err(fail)?;
            (format, tensors_from_pickle(&f, opts).map_err(fail)?)
        }
        Format::TorchZip | Format::TorchScript => {
            if is_torchscript(&bytes) {
                (Format::TorchScript, read_torchscript(path)?)
            } else {
                let f = torch_format::read_zip(&bytes).map_err(fail)?;
                (
                    Format::TorchZip,
                    tensors_from_pickle(&f, opts).map_err(fail)?,
                )
            }
        }
    };
    let prefix = "module.";
    let strip =
        !opts.keep_module_prefix && !sd.is_empty() && sd.names().all(|n| n.starts_with(prefix));
    let state_dict = if strip {
        sd.rename(|n| Some(n[prefix.len()..].to_string()))
    } else {
        sd
    };
    Ok(Checkpoint {
        path: path.to_path_buf(),
        format,
        state_dict,
        stripped_prefix: strip.then(|| prefix.to_string()),
    })
}

fn tensors_from_pickle(
    f: &torch_format::TorchFile,
    opts: &ReadOptions,
) -> std::result::Result<StateDict, String> {
    let found = state_dict::find_tensors(&f.pickle, opts.key.as_deref())?;
    let mut sd = StateDict::new();
    for (name, id) in found {
        match &f.pickle.objects[id] {
            Object::Tensor(meta) => {
                let storage = f
                    .storages
                    .get(&meta.storage.key)
                    .ok_or_else(|| format!("{name}: storage {} is missing", meta.storage.key))?;
                let t =
                    state_dict::materialize(meta, storage).map_err(|e| format!("{name}: {e}"))?;
                sd.insert(name, t);
            }
            Object::UnsupportedTensor { reconstructor } => {
                return Err(format!(
                    "{name}: tensors made by {reconstructor} are not supported"
                ))
            }
            _ => return Err(format!("{name}: not a tensor")),
        }
    }
    Ok(sd)
}

fn is_torchscript(bytes: &[u8]) -> bool {
    let Ok(zip) = zip::ZipArchive::new(std::io::Cursor::new(bytes)) else {
        return false;
    };
    let ts = zip
        .file_names()
        .any(|n| n.ends_with("/constants.pkl") || n.contains("/code/"));
    ts
}

/// TorchScript archives (tch `.ot`) are read by libtorch itself, which understands them.
fn read_torchscript(path: &Path) -> Result<StateDict> {
    let named = tch::Tensor::load_multi(path)
        .map_err(|e| Error::checkpoint(path, format!("TorchScript archive: {e}")))?;
    Ok(named.into_iter().collect())
}
