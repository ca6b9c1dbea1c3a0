//! The two on-disk layouts of `torch.save`: the zip archive (torch ≥ 1.6) and the legacy stream of
//! pickles followed by raw storages. Both yield the same thing: the object pickle plus a way to fetch
//! each storage's bytes by key.

use std::collections::HashMap;
use std::io::{Cursor, Read};

use super::pickle::{self, DType, Object, Pickle, Value};

/// The object pickle of a torch checkpoint and the raw bytes of each storage it references.
pub struct TorchFile {
    pub pickle: Pickle,
    /// Raw little-endian bytes of each storage, by key.
    pub storages: HashMap<String, Vec<u8>>,
}

/// The legacy format's magic number `0x1950a86a20f9469cfc6c`, little-endian, as pickled by LONG1.
pub const LEGACY_MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

/// Every storage referenced by a pickle, by key, with the element type and the number of elements
/// the pickle says it holds (the largest claim if several views share a key).
fn storages_of(p: &Pickle) -> HashMap<String, (DType, u64)> {
    let mut out: HashMap<String, (DType, u64)> = HashMap::new();
    for o in &p.objects {
        if let Object::Storage(s) = o {
            let need = s.view_offset.saturating_add(s.numel);
            let e = out.entry(s.key.clone()).or_insert((s.dtype, need));
            e.1 = e.1.max(need);
        }
    }
    out
}

/// Reads a torch zip archive: `<prefix>/data.pkl` and `<prefix>/data/<key>`.
pub fn read_zip(bytes: &[u8]) -> Result<TorchFile, String> {
    let mut zip =
        zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| format!("not a readable zip: {e}"))?;
    let names: Vec<String> = zip.file_names().map(str::to_string).collect();
    let pkl = names
        .iter()
        .filter(|n| n.ends_with("data.pkl") && n.matches('/').count() == 1)
        .min_by_key(|n| n.len())
        .ok_or("zip archive has no <name>/data.pkl: not a torch.save file")?
        .clone();
    let prefix = &pkl[..pkl.len() - "data.pkl".len()];

    let read_entry =
        |zip: &mut zip::ZipArchive<Cursor<&[u8]>>, name: &str| -> Result<Vec<u8>, String> {
            let mut f = zip
                .by_name(name)
                .map_err(|e| format!("archive entry {name}: {e}"))?;
            // The declared size bounds the allocation; reading checks it against the real data.
            let declared = f.size();
            if declared > bytes.len() as u64 && f.compression() == zip::CompressionMethod::Stored {
                return Err(format!(
                    "archive entry {name} claims {declared} bytes in a {} byte file",
                    bytes.len()
                ));
            }
            let mut out = Vec::new();
            f.read_to_end(&mut out)
                .map_err(|e| format!("archive entry {name}: {e}"))?;
            Ok(out)
        };

    if let Some(order) = names.iter().find(|n| *n == &format!("{prefix}byteorder")) {
        let b = read_entry(&mut zip, order)?;
        if b.trim_ascii() != b"little" {
            return Err(format!(
                "byte order {:?} is not supported (only little-endian)",
                String::from_utf8_lossy(&b)
            ));
        }
    }

    let data = read_entry(&mut zip, &pkl)?;
    let (pickle, _) = pickle::unpickle(&data, 0).map_err(|e| format!("{pkl}: {e}"))?;
    let mut storages = HashMap::new();
    for key in storages_of(&pickle).into_keys() {
        let name = format!("{prefix}data/{key}");
        let raw = read_entry(&mut zip, &name)?;
        storages.insert(key, raw);
    }
    Ok(TorchFile { pickle, storages })
}

/// Reads the legacy (pre-1.6) layout: five pickles (magic, protocol version, system info, the
/// object, the list of storage keys), then for each key an int64 element count and the raw data.
pub fn read_legacy(bytes: &[u8]) -> Result<TorchFile, String> {
    let (magic, pos) = pickle::unpickle(bytes, 0).map_err(|e| format!("magic number: {e}"))?;
    if magic.root != Some(Value::BigInt(LEGACY_MAGIC.to_vec())) {
        return Err("wrong magic number: not a legacy torch.save file".into());
    }
    let (version, pos) =
        pickle::unpickle(bytes, pos).map_err(|e| format!("protocol version: {e}"))?;
    if version.root != Some(Value::Int(1001)) {
        return Err(format!(
            "unsupported legacy protocol version {:?} (expected 1001)",
            version.root
        ));
    }
    let (info, pos) = pickle::unpickle(bytes, pos).map_err(|e| format!("system info: {e}"))?;
    if let Some(root) = &info.root {
        if info.dict_get(root, "little_endian") == Some(&Value::Bool(false)) {
            return Err("big-endian checkpoints are not supported".into());
        }
    }
    let (object, pos) = pickle::unpickle(bytes, pos).map_err(|e| format!("object: {e}"))?;
    let (keys, mut pos) = pickle::unpickle(bytes, pos).map_err(|e| format!("storage keys: {e}"))?;
    let key_list: Vec<String> = match keys.root.as_ref().and_then(|r| keys.object(r)) {
        Some(Object::List(items)) => items
            .iter()
            .map(|k| match k {
                Value::Str(s) => Ok(s.clone()),
                Value::Int(i) => Ok(i.to_string()),
                _ => Err("storage key list holds a non-string".to_string()),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err("storage key list is not a list".into()),
    };

    let claimed = storages_of(&object);
    let mut storages = HashMap::new();
    for key in key_list {
        let Some(&(dtype, _)) = claimed.get(&key) else {
            return Err(format!("storage {key} is listed but no tensor uses it"));
        };
        let Some(header) = bytes.get(pos..pos + 8) else {
            return Err(format!("truncated before the size of storage {key}"));
        };
        let mut n = [0u8; 8];
        n.copy_from_slice(header);
        let numel = u64::from_le_bytes(n);
        pos += 8;
        let len = numel
            .checked_mul(dtype.size() as u64)
            .filter(|&l| l <= (bytes.len() - pos) as u64)
            .ok_or_else(|| {
                format!(
                    "storage {key} claims {numel} elements of {} bytes but only {} bytes remain",
                    dtype.size(),
                    bytes.len() - pos
                )
            })? as usize;
        storages.insert(key, bytes[pos..pos + len].to_vec());
        pos += len;
    }
    Ok(TorchFile {
        pickle: object,
        storages,
    })
}
