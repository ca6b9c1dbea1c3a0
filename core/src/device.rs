//! Device selection: `auto`, `cpu`, `cuda`, `cuda:N` (or Ultralytics' bare `N`), as users type it.

use tch::Device;

use crate::error::{Error, Result};

/// Parses a device name. `auto` (or an empty string) picks the first CUDA device when libtorch
/// sees one, and the CPU otherwise; asking for CUDA where there is none is an error, not a
/// silent fallback.
pub fn parse_device(name: &str) -> Result<Device> {
    let name = name.trim().to_ascii_lowercase();
    let cuda_count = || tch::Cuda::device_count() as usize;
    match name.as_str() {
        "" | "auto" => Ok(Device::cuda_if_available()),
        "cpu" => Ok(Device::Cpu),
        "cuda" | "gpu" => {
            if cuda_count() == 0 {
                return Err(Error::Invalid(
                    "device 'cuda' requested but libtorch sees no CUDA device".into(),
                ));
            }
            Ok(Device::Cuda(0))
        }
        other => {
            // Ultralytics' `device=0` means the first GPU.
            let idx = other
                .strip_prefix("cuda:")
                .unwrap_or(other)
                .parse::<usize>()
                .ok()
                .ok_or_else(|| {
                    Error::Invalid(format!(
                        "unknown device {other:?}: use auto, cpu, cuda, cuda:N or N"
                    ))
                })?;
            if idx >= cuda_count() {
                return Err(Error::Invalid(format!(
                    "device cuda:{idx} requested but libtorch sees {} CUDA device(s)",
                    cuda_count()
                )));
            }
            Ok(Device::Cuda(idx))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_rejects_unknown_ones() {
        assert_eq!(parse_device("cpu").unwrap(), Device::Cpu);
        assert_eq!(parse_device("auto").unwrap(), Device::cuda_if_available());
        let err = parse_device("tpu").unwrap_err().to_string();
        assert!(err.contains("unknown device \"tpu\""), "{err}");
        if !tch::Cuda::is_available() {
            assert!(parse_device("cuda:0").is_err());
            let err = parse_device("0").unwrap_err().to_string();
            assert!(err.contains("device cuda:0 requested"), "{err}");
        }
    }
}
