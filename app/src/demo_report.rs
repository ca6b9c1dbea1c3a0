//! The demos' shared summary: each task's demo records what it compared (a model transferred
//! from a source task against the same model trained from scratch on the target task), and the
//! folder they share gets one table, `summary.json`, and a `report.html` showing the table with
//! the pictures the runs wrote.
//!
//! Every demo records into the same folder (`runs/demo` by default), so after `make demo` has run
//! the four binaries one after another, the report holds all four tasks. Recording a task again
//! replaces its rows. Picture paths are relative to that folder, so the folder can be moved or
//! zipped with its report.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use ferrovis_core::error::{Error, Result};

/// One comparison: a model transferred from `source` against the same model from scratch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DemoRow {
    /// The task (`classify`, `detect`, `segment`, `style`); rows of one task are recorded
    /// together.
    pub task: String,
    /// The model and how it was transferred (`ResNet18, fine-tuned`).
    pub model: String,
    /// What the model was pretrained on.
    pub source: String,
    /// What it was transferred to.
    pub target: String,
    /// The metric both values are (`accuracy`, `mAP50`, `mIoU`).
    pub metric: String,
    /// The transferred model's value; `None` when it could not run (see `note`).
    pub transferred: Option<f64>,
    /// The from-scratch model's value, same model and budget; `None` when not run.
    pub scratch: Option<f64>,
    /// Wall time of this comparison, pretraining included unless it was cached.
    pub seconds: f64,
    /// Anything the reader must know (weights missing, a cached source model).
    pub note: String,
    /// Pictures the runs wrote, relative to the demo folder.
    pub pictures: Vec<Picture>,
}

/// A picture in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Picture {
    /// Path relative to the demo folder, with `/` separators.
    pub path: String,
    /// What it shows.
    pub caption: String,
}

/// The file names of the charts the runs draw (training curves, confusion matrices, PR curves):
/// text and axes that must be read, so the report shows them at their own size, not as
/// thumbnails.
const CHARTS: [&str; 3] = ["results.png", "confusion_matrix.png", "PR_curve.png"];

impl Picture {
    /// Whether this is one of the runs' charts ([`CHARTS`]) rather than a sample image.
    pub fn is_chart(&self) -> bool {
        let file = self.path.rsplit('/').next().unwrap_or(&self.path);
        CHARTS.contains(&file)
    }

    /// `file` (under `root`) with `caption`; an error when `file` is not inside `root`, which
    /// would make a link that breaks when the folder moves.
    pub fn new(root: &Path, file: &Path, caption: impl Into<String>) -> Result<Self> {
        let rel = relative_to(root, file)?;
        Ok(Self {
            path: rel,
            caption: caption.into(),
        })
    }
}

fn relative_to(root: &Path, file: &Path) -> Result<String> {
    let abs = |p: &Path| std::path::absolute(p).map_err(|e| Error::io(p, e));
    let (root_abs, file_abs) = (abs(root)?, abs(file)?);
    let rel = file_abs.strip_prefix(&root_abs).map_err(|_| {
        Error::Invalid(format!(
            "demo report: picture {} is outside the demo folder {}",
            file.display(),
            root.display()
        ))
    })?;
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    Ok(parts.join("/"))
}

/// A source model a demo trains itself, kept between demos: its weights file and, beside it in
/// `stamp`, the settings it was trained with. A later demo reuses it only while those settings
/// are unchanged.
#[derive(Debug, Clone)]
pub struct CachedSource {
    /// The weights file the training writes.
    pub weights: PathBuf,
    stamp: PathBuf,
}

/// The settings a demo's source model depends on, as [`CachedSource`] records them: the recipe
/// (classes, optimiser: whatever the demo's code fixes, so that changing it retrains), the image
/// size, training and validation images, epochs.
pub fn source_settings(
    recipe: &str,
    image_size: usize,
    train: usize,
    val: usize,
    epochs: usize,
) -> String {
    let recipe = serde_json::Value::from(recipe);
    format!(
        "{{\"recipe\":{recipe},\"image_size\":{image_size},\"source_train\":{train},\"source_val\":{val},\"source_epochs\":{epochs}}}"
    )
}

impl CachedSource {
    /// `weights`, with its settings recorded in `stamp`.
    pub fn new(weights: PathBuf, stamp: PathBuf) -> Self {
        Self { weights, stamp }
    }

    /// Whether the weights exist and were trained with `settings`.
    pub fn reusable(&self, settings: &str) -> bool {
        self.weights.is_file()
            && std::fs::read_to_string(&self.stamp).ok().as_deref() == Some(settings)
    }

    /// Records that the weights were trained with `settings` (after the training succeeded).
    pub fn mark(&self, settings: &str) -> Result<()> {
        ferrovis_core::atomic_file::write_atomic(&self.stamp, settings.as_bytes())
    }
}

/// The summary file in `root`.
pub fn summary_path(root: &Path) -> PathBuf {
    root.join("summary.json")
}

/// The report page in `root`.
pub fn report_path(root: &Path) -> PathBuf {
    root.join("report.html")
}

/// The rows recorded so far in `root` (none when there is no summary yet).
pub fn load(root: &Path) -> Result<Vec<DemoRow>> {
    let path = summary_path(root);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .map_err(|e| Error::Invalid(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io(&path, e)),
    }
}

/// Replaces `task`'s rows in `root`'s summary with `rows`, rewrites `summary.json` and
/// `report.html`, and returns every row recorded so far (tasks in the order the demos run).
pub fn record(root: &Path, task: &str, rows: Vec<DemoRow>) -> Result<Vec<DemoRow>> {
    std::fs::create_dir_all(root).map_err(|e| Error::io(root, e))?;
    let mut all: Vec<DemoRow> = load(root)?.into_iter().filter(|r| r.task != task).collect();
    all.extend(rows);
    let order = |t: &str| {
        ["classify", "detect", "segment", "style"]
            .iter()
            .position(|k| *k == t)
            .unwrap_or(usize::MAX)
    };
    all.sort_by_key(|r| order(&r.task));
    let json = serde_json::to_string_pretty(&all)
        .map_err(|e| Error::Invalid(format!("demo summary: {e}")))?;
    ferrovis_core::atomic_file::write_atomic(&summary_path(root), json.as_bytes())?;
    ferrovis_core::atomic_file::write_atomic(&report_path(root), html(&all).as_bytes())?;
    Ok(all)
}

/// Three decimals, or three significant digits for values that would round to 0.000 (style
/// losses).
fn value(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v != 0.0 && v.abs() < 5e-4 => format!("{v:.2e}"),
        Some(v) => format!("{v:.3}"),
    }
}

/// The rows as a plain-text table, for the terminal: one line per comparison, then its source
/// and target, and its note when there is one.
pub fn table(rows: &[DemoRow]) -> String {
    let mut out = format!(
        "{:<9} {:<48} {:<28} {:>11} {:>8} {:>7}\n",
        "task", "model", "metric", "transferred", "scratch", "time"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:<9} {:<48} {:<28} {:>11} {:>8} {:>6.0}s",
            r.task,
            r.model,
            r.metric,
            value(r.transferred),
            value(r.scratch),
            r.seconds
        );
        let _ = writeln!(out, "{:<9} {} -> {}", "", r.source, r.target);
        if !r.note.is_empty() {
            let _ = writeln!(out, "{:<9} note: {}", "", r.note);
        }
    }
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The report page: the table, then each task's pictures, linked relatively.
pub fn html(rows: &[DemoRow]) -> String {
    let mut out = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>ferrovis demo: transfer learning against training from scratch</title>\n<style>\n\
         body { font-family: sans-serif; margin: 2em; max-width: 80em; }\n\
         table { border-collapse: collapse; }\n\
         td, th { border: 1px solid #bbb; padding: 0.3em 0.6em; text-align: left; }\n\
         td.num { text-align: right; font-variant-numeric: tabular-nums; }\n\
         figure { display: inline-block; margin: 0.5em; vertical-align: top; }\n\
         img { max-width: 24em; max-height: 24em; image-rendering: pixelated; }\n\
         figure.chart { display: block; }\n\
         figure.chart img { max-width: 100%; max-height: none; image-rendering: auto; }\n\
         </style>\n</head>\n<body>\n\
         <h1>Transfer learning against training from scratch</h1>\n\
         <p>Each row: a model pretrained on a source task, transferred to a target task, against \
         the same model trained from random weights on the target task with the same budget.</p>\n\
         <table>\n<tr><th>task</th><th>model</th><th>source</th><th>target</th><th>metric</th>\
         <th>transferred</th><th>scratch</th><th>time (s)</th><th>note</th></tr>\n",
    );
    for r in rows {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{:.0}</td><td>{}</td></tr>",
            escape(&r.task),
            escape(&r.model),
            escape(&r.source),
            escape(&r.target),
            escape(&r.metric),
            value(r.transferred),
            value(r.scratch),
            r.seconds,
            escape(&r.note)
        );
    }
    out.push_str("</table>\n");
    let mut last_task = "";
    for r in rows.iter().filter(|r| !r.pictures.is_empty()) {
        if r.task != last_task {
            let _ = writeln!(out, "<h2>{}</h2>", escape(&r.task));
            last_task = &r.task;
        }
        let _ = writeln!(out, "<h3>{}</h3>", escape(&r.model));
        for p in &r.pictures {
            let _ = writeln!(
                out,
                "<figure{2}><a href=\"{0}\"><img src=\"{0}\" alt=\"{1}\"></a>\
                 <figcaption>{1}</figcaption></figure>",
                escape(&p.path),
                escape(&p.caption),
                if p.is_chart() { " class=\"chart\"" } else { "" }
            );
        }
    }
    out.push_str("</body>\n</html>\n");
    out
}

/// Every `src="…"` and `href="…"` of the report page in `root` whose file is missing, as paths
/// under `root`; an error when a link is absolute or leaves the folder.
pub fn missing_links(root: &Path) -> Result<Vec<PathBuf>> {
    let page = report_path(root);
    let text = std::fs::read_to_string(&page).map_err(|e| Error::io(&page, e))?;
    let mut missing = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for (at, _) in text.match_indices(attr) {
            let rest = &text[at + attr.len()..];
            let link = rest.split('"').next().unwrap_or_default();
            let link = link.replace("&amp;", "&");
            if link.starts_with('/') || link.contains("://") || link.split('/').any(|s| s == "..") {
                return Err(Error::Invalid(format!(
                    "{}: link {link:?} is not relative to the demo folder",
                    page.display()
                )));
            }
            let file = root.join(&link);
            if !file.is_file() {
                missing.push(file);
            }
        }
    }
    Ok(missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(task: &str, pictures: Vec<Picture>) -> DemoRow {
        DemoRow {
            task: task.into(),
            model: "m <1>".into(),
            source: "s".into(),
            target: "t".into(),
            metric: "accuracy".into(),
            transferred: Some(0.95),
            scratch: None,
            seconds: 12.4,
            note: String::new(),
            pictures,
        }
    }

    #[test]
    fn recording_replaces_a_task_and_keeps_the_demo_order() {
        let dir = tempfile::tempdir().unwrap();
        record(dir.path(), "segment", vec![row("segment", vec![])]).unwrap();
        record(dir.path(), "classify", vec![row("classify", vec![])]).unwrap();
        let all = record(
            dir.path(),
            "segment",
            vec![row("segment", vec![]), row("segment", vec![])],
        )
        .unwrap();
        let tasks: Vec<&str> = all.iter().map(|r| r.task.as_str()).collect();
        assert_eq!(tasks, ["classify", "segment", "segment"]);
        assert_eq!(load(dir.path()).unwrap(), all);
        let text = table(&all);
        assert!(text.contains("0.950") && text.contains("12s"), "{text}");
        assert_eq!(value(Some(7.258e-5)), "7.26e-5");
        assert_eq!(value(Some(0.0749)), "0.075");
        assert_eq!(value(None), "-");
    }

    #[test]
    fn a_cached_source_is_reused_only_with_its_settings() {
        let dir = tempfile::tempdir().unwrap();
        let source = CachedSource::new(
            dir.path().join("best.safetensors"),
            dir.path().join("plan.json"),
        );
        assert!(!source.reusable("a"), "no weights yet");
        std::fs::write(&source.weights, b"weights").unwrap();
        assert!(!source.reusable("a"), "weights of unknown settings");
        source.mark("a").unwrap();
        assert!(source.reusable("a"));
        assert!(!source.reusable("b"));
    }

    #[test]
    fn the_report_escapes_text_and_its_links_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let pic = dir.path().join("classify").join("cm.png");
        std::fs::create_dir_all(pic.parent().unwrap()).unwrap();
        std::fs::write(&pic, b"png").unwrap();
        let p = Picture::new(dir.path(), &pic, "confusion").unwrap();
        assert_eq!(p.path, "classify/cm.png");
        let gone = Picture {
            path: "classify/gone.png".into(),
            caption: "x".into(),
        };
        record(dir.path(), "classify", vec![row("classify", vec![p, gone])]).unwrap();
        let page = std::fs::read_to_string(report_path(dir.path())).unwrap();
        assert!(page.contains("m &lt;1&gt;") && !page.contains("m <1>"));
        let missing = missing_links(dir.path()).unwrap();
        // The missing picture is both an img src and an a href.
        assert_eq!(missing, vec![dir.path().join("classify/gone.png"); 2]);
        let outside = tempfile::tempdir().unwrap();
        assert!(Picture::new(dir.path(), &outside.path().join("x.png"), "x").is_err());
    }
}
