//! The weights ferrovis knows by name: torchvision's (checked against torchvision's own
//! `get_weight(name).url` by `tests/tests/suite/hub.rs`), Ultralytics' YOLOv8 release assets
//! (checked there against the URL the installed `ultralytics` package downloads from), and
//! LinearStyleTransfer's relu3_1 encoder and decoder, which its authors publish only inside a
//! zip archive on Google Drive (each member's full SHA-256 is checked on extraction).

/// Where a file comes from, which decides its cache folder and licence note.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `download.pytorch.org`: cached where torch.hub caches (`$TORCH_HOME/hub/checkpoints`).
    Torchvision,
    /// Ultralytics' GitHub release assets: cached in ferrovis' own cache folder.
    Ultralytics,
    /// A member of LinearStyleTransfer's `models.zip` (Li et al., CVPR 2019): cached in
    /// ferrovis' own cache folder.
    LinearStyleTransfer,
}

/// A file that is published only inside an archive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Member {
    /// The archive's file name while it is downloaded (the URL does not end in one).
    pub archive: &'static str,
    /// The member's file name inside the archive (in whatever folder).
    pub file_name: &'static str,
    /// The member's SHA-256, lower-case hex.
    pub sha256: &'static str,
}

/// One named weight file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Entry {
    /// The architecture (`resnet50`), or the file name for Ultralytics (`yolov8n.pt`).
    pub arch: &'static str,
    /// torchvision's weight-enum member (`IMAGENET1K_V2`); empty for Ultralytics.
    pub weight: &'static str,
    /// torchvision's `DEFAULT` for the architecture (what the bare name means).
    pub default: bool,
    /// Where to download it.
    pub url: &'static str,
    /// Approximate size in MB (torchvision's `_file_size`; 0 when unknown).
    pub size_mb: f64,
    /// Where it comes from.
    pub source: Source,
    /// When the URL is an archive: the member that is the weights file.
    pub member: Option<Member>,
}

impl Entry {
    /// The file name: the URL's last segment (torchvision's carry the first hex digits of the
    /// file's SHA-256, as torch.hub expects).
    pub fn file_name(&self) -> &'static str {
        match self.member {
            Some(m) => m.file_name,
            None => self.url.rsplit('/').next().unwrap_or(self.url),
        }
    }

    /// The SHA-256 prefix in the file name (`resnet50-0676ba61.pth` → `0676ba61`), which
    /// torch.hub checks; `None` for files that carry none.
    pub fn sha256_prefix(&self) -> Option<&'static str> {
        if self.source != Source::Torchvision {
            return None;
        }
        let stem = self.file_name().split('.').next()?;
        let (_, hash) = stem.rsplit_once('-')?;
        (hash.len() >= 6 && hash.chars().all(|c| c.is_ascii_hexdigit())).then_some(hash)
    }

    /// `arch:WEIGHT`, or the file name for Ultralytics.
    pub fn name(&self) -> String {
        match self.source {
            Source::Torchvision => format!("{}:{}", self.arch, self.weight),
            Source::Ultralytics | Source::LinearStyleTransfer => self.arch.to_string(),
        }
    }

    /// The terms the weights come with, as their publishers state them.
    pub fn licence(&self) -> &'static str {
        match self.source {
            Source::Torchvision => {
                "torchvision (BSD-3-Clause); the training data's terms (ImageNet, COCO) may apply"
            }
            Source::Ultralytics => "Ultralytics (AGPL-3.0)",
            Source::LinearStyleTransfer => "LinearStyleTransfer (BSD-2-Clause)",
        }
    }
}

const fn e(
    arch: &'static str,
    weight: &'static str,
    default: bool,
    url: &'static str,
    size_mb: f64,
) -> Entry {
    Entry {
        arch,
        weight,
        default,
        url,
        size_mb,
        source: Source::Torchvision,
        member: None,
    }
}

const fn yolo(file: &'static str, url: &'static str) -> Entry {
    Entry {
        arch: file,
        weight: "",
        default: true,
        url,
        size_mb: 0.0,
        source: Source::Ultralytics,
        member: None,
    }
}

/// LinearStyleTransfer's pre-trained models, as its README links them (Google Drive file
/// `1H9T5rfXGlGCUh04DGkpkMFbVnmscJAbs`, `models.zip`), in the direct-download form that skips
/// Drive's "cannot scan this file for viruses" page (`confirm=t`).
const LINEAR_STYLE_TRANSFER_ZIP: &str = "https://drive.usercontent.google.com/download?\
    id=1H9T5rfXGlGCUh04DGkpkMFbVnmscJAbs&export=download&confirm=t";

const fn linear_style_transfer(
    name: &'static str,
    file_name: &'static str,
    sha256: &'static str,
    size_mb: f64,
) -> Entry {
    Entry {
        arch: name,
        weight: "",
        default: true,
        url: LINEAR_STYLE_TRANSFER_ZIP,
        size_mb,
        source: Source::LinearStyleTransfer,
        member: Some(Member {
            archive: "LinearStyleTransfer-models.zip",
            file_name,
            sha256,
        }),
    }
}

/// Every entry: torchvision's weights of the architectures ferrovis builds (generated from
/// torchvision 0.28's weight enums), then YOLOv8's release assets, then the style commands'
/// relu3_1 encoder and decoder.
pub const ENTRIES: &[Entry] = &[
    e(
        "resnet18",
        "IMAGENET1K_V1",
        true,
        "https://download.pytorch.org/models/resnet18-f37072fd.pth",
        44.661,
    ),
    e(
        "resnet34",
        "IMAGENET1K_V1",
        true,
        "https://download.pytorch.org/models/resnet34-b627a593.pth",
        83.275,
    ),
    e(
        "resnet50",
        "IMAGENET1K_V1",
        false,
        "https://download.pytorch.org/models/resnet50-0676ba61.pth",
        97.781,
    ),
    e(
        "resnet50",
        "IMAGENET1K_V2",
        true,
        "https://download.pytorch.org/models/resnet50-11ad3fa6.pth",
        97.79,
    ),
    e(
        "resnet101",
        "IMAGENET1K_V1",
        false,
        "https://download.pytorch.org/models/resnet101-63fe2227.pth",
        170.511,
    ),
    e(
        "resnet101",
        "IMAGENET1K_V2",
        true,
        "https://download.pytorch.org/models/resnet101-cd907fc2.pth",
        170.53,
    ),
    e(
        "resnet152",
        "IMAGENET1K_V1",
        false,
        "https://download.pytorch.org/models/resnet152-394f9c45.pth",
        230.434,
    ),
    e(
        "resnet152",
        "IMAGENET1K_V2",
        true,
        "https://download.pytorch.org/models/resnet152-f82ba261.pth",
        230.474,
    ),
    e(
        "vgg11",
        "IMAGENET1K_V1",
        true,
        "https://download.pytorch.org/models/vgg11-8a719046.pth",
        506.84,
    ),
    e(
        "vgg11_bn",
        "IMAGENET1K_V1",
        true,
        "https://download.pytorch.org/models/vgg11_bn-6002323d.pth",
        506.881,
    ),
    e(
        "vgg13",
        "IMAGENET1K_V1",
        true,
        "https://download.pytorch.org/models/vgg13-19584684.pth",
        507.545,
    ),
    e(
        "vgg13_bn",
        "IMAGENET1K_V1",
        true,
        "https://download.pytorch.org/models/vgg13_bn-abd245e5.pth",
        507.59,
    ),
    e(
        "vgg16",
        "IMAGENET1K_V1",
        true,
        "https://download.pytorch.org/models/vgg16-397923af.pth",
        527.796,
    ),
    e(
        "vgg16",
        "IMAGENET1K_FEATURES",
        false,
        "https://download.pytorch.org/models/vgg16_features-amdegroot-88682ab5.pth",
        527.802,
    ),
    e(
        "vgg16_bn",
        "IMAGENET1K_V1",
        true,
        "https://download.pytorch.org/models/vgg16_bn-6c64b313.pth",
        527.866,
    ),
    e(
        "vgg19",
        "IMAGENET1K_V1",
        true,
        "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
        548.051,
    ),
    e(
        "vgg19_bn",
        "IMAGENET1K_V1",
        true,
        "https://download.pytorch.org/models/vgg19_bn-c79401a0.pth",
        548.143,
    ),
    e(
        "efficientnet_b0",
        "IMAGENET1K_V1",
        true,
        "https://download.pytorch.org/models/efficientnet_b0_rwightman-7f5810bc.pth",
        20.451,
    ),
    e(
        "efficientnet_b1",
        "IMAGENET1K_V1",
        false,
        "https://download.pytorch.org/models/efficientnet_b1_rwightman-bac287d4.pth",
        30.134,
    ),
    e(
        "efficientnet_b1",
        "IMAGENET1K_V2",
        true,
        "https://download.pytorch.org/models/efficientnet_b1-c27df63c.pth",
        30.136,
    ),
    e(
        "efficientnet_b2",
        "IMAGENET1K_V1",
        true,
        "https://download.pytorch.org/models/efficientnet_b2_rwightman-c35c1473.pth",
        35.174,
    ),
    e(
        "efficientnet_b3",
        "IMAGENET1K_V1",
        true,
        "https://download.pytorch.org/models/efficientnet_b3_rwightman-b3899882.pth",
        47.184,
    ),
    e(
        "efficientnet_b4",
        "IMAGENET1K_V1",
        true,
        "https://download.pytorch.org/models/efficientnet_b4_rwightman-23ab8bcd.pth",
        74.489,
    ),
    e(
        "efficientnet_b5",
        "IMAGENET1K_V1",
        true,
        "https://download.pytorch.org/models/efficientnet_b5_lukemelas-1a07897c.pth",
        116.864,
    ),
    e(
        "efficientnet_b6",
        "IMAGENET1K_V1",
        true,
        "https://download.pytorch.org/models/efficientnet_b6_lukemelas-24a108a5.pth",
        165.362,
    ),
    e(
        "efficientnet_b7",
        "IMAGENET1K_V1",
        true,
        "https://download.pytorch.org/models/efficientnet_b7_lukemelas-c5b4e57e.pth",
        254.675,
    ),
    e(
        "mobilenet_v2",
        "IMAGENET1K_V1",
        false,
        "https://download.pytorch.org/models/mobilenet_v2-b0353104.pth",
        13.555,
    ),
    e(
        "mobilenet_v2",
        "IMAGENET1K_V2",
        true,
        "https://download.pytorch.org/models/mobilenet_v2-7ebf99e0.pth",
        13.598,
    ),
    e(
        "mobilenet_v3_large",
        "IMAGENET1K_V1",
        false,
        "https://download.pytorch.org/models/mobilenet_v3_large-8738ca79.pth",
        21.114,
    ),
    e(
        "mobilenet_v3_large",
        "IMAGENET1K_V2",
        true,
        "https://download.pytorch.org/models/mobilenet_v3_large-5c1a4163.pth",
        21.107,
    ),
    e(
        "mobilenet_v3_small",
        "IMAGENET1K_V1",
        true,
        "https://download.pytorch.org/models/mobilenet_v3_small-047dcff4.pth",
        9.829,
    ),
    e(
        "fasterrcnn_resnet50_fpn",
        "COCO_V1",
        true,
        "https://download.pytorch.org/models/fasterrcnn_resnet50_fpn_coco-258fb6c6.pth",
        159.743,
    ),
    e(
        "fasterrcnn_resnet50_fpn_v2",
        "COCO_V1",
        true,
        "https://download.pytorch.org/models/fasterrcnn_resnet50_fpn_v2_coco-dd69338a.pth",
        167.104,
    ),
    e(
        "fasterrcnn_mobilenet_v3_large_fpn",
        "COCO_V1",
        true,
        "https://download.pytorch.org/models/fasterrcnn_mobilenet_v3_large_fpn-fb6a3cc7.pth",
        74.239,
    ),
    e(
        "fasterrcnn_mobilenet_v3_large_320_fpn",
        "COCO_V1",
        true,
        "https://download.pytorch.org/models/fasterrcnn_mobilenet_v3_large_320_fpn-907ea3f9.pth",
        74.239,
    ),
    e(
        "ssd300_vgg16",
        "COCO_V1",
        true,
        "https://download.pytorch.org/models/ssd300_vgg16_coco-b556d3b4.pth",
        135.988,
    ),
    e(
        "ssdlite320_mobilenet_v3_large",
        "COCO_V1",
        true,
        "https://download.pytorch.org/models/ssdlite320_mobilenet_v3_large_coco-a79551df.pth",
        13.418,
    ),
    e(
        "deeplabv3_resnet50",
        "COCO_WITH_VOC_LABELS_V1",
        true,
        "https://download.pytorch.org/models/deeplabv3_resnet50_coco-cd0a2569.pth",
        160.515,
    ),
    e(
        "deeplabv3_resnet101",
        "COCO_WITH_VOC_LABELS_V1",
        true,
        "https://download.pytorch.org/models/deeplabv3_resnet101_coco-586e9e4e.pth",
        233.217,
    ),
    e(
        "deeplabv3_mobilenet_v3_large",
        "COCO_WITH_VOC_LABELS_V1",
        true,
        "https://download.pytorch.org/models/deeplabv3_mobilenet_v3_large-fc3c493d.pth",
        42.301,
    ),
    yolo(
        "yolov8n.pt",
        "https://github.com/ultralytics/assets/releases/download/v8.4.0/yolov8n.pt",
    ),
    yolo(
        "yolov8s.pt",
        "https://github.com/ultralytics/assets/releases/download/v8.4.0/yolov8s.pt",
    ),
    yolo(
        "yolov8m.pt",
        "https://github.com/ultralytics/assets/releases/download/v8.4.0/yolov8m.pt",
    ),
    yolo(
        "yolov8l.pt",
        "https://github.com/ultralytics/assets/releases/download/v8.4.0/yolov8l.pt",
    ),
    yolo(
        "yolov8x.pt",
        "https://github.com/ultralytics/assets/releases/download/v8.4.0/yolov8x.pt",
    ),
    yolo(
        "yolo11n.pt",
        "https://github.com/ultralytics/assets/releases/download/v8.4.0/yolo11n.pt",
    ),
    yolo(
        "yolo11s.pt",
        "https://github.com/ultralytics/assets/releases/download/v8.4.0/yolo11s.pt",
    ),
    yolo(
        "yolo11m.pt",
        "https://github.com/ultralytics/assets/releases/download/v8.4.0/yolo11m.pt",
    ),
    yolo(
        "yolo11l.pt",
        "https://github.com/ultralytics/assets/releases/download/v8.4.0/yolo11l.pt",
    ),
    yolo(
        "yolo11x.pt",
        "https://github.com/ultralytics/assets/releases/download/v8.4.0/yolo11x.pt",
    ),
    yolo(
        "yolo26n.pt",
        "https://github.com/ultralytics/assets/releases/download/v8.4.0/yolo26n.pt",
    ),
    yolo(
        "yolo26s.pt",
        "https://github.com/ultralytics/assets/releases/download/v8.4.0/yolo26s.pt",
    ),
    yolo(
        "yolo26m.pt",
        "https://github.com/ultralytics/assets/releases/download/v8.4.0/yolo26m.pt",
    ),
    yolo(
        "yolo26l.pt",
        "https://github.com/ultralytics/assets/releases/download/v8.4.0/yolo26l.pt",
    ),
    yolo(
        "yolo26x.pt",
        "https://github.com/ultralytics/assets/releases/download/v8.4.0/yolo26x.pt",
    ),
    // The hashes are those of the files `make validate` uses (its test compares them).
    linear_style_transfer(
        "vgg_r31",
        "vgg_r31.pth",
        "f9bffd632f87360d4de1bcd1627246d2b41a6278aa46e1c1fe7212796b646b7e",
        2.2,
    ),
    linear_style_transfer(
        "dec_r31",
        "dec_r31.pth",
        "3ccc3bbc97a15e1d002d0b13523543c518dda2d0346c8f4d39c1d381d8490f68",
        2.2,
    ),
];

/// The entry `spec` names: `arch` (its DEFAULT), `arch:WEIGHT` (`DEFAULT` allowed), or an
/// Ultralytics file name. `None` when it names none.
pub fn lookup(spec: &str) -> Option<&'static Entry> {
    let (arch, weight) = spec.split_once(':').unwrap_or((spec, "DEFAULT"));
    ENTRIES
        .iter()
        .find(|e| e.arch == arch && (e.weight == weight || (weight == "DEFAULT" && e.default)))
}

/// The names closest to `spec` (same architecture, or sharing its start), for error messages.
pub fn suggestions(spec: &str) -> Vec<String> {
    let arch = spec.split(':').next().unwrap_or(spec);
    let mut v: Vec<String> = ENTRIES
        .iter()
        .filter(|e| e.arch == arch)
        .map(Entry::name)
        .collect();
    if v.is_empty() {
        let head: String = arch.chars().take(4).collect();
        v = ENTRIES
            .iter()
            .filter(|e| !head.is_empty() && e.arch.starts_with(&head))
            .map(Entry::name)
            .collect();
    }
    v.truncate(6);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_to_torchvision_defaults_and_named_weights() {
        assert_eq!(lookup("resnet50").map(|e| e.weight), Some("IMAGENET1K_V2"));
        assert_eq!(
            lookup("resnet50:IMAGENET1K_V1").map(Entry::file_name),
            Some("resnet50-0676ba61.pth")
        );
        assert_eq!(
            lookup("resnet50:IMAGENET1K_V1").and_then(Entry::sha256_prefix),
            Some("0676ba61")
        );
        assert_eq!(
            lookup("yolov8n.pt").map(|e| e.source),
            Some(Source::Ultralytics)
        );
        assert_eq!(lookup("yolov8n.pt").and_then(Entry::sha256_prefix), None);
        assert!(lookup("resnet50:IMAGENET9K").is_none());
        assert!(suggestions("resnet50:IMAGENET9K").contains(&"resnet50:IMAGENET1K_V1".into()));
        // Exactly one DEFAULT per torchvision architecture.
        for e in ENTRIES.iter().filter(|e| e.source == Source::Torchvision) {
            let defaults = ENTRIES
                .iter()
                .filter(|x| x.arch == e.arch && x.default)
                .count();
            assert_eq!(defaults, 1, "{}", e.arch);
        }
    }
}
