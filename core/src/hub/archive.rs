//! Weights published only inside a zip archive (LinearStyleTransfer's `models.zip` holds the
//! relu3_1 encoder and decoder the style commands use). The archive is fetched once, every
//! member ferrovis knows in it is extracted and checked against its full SHA-256, and the
//! archive is deleted: the members are all that is kept.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::hub::download;

/// One member to take out of an archive.
#[derive(Debug, Clone, PartialEq)]
pub struct Wanted {
    /// Its file name inside the archive, whatever folder holds it there (`vgg_r31.pth` matches
    /// `models/vgg_r31.pth`).
    pub file_name: String,
    /// Its SHA-256, lower-case hex.
    pub sha256: String,
    /// Where to put it.
    pub dest: PathBuf,
}

/// Downloads the archive at `url` into `archive` (unless it is there), extracts `wanted` from
/// it (each renamed into place only when its hash matches) and deletes the archive. Members
/// already in place are left alone; when all are, nothing is fetched.
pub fn fetch_members(url: &str, archive: &Path, wanted: &[Wanted]) -> Result<()> {
    let missing: Vec<&Wanted> = wanted.iter().filter(|w| !w.dest.is_file()).collect();
    if missing.is_empty() {
        return Ok(());
    }
    download::fetch(&download::Request {
        url,
        dest: archive,
        sha256_prefix: None,
    })?;
    let extracted = extract(archive, &missing);
    // Kept only when extraction failed for want of space or permission, not for a bad member:
    // a member with the wrong hash means the archive is not the one the registry describes.
    if !matches!(extracted, Err(Error::Io { .. })) {
        let _ = std::fs::remove_file(archive);
    }
    extracted
}

/// Takes each of `wanted` out of the zip file `archive`, checking its SHA-256.
pub fn extract(archive: &Path, wanted: &[&Wanted]) -> Result<()> {
    let file = File::open(archive).map_err(|e| Error::io(archive, e))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| {
        Error::Download(format!(
            "{}: not a readable zip archive: {e}",
            archive.display()
        ))
    })?;
    for w in wanted {
        let index = (0..zip.len()).find(|&i| {
            zip.name_for_index(i)
                .is_some_and(|n| n.rsplit('/').next() == Some(w.file_name.as_str()))
        });
        let Some(index) = index else {
            let names: Vec<&str> = zip.file_names().take(12).collect();
            return Err(Error::Download(format!(
                "{}: holds no {} (it holds {})",
                archive.display(),
                w.file_name,
                names.join(", ")
            )));
        };
        let mut member = zip
            .by_index(index)
            .map_err(|e| Error::Download(format!("{}: {}: {e}", archive.display(), w.file_name)))?;
        let dir = w
            .dest
            .parent()
            .ok_or_else(|| Error::Invalid(format!("{}: no parent folder", w.dest.display())))?;
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let partial = w.dest.with_extension("partial");
        let mut out = File::create(&partial).map_err(|e| Error::io(&partial, e))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = member.read(&mut buf).map_err(|e| {
                Error::Download(format!("{}: {}: {e}", archive.display(), w.file_name))
            })?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])
                .map_err(|e| Error::io(&partial, e))?;
        }
        out.sync_all().map_err(|e| Error::io(&partial, e))?;
        let actual = format!("{:x}", hasher.finalize());
        if actual != w.sha256.to_ascii_lowercase() {
            let _ = std::fs::remove_file(&partial);
            return Err(Error::Download(format!(
                "{}: {} has SHA-256 {actual}, expected {}; nothing was kept",
                archive.display(),
                w.file_name,
                w.sha256
            )));
        }
        std::fs::rename(&partial, &w.dest).map_err(|e| Error::io(&w.dest, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zip_with(path: &Path, members: &[(&str, &[u8])]) {
        let mut z = zip::ZipWriter::new(File::create(path).unwrap());
        for (name, data) in members {
            z.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            z.write_all(data).unwrap();
        }
        z.finish().unwrap();
    }

    fn sha(data: &[u8]) -> String {
        format!("{:x}", Sha256::digest(data))
    }

    #[test]
    fn members_are_found_in_any_folder_and_checked_by_hash() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("models.zip");
        zip_with(
            &archive,
            &[
                ("models/enc.pth", b"encoder bytes"),
                ("models/dec.pth", b"decoder bytes"),
            ],
        );
        let want = |name: &str, hash: String| Wanted {
            file_name: name.into(),
            sha256: hash,
            dest: dir.path().join("cache").join(name),
        };
        let enc = want("enc.pth", sha(b"encoder bytes"));
        let dec = want("dec.pth", sha(b"decoder bytes"));
        extract(&archive, &[&enc, &dec]).unwrap();
        assert_eq!(std::fs::read(&enc.dest).unwrap(), b"encoder bytes");
        assert_eq!(std::fs::read(&dec.dest).unwrap(), b"decoder bytes");

        // enc.pth, expected to hold other bytes.
        let bad = Wanted {
            sha256: sha(b"other"),
            dest: dir.path().join("cache").join("bad.pth"),
            ..enc.clone()
        };
        let e = extract(&archive, &[&bad]).unwrap_err().to_string();
        assert!(
            e.contains(&sha(b"encoder bytes")) && e.contains(&sha(b"other")),
            "{e}"
        );
        assert!(!bad.dest.exists() && !bad.dest.with_extension("partial").exists());

        let absent = want("r31.pth", sha(b""));
        let e = extract(&archive, &[&absent]).unwrap_err().to_string();
        assert!(
            e.contains("holds no r31.pth") && e.contains("models/enc.pth"),
            "{e}"
        );
    }
}
