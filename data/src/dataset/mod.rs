//! Data set formats: scanning folders and label files into lists of samples, with a report of
//! everything skipped, and the [`Dataset`](crate::loader::Dataset) implementations that decode
//! and augment them for the loader.

pub mod classification;
pub mod detection;
pub mod report;
pub mod segmentation;
pub mod semantic_yaml;
mod yaml_file;

pub use classification::{
    csv_list, image_folder, ClassificationBatch, ClassificationData, ClassificationDataset,
    ClassificationItem,
};
pub use detection::{
    scan_coco, scan_voc, scan_yolo, DatasetYaml, DetectionBatch, DetectionData, DetectionDataset,
    DetectionItem, DetectionTarget, YoloBox,
};
pub use report::{Problem, ScanOptions, ScanReport};
pub use segmentation::{
    scan_pairs, ClassRemap, MaskEncoding, SegmentResize, SegmentationBatch, SegmentationData,
    SegmentationDataset, SegmentationItem,
};
pub use semantic_yaml::{SemanticYaml, SplitFolders};

/// The names given to classes a model or data set does not name: `class0`, `class1`, … (one
/// spelling for every task, as Ultralytics writes them).
pub fn default_class_names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("class{i}")).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn default_names_count_from_zero() {
        assert_eq!(super::default_class_names(2), ["class0", "class1"]);
    }
}
