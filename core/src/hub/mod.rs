//! Pretrained weights by name, fetched and cached as PyTorch users expect.
//!
//! Wherever a command takes weights it also takes a name:
//! - `resnet50` (torchvision's `DEFAULT` weights of that architecture), `resnet50:IMAGENET1K_V1`
//!   (a named torchvision weight set), the detection and segmentation models
//!   (`fasterrcnn_resnet50_fpn:COCO_V1`, `ssd300_vgg16`, `deeplabv3_resnet50`, …): cached in
//!   torch.hub's folder ([`cache::torch_hub_checkpoints`]), so a file PyTorch downloaded is used
//!   with no request, and checked against the SHA-256 prefix its name carries;
//! - Ultralytics' `yolov8n.pt` … `yolov8x.pt`, `yolo11n.pt` … `yolo11x.pt` and `yolo26n.pt` …
//!   `yolo26x.pt`: cached in ferrovis' folder;
//! - `vgg_r31` and `dec_r31`, the style commands' relu3_1 encoder and decoder: taken out of
//!   LinearStyleTransfer's `models.zip` ([`archive`]) into ferrovis' folder;
//! - `hf-hub:ORG/NAME`: a Hugging Face model repository's `model.safetensors` (timm's
//!   `hf-hub:timm/resnet50.a1_in1k`), cached in the hub's own layout
//!   (`models--ORG--NAME/snapshots/<commit>/model.safetensors`, `refs/main`).
//!
//! [`resolve`] returns the cached file, downloading it first when needed
//! ([`download::fetch`]); `FERROVIS_OFFLINE=1` or `HF_HUB_OFFLINE=1` forbid the network, and a
//! missing file is then an error naming the URL and the path to place it at. Built without the
//! `hub` feature (on by default), nothing is downloaded: a name resolves to its cached file, and
//! a file not cached is the same error.

#[cfg(feature = "hub")]
pub mod archive;
pub mod cache;
pub mod checkpoint;
#[cfg(feature = "hub")]
pub mod download;
pub mod registry;

use std::path::PathBuf;

use crate::error::{Error, Result};
pub use checkpoint::HubCheckpoint;
pub use registry::{lookup, Entry, Source, ENTRIES};

/// A weights name, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum Name {
    /// A registry entry.
    Registry(&'static Entry),
    /// `hf-hub:ORG/NAME`: the repository's `model.safetensors` on its `main` revision.
    HfHub {
        /// `ORG/NAME`.
        repo: String,
    },
}

/// The file a Hugging Face model repository holds the weights in.
const HF_FILE: &str = "model.safetensors";

/// `spec` as a weights name, or `None` when it is no name ferrovis knows (a path, say).
pub fn parse(spec: &str) -> Option<Name> {
    if let Some(repo) = spec.strip_prefix("hf-hub:") {
        let ok = repo.split('/').count() == 2 && repo.split('/').all(|p| !p.is_empty());
        return ok.then(|| Name::HfHub {
            repo: repo.to_string(),
        });
    }
    lookup(spec).map(Name::Registry)
}

/// True when `spec` looks like a name rather than a path: no path separator and no file
/// extension but `.pt` (Ultralytics' names are file names), or an `hf-hub:` / `arch:WEIGHT` form.
pub fn looks_like_name(spec: &str) -> bool {
    spec.starts_with("hf-hub:")
        || (!spec.contains('/')
            && !spec.contains('\\')
            && (spec.contains(':') || !spec.contains('.') || spec.ends_with(".pt")))
}

/// A Hugging Face repository in the hub cache ([`Hub::cached_hf_repos`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedRepo {
    /// `ORG/NAME`.
    pub repo: String,
    /// The snapshot's size on disk.
    pub bytes: u64,
    /// The snapshot's files (`config.json`, `model.safetensors`, …), sorted.
    pub files: Vec<String>,
}

/// Where names are cached and fetched from, and whether the network may be used.
#[derive(Debug, Clone, PartialEq)]
pub struct Hub {
    /// torch.hub's checkpoint folder.
    pub torch_hub: PathBuf,
    /// The Hugging Face hub cache.
    pub hf_cache: PathBuf,
    /// The Hugging Face endpoint (`https://huggingface.co`).
    pub hf_endpoint: String,
    /// ferrovis' own weights folder.
    pub ferrovis_cache: PathBuf,
    /// No request is made.
    pub offline: bool,
}

impl Hub {
    /// The folders and endpoint the environment names (see [`cache`]), as PyTorch and
    /// `huggingface_hub` read them.
    pub fn from_env() -> Self {
        Hub {
            torch_hub: cache::torch_hub_checkpoints(),
            hf_cache: cache::hf_hub_cache(),
            hf_endpoint: cache::hf_endpoint(),
            ferrovis_cache: cache::ferrovis_cache(),
            offline: cache::offline(),
        }
    }

    /// `models--ORG--NAME` in the hub cache.
    fn hf_repo_dir(&self, repo: &str) -> PathBuf {
        self.hf_cache
            .join(format!("models--{}", repo.replace('/', "--")))
    }

    /// Where `name`'s file is (or will be) cached.
    pub fn cached_path(&self, name: &Name) -> PathBuf {
        match name {
            Name::Registry(e) => match e.source {
                Source::Torchvision => self.torch_hub.join(e.file_name()),
                Source::Ultralytics | Source::LinearStyleTransfer => {
                    self.ferrovis_cache.join(e.file_name())
                }
            },
            Name::HfHub { repo } => self.hf_cached_path(repo, HF_FILE),
        }
    }

    /// Where `file` of the Hub repository `repo` (`ORG/NAME`) is (or will be) cached: in the
    /// snapshot `refs/main` names, as huggingface_hub lays its cache out.
    pub fn hf_cached_path(&self, repo: &str, file: &str) -> PathBuf {
        let dir = self.hf_repo_dir(repo);
        let commit = std::fs::read_to_string(dir.join("refs").join("main"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "main".into());
        dir.join("snapshots").join(commit).join(file)
    }

    /// The Hugging Face repositories in the hub cache with a snapshot, by name: what
    /// `hf-hub:ORG/NAME` finds offline. An unreadable cache lists nothing.
    pub fn cached_hf_repos(&self) -> Vec<CachedRepo> {
        let Ok(entries) = std::fs::read_dir(&self.hf_cache) else {
            return Vec::new();
        };
        let mut repos: Vec<CachedRepo> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let dir_name = e.file_name().to_string_lossy().into_owned();
                let repo = dir_name.strip_prefix("models--")?.replacen("--", "/", 1);
                let snapshot = self.hf_cached_path(&repo, "");
                let files: Vec<(String, u64)> = std::fs::read_dir(&snapshot)
                    .ok()?
                    .filter_map(|f| f.ok())
                    .filter_map(|f| {
                        // Snapshot files are links into `blobs/`: the size is the target's.
                        let meta = std::fs::metadata(f.path()).ok()?;
                        meta.is_file()
                            .then(|| (f.file_name().to_string_lossy().into_owned(), meta.len()))
                    })
                    .collect();
                (!files.is_empty()).then(|| {
                    let mut names: Vec<String> = files.iter().map(|(n, _)| n.clone()).collect();
                    names.sort();
                    CachedRepo {
                        repo,
                        bytes: files.iter().map(|(_, b)| b).sum(),
                        files: names,
                    }
                })
            })
            .collect();
        repos.sort_by(|a, b| a.repo.cmp(&b.repo));
        repos
    }

    /// `file` of the Hub repository `repo` (`config.json` beside a timm checkpoint, say): the
    /// cached copy, downloaded first when it is not there (the same rules as [`Hub::fetch`]).
    pub fn fetch_hf_file(&self, repo: &str, file: &str) -> Result<PathBuf> {
        let cached = self.hf_cached_path(repo, file);
        if cached.is_file() {
            return Ok(cached);
        }
        let url = format!("{}/{repo}/resolve/main/{file}", self.hf_endpoint);
        if self.offline {
            return Err(Error::Download(format!(
                "{url}: offline (FERROVIS_OFFLINE or HF_HUB_OFFLINE is set) and not cached; \
                 place the file by hand at {}",
                cached.display()
            )));
        }
        self.download_hf(repo, file, &url)
    }

    /// Where `name`'s file is downloaded from.
    pub fn url(&self, name: &Name) -> String {
        match name {
            Name::Registry(e) => e.url.to_string(),
            Name::HfHub { repo } => format!("{}/{repo}/resolve/main/{HF_FILE}", self.hf_endpoint),
        }
    }

    /// The registry's members of the archive at `url`, each with its hash and cache path.
    #[cfg(feature = "hub")]
    pub fn archive_members(&self, url: &str) -> Vec<archive::Wanted> {
        ENTRIES
            .iter()
            .filter(|e| e.url == url)
            .filter_map(|e| {
                let m = e.member?;
                Some(archive::Wanted {
                    file_name: m.file_name.into(),
                    sha256: m.sha256.into(),
                    dest: self.cached_path(&Name::Registry(e)),
                })
            })
            .collect()
    }

    /// The local file `spec` names, downloaded into its cache first when it is not there.
    pub fn resolve(&self, spec: &str) -> Result<PathBuf> {
        let name = parse(spec).ok_or_else(|| {
            let near = registry::suggestions(spec);
            let hint = if near.is_empty() {
                "`<task> weights list` shows the names".to_string()
            } else {
                format!("did you mean {}?", near.join(", "))
            };
            Error::Invalid(format!("{spec}: no such weights file or name; {hint}"))
        })?;
        self.fetch(&name)
    }

    /// The cached file of `name`, downloaded first when it is not there.
    pub fn fetch(&self, name: &Name) -> Result<PathBuf> {
        let cached = self.cached_path(name);
        if cached.is_file() {
            return Ok(cached);
        }
        let url = self.url(name);
        if self.offline {
            return Err(self.not_cached(
                name,
                &url,
                "offline (FERROVIS_OFFLINE or HF_HUB_OFFLINE is set)",
            ));
        }
        self.download(name, &url)
    }

    #[cfg(feature = "hub")]
    fn download(&self, name: &Name, url: &str) -> Result<PathBuf> {
        let cached = self.cached_path(name);
        match name {
            Name::Registry(
                e @ Entry {
                    member: Some(m), ..
                },
            ) => {
                // Every member of the same archive comes out at once: the archive is fetched
                // once and then deleted.
                let zip = self.ferrovis_cache.join(m.archive);
                archive::fetch_members(url, &zip, &self.archive_members(e.url))?;
                Ok(cached)
            }
            Name::Registry(e) => download::fetch(&download::Request {
                url,
                dest: &cached,
                sha256_prefix: e.sha256_prefix(),
            }),
            Name::HfHub { repo } => self.download_hf(repo, HF_FILE, url),
        }
    }

    /// Downloads `file` of the Hub repository `repo` from `url`. The hub names the commit a
    /// revision resolves to; the snapshot goes under it and `refs/main` records it, as
    /// huggingface_hub lays its cache out.
    #[cfg(feature = "hub")]
    fn download_hf(&self, repo: &str, file: &str, url: &str) -> Result<PathBuf> {
        let headers = download::head(url)?;
        let commit = headers
            .iter()
            .find(|(k, _)| k == "x-repo-commit")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| "main".into());
        let dir = self.hf_repo_dir(repo);
        let dest = dir.join("snapshots").join(&commit).join(file);
        let file = download::fetch(&download::Request {
            url,
            dest: &dest,
            sha256_prefix: None,
        })?;
        let refs = dir.join("refs");
        std::fs::create_dir_all(&refs).map_err(|e| Error::io(&refs, e))?;
        std::fs::write(refs.join("main"), &commit).map_err(|e| Error::io(&refs, e))?;
        Ok(file)
    }

    #[cfg(not(feature = "hub"))]
    fn download_hf(&self, _repo: &str, _file: &str, url: &str) -> Result<PathBuf> {
        Err(Error::Download(format!(
            "{url}: ferrovis-core was built without its `hub` feature and the file is not cached"
        )))
    }

    #[cfg(not(feature = "hub"))]
    fn download(&self, name: &Name, url: &str) -> Result<PathBuf> {
        Err(self.not_cached(
            name,
            url,
            "ferrovis-core was built without its `hub` feature",
        ))
    }

    /// The error for `name` not cached and not to be downloaded (`why`), saying where to put it.
    fn not_cached(&self, name: &Name, url: &str, why: &str) -> Error {
        let inside = match name {
            Name::Registry(Entry {
                member: Some(m), ..
            }) => format!(" (the {} inside the zip archive at that URL)", m.file_name),
            _ => String::new(),
        };
        Error::Download(format!(
            "{url}: {why} and not cached; place the file{inside} by hand at {}",
            self.cached_path(name).display()
        ))
    }
}

/// `path` itself when it exists or names no known weights; else the cached file of the name it
/// spells (downloaded first when needed). What every command taking weights calls, so a path
/// and a name work alike and a missing path keeps its caller's own error.
pub fn local_or_named(path: &std::path::Path) -> Result<PathBuf> {
    let spec = path.to_string_lossy();
    if !path.exists() && looks_like_name(&spec) && parse(&spec).is_some() {
        return resolve(&spec);
    }
    Ok(path.to_path_buf())
}

/// [`Hub::resolve`] with the environment's folders: the local file `spec` names.
pub fn resolve(spec: &str) -> Result<PathBuf> {
    Hub::from_env().resolve(spec)
}
