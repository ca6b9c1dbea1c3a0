//! What every data set YAML file shares: reading it with errors that name the file and line, and
//! its root folder (`path:`, relative to the file; default: the file's folder).

use std::path::{Path, PathBuf};

use yaml_rust2::{Yaml, YamlLoader};

use crate::error::{Error, Result};

/// The first document of `file` and the folder its relative paths start from.
pub(crate) fn read_with_root(file: &Path) -> Result<(Yaml, PathBuf)> {
    let text = std::fs::read_to_string(file).map_err(|e| Error::io(file, e))?;
    let mut docs = YamlLoader::load_from_str(&text).map_err(|e| {
        Error::dataset(
            file,
            Some(e.marker().line() + 1),
            format!("invalid YAML: {e}"),
        )
    })?;
    if docs.is_empty() {
        return Err(Error::dataset(file, None, "empty YAML"));
    }
    let doc = docs.swap_remove(0);
    let base = file.parent().unwrap_or(Path::new("."));
    let root = match &doc["path"] {
        Yaml::String(p) => base.join(p),
        Yaml::BadValue | Yaml::Null => base.to_path_buf(),
        other => {
            return Err(Error::dataset(
                file,
                None,
                format!("`path`: expected a string, found {other:?}"),
            ))
        }
    };
    Ok((doc, root))
}
