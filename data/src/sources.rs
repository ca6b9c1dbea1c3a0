//! What `predict` reads, in every task: image and video files, folders (the images and videos
//! directly in them), glob patterns (`photos/*.png`, `dir/**/*.jpg`, as Ultralytics' `source=`
//! takes them), list files (`.txt`, one source a line, relative to the list's folder), camera
//! indices (`0`) and stream URLs (`rtsp://`, `rtmp://`, `tcp://`, `http(s)://`), expanded to
//! [`Source`]s in a stable order; and [`SkipLog`], the record of the files that could not be
//! read, so one bad file costs only itself.

use std::path::{Path, PathBuf};

use crate::decode::is_image_path;
use crate::error::{Error, Result};
use crate::video::is_video_path;

/// One thing `predict` reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An image file.
    Image(PathBuf),
    /// A video file, read frame by frame.
    Video(PathBuf),
    /// A camera by its index (`0`: the first; `/dev/video0` on Linux).
    Camera(i32),
    /// A network stream or remote video, opened by FFmpeg.
    Stream(String),
}

impl Source {
    /// The image file, for an image.
    pub fn image(&self) -> Option<&Path> {
        match self {
            Source::Image(path) => Some(path),
            _ => None,
        }
    }

    /// How messages name it: the path, `camera 0`, or the URL.
    pub fn name(&self) -> String {
        match self {
            Source::Image(path) | Source::Video(path) => path.display().to_string(),
            Source::Camera(index) => format!("camera {index}"),
            Source::Stream(url) => url.clone(),
        }
    }

    /// The stem its outputs are named after: the file's stem, `camera0`, or the URL's last
    /// path part (`stream` when it has none).
    pub fn stem(&self) -> String {
        match self {
            Source::Image(path) | Source::Video(path) => path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "source".into()),
            Source::Camera(index) => format!("camera{index}"),
            Source::Stream(url) => {
                let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
                let path = rest.split(['?', '#']).next().unwrap_or("");
                // The last path part after the host, without its extension.
                let last = path
                    .trim_end_matches('/')
                    .split_once('/')
                    .and_then(|(_, p)| p.rsplit('/').next())
                    .unwrap_or("");
                let clean: String = last
                    .split('.')
                    .next()
                    .unwrap_or("")
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
                    .collect();
                if clean.is_empty() {
                    "stream".into()
                } else {
                    clean
                }
            }
        }
    }
}

/// The sources `inputs` name, images first then the rest (as Ultralytics orders them), each
/// group in the order given: a file as given, a folder's images and videos sorted by name, a
/// glob pattern's matching image and video files (sorted), a `.txt` list's sources, a number
/// as a camera, a URL as a stream. A path that does not exist, a pattern or folder that names
/// nothing, or no source at all is an error naming it.
pub fn expand(inputs: &[PathBuf]) -> Result<Vec<Source>> {
    let mut out = Vec::new();
    for input in inputs {
        expand_one(input, &mut out, 0)?;
    }
    if out.is_empty() {
        return Err(Error::Invalid("no images or videos given".into()));
    }
    let (mut images, rest): (Vec<Source>, Vec<Source>) =
        out.into_iter().partition(|s| matches!(s, Source::Image(_)));
    images.extend(rest);
    Ok(images)
}

/// The image files of `inputs` ([`expand`]'s), refusing videos, cameras and streams with a
/// message naming the first and `task`.
pub fn expand_images(inputs: &[PathBuf], task: &str) -> Result<Vec<PathBuf>> {
    expand(inputs)?
        .into_iter()
        .map(|s| match s {
            Source::Image(path) => Ok(path),
            other => Err(Error::Invalid(format!(
                "{}: {task} reads images only",
                other.name()
            ))),
        })
        .collect()
}

/// List files may name list files; this many levels at most (a list naming itself is an error,
/// not a hang).
const MAX_LIST_DEPTH: usize = 8;

/// What a file is, by its extension: an image, else a video, else (named explicitly) an image
/// for the decoder to judge.
fn media(path: &Path) -> Source {
    if is_video_path(path) {
        Source::Video(path.to_path_buf())
    } else {
        Source::Image(path.to_path_buf())
    }
}

fn is_media_path(path: &Path) -> bool {
    is_image_path(path) || is_video_path(path)
}

/// A camera index (`0`, `1`, …) or a stream URL, as Ultralytics' `source=` reads them.
fn device_or_stream(input: &Path) -> Option<Source> {
    let text = input.to_str()?;
    if !text.is_empty()
        && text.len() <= 4
        && text.chars().all(|c| c.is_ascii_digit())
        && !input.exists()
    {
        return text.parse().ok().map(Source::Camera);
    }
    let lower = text.to_ascii_lowercase();
    [
        "rtsp://", "rtmp://", "tcp://", "http://", "https://", "udp://",
    ]
    .iter()
    .any(|scheme| lower.starts_with(scheme))
    .then(|| Source::Stream(text.to_string()))
}

/// An image named by URL: ferrovis reads files, it does not download pictures.
fn image_url(source: &Source) -> Option<&str> {
    match source {
        Source::Stream(url) => {
            let path = url.split(['?', '#']).next().unwrap_or(url);
            is_image_path(Path::new(path)).then_some(url.as_str())
        }
        _ => None,
    }
}

fn expand_one(input: &Path, out: &mut Vec<Source>, depth: usize) -> Result<()> {
    if let Some(source) = device_or_stream(input) {
        if let Some(url) = image_url(&source) {
            return Err(Error::Invalid(format!(
                "{url}: an image URL; predict does not download images (save it and give the \
                 file); video and stream URLs are read as they come"
            )));
        }
        out.push(source);
    } else if input.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(input)
            .map_err(|e| Error::io(input, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && is_media_path(p))
            .collect();
        if files.is_empty() {
            return Err(Error::Invalid(format!(
                "{}: no images or videos in this folder",
                input.display()
            )));
        }
        files.sort();
        out.extend(files.iter().map(|f| media(f)));
    } else if input.is_file() && is_list(input) {
        if depth >= MAX_LIST_DEPTH {
            return Err(Error::Invalid(format!(
                "{}: lists nested more than {MAX_LIST_DEPTH} deep (does a list name itself?)",
                input.display()
            )));
        }
        let text = std::fs::read_to_string(input).map_err(|e| Error::io(input, e))?;
        let base = input.parent().unwrap_or(Path::new("."));
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            // A list may name cameras and streams too; paths are relative to the list.
            let source = match device_or_stream(Path::new(line)) {
                Some(_) => PathBuf::from(line),
                None => base.join(line),
            };
            expand_one(&source, out, depth + 1)
                .map_err(|e| Error::Invalid(format!("{} line {}: {e}", input.display(), i + 1)))?;
        }
    } else if input.is_file() {
        out.push(media(input));
    } else if is_pattern(input) {
        let pattern = input.to_string_lossy();
        let paths = glob::glob(&pattern)
            .map_err(|e| Error::Invalid(format!("{pattern}: not a glob pattern: {e}")))?;
        // Image and video files only, as a folder's (a `dir/*` pattern leaves its notes out).
        let mut files: Vec<PathBuf> = paths
            .filter_map(|p| p.ok())
            .filter(|p| p.is_file() && is_media_path(p))
            .collect();
        if files.is_empty() {
            return Err(Error::Invalid(format!(
                "{pattern}: matches no image or video file"
            )));
        }
        files.sort();
        out.extend(files.iter().map(|f| media(f)));
    } else {
        return Err(Error::Invalid(format!(
            "{}: no such file or folder",
            input.display()
        )));
    }
    Ok(())
}

/// A `.txt` file is a list of sources, as Ultralytics reads one.
fn is_list(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("txt"))
}

fn is_pattern(path: &Path) -> bool {
    path.to_string_lossy().contains(['*', '?', '['])
}

/// A file `predict` could not read, and why.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Skipped {
    /// The file.
    pub file: PathBuf,
    /// What reading it said.
    pub reason: String,
}

/// The files a `predict` run skipped: each named once on stderr as it is met, then counted by
/// [`SkipLog::finish`], whose error makes the exit status say that some were.
#[derive(Debug, Default)]
pub struct SkipLog {
    skipped: Vec<Skipped>,
    cut_short: Vec<Skipped>,
}

impl SkipLog {
    /// Records `file` as unreadable because of `error`, and says so.
    pub fn skip(&mut self, file: &Path, error: impl std::fmt::Display) {
        // The whole chain of causes (`{:#}` for an anyhow error), without the leading
        // `reading FILE: ` / `FILE: ` contexts: the line names the file once.
        let text = format!("{error:#}");
        let path = file.display().to_string();
        let (named, reading) = (format!("{path}: "), format!("reading {path}: "));
        let mut reason = text.as_str();
        while let Some(rest) = reason
            .strip_prefix(&named)
            .or_else(|| reason.strip_prefix(&reading))
        {
            reason = rest;
        }
        let reason = reason.to_string();
        eprintln!("skipped {}: {reason}", file.display());
        self.skipped.push(Skipped {
            file: file.to_path_buf(),
            reason,
        });
    }

    /// Records a video or stream that stopped before its end (`problem` names the frame);
    /// the frames before it were predicted and written.
    pub fn cut_short(&mut self, source: &str, problem: &str) {
        eprintln!("stopped early: {problem}");
        self.cut_short.push(Skipped {
            file: PathBuf::from(source),
            reason: problem.to_string(),
        });
    }

    /// Records how a video, camera or stream went ([`crate::video::run_frames`]): its summary
    /// line printed and a stop named, or, when it could not be opened, skipped. True when it
    /// was read (it counts among the sources done).
    pub fn video(&mut self, source: &Source, outcome: crate::video::VideoOutcome) -> bool {
        match outcome {
            crate::video::VideoOutcome::Done(summary) => {
                // stderr: a command's stdout may be JSON.
                eprintln!("{}", summary.line());
                if let Some(problem) = &summary.problem {
                    self.cut_short(&summary.source, problem);
                }
                true
            }
            crate::video::VideoOutcome::Unreadable(e) => {
                self.skip(Path::new(&source.name()), e);
                false
            }
        }
    }

    /// The files skipped so far.
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    /// The videos and streams that stopped early, so far.
    pub fn stopped_early(&self) -> &[Skipped] {
        &self.cut_short
    }

    /// Ends the run: `Ok` when nothing was skipped or cut short; otherwise an error counting
    /// the skipped files against the `done` sources, and the videos cut short (everything
    /// readable was predicted and written by then).
    pub fn finish(&self, done: usize) -> Result<()> {
        let mut parts = Vec::new();
        let n = self.skipped.len();
        if n > 0 {
            parts.push(format!(
                "{n} of {} files could not be read and were skipped (named above); the other \
                 {done} were predicted and written",
                n + done
            ));
        }
        match self.cut_short.len() {
            0 => {}
            1 => parts.push(
                "1 video or stream stopped early (named above); its frames before that were \
                 predicted and written"
                    .into(),
            ),
            c => parts.push(format!(
                "{c} videos or streams stopped early (named above); their frames before that \
                 were predicted and written"
            )),
        }
        if parts.is_empty() {
            Ok(())
        } else {
            Err(Error::Incomplete(parts.join("; ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_globs_and_lists_expand_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        for f in ["a/2.jpg", "a/1.png", "a/notes.md", "a/b/3.jpg"] {
            std::fs::write(root.join(f), b"x").unwrap();
        }
        let images = |inputs: &[PathBuf]| expand_images(inputs, "test");
        let folder = images(&[root.join("a")]).unwrap();
        assert_eq!(folder, vec![root.join("a/1.png"), root.join("a/2.jpg")]);
        let everything = images(&[root.join("a/*")]).unwrap();
        assert_eq!(everything, vec![root.join("a/1.png"), root.join("a/2.jpg")]);
        let recursive = images(&[root.join("a/**/*.jpg")]).unwrap();
        assert_eq!(
            recursive,
            vec![root.join("a/2.jpg"), root.join("a/b/3.jpg")]
        );
        std::fs::write(root.join("list.txt"), "# two\na/b/3.jpg\n\na/1.png\n").unwrap();
        let listed = images(&[root.join("list.txt")]).unwrap();
        assert_eq!(listed, vec![root.join("a/b/3.jpg"), root.join("a/1.png")]);

        let err = expand(&[root.join("a/*.gif")]).unwrap_err().to_string();
        assert!(
            err.contains("*.gif") && err.contains("matches no image or video file"),
            "{err}"
        );
        std::fs::write(root.join("bad.txt"), "a/1.png\nmissing.jpg\n").unwrap();
        let err = expand(&[root.join("bad.txt")]).unwrap_err().to_string();
        assert!(
            err.contains("bad.txt line 2") && err.contains("missing.jpg"),
            "{err}"
        );
        std::fs::write(root.join("self.txt"), "self.txt\n").unwrap();
        let err = expand(&[root.join("self.txt")]).unwrap_err().to_string();
        assert!(err.contains("nested"), "{err}");
    }

    #[test]
    fn videos_cameras_and_streams_are_sources_after_the_images() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for f in ["clip.MP4", "b.jpg", "notes.md"] {
            std::fs::write(root.join(f), b"x").unwrap();
        }
        std::fs::write(root.join("list.txt"), "0\nrtsp://cam.local/live/main\n").unwrap();
        let sources = expand(&[root.to_path_buf(), root.join("list.txt")]).unwrap();
        assert_eq!(
            sources,
            vec![
                Source::Image(root.join("b.jpg")),
                Source::Video(root.join("clip.MP4")),
                Source::Camera(0),
                Source::Stream("rtsp://cam.local/live/main".into()),
            ]
        );
        let stems: Vec<String> = sources.iter().map(Source::stem).collect();
        assert_eq!(stems, ["b", "clip", "camera0", "main"]);
        assert_eq!(
            Source::Stream("rtsp://10.0.0.2:554/".into()).stem(),
            "stream"
        );
        let err = expand_images(&[root.join("clip.MP4")], "style predict")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("clip.MP4: style predict reads images only"),
            "{err}"
        );
    }

    #[test]
    fn the_skip_log_counts_and_fails_only_when_something_was_skipped() {
        let mut log = SkipLog::default();
        assert!(log.finish(3).is_ok());
        log.skip(Path::new("x/empty.jpg"), "empty file");
        let err = log.finish(3).unwrap_err().to_string();
        assert!(
            err.contains("1 of 4 files") && err.contains("other 3"),
            "{err}"
        );
        assert_eq!(log.skipped()[0].reason, "empty file");
        log.cut_short("x/clip.avi", "x/clip.avi: frame 9 of 20 could not be read");
        let err = log.finish(3).unwrap_err().to_string();
        assert!(
            err.contains("1 of 4 files") && err.contains("1 video or stream stopped early"),
            "{err}"
        );
    }
}
