//! Task configuration: a TOML file over documented defaults, then `--set key=value` overrides.
//!
//! A config type is any `serde` struct with `Default`. Its defaults, serialised, are the schema:
//! a key in the file or in an override that the defaults do not have is an error naming the key,
//! the file, and the closest valid key (`unknown key "train.epoch" in cfg.toml; did you mean
//! "train.epochs"?`). Fields should therefore have concrete defaults (use 0 or "" for "off"
//! rather than `Option`, which TOML cannot represent when unset). [`to_toml`] writes the resolved
//! configuration, every default included, for the run folder.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;
use toml::{Table, Value};

use crate::error::{Error, Result};

/// Reads `path` (if any) over `T::default()`, then applies `overrides` (`"train.lr=0.1"`).
pub fn load<T: Serialize + DeserializeOwned + Default>(
    path: Option<&Path>,
    overrides: &[String],
) -> Result<T> {
    let mut merged = defaults::<T>()?;
    let schema = merged.clone();
    if let Some(path) = path {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let user: Table = text
            .parse()
            .map_err(|e: toml::de::Error| Error::Invalid(format!("{}: {e}", path.display())))?;
        check_keys(&user, &schema, "", &path.display().to_string())?;
        merge(&mut merged, user);
    }
    for o in overrides {
        let (key, raw) = o
            .split_once('=')
            .ok_or_else(|| Error::Invalid(format!("override {o:?}: expected key=value")))?;
        let key = key.trim();
        let value = parse_value(raw.trim());
        set_path(&mut merged, &schema, key, value)?;
    }
    T::deserialize(Value::Table(merged.clone()))
        .map_err(|e| Error::Invalid(format!("configuration: {e}")))
}

/// The resolved configuration as TOML (every default written out).
pub fn to_toml<T: Serialize>(cfg: &T) -> Result<String> {
    toml::to_string_pretty(cfg).map_err(|e| Error::Invalid(format!("configuration: {e}")))
}

fn defaults<T: Serialize + Default>() -> Result<Table> {
    match Value::try_from(T::default()) {
        Ok(Value::Table(t)) => Ok(t),
        Ok(_) => Err(Error::Invalid(
            "configuration defaults are not a table".into(),
        )),
        Err(e) => Err(Error::Invalid(format!("configuration defaults: {e}"))),
    }
}

/// A TOML literal (`0.1`, `true`, `[1, 2]`, `"x"`), or the raw text as a string.
fn parse_value(raw: &str) -> Value {
    format!("v = {raw}")
        .parse::<Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| Value::String(raw.to_string()))
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// The error for `key`, whose segment `segment` (under `prefix`) is not among `known`.
fn unknown(key: &str, segment: &str, known: &Table, prefix: &str, source: &str) -> Error {
    let closest = known
        .keys()
        .map(|k| (edit_distance(segment, k), k))
        .min()
        .map(|(_, k)| format!("; did you mean {:?}?", join(prefix, k)))
        .unwrap_or_default();
    Error::Invalid(format!("unknown key {key:?} in {source}{closest}"))
}

fn check_keys(user: &Table, schema: &Table, prefix: &str, source: &str) -> Result<()> {
    for (k, v) in user {
        let full = join(prefix, k);
        match (schema.get(k), v) {
            (None, _) => return Err(unknown(&full, k, schema, prefix, source)),
            (Some(Value::Table(s)), Value::Table(u)) => check_keys(u, s, &full, source)?,
            _ => {}
        }
    }
    Ok(())
}

fn merge(into: &mut Table, from: Table) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(Value::Table(a)), Value::Table(b)) => merge(a, b),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

fn set_path(into: &mut Table, schema: &Table, key: &str, value: Value) -> Result<()> {
    let parts: Vec<&str> = key.split('.').collect();
    let (mut table, mut known) = (into, schema);
    for (i, part) in parts.iter().enumerate() {
        let prefix = parts[..i].join(".");
        let Some(entry) = known.get(*part) else {
            return Err(unknown(key, part, known, &prefix, "--set"));
        };
        if i + 1 == parts.len() {
            table.insert(part.to_string(), value);
            return Ok(());
        }
        let Value::Table(sub) = entry else {
            return Err(Error::Invalid(format!(
                "--set {key}: {:?} is not a section",
                join(&prefix, part)
            )));
        };
        known = sub;
        let next = table
            .entry(part.to_string())
            .or_insert_with(|| Value::Table(Table::new()));
        let Value::Table(t) = next else {
            return Err(Error::Invalid(format!(
                "--set {key}: {part:?} is not a section"
            )));
        };
        table = t;
    }
    Ok(())
}

/// Levenshtein distance, for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push(
                (prev[j] + (ca != *cb) as usize)
                    .min(prev[j + 1] + 1)
                    .min(cur[j] + 1),
            );
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(default)]
    struct Train {
        epochs: usize,
        lr: f64,
        milestones: Vec<u64>,
    }
    impl Default for Train {
        fn default() -> Self {
            Train {
                epochs: 25,
                lr: 0.01,
                milestones: vec![10, 20],
            }
        }
    }

    #[derive(Debug, Serialize, Deserialize, PartialEq, Default)]
    #[serde(default)]
    struct Cfg {
        arch: String,
        train: Train,
    }

    fn write(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cfg.toml");
        std::fs::write(&p, text).unwrap();
        (dir, p)
    }

    #[test]
    fn file_then_overrides_over_defaults() {
        let (_d, p) = write("arch = \"resnet50\"\n[train]\nepochs = 5\n");
        let cfg: Cfg = load(
            Some(&p),
            &["train.lr=0.1".into(), "train.milestones=[3, 4]".into()],
        )
        .unwrap();
        assert_eq!(
            cfg,
            Cfg {
                arch: "resnet50".into(),
                train: Train {
                    epochs: 5,
                    lr: 0.1,
                    milestones: vec![3, 4]
                }
            }
        );
        let text = to_toml(&cfg).unwrap();
        assert!(
            text.contains("epochs = 5") && text.contains("lr = 0.1"),
            "{text}"
        );
        let plain: Cfg = load(None, &["arch=vgg16".into()]).unwrap();
        assert_eq!(plain.arch, "vgg16");
    }

    #[test]
    fn unknown_keys_name_the_closest_valid_one() {
        let (_d, p) = write("[train]\nepoch = 5\n");
        let err = load::<Cfg>(Some(&p), &[]).unwrap_err().to_string();
        assert!(
            err.contains("unknown key \"train.epoch\"") && err.contains("cfg.toml"),
            "{err}"
        );
        assert!(err.contains("did you mean \"train.epochs\"?"), "{err}");
        let err = load::<Cfg>(None, &["trian.lr=1".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("did you mean \"train\"?"), "{err}");
        let err = load::<Cfg>(None, &["train.lr=fast".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("configuration") && err.contains("lr"), "{err}");
        let (_d, p) = write("[train\nepochs = 5\n");
        let err = load::<Cfg>(Some(&p), &[]).unwrap_err().to_string();
        assert!(err.contains("cfg.toml") && err.contains("line 1"), "{err}");
        assert_eq!(edit_distance("epoch", "epochs"), 1);
    }
}
