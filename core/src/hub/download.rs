//! One file fetched over HTTP(S) into place: written to `<file>.partial`, resumed with a Range
//! request after a cut, its SHA-256 checked against the prefix its name carries, renamed into
//! place; a lock file keeps two processes from fetching the same file at once (the second waits,
//! then finds it there). Transient failures (refused or cut connections, 5xx) are retried with
//! backoff; the usual proxy variables are honoured. Progress goes to an `indicatif` bar on a
//! terminal, plain lines elsewhere.

use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// What to fetch and where.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The URL.
    pub url: &'a str,
    /// The file to create.
    pub dest: &'a Path,
    /// The first hex digits of its SHA-256, when known (torch.hub's file names carry them).
    pub sha256_prefix: Option<&'a str>,
}

/// Attempts per file before giving up on transient errors.
const ATTEMPTS: u32 = 4;

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .try_proxy_from_env(true)
        .timeout_connect(Duration::from_secs(20))
        .timeout_read(Duration::from_secs(60))
        .build()
}

/// The headers of a HEAD request to `url` (lower-case names), following redirects.
pub fn head(url: &str) -> Result<Vec<(String, String)>> {
    let response = agent()
        .head(url)
        .call()
        .map_err(|e| failure(url, None, &e))?;
    Ok(response
        .headers_names()
        .into_iter()
        .filter_map(|n| {
            let v = response.header(&n)?.to_string();
            Some((n.to_ascii_lowercase(), v))
        })
        .collect())
}

/// The message for a failed request, naming the URL and where the file can be put by hand.
fn failure(url: &str, dest: Option<&Path>, e: &dyn std::fmt::Display) -> Error {
    let place = dest
        .map(|d| format!("; or place the file by hand at {}", d.display()))
        .unwrap_or_default();
    // ureq's transport errors already start with the URL.
    let e = e.to_string();
    if e.contains(url) {
        Error::Download(format!("{e}{place}"))
    } else {
        Error::Download(format!("{url}: {e}{place}"))
    }
}

/// Fetches `req.url` into `req.dest` unless the file is already there. Returns the file.
pub fn fetch(req: &Request) -> Result<PathBuf> {
    let dest = req.dest;
    if dest.is_file() {
        return Ok(dest.to_path_buf());
    }
    let dir = dest
        .parent()
        .ok_or_else(|| Error::Invalid(format!("{}: no parent folder", dest.display())))?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let lock_path = with_suffix(dest, ".lock");
    let lock = File::create(&lock_path).map_err(|e| Error::io(&lock_path, e))?;
    lock.lock().map_err(|e| Error::io(&lock_path, e))?;
    // Another process may have finished it while this one waited.
    if dest.is_file() {
        return Ok(dest.to_path_buf());
    }
    let partial = with_suffix(dest, ".partial");
    let mut last = None;
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(250 << attempt));
        }
        match attempt_once(req, &partial) {
            Ok(()) => {
                last = None;
                break;
            }
            Err(Attempt::Fatal(e)) => return Err(e),
            Err(Attempt::Transient(e)) => {
                tracing::warn!(url = req.url, attempt = attempt + 1, error = %e, "download interrupted");
                last = Some(e);
            }
        }
    }
    if let Some(e) = last {
        return Err(failure(req.url, Some(dest), &e));
    }
    if let Some(prefix) = req.sha256_prefix {
        let actual = sha256_file(&partial)?;
        if !actual.starts_with(&prefix.to_ascii_lowercase()) {
            let _ = std::fs::remove_file(&partial);
            return Err(Error::Download(format!(
                "{}: SHA-256 {actual} does not start with {prefix} (the hash its name carries); \
                 the download was deleted",
                req.url
            )));
        }
    }
    std::fs::rename(&partial, dest).map_err(|e| Error::io(dest, e))?;
    let _ = std::fs::remove_file(&lock_path);
    Ok(dest.to_path_buf())
}

enum Attempt {
    /// Worth retrying: the partial file keeps what arrived.
    Transient(String),
    /// Not: a 404, a refused request, a file system error.
    Fatal(Error),
}

/// One request, appending to `partial` from where it ends (Range), or starting over when the
/// server ignores the range.
fn attempt_once(req: &Request, partial: &Path) -> std::result::Result<(), Attempt> {
    let have = std::fs::metadata(partial).map(|m| m.len()).unwrap_or(0);
    let mut request = agent().get(req.url);
    if have > 0 {
        request = request.set("Range", &format!("bytes={have}-"));
    }
    let response = match request.call() {
        Ok(r) => r,
        // The file was complete already: the range starts at its end.
        Err(ureq::Error::Status(416, _)) if have > 0 => return Ok(()),
        Err(ureq::Error::Status(code, r)) if code >= 500 || code == 429 => {
            return Err(Attempt::Transient(format!(
                "HTTP {code} {}",
                r.status_text()
            )))
        }
        Err(ureq::Error::Status(code, r)) => {
            return Err(Attempt::Fatal(failure(
                req.url,
                Some(req.dest),
                &format!("HTTP {code} {}", r.status_text()),
            )))
        }
        Err(e @ ureq::Error::Transport(_)) => return Err(Attempt::Transient(e.to_string())),
    };
    let resumed = have > 0 && response.status() == 206;
    let total = response
        .header("Content-Length")
        .and_then(|v| v.parse::<u64>().ok())
        .map(|n| n + if resumed { have } else { 0 });
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .append(resumed)
        .truncate(!resumed)
        .open(partial)
        .map_err(|e| Attempt::Fatal(Error::io(partial, e)))?;
    let start = if resumed { have } else { 0 };
    let mut progress = Progress::new(req.url, total, start);
    let mut reader = response.into_reader();
    let mut buf = vec![0u8; 1 << 16];
    let mut done = start;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                progress.finish(false);
                return Err(Attempt::Transient(format!("cut after {done} bytes: {e}")));
            }
        };
        file.write_all(&buf[..n])
            .map_err(|e| Attempt::Fatal(Error::io(partial, e)))?;
        done += n as u64;
        progress.set(done);
    }
    file.sync_all()
        .map_err(|e| Attempt::Fatal(Error::io(partial, e)))?;
    progress.finish(true);
    match total {
        Some(t) if done < t => Err(Attempt::Transient(format!("cut after {done} of {t} bytes"))),
        _ => Ok(()),
    }
}

/// The SHA-256 of a file, lower-case hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// A byte-count bar on a terminal; a line at the start and the end elsewhere.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    url: String,
}

impl Progress {
    fn new(url: &str, total: Option<u64>, start: u64) -> Self {
        let name = url.rsplit('/').next().unwrap_or(url).to_string();
        if std::io::stderr().is_terminal() {
            let bar = match total {
                Some(t) => indicatif::ProgressBar::new(t),
                None => indicatif::ProgressBar::new_spinner(),
            };
            let style = indicatif::ProgressStyle::with_template(
                "{msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_message(name);
            bar.set_position(start);
            Progress {
                bar: Some(bar),
                url: url.into(),
            }
        } else {
            let from = if start > 0 {
                format!(" from byte {start}")
            } else {
                String::new()
            };
            let size = total.map(|t| format!(" ({t} bytes)")).unwrap_or_default();
            eprintln!("downloading {url}{size}{from}");
            Progress {
                bar: None,
                url: url.into(),
            }
        }
    }

    fn set(&mut self, done: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
        }
    }

    fn finish(&mut self, complete: bool) {
        match (&self.bar, complete) {
            (Some(bar), _) => bar.finish_and_clear(),
            (None, true) => eprintln!("downloaded {}", self.url),
            (None, false) => {}
        }
    }
}
