//! Task configuration: a TOML file over documented defaults, then `--set key=value` overrides.
//!
//! A config type is any `serde` struct with `Default`. Its defaults, serialised, are the schema:
//! a key in the file or in an override that the defaults do not have is an error naming the key,
//! the file, and the closest valid key (`unknown key "train.epoch" in cfg.toml; did you mean
//! "train.epochs"?`). Fields should therefore have concrete defaults (use 0 or "" for "off"
//! rather than `Option`, which TOML cannot represent when unset). [`to_toml`] writes the resolved
//! configuration, every default included, for the run folder.
//!
//! An override's value is typed by the default it replaces, so nothing needs quoting on a command
//! line: `train.device=0` and `train.name=2024` stay strings, `train.epochs=3` must be an integer
//! (`train.epochs=three` is an error naming the key and the type), `train.lr=1` is a float,
//! `[3, 4]` an array. Quotes around a string are accepted and removed. A key with no default (an
//! `Option` field that is `None`) is declared with [`load_with_optional`] and an example value
//! that gives its type.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;
use toml::Table;
/// A TOML value: the example type of an optional key in [`load_with_optional`].
pub use toml::Value;

use crate::error::{Error, Result};

/// Reads `path` (if any) over `T::default()`, then applies `overrides` (`"train.lr=0.1"`).
pub fn load<T: Serialize + DeserializeOwned + Default>(
    path: Option<&Path>,
    overrides: &[String],
) -> Result<T> {
    load_with_optional(path, overrides, &[])
}

/// [`load`] for a type with optional top-level keys absent from its defaults: `optional` names
/// each with an example value of its type (`("conf", Value::Float(0.25))`).
pub fn load_with_optional<T: Serialize + DeserializeOwned + Default>(
    path: Option<&Path>,
    overrides: &[String],
    optional: &[(&str, Value)],
) -> Result<T> {
    merge_into(table_of(&T::default())?, path, overrides, optional)
}

/// [`load`] over `base` instead of `T::default()`: for settings whose starting point is a value
/// of their own (a resumed run's recorded settings). `base`'s keys are the schema.
pub fn load_over<T: Serialize + DeserializeOwned>(
    base: &T,
    path: Option<&Path>,
    overrides: &[String],
) -> Result<T> {
    merge_into(table_of(base)?, path, overrides, &[])
}

fn merge_into<T: DeserializeOwned>(
    mut merged: Table,
    path: Option<&Path>,
    overrides: &[String],
    optional: &[(&str, Value)],
) -> Result<T> {
    let mut schema = merged.clone();
    for (key, example) in optional {
        schema.insert(key.to_string(), example.clone());
    }
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
        set_path(&mut merged, &schema, key, raw.trim())?;
    }
    T::deserialize(Value::Table(merged.clone()))
        .map_err(|e| Error::Invalid(format!("configuration: {e}")))
}

/// The resolved configuration as TOML (every default written out).
pub fn to_toml<T: Serialize>(cfg: &T) -> Result<String> {
    toml::to_string_pretty(cfg).map_err(|e| Error::Invalid(format!("configuration: {e}")))
}

fn table_of<T: Serialize>(value: &T) -> Result<Table> {
    match Value::try_from(value) {
        Ok(Value::Table(t)) => Ok(t),
        Ok(_) => Err(Error::Invalid(
            "configuration defaults are not a table".into(),
        )),
        Err(e) => Err(Error::Invalid(format!("configuration defaults: {e}"))),
    }
}

/// A TOML literal (`0.1`, `true`, `[1, 2]`, `"x"`), if `raw` is one.
fn toml_literal(raw: &str) -> Option<Value> {
    format!("v = {raw}")
        .parse::<Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
}

/// The value of `key=raw`, typed like `default`, the value it replaces.
fn typed_value(key: &str, raw: &str, default: &Value) -> Result<Value> {
    let bad = |what: &str| Error::Invalid(format!("{key}={raw}: expected {what}"));
    Ok(match default {
        Value::String(_) => match toml_literal(raw) {
            Some(Value::String(s)) => Value::String(s),
            _ => Value::String(raw.to_string()),
        },
        Value::Integer(_) => Value::Integer(raw.parse().map_err(|_| bad("an integer"))?),
        Value::Float(_) => Value::Float(raw.parse().map_err(|_| bad("a number"))?),
        Value::Boolean(_) => Value::Boolean(raw.parse().map_err(|_| bad("true or false"))?),
        Value::Array(_) => match toml_literal(raw) {
            Some(v @ Value::Array(_)) => v,
            _ => return Err(bad("an array such as [1, 2]")),
        },
        Value::Datetime(_) => toml_literal(raw).ok_or_else(|| bad("a date"))?,
        Value::Table(_) => {
            return Err(Error::Invalid(format!(
                "{key}={raw}: {key:?} is a section; set one of its keys ({key}.NAME=…)"
            )))
        }
    })
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

fn set_path(into: &mut Table, schema: &Table, key: &str, raw: &str) -> Result<()> {
    let parts: Vec<&str> = key.split('.').collect();
    let (mut table, mut known) = (into, schema);
    for (i, part) in parts.iter().enumerate() {
        let prefix = parts[..i].join(".");
        let Some(entry) = known.get(*part) else {
            return Err(unknown(key, part, known, &prefix, "the command line"));
        };
        if i + 1 == parts.len() {
            table.insert(part.to_string(), typed_value(key, raw, entry)?);
            return Ok(());
        }
        let Value::Table(sub) = entry else {
            return Err(Error::Invalid(format!(
                "{key}={raw}: {:?} is not a section",
                join(&prefix, part)
            )));
        };
        known = sub;
        let next = table
            .entry(part.to_string())
            .or_insert_with(|| Value::Table(Table::new()));
        let Value::Table(t) = next else {
            return Err(Error::Invalid(format!(
                "{key}={raw}: {part:?} is not a section"
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
        assert_eq!(err, "train.lr=fast: expected a number");
        let (_d, p) = write("[train\nepochs = 5\n");
        let err = load::<Cfg>(Some(&p), &[]).unwrap_err().to_string();
        assert!(err.contains("cfg.toml") && err.contains("line 1"), "{err}");
        assert_eq!(edit_distance("epoch", "epochs"), 1);
    }

    #[test]
    fn overrides_are_typed_by_their_defaults() {
        // Strings stay strings, whatever they look like; quotes are optional.
        let cfg: Cfg = load(None, &["arch=2024".into()]).unwrap();
        assert_eq!(cfg.arch, "2024");
        let cfg: Cfg = load(None, &["arch=\"resnet 50\"".into()]).unwrap();
        assert_eq!(cfg.arch, "resnet 50");
        let cfg: Cfg = load(None, &["arch=0".into(), "train.lr=1".into()]).unwrap();
        assert_eq!((cfg.arch.as_str(), cfg.train.lr), ("0", 1.0));
        let err = load::<Cfg>(None, &["train.epochs=three".into()])
            .unwrap_err()
            .to_string();
        assert_eq!(err, "train.epochs=three: expected an integer");
        let err = load::<Cfg>(None, &["train.milestones=3".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected an array"), "{err}");
        let err = load::<Cfg>(None, &["train=3".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"train\" is a section"), "{err}");
        let err = load::<Cfg>(None, &["lr=3".into()]).unwrap_err().to_string();
        assert_eq!(
            err,
            "unknown key \"lr\" in the command line; did you mean \"arch\"?"
        );
    }

    #[test]
    fn optional_keys_are_declared_with_an_example_of_their_type() {
        #[derive(Debug, Serialize, Deserialize, Default)]
        #[serde(default)]
        struct Opt {
            epochs: usize,
            conf: Option<f64>,
        }
        let example = [("conf", Value::Float(0.25))];
        let cfg: Opt = load_with_optional(None, &["conf=0.5".into()], &example).unwrap();
        assert_eq!(cfg.conf, Some(0.5));
        let cfg: Opt = load_with_optional(None, &[], &example).unwrap();
        assert_eq!((cfg.epochs, cfg.conf), (0, None));
        let err = load_with_optional::<Opt>(None, &["conf=high".into()], &example)
            .unwrap_err()
            .to_string();
        assert_eq!(err, "conf=high: expected a number");
        assert!(load::<Opt>(None, &["conf=0.5".into()]).is_err());
    }
}
