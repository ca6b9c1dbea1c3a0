//! `weights list|download|inspect|convert`, the one `weights` command of every task binary, so
//! `classify weights inspect` and `detect weights inspect` are the same command.

use std::path::PathBuf;

use ferrovis_core::backbone;
use ferrovis_core::checkpoint::{self, inspect::Summary, LoadOptions, ReadOptions, StateDict};
use ferrovis_core::error::Error;

/// `weights`: the weights known by name (list, download) and checkpoint files (inspect, convert).
#[derive(Debug, clap::Subcommand)]
pub enum WeightsCommand {
    /// List a checkpoint's (or a model's) tensors (name, dtype, shape) and its parameter count.
    Inspect {
        /// Checkpoint: .pth/.pt/.bin/.ckpt (zip or legacy), .safetensors or tch .ot.
        #[arg(required_unless_present = "arch")]
        path: Option<PathBuf>,
        /// Instead of a file, list the variables of a model built by name: a backbone (e.g.
        /// resnet50), or one of the task's own models (detect: yolov8n, fasterrcnn_resnet50_fpn, …).
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
    /// The weights known by name: name, size, cached or not, licence; then the Hugging Face
    /// repositories cached (what `hf-hub:` names find offline).
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

/// Builds the variables of a model the binary knows by name under the given path (the root of an
/// empty VarStore); `Ok(false)` when the name is none of its models (`weights inspect --arch`
/// then tries it as a core backbone).
pub type ModelBuilder = dyn Fn(&str, &tch::nn::Path) -> anyhow::Result<bool>;

/// Runs a `weights` subcommand, printing to stdout. `models` builds the task's own models by name
/// for `inspect --arch` (every binary knows the core backbones).
pub fn run_weights(cmd: &WeightsCommand, models: Option<&ModelBuilder>) -> anyhow::Result<()> {
    match cmd {
        WeightsCommand::List { filter } => {
            let hub = ferrovis_core::hub::Hub::from_env();
            println!("{:<52} {:>8}  {:<7} licence", "name", "MB", "cached");
            for e in ferrovis_core::hub::ENTRIES {
                let name = e.name();
                if filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
                    continue;
                }
                let shown = if e.default {
                    format!("{name} (= {})", e.arch)
                } else {
                    name
                };
                let cached = hub
                    .cached_path(&ferrovis_core::hub::Name::Registry(e))
                    .is_file();
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
            // What hf-hub: names find offline: the cached snapshots, by what they hold.
            for r in hub.cached_hf_repos() {
                let name = format!("hf-hub:{}", r.repo);
                if filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
                    continue;
                }
                // What the snapshot's config.json says: timm names an `architecture`,
                // transformers a `model_type`.
                let config: Option<serde_json::Value> =
                    std::fs::read_to_string(hub.hf_cached_path(&r.repo, "config.json"))
                        .ok()
                        .and_then(|t| serde_json::from_str(&t).ok());
                let key = |k: &str| config.as_ref().is_some_and(|c| c.get(k).is_some());
                let kind = if key("model_type") {
                    "transformers"
                } else if key("architecture") {
                    "timm"
                } else {
                    "safetensors"
                };
                println!(
                    "{name:<52} {:>8.1}  {:<7} ({kind}: {})",
                    r.bytes as f64 / 1e6,
                    "yes",
                    r.files.join(", ")
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
            let hub = ferrovis_core::hub::Hub::from_env();
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
                (None, Some(arch)) => (model_summary(arch, models)?, None),
                (None, None) => {
                    anyhow::bail!("weights inspect: give a checkpoint path or --arch NAME")
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

/// The variables of a model built by name, in name order: one of the task's `models`, else a
/// core backbone with 1000 classes.
fn model_summary(arch: &str, models: Option<&ModelBuilder>) -> anyhow::Result<Summary> {
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let built = match models {
        Some(build) => build(arch, &vs.root())?,
        None => false,
    };
    if !built {
        backbone::create(arch, &vs.root(), &backbone::BackboneOptions::default())?;
    }
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
