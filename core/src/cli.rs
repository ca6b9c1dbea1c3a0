//! Command-line pieces every task binary shares, so `classify weights inspect` and
//! `detect weights inspect` are the same command.

use std::path::PathBuf;

use crate::backbone;
use crate::checkpoint::{self, inspect::Summary, LoadOptions, ReadOptions, StateDict};
use crate::error::{Error, Result};

/// `weights inspect|convert`: look into and convert checkpoint files.
#[derive(Debug, clap::Subcommand)]
pub enum WeightsCommand {
    /// List a checkpoint's (or a model's) tensors (name, dtype, shape) and its parameter count.
    Inspect {
        /// Checkpoint: .pth/.pt/.bin/.ckpt (zip or legacy), .safetensors or tch .ot.
        #[arg(required_unless_present = "arch")]
        path: Option<PathBuf>,
        /// Instead of a file, list the variables of a backbone built by name (e.g. resnet50).
        #[arg(long, conflicts_with = "path")]
        arch: Option<String>,
        /// Dotted key of the state dict inside a nested checkpoint (default: search
        /// state_dict, ema, model, model_state, net, …).
        #[arg(long)]
        key: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Convert any readable checkpoint to .safetensors with PyTorch names.
    Convert {
        /// Input checkpoint.
        input: PathBuf,
        /// Output .safetensors file (written atomically).
        output: PathBuf,
        /// Dotted key of the state dict inside a nested checkpoint.
        #[arg(long)]
        key: Option<String>,
        /// Drop tensors whose name matches this regex (repeatable), e.g. '^fc\.'.
        #[arg(long, value_name = "REGEX")]
        skip: Vec<String>,
        /// Rename a name prefix, FROM=TO (repeatable), e.g. 'backbone.='.
        #[arg(long, value_name = "FROM=TO")]
        rename_prefix: Vec<String>,
        /// Store floating-point tensors as float32 (e.g. Ultralytics' float16 weights).
        #[arg(long)]
        float32: bool,
    },
    /// The weights known by name: name, size, cached or not, licence.
    List {
        /// Only names containing this text.
        filter: Option<String>,
    },
    /// Download weights by name into their cache (torch.hub's, the Hugging Face hub's or
    /// ferrovis'), e.g. `resnet50`, `resnet50:IMAGENET1K_V1`, `yolov8n.pt`, `hf-hub:ORG/NAME`.
    Download {
        /// The names.
        #[arg(required = true)]
        names: Vec<String>,
    },
}

/// The value of a renamed option: the new spelling's, else the old one's with a note on stderr
/// that `old_flag` is deprecated in favour of `new_flag` (old spellings are kept for one release,
/// hidden from `--help`).
pub fn renamed<T>(new: Option<T>, old: Option<T>, old_flag: &str, new_flag: &str) -> Option<T> {
    match (new, old) {
        (Some(v), _) => Some(v),
        (None, Some(v)) => {
            eprintln!("note: {old_flag} is deprecated; use {new_flag}");
            Some(v)
        }
        (None, None) => None,
    }
}

/// [`renamed`] for an option that must be given in one spelling or the other: an error naming
/// `new_flag` when neither was.
pub fn renamed_required<T>(
    new: Option<T>,
    old: Option<T>,
    old_flag: &str,
    new_flag: &str,
) -> Result<T> {
    renamed(new, old, old_flag, new_flag).ok_or_else(|| Error::Invalid(format!("give {new_flag}")))
}

/// Splits a binary's trailing arguments: `key=value` settings (Ultralytics' style, accepted by
/// every binary) go to the configuration overrides; anything else is an error naming it.
pub fn settings(args: &[String]) -> Result<Vec<String>> {
    args.iter()
        .map(|a| {
            if a.contains('=') {
                Ok(a.clone())
            } else {
                Err(Error::Invalid(format!(
                    "unexpected argument {a:?}: settings are key=value (e.g. train.epochs=3)"
                )))
            }
        })
        .collect()
}

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
/// downloaded is used; see [`crate::hub`]); `None` when neither holds one. Nothing is downloaded.
pub fn env_weights_in(names: &[&str]) -> Option<PathBuf> {
    env_weights()
        .and_then(|w| weights_in(&w, names))
        .or_else(|| {
            let dir = crate::hub::cache::torch_hub_checkpoints();
            names.iter().map(|n| dir.join(n)).find(|p| p.is_file())
        })
}

/// The pretrained weights a demo starts from: the first of `file_names` that
/// [`env_weights_in`] finds (`$FERROVIS_WEIGHTS`, torch.hub's cache), else the registry's `name`
/// fetched into its cache ([`crate::hub`]) unless offline. `None`, with the reason on stderr,
/// when none is at hand: the demo then says what it does instead.
pub fn demo_weights(file_names: &[&str], name: &str) -> Option<PathBuf> {
    if let Some(found) = env_weights_in(file_names) {
        return Some(found);
    }
    match crate::hub::resolve(name) {
        Ok(file) => Some(file),
        Err(e) => {
            eprintln!("weights {name}: {e}");
            None
        }
    }
}

/// Runs a `weights` subcommand, printing to stdout.
pub fn run_weights(cmd: &WeightsCommand) -> Result<()> {
    match cmd {
        WeightsCommand::List { filter } => {
            let hub = crate::hub::Hub::from_env();
            println!("{:<52} {:>8}  {:<7} licence", "name", "MB", "cached");
            for e in crate::hub::ENTRIES {
                let name = e.name();
                if filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
                    continue;
                }
                let shown = if e.default {
                    format!("{name} (= {})", e.arch)
                } else {
                    name
                };
                let cached = hub.cached_path(&crate::hub::Name::Registry(e)).is_file();
                let size = if e.size_mb > 0.0 {
                    format!("{:.1}", e.size_mb)
                } else {
                    "?".into()
                };
                println!(
                    "{shown:<52} {size:>8}  {:<7} {}",
                    if cached { "yes" } else { "no" },
                    e.licence()
                );
            }
            println!(
                "and hf-hub:ORG/NAME (a Hugging Face repository's model.safetensors); caches: {}, \
                 {}, {}",
                hub.torch_hub.display(),
                hub.hf_cache.display(),
                hub.ferrovis_cache.display()
            );
        }
        WeightsCommand::Download { names } => {
            let hub = crate::hub::Hub::from_env();
            for name in names {
                let file = hub.resolve(name)?;
                println!("{name}: {}", file.display());
            }
        }
        WeightsCommand::Inspect {
            path,
            arch,
            key,
            json,
        } => {
            let (summary, stripped) = match (path, arch) {
                (Some(path), _) => {
                    let ckpt = checkpoint::open(path, &read_options(key))?;
                    (Summary::of(&ckpt), ckpt.stripped_prefix)
                }
                (None, Some(arch)) => (model_summary(arch)?, None),
                (None, None) => {
                    return Err(Error::Invalid(
                        "weights inspect: give a checkpoint path or --arch NAME".into(),
                    ))
                }
            };
            if *json {
                let text = serde_json::to_string_pretty(&summary)
                    .map_err(|e| Error::Invalid(format!("writing the summary as JSON: {e}")))?;
                println!("{text}");
            } else {
                println!("{summary}");
                if let Some(p) = &stripped {
                    println!("(prefix {p:?} removed from every name)");
                }
            }
        }
        WeightsCommand::Convert {
            input,
            output,
            key,
            skip,
            rename_prefix,
            float32,
        } => {
            let mut opts = LoadOptions::default();
            for s in skip {
                opts = opts.skip(s)?;
            }
            for r in rename_prefix {
                let (from, to) = r.split_once('=').ok_or_else(|| {
                    Error::Invalid(format!("--rename-prefix {r:?}: expected FROM=TO"))
                })?;
                opts = opts.rename_prefix(from, to);
            }
            let ckpt = checkpoint::open(input, &read_options(key))?;
            let n_in = ckpt.state_dict.len();
            let mut out = StateDict::new();
            for (name, t) in ckpt.state_dict.iter() {
                let mapped = opts.map_name(name);
                if opts.is_skipped(&mapped) {
                    continue;
                }
                let t = if *float32 && t.is_floating_point() {
                    t.f_to_kind(tch::Kind::Float)?
                } else {
                    t.shallow_clone()
                };
                out.insert(mapped, t);
            }
            checkpoint::save_safetensors(output, out.iter())?;
            println!(
                "{} ({}, {n_in} tensors) -> {} ({} tensors)",
                input.display(),
                ckpt.format,
                output.display(),
                out.len()
            );
        }
    }
    Ok(())
}

/// The variables of a backbone built by name with 1000 classes, in name order.
fn model_summary(arch: &str) -> Result<Summary> {
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    backbone::create(arch, &vs.root(), &backbone::BackboneOptions::default())?;
    let mut vars: Vec<(String, tch::Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Summary::of_tensors(
        arch,
        "ferrovis model",
        vars.iter().map(|(n, t)| (n.as_str(), t)),
    ))
}

fn read_options(key: &Option<String>) -> ReadOptions {
    ReadOptions {
        key: key.clone(),
        ..ReadOptions::default()
    }
}

/// Ends a binary: prints the error with its causes (`error: outer: inner`) and returns failure.
/// Used by every task's `main` so errors read the same everywhere, without a backtrace dump.
pub fn exit_code<E: std::fmt::Display>(
    result: std::result::Result<(), E>,
) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
