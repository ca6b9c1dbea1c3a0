//! `make validate`: the real data sets in `../shared` load with the exact counts its README gives,
//! and every image decodes (CMYK and odd-mode JPEGs included) through the loader.

use ferrovis_data::dataset::{
    image_folder, scan_pairs, ClassificationDataset, DatasetYaml, MaskEncoding, ScanOptions,
    SegmentResize, SegmentationDataset,
};
use ferrovis_data::loader::{Loader, LoaderOptions, Sampler};
use ferrovis_data::transform::ClassifyTransform;
use ferrovis_tests::shared_dir;

#[test]
#[ignore = "needs ../shared (make validate)"]
fn validate_hymenoptera_counts_and_decodes() {
    let root = shared_dir().join("datasets/hymenoptera_data");
    let train = image_folder(&root.join("train"), ScanOptions::default()).unwrap();
    let val = image_folder(&root.join("val"), ScanOptions::default()).unwrap();
    assert_eq!(train.classes, ["ants", "bees"]);
    assert_eq!(train.items.len(), 244);
    assert_eq!(val.items.len(), 153);
    assert_eq!(train.class_counts(), [123, 121]);
    assert_eq!(val.class_counts(), [70, 83]);
    assert_eq!(train.report.non_images.len(), 1);
    assert!(train.report.non_images[0].ends_with("ants/imageNotFound.gif"));
    assert!(train.report.problems.is_empty(), "{}", train.report);

    // Every training image decodes and transforms: the loader reports no failure.
    let dataset = ClassificationDataset::new(train.items.clone(), ClassifyTransform::train(224));
    let loader = Loader::new(
        dataset,
        LoaderOptions {
            batch_size: 32,
            sampler: Sampler::Sequential,
            ..Default::default()
        },
    )
    .unwrap();
    let mut seen = 0;
    for batch in loader.epoch(0) {
        let batch = batch.unwrap();
        assert_eq!(batch.images.size()[1..], [3, 224, 224]);
        seen += batch.indices.len();
    }
    assert_eq!(seen, 244);
    assert!(loader.failures().is_empty(), "{:?}", loader.failures());
}

#[test]
#[ignore = "needs ../shared (make validate)"]
fn validate_coco128_yolo_counts() {
    let yaml = DatasetYaml::read(&shared_dir().join("datasets/coco128/coco128.yaml")).unwrap();
    assert_eq!(yaml.names.len(), 80);
    assert_eq!(yaml.names[0], "person");
    let train = yaml.scan("train", ScanOptions::default()).unwrap();
    assert_eq!(train.items.len(), 128);
    assert_eq!(train.num_boxes(), 929);
    assert_eq!(train.num_background(), 2);
    assert!(train.report.problems.is_empty(), "{}", train.report);
    let orphans: Vec<String> = train
        .report
        .notes
        .iter()
        .map(|n| n.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(orphans, ["000000000656.txt", "000000000659.txt"]);
    let val = yaml.scan("val", ScanOptions::default()).unwrap();
    assert_eq!(val.items.len(), 128);
}

#[test]
#[ignore = "needs ../shared (make validate)"]
fn validate_isbi_and_coco_masks() {
    let isbi = shared_dir().join("datasets/isbi2012_membrane/train");
    let data = scan_pairs(
        &isbi.join("image"),
        &isbi.join("label"),
        MaskEncoding::Auto,
        None,
        Some(2),
        ScanOptions { strict: true },
    )
    .unwrap();
    assert_eq!(data.items.len(), 30);
    assert_eq!(data.encoding, MaskEncoding::Binary);
    assert_eq!(
        data.classes_seen.iter().copied().collect::<Vec<_>>(),
        [0, 1]
    );
    let dataset = SegmentationDataset::new(data, SegmentResize::Original, [0.5; 3], [0.5; 3]);
    let loader = Loader::new(
        dataset,
        LoaderOptions {
            batch_size: 4,
            ..Default::default()
        },
    )
    .unwrap();
    let batch = loader.epoch(0).next().unwrap().unwrap();
    assert_eq!(batch.images.size(), [4, 3, 512, 512]);
    assert_eq!(batch.masks.size(), [4, 512, 512]);
    // Membrane (0) is the minority; cell interior (1) most of the image, as in the data set.
    let fg = f64::try_from(batch.masks.to_kind(tch::Kind::Float).mean(tch::Kind::Float)).unwrap();
    assert!((0.6..0.9).contains(&fg), "foreground fraction {fg}");

    // COCO panoptic ids are sparse (up to 200): without a remap they are class indices as stored.
    let coco = shared_dir().join("datasets/coco128");
    let data = scan_pairs(
        &coco.join("images/train2017"),
        &coco.join("masks/train2017"),
        MaskEncoding::Index,
        None,
        None,
        ScanOptions::default(),
    )
    .unwrap();
    assert_eq!(data.items.len(), 100);
    // The 28 images without a mask are reported by name.
    assert_eq!(data.report.problems.len(), 28, "{}", data.report);
    assert!(
        data.classes_seen.iter().any(|&c| c > 90),
        "panoptic stuff ids above 90 expected"
    );
}
