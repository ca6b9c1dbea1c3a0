//! Pascal VOC's layout: `Annotations/<id>.xml` with pixel boxes, images in `JPEGImages/`.

use std::collections::BTreeSet;
use std::path::Path;

use super::{DetectionData, DetectionItem, YoloBox};
use crate::dataset::report::{ScanOptions, ScanReport};
use crate::decode::verify_image;
use crate::error::{Error, Result};

/// Scans a Pascal VOC folder: `Annotations/*.xml` (or the ids in `ImageSets/Main/<set>.txt`)
/// with images in `JPEGImages/`. Class names are `names` when given (objects of other classes are
/// problems), else the sorted distinct names found. `difficult` objects are kept.
pub fn scan_voc(
    root: &Path,
    image_set: Option<&str>,
    names: Option<&[String]>,
    options: ScanOptions,
) -> Result<DetectionData> {
    let annotations = root.join("Annotations");
    let ids: Vec<String> = match image_set {
        Some(set) => {
            let list = root
                .join("ImageSets")
                .join("Main")
                .join(format!("{set}.txt"));
            std::fs::read_to_string(&list)
                .map_err(|e| Error::io(&list, e))?
                .lines()
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty())
                .collect()
        }
        None => {
            let entries =
                std::fs::read_dir(&annotations).map_err(|e| Error::io(&annotations, e))?;
            let mut ids: Vec<String> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "xml"))
                .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
                .collect();
            ids.sort();
            ids
        }
    };
    let mut report = ScanReport::default();
    let mut parsed = Vec::new();
    for id in ids {
        let xml = annotations.join(format!("{id}.xml"));
        match parse_voc_xml(&xml) {
            Ok(ann) => parsed.push((xml, ann)),
            Err(e) => report.problem(options, &xml, None, e.reason())?,
        }
    }
    let names: Vec<String> = match names {
        Some(n) => n.to_vec(),
        None => parsed
            .iter()
            .flat_map(|(_, a)| a.objects.iter().map(|o| o.0.clone()))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
    };
    let mut data = DetectionData {
        names,
        items: Vec::new(),
        report,
    };
    'files: for (xml, ann) in parsed {
        let image = root.join("JPEGImages").join(&ann.filename);
        let size = match verify_image(&image) {
            Ok(s) => s,
            Err(e) => {
                data.report.problem(
                    options,
                    &xml,
                    None,
                    format!("image {}: {}", image.display(), e.reason()),
                )?;
                continue;
            }
        };
        let (w, h) = ann.size.unwrap_or(size);
        let mut boxes = Vec::new();
        for (name, [x1, y1, x2, y2]) in &ann.objects {
            let Some(class) = data.names.iter().position(|n| n == name) else {
                data.report
                    .problem(options, &xml, None, format!("unknown class {name:?}"))?;
                continue 'files;
            };
            let (x1, x2) = (x1.max(0.0).min(w as f32), x2.max(0.0).min(w as f32));
            let (y1, y2) = (y1.max(0.0).min(h as f32), y2.max(0.0).min(h as f32));
            if x2 <= x1 || y2 <= y1 {
                data.report.problem(
                    options,
                    &xml,
                    None,
                    format!("object {name:?} has zero area"),
                )?;
                continue 'files;
            }
            boxes.push(YoloBox {
                class,
                cxcywh: [
                    (x1 + x2) / 2.0 / w as f32,
                    (y1 + y2) / 2.0 / h as f32,
                    (x2 - x1) / w as f32,
                    (y2 - y1) / h as f32,
                ],
            });
        }
        data.items.push(DetectionItem { path: image, boxes });
    }
    Ok(data)
}

struct VocAnnotation {
    filename: String,
    size: Option<(usize, usize)>,
    objects: Vec<(String, [f32; 4])>,
}

fn parse_voc_xml(path: &Path) -> Result<VocAnnotation> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let doc = roxmltree::Document::parse(&text).map_err(|e| {
        Error::dataset(
            path,
            Some(e.pos().row as usize),
            format!("invalid XML: {e}"),
        )
    })?;
    let root = doc.root_element();
    let child_text = |node: roxmltree::Node, tag: &str| -> Option<String> {
        node.children()
            .find(|c| c.has_tag_name(tag))
            .and_then(|c| c.text())
            .map(|t| t.trim().to_string())
    };
    let line_of = |node: roxmltree::Node| Some(doc.text_pos_at(node.range().start).row as usize);
    let filename = child_text(root, "filename")
        .ok_or_else(|| Error::dataset(path, None, "missing <filename>"))?;
    let size = root
        .children()
        .find(|c| c.has_tag_name("size"))
        .and_then(|s| {
            let w = child_text(s, "width")?.parse().ok()?;
            let h = child_text(s, "height")?.parse().ok()?;
            (w > 0 && h > 0).then_some((w, h))
        });
    let mut objects = Vec::new();
    for obj in root.children().filter(|c| c.has_tag_name("object")) {
        let name = child_text(obj, "name")
            .ok_or_else(|| Error::dataset(path, line_of(obj), "<object> without <name>"))?;
        let bndbox = obj
            .children()
            .find(|c| c.has_tag_name("bndbox"))
            .ok_or_else(|| Error::dataset(path, line_of(obj), "<object> without <bndbox>"))?;
        let mut coords = [0f32; 4];
        for (slot, tag) in coords.iter_mut().zip(["xmin", "ymin", "xmax", "ymax"]) {
            let text = child_text(bndbox, tag).ok_or_else(|| {
                Error::dataset(path, line_of(bndbox), format!("<bndbox> without <{tag}>"))
            })?;
            *slot = text.parse().map_err(|_| {
                Error::dataset(
                    path,
                    line_of(bndbox),
                    format!("<{tag}> is not a number: {text:?}"),
                )
            })?;
        }
        objects.push((name, coords));
    }
    Ok(VocAnnotation {
        filename,
        size,
        objects,
    })
}
