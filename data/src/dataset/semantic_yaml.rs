//! The segmentation data set file (`semantic.yaml`, as shipped with coco128's masks):
//!
//! ```yaml
//! path: .            # optional root, default: the YAML's folder
//! train: {images: images/train2017, masks: masks/train2017}
//! val:   {images: images/val2017,   masks: masks/val2017}
//! classes:           # stored mask value: name (ids may be sparse, e.g. COCO panoptic)
//!   0: unlabeled
//!   1: person
//! ignore: [0]        # optional: stored values that become 255 (ignore)
//! ```
//! Classes become indices 0, 1, 2, … in ascending id order, the ignored ids left out. Without an
//! `ignore` key, an id named `unlabeled` or `ignore` is ignored (COCO's convention).

use std::path::{Path, PathBuf};

use yaml_rust2::Yaml;

use super::segmentation::ClassRemap;
use super::yaml_file::read_with_root;
use crate::error::{Error, Result};

/// An image folder and its mask folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitFolders {
    /// Images.
    pub images: PathBuf,
    /// Masks, matched to images by file stem.
    pub masks: PathBuf,
}

/// A resolved segmentation data set file.
#[derive(Debug, Clone, PartialEq)]
pub struct SemanticYaml {
    /// The training split.
    pub train: SplitFolders,
    /// The validation split, when given.
    pub val: Option<SplitFolders>,
    /// Class names by class index.
    pub names: Vec<String>,
    /// Stored value → class index (`None` when the ids are already 0..n with nothing ignored).
    pub remap: Option<ClassRemap>,
}

impl SemanticYaml {
    /// Reads and resolves `file`; errors name the file and the key.
    pub fn read(file: &Path) -> Result<Self> {
        let (doc, root) = read_with_root(file)?;
        let bad =
            |key: &str, reason: String| Error::dataset(file, None, format!("`{key}`: {reason}"));
        let split = |key: &str| -> Result<Option<SplitFolders>> {
            let node = &doc[key];
            if matches!(node, Yaml::BadValue | Yaml::Null) {
                return Ok(None);
            }
            let folder = |sub: &str| match &node[sub] {
                Yaml::String(p) => Ok(root.join(p)),
                other => Err(bad(
                    &format!("{key}.{sub}"),
                    format!("expected a folder path, found {other:?}"),
                )),
            };
            Ok(Some(SplitFolders {
                images: folder("images")?,
                masks: folder("masks")?,
            }))
        };
        let train = split("train")?.ok_or_else(|| bad("train", "missing (required)".into()))?;
        let val = split("val")?;
        let Yaml::Hash(map) = &doc["classes"] else {
            return Err(bad("classes", "missing or not an `id: name` map".into()));
        };
        let mut classes = Vec::new();
        for (k, v) in map {
            let id = match k {
                Yaml::Integer(i) if (0..=254).contains(i) => *i as u8,
                other => {
                    return Err(bad(
                        "classes",
                        format!("id {other:?} is not an integer in 0..=254"),
                    ))
                }
            };
            let name = match v {
                Yaml::String(s) => s.clone(),
                other => return Err(bad("classes", format!("name of {id}: {other:?}"))),
            };
            classes.push((id, name));
        }
        classes.sort();
        let ignore: Vec<u8> = match &doc["ignore"] {
            Yaml::Array(items) => items
                .iter()
                .map(|i| match i {
                    Yaml::Integer(v) if (0..=255).contains(v) => Ok(*v as u8),
                    other => Err(bad("ignore", format!("{other:?} is not a mask value"))),
                })
                .collect::<Result<_>>()?,
            Yaml::BadValue | Yaml::Null => classes
                .iter()
                .filter(|(_, n)| n == "unlabeled" || n == "ignore")
                .map(|(id, _)| *id)
                .collect(),
            other => return Err(bad("ignore", format!("expected a list, found {other:?}"))),
        };
        let kept: Vec<(u8, String)> = classes
            .into_iter()
            .filter(|(id, _)| !ignore.contains(id))
            .collect();
        if kept.is_empty() {
            return Err(bad("classes", "no class left after `ignore`".into()));
        }
        let identity = kept
            .iter()
            .enumerate()
            .all(|(i, (id, _))| i == *id as usize);
        let remap = (!identity || !ignore.is_empty()).then(|| {
            let pairs: Vec<(u8, u8)> = kept
                .iter()
                .enumerate()
                .map(|(i, (id, _))| (*id, i as u8))
                .collect();
            ClassRemap::from_pairs(&pairs)
        });
        Ok(SemanticYaml {
            train,
            val,
            names: kept.into_iter().map(|(_, n)| n).collect(),
            remap,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("semantic.yaml");
        std::fs::write(&file, text).expect("write");
        (dir, file)
    }

    #[test]
    fn sparse_ids_become_contiguous_and_unlabeled_is_ignored() {
        let (dir, file) = write(
            "train:\n  images: im/t\n  masks: m/t\nval:\n  images: im/v\n  masks: m/v\n\
             classes:\n  0: unlabeled\n  1: person\n  7: train\n  200: wall\n",
        );
        let y = SemanticYaml::read(&file).expect("read");
        assert_eq!(y.names, vec!["person", "train", "wall"]);
        assert_eq!(y.train.images, dir.path().join("im/t"));
        assert_eq!(y.val.map(|v| v.masks), Some(dir.path().join("m/v")));
        let r = y.remap.expect("remap");
        assert_eq!(
            [r.map(0), r.map(1), r.map(7), r.map(200), r.map(3)],
            [255, 0, 1, 2, 255]
        );
    }

    #[test]
    fn problems_name_the_key() {
        let (_d, file) = write("train:\n  images: a\nclasses:\n  0: x\n");
        let err = SemanticYaml::read(&file).expect_err("no masks").to_string();
        assert!(
            err.contains("train.masks") && err.contains("semantic.yaml"),
            "{err}"
        );
        let (_d, file) = write("train: {images: a, masks: b}\nclasses: [a, b]\n");
        let err = SemanticYaml::read(&file).expect_err("list").to_string();
        assert!(err.contains("`classes`"), "{err}");
        // Contiguous ids from 0 with nothing ignored need no table.
        let (_d, file) = write("train: {images: a, masks: b}\nclasses: {0: bg, 1: fg}\n");
        assert!(SemanticYaml::read(&file).expect("read").remap.is_none());
    }
}
