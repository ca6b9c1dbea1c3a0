//! COCO-format annotations (`instances_*.json`: `images`, `annotations`, `categories`), the
//! format most torchvision users hold, read into the same [`DetectionData`] as YOLO labels.
//!
//! Categories become classes 0, 1, … in increasing `id` order (COCO's 1…90 with gaps become
//! 0…79). A problem is named by its JSON path (`annotations[12].bbox`) and handled as the YOLO
//! reader handles a bad label line: the image concerned is skipped whole (listed in the scan
//! report), or the scan stops in strict mode. Crowd annotations (`iscrowd: 1`) are left out, as
//! torchvision's COCO references leave them out of training. A box reaching past the image by
//! less than a pixel (rounding in the tools that write COCO files) is clipped; further is a
//! problem. An image with no annotation is background.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{DetectionData, DetectionItem, YoloBox};
use crate::dataset::report::ScanOptions;
use crate::decode::verify_image;
use crate::error::{Error, Result};

/// The category names of a COCO file, in increasing `id` order (the class order of its data).
pub fn coco_categories(file: &Path) -> Result<Vec<String>> {
    let doc = read_json(file)?;
    Ok(categories(file, &doc)?
        .into_iter()
        .map(|(_, n)| n)
        .collect())
}

/// Reads `file` and the images it lists. `file_name`s are looked up next to the JSON file, then
/// under `root`, then under `root/images/<split>` where `<split>` is the JSON's stem without
/// `instances_` (`instances_val2017.json` → `images/val2017`). When `names` is given, the file's
/// categories must be those names in that order.
pub fn scan_coco(
    file: &Path,
    root: &Path,
    names: Option<&[String]>,
    options: ScanOptions,
) -> Result<DetectionData> {
    let doc = read_json(file)?;
    let cats = categories(file, &doc)?;
    let cat_names: Vec<String> = cats.iter().map(|(_, n)| n.clone()).collect();
    if let Some(names) = names {
        if names != cat_names.as_slice() {
            return Err(Error::dataset(
                file,
                None,
                format!(
                    "`categories` are {cat_names:?} (by id), but the dataset's names are {names:?}"
                ),
            ));
        }
    }
    let class_of: HashMap<i64, usize> = cats
        .iter()
        .enumerate()
        .map(|(i, (id, _))| (*id, i))
        .collect();
    let mut data = DetectionData {
        names: cat_names,
        ..Default::default()
    };

    // Images by id, with their size from the JSON.
    struct Entry {
        path: PathBuf,
        width: f64,
        height: f64,
        boxes: Vec<YoloBox>,
        bad: bool,
    }
    let mut images: BTreeMap<i64, Entry> = BTreeMap::new();
    let mut order = Vec::new();
    let folders = image_folders(file, root);
    for (i, img) in array(file, &doc, "images")?.iter().enumerate() {
        let at = format!("images[{i}]");
        let field = |key: &str| img.get(key).filter(|v| !v.is_null());
        let (Some(id), Some(name)) = (
            field("id").and_then(Value::as_i64),
            field("file_name").and_then(Value::as_str),
        ) else {
            data.report.problem(
                options,
                file,
                None,
                format!("{at}: needs an integer `id` and a `file_name`"),
            )?;
            continue;
        };
        let (w, h) = (
            field("width").and_then(Value::as_f64).unwrap_or(0.0),
            field("height").and_then(Value::as_f64).unwrap_or(0.0),
        );
        let Some(path) = folders.iter().map(|d| d.join(name)).find(|p| p.is_file()) else {
            let searched: Vec<String> = folders.iter().map(|d| d.display().to_string()).collect();
            data.report.problem(
                options,
                file,
                None,
                format!(
                    "{at}: file_name {name:?} not found in {}",
                    searched.join(", ")
                ),
            )?;
            continue;
        };
        // The JSON's size, or the file's own when the JSON leaves it out.
        let (width, height) = if w > 0.0 && h > 0.0 {
            (w, h)
        } else {
            match verify_image(&path) {
                Ok((fw, fh)) => (fw as f64, fh as f64),
                Err(e) => {
                    data.report.problem(options, &path, None, e.reason())?;
                    continue;
                }
            }
        };
        if images.contains_key(&id) {
            data.report
                .problem(options, file, None, format!("{at}: id {id} is used twice"))?;
            continue;
        }
        order.push(id);
        images.insert(
            id,
            Entry {
                path,
                width,
                height,
                boxes: Vec::new(),
                bad: false,
            },
        );
    }

    for (i, ann) in array(file, &doc, "annotations")?.iter().enumerate() {
        let at = format!("annotations[{i}]");
        let Some(image_id) = ann.get("image_id").and_then(Value::as_i64) else {
            data.report
                .problem(options, file, None, format!("{at}.image_id: missing"))?;
            continue;
        };
        let Some(entry) = images.get_mut(&image_id) else {
            data.report.problem(
                options,
                file,
                None,
                format!("{at}.image_id {image_id}: no such image in `images`"),
            )?;
            continue;
        };
        if ann.get("iscrowd").and_then(Value::as_i64) == Some(1) {
            continue;
        }
        let category = ann.get("category_id").and_then(Value::as_i64);
        let Some(&class) = category.and_then(|c| class_of.get(&c)) else {
            data.report.problem(
                options,
                file,
                None,
                format!("{at}.category_id {category:?}: not in `categories`"),
            )?;
            entry.bad = true;
            continue;
        };
        let bbox: Option<Vec<f64>> = ann
            .get("bbox")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().map(Value::as_f64).collect());
        let Some([x, y, w, h]) = bbox.as_deref().and_then(|b| <[f64; 4]>::try_from(b).ok()) else {
            data.report.problem(
                options,
                file,
                None,
                format!("{at}.bbox: expected [x, y, width, height]"),
            )?;
            entry.bad = true;
            continue;
        };
        let (iw, ih) = (entry.width, entry.height);
        if !(w > 0.0 && h > 0.0) || x < -1.0 || y < -1.0 || x + w > iw + 1.0 || y + h > ih + 1.0 {
            data.report.problem(
                options,
                file,
                None,
                format!(
                    "{at}.bbox [{x}, {y}, {w}, {h}]: empty or outside the {iw}×{ih} image {}",
                    entry.path.display()
                ),
            )?;
            entry.bad = true;
            continue;
        }
        let (x1, y1) = (x.max(0.0), y.max(0.0));
        let (x2, y2) = ((x + w).min(iw), (y + h).min(ih));
        entry.boxes.push(YoloBox {
            class,
            cxcywh: [
                ((x1 + x2) / 2.0 / iw) as f32,
                ((y1 + y2) / 2.0 / ih) as f32,
                ((x2 - x1) / iw) as f32,
                ((y2 - y1) / ih) as f32,
            ],
        });
    }
    for id in order {
        if let Some(e) = images.remove(&id) {
            if !e.bad {
                data.items.push(DetectionItem {
                    path: e.path,
                    boxes: e.boxes,
                });
            }
        }
    }
    Ok(data)
}

fn read_json(file: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(file).map_err(|e| Error::io(file, e))?;
    serde_json::from_str(&text).map_err(|e| {
        Error::dataset(
            file,
            Some(e.line()),
            format!("invalid JSON at column {}: {e}", e.column()),
        )
    })
}

fn array<'a>(file: &Path, doc: &'a Value, key: &str) -> Result<&'a Vec<Value>> {
    doc.get(key).and_then(Value::as_array).ok_or_else(|| {
        Error::dataset(
            file,
            None,
            format!(
                "`{key}`: missing or not a list (a COCO file has images, annotations, categories)"
            ),
        )
    })
}

/// `(id, name)` of every category, by increasing id; ids must be unique.
fn categories(file: &Path, doc: &Value) -> Result<Vec<(i64, String)>> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for (i, c) in array(file, doc, "categories")?.iter().enumerate() {
        let (Some(id), Some(name)) = (
            c.get("id").and_then(Value::as_i64),
            c.get("name").and_then(Value::as_str),
        ) else {
            return Err(Error::dataset(
                file,
                None,
                format!("categories[{i}]: needs an integer `id` and a `name`"),
            ));
        };
        if !seen.insert(id) {
            return Err(Error::dataset(
                file,
                None,
                format!("categories[{i}]: id {id} is used twice"),
            ));
        }
        out.push((id, name.to_string()));
    }
    if out.is_empty() {
        return Err(Error::dataset(file, None, "`categories` is empty"));
    }
    out.sort();
    Ok(out)
}

/// Where `file_name`s may lie: next to the JSON, under the data set's root, and under
/// `root/images/<split>`.
fn image_folders(file: &Path, root: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![
        file.parent().unwrap_or(Path::new(".")).to_path_buf(),
        root.to_path_buf(),
    ];
    if let Some(stem) = file.file_stem().and_then(|s| s.to_str()) {
        let split = stem.strip_prefix("instances_").unwrap_or(stem);
        dirs.push(root.join("images").join(split));
    }
    dirs.dedup();
    dirs
}
