//! Every data set format on small generated folders, with every kind of bad input: the bad file
//! or line is skipped, counted and named (file and line) in the report, or stops a strict scan
//! with that message; good samples keep their own labels.

use std::fs;
use std::path::{Path, PathBuf};

use ferrovis_data::dataset::{
    csv_list, image_folder, scan_coco, scan_pairs, scan_voc, DatasetYaml, MaskEncoding, ScanOptions,
};
use ferrovis_data::decode::{write_mask, write_rgb};
use ferrovis_data::{Mask, RgbImage};

const LENIENT: ScanOptions = ScanOptions { strict: false };
const STRICT: ScanOptions = ScanOptions { strict: true };

fn image(path: &Path, w: usize, h: usize) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut img = RgbImage::filled(w, h, [90, 140, 200]);
    img.set_pixel(0, 0, [1, 2, 3]);
    write_rgb(path, &img).unwrap();
}

fn text(path: &Path, body: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, body).unwrap();
}

fn truncated_jpeg(path: &Path) {
    image(path, 64, 48);
    let bytes = fs::read(path).unwrap();
    fs::write(path, &bytes[..bytes.len() / 2]).unwrap();
}

fn names(paths: &[PathBuf]) -> Vec<String> {
    paths
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn image_folder_skips_non_images_and_reports_bad_images() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    image(&root.join("cat/a.jpg"), 40, 30);
    image(&root.join("cat/nested/b.png"), 40, 30);
    image(&root.join("dog/c.bmp"), 40, 30);
    text(&root.join("dog/notes.txt"), "not an image");
    text(&root.join("dog/broken.jpg"), "this is not a JPEG");
    truncated_jpeg(&root.join("dog/half.jpg"));
    text(&root.join("dog/empty.png"), "");
    let data = image_folder(root, LENIENT).unwrap();
    assert_eq!(data.classes, ["cat", "dog"]);
    let got: Vec<(String, usize)> = data
        .items
        .iter()
        .map(|i| {
            (
                i.path.file_name().unwrap().to_string_lossy().into_owned(),
                i.label,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("a.jpg".into(), 0),
            ("b.png".into(), 0),
            ("c.bmp".into(), 1)
        ]
    );
    assert_eq!(names(&data.report.non_images), ["notes.txt"]);
    let problems: Vec<String> = data.report.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(
        problems[0].contains("broken.jpg") && problems[0].contains("header"),
        "{problems:?}"
    );
    assert!(
        problems[1].ends_with("empty.png: empty file"),
        "{problems:?}"
    );
    // Each problem names its file once, then says what is wrong.
    for (p, name) in problems.iter().zip(["broken.jpg", "empty.png", "half.jpg"]) {
        assert_eq!(p.matches(name).count(), 1, "{p}");
    }
    assert!(
        problems[2].contains("half.jpg") && problems[2].contains("truncated JPEG"),
        "{problems:?}"
    );
    let summary = data.report.to_string();
    assert!(
        summary.contains("3 skipped") && summary.contains("1 non-image"),
        "{summary}"
    );

    let err = image_folder(root, STRICT).unwrap_err().to_string();
    assert!(
        err.contains("broken.jpg") && err.contains("strict"),
        "{err}"
    );
    let err = image_folder(&root.join("missing"), LENIENT)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("missing") && err.contains("not a directory"),
        "{err}"
    );
}

#[test]
fn csv_lists_name_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    image(&root.join("img/a.png"), 20, 20);
    image(&root.join("img/b.png"), 20, 20);
    text(
        &root.join("list.csv"),
        "path,label\nimg/a.png,zebra\nimg/b.png,ant\nimg/a.png\nimg/c.png,ant\nimg/b.png,ant,extra\nimg/a.png,bee\n",
    );
    let classes = ["ant".to_string(), "bee".to_string()];
    let data = csv_list(&root.join("list.csv"), Some(&classes), LENIENT).unwrap();
    let labels: Vec<usize> = data.items.iter().map(|i| i.label).collect();
    assert_eq!(labels, [0, 1]);
    assert_eq!(
        names(
            &data
                .items
                .iter()
                .map(|i| i.path.clone())
                .collect::<Vec<_>>()
        ),
        ["b.png", "a.png"]
    );
    let problems: Vec<String> = data.report.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(problems.len(), 4, "{problems:?}");
    // In line order as they are found: field counts first (lines 4, 6), then labels and files.
    assert!(problems
        .iter()
        .any(|p| p.contains("list.csv:4") && p.contains("expected 2 fields")));
    assert!(problems
        .iter()
        .any(|p| p.contains("list.csv:6") && p.contains("found 3")));
    assert!(problems
        .iter()
        .any(|p| p.contains("list.csv:2") && p.contains("unknown class \"zebra\"")));
    assert!(problems
        .iter()
        .any(|p| p.contains("list.csv:5") && p.contains("c.png")));
    // Without a class list, classes are the sorted distinct labels.
    let data = csv_list(&root.join("list.csv"), None, LENIENT).unwrap();
    assert_eq!(data.classes, ["ant", "bee", "zebra"]);
}

#[test]
fn yolo_labels_background_orphans_and_every_bad_line() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let img = |n: &str| image(&root.join(format!("images/train/{n}.png")), 100, 50);
    let lbl = |n: &str, body: &str| text(&root.join(format!("labels/train/{n}.txt")), body);
    for n in ["a", "b", "c", "d", "e", "f", "g", "h"] {
        img(n);
    }
    lbl("a", "0 0.5 0.5 0.2 0.4\n2 0.1 0.1 0.1 0.1\n\n");
    // b: no label file = background
    lbl("c", "0 0.5 0.5 0.2\n");
    lbl("d", "0 0.5 0.5 0.2 0.4\n1 0.5 x 0.2 0.4\n");
    lbl("e", "3 0.5 0.5 0.2 0.4\n");
    lbl("f", "1 1.2 0.5 0.2 0.4\n");
    lbl("g", "1 0.5 0.5 0.0 0.4\n");
    lbl("h", "2 0.1 0.2 0.3 0.2 0.2 0.6\n");
    lbl("orphan", "0 0.5 0.5 0.1 0.1\n");
    text(
        &root.join("data.yaml"),
        "path: .\ntrain: images/train\nval: [images/train]\nnames: [ant, bee, wasp]\n",
    );
    let yaml = DatasetYaml::read(&root.join("data.yaml")).unwrap();
    assert_eq!(yaml.names, ["ant", "bee", "wasp"]);
    let data = yaml.scan("train", LENIENT).unwrap();
    let kept: Vec<String> = names(
        &data
            .items
            .iter()
            .map(|i| i.path.clone())
            .collect::<Vec<_>>(),
    );
    assert_eq!(kept, ["a.png", "b.png", "h.png"]);
    assert_eq!(data.num_boxes(), 3);
    assert_eq!(data.num_background(), 1);
    assert_eq!(data.instances_per_class(), [1, 0, 2]);
    assert_eq!(data.items[0].boxes[1].class, 2);
    assert_eq!(data.items[0].boxes[1].cxcywh, [0.1, 0.1, 0.1, 0.1]);
    // The polygon's bounding box: x 0.1..0.3, y 0.2..0.6.
    let b = data.items[2].boxes[0].cxcywh;
    assert!(
        (b[0] - 0.2).abs() < 1e-6
            && (b[1] - 0.4).abs() < 1e-6
            && (b[2] - 0.2).abs() < 1e-6
            && (b[3] - 0.4).abs() < 1e-6
    );
    let problems: Vec<String> = data.report.problems.iter().map(|p| p.to_string()).collect();
    let expect = [
        ("c.txt:1", "expected 5 fields"),
        ("d.txt:2", "not a number: \"x\""),
        (
            "e.txt:1",
            "class id 3 is not below the number of classes (3)",
        ),
        ("f.txt:1", "outside [0, 1]"),
        ("g.txt:1", "zero area"),
    ];
    assert_eq!(problems.len(), expect.len(), "{problems:?}");
    for ((location, reason), got) in expect.iter().zip(&problems) {
        assert!(
            got.contains(location) && got.contains(reason),
            "{got} should name {location}: {reason}"
        );
    }
    assert_eq!(data.report.notes.len(), 1);
    assert!(data.report.notes[0]
        .to_string()
        .contains("orphan.txt: label file has no image"));
    let err = yaml.scan("train", STRICT).unwrap_err().to_string();
    assert!(err.contains("c.txt:1") && err.contains("strict"), "{err}");

    // The most common layout mistake: labels somewhere else. The error says where we looked.
    let other = tempfile::tempdir().unwrap();
    image(&other.path().join("pics/train/x.png"), 10, 10);
    text(
        &other.path().join("labels/train/x.txt"),
        "0 0.5 0.5 0.1 0.1\n",
    );
    text(
        &other.path().join("d.yaml"),
        "train: pics/train\nval: pics/train\nnames: {0: a}\n",
    );
    let err = DatasetYaml::read(&other.path().join("d.yaml"))
        .unwrap()
        .scan("val", LENIENT)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no labels found") && err.contains("pics/train"),
        "{err}"
    );

    // YAML mistakes name the key.
    text(
        &root.join("bad1.yaml"),
        "train: images/train\nval: images/train\n",
    );
    let err = DatasetYaml::read(&root.join("bad1.yaml"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bad1.yaml") && err.contains("`names`: missing"),
        "{err}"
    );
    text(
        &root.join("bad2.yaml"),
        "train: images/train\nval: images/train\nnc: 2\nnames: {0: a, 1: b, 2: c}\n",
    );
    let err = DatasetYaml::read(&root.join("bad2.yaml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("`nc`") && err.contains("3"), "{err}");
    text(
        &root.join("bad3.yaml"),
        "train: images/train\nval: [unclosed\nnames: [a]\n",
    );
    let err = DatasetYaml::read(&root.join("bad3.yaml"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bad3.yaml:") && err.contains("invalid YAML"),
        "{err}"
    );
}

/// COCO JSON: categories by id become classes 0…, boxes `[x, y, w, h]` in pixels become the
/// same normalised boxes as YOLO labels, crowd boxes are left out, images without annotations
/// are background; a missing image, a box outside its image, an unknown category or an unknown
/// image id is named by its JSON path and its image skipped; invalid JSON is refused with its
/// line and column; a dataset YAML takes COCO files as splits.
#[test]
fn coco_json_boxes_and_bad_annotations() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for name in ["a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg"] {
        image(&root.join("images/train2017").join(name), 200, 100);
    }
    let json = r#"{
  "images": [
    {"id": 1, "file_name": "a.jpg", "width": 200, "height": 100},
    {"id": 2, "file_name": "b.jpg", "width": 200, "height": 100},
    {"id": 3, "file_name": "c.jpg", "width": 200, "height": 100},
    {"id": 4, "file_name": "d.jpg", "width": 200, "height": 100},
    {"id": 5, "file_name": "e.jpg", "width": 200, "height": 100},
    {"id": 6, "file_name": "gone.jpg", "width": 200, "height": 100}
  ],
  "annotations": [
    {"id": 1, "image_id": 1, "category_id": 18, "bbox": [20, 10, 40, 40], "iscrowd": 0},
    {"id": 2, "image_id": 1, "category_id": 17, "bbox": [100, 0, 100.4, 100], "iscrowd": 0},
    {"id": 3, "image_id": 1, "category_id": 17, "bbox": [0, 0, 200, 100], "iscrowd": 1},
    {"id": 4, "image_id": 2, "category_id": 99, "bbox": [1, 1, 4, 4], "iscrowd": 0},
    {"id": 5, "image_id": 3, "category_id": 17, "bbox": [150, 50, 80, 20], "iscrowd": 0},
    {"id": 6, "image_id": 77, "category_id": 17, "bbox": [1, 1, 4, 4], "iscrowd": 0}
  ],
  "categories": [{"id": 18, "name": "dog"}, {"id": 17, "name": "cat"}]
}"#;
    let file = root.join("annotations/instances_train2017.json");
    text(&file, json);
    let data = scan_coco(&file, root, None, LENIENT).unwrap();
    assert_eq!(data.names, ["cat", "dog"]);
    assert_eq!(
        names(
            &data
                .items
                .iter()
                .map(|i| i.path.clone())
                .collect::<Vec<_>>()
        ),
        ["a.jpg", "d.jpg", "e.jpg"]
    );
    let boxes: Vec<(usize, [f32; 4])> = data.items[0]
        .boxes
        .iter()
        .map(|b| (b.class, b.cxcywh))
        .collect();
    // The second box reaches 0.4 px past the image: clipped, as tools' rounding leaves it.
    assert_eq!(
        boxes,
        [(1, [0.2, 0.3, 0.2, 0.4]), (0, [0.75, 0.5, 0.5, 1.0])]
    );
    assert!(data.items[1].boxes.is_empty() && data.items[2].boxes.is_empty());
    let problems: Vec<String> = data.report.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(problems.len(), 4, "{problems:?}");
    for expected in [
        "images[5]: file_name \"gone.jpg\" not found",
        "annotations[3].category_id Some(99): not in `categories`",
        "annotations[4].bbox [150, 50, 80, 20]: empty or outside the 200×100 image",
        "annotations[5].image_id 77: no such image",
    ] {
        assert!(
            problems
                .iter()
                .any(|p| p.contains(expected) && p.contains("instances_train2017.json")),
            "{expected} not in {problems:?}"
        );
    }
    let err = scan_coco(&file, root, None, STRICT)
        .unwrap_err()
        .to_string();
    assert!(err.contains("gone.jpg") && err.contains("strict"), "{err}");
    // Names that disagree with the categories, and broken JSON.
    let err = scan_coco(&file, root, Some(&["dog".into(), "cat".into()]), LENIENT)
        .unwrap_err()
        .to_string();
    assert!(err.contains("`categories` are [\"cat\", \"dog\"]"), "{err}");
    let broken = root.join("annotations/broken.json");
    text(&broken, "{\n  \"images\": [\n    {\"id\": 1,,}\n  ]\n}");
    let err = scan_coco(&broken, root, None, LENIENT)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("broken.json")
            && err.contains("line 3")
            && err.contains("invalid JSON at column"),
        "{err}"
    );
    // A dataset YAML with COCO splits (names from the categories).
    text(&root.join("coco.yaml"), "path: .\ntrain: annotations/instances_train2017.json\nval: annotations/instances_train2017.json\n");
    let yaml = DatasetYaml::read(&root.join("coco.yaml")).unwrap();
    assert_eq!(yaml.names, ["cat", "dog"]);
    let train = yaml.scan("train", LENIENT).unwrap();
    assert_eq!(train.items.len(), 3);
}

#[test]
fn voc_xml_boxes_and_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    image(&root.join("JPEGImages/one.jpg"), 200, 100);
    image(&root.join("JPEGImages/two.jpg"), 200, 100);
    let xml = |file: &str, objects: &str| {
        format!("<annotation><filename>{file}</filename><size><width>200</width><height>100</height><depth>3</depth></size>{objects}</annotation>")
    };
    let obj = |name: &str, b: [i32; 4]| {
        format!(
            "<object><name>{name}</name><difficult>0</difficult><bndbox><xmin>{}</xmin><ymin>{}</ymin><xmax>{}</xmax><ymax>{}</ymax></bndbox></object>",
            b[0], b[1], b[2], b[3]
        )
    };
    text(
        &root.join("Annotations/one.xml"),
        &xml(
            "one.jpg",
            &(obj("dog", [20, 10, 60, 50]) + &obj("cat", [100, 0, 200, 100])),
        ),
    );
    text(
        &root.join("Annotations/two.xml"),
        &xml("two.jpg", &obj("horse", [1, 1, 5, 5])),
    );
    text(
        &root.join("Annotations/three.xml"),
        "<annotation>\n<filename>three.jpg</filename>\n<object>\n</annotation>",
    );
    text(&root.join("Annotations/four.xml"), &xml("missing.jpg", ""));
    let classes = ["cat".to_string(), "dog".to_string()];
    let data = scan_voc(root, None, Some(&classes), LENIENT).unwrap();
    assert_eq!(data.items.len(), 1);
    let boxes: Vec<(usize, [f32; 4])> = data.items[0]
        .boxes
        .iter()
        .map(|b| (b.class, b.cxcywh))
        .collect();
    assert_eq!(
        boxes,
        [(1, [0.2, 0.3, 0.2, 0.4]), (0, [0.75, 0.5, 0.5, 1.0])]
    );
    let problems: Vec<String> = data.report.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(
        problems
            .iter()
            .any(|p| p.contains("three.xml:") && p.contains("invalid XML")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("four.xml") && p.contains("missing.jpg")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("two.xml") && p.contains("unknown class \"horse\"")),
        "{problems:?}"
    );
    // Without a class list, every name found is a class.
    let data = scan_voc(root, None, None, LENIENT).unwrap();
    assert_eq!(data.names, ["cat", "dog", "horse"]);
    assert_eq!(data.items.len(), 2);
}

#[test]
fn segmentation_pairs_binary_index_and_bad_pairs() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mask = |name: &str, w: usize, h: usize, values: &[u8]| {
        let mut m = Mask::filled(w, h, values[0]);
        for (i, v) in m.data.iter_mut().enumerate() {
            *v = values[i % values.len()];
        }
        fs::create_dir_all(root.join("masks")).unwrap();
        write_mask(&root.join("masks").join(name), &m).unwrap();
    };
    image(&root.join("images/a.jpg"), 30, 20);
    image(&root.join("images/b.jpg"), 30, 20);
    image(&root.join("images/c.jpg"), 30, 20);
    mask("a.png", 30, 20, &[0, 255]);
    mask("b.png", 31, 20, &[0, 255]);
    mask("orphan.png", 30, 20, &[0]);
    let data = scan_pairs(
        &root.join("images"),
        &root.join("masks"),
        MaskEncoding::Auto,
        None,
        None,
        LENIENT,
    )
    .unwrap();
    assert_eq!(data.items.len(), 1);
    assert_eq!(data.encoding, MaskEncoding::Binary);
    assert_eq!(
        data.load_mask(&data.items[0]).unwrap().data[..4],
        [0, 1, 0, 1]
    );
    let problems: Vec<String> = data.report.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(problems.iter().any(|p| p.contains("b.png")
        && p.contains("mask is 31x20 but its image")
        && p.contains("30x20")));
    assert!(problems
        .iter()
        .any(|p| p.contains("c.jpg") && p.contains("no mask named c.*")));
    assert!(problems
        .iter()
        .any(|p| p.contains("orphan.png") && p.contains("no image")));
    let err = scan_pairs(
        &root.join("images"),
        &root.join("masks"),
        MaskEncoding::Auto,
        None,
        None,
        STRICT,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("strict"), "{err}");

    // Class-index masks: 255 is ignore, an index ≥ the class count is a problem.
    let dir2 = tempfile::tempdir().unwrap();
    let r2 = dir2.path();
    image(&r2.join("images/x.png"), 8, 8);
    image(&r2.join("images/y.png"), 8, 8);
    fs::create_dir_all(r2.join("masks")).unwrap();
    let mut m = Mask::filled(8, 8, 0);
    m.data[..3].copy_from_slice(&[1, 2, 255]);
    write_mask(&r2.join("masks/x.png"), &m).unwrap();
    m.data[0] = 7;
    write_mask(&r2.join("masks/y.png"), &m).unwrap();
    let data = scan_pairs(
        &r2.join("images"),
        &r2.join("masks"),
        MaskEncoding::Auto,
        None,
        Some(3),
        LENIENT,
    )
    .unwrap();
    assert_eq!(data.encoding, MaskEncoding::Index);
    assert_eq!(data.items.len(), 1);
    assert_eq!(
        data.classes_seen.iter().copied().collect::<Vec<_>>(),
        [0, 1, 2]
    );
    assert!(data.report.problems[0]
        .to_string()
        .contains("class index 7 is not below the number of classes (3)"));
    // A remap table turns sparse ids into contiguous classes; unmapped ids become 255.
    let remap = ferrovis_data::dataset::ClassRemap::contiguous(&[0, 2, 7]);
    let data = scan_pairs(
        &r2.join("images"),
        &r2.join("masks"),
        MaskEncoding::Index,
        Some(remap),
        None,
        LENIENT,
    )
    .unwrap();
    // x holds [1, 2, 255, 0, …]: 1 is not in the table; y holds [7, 2, 255, 0, …].
    let x = data.load_mask(&data.items[0]).unwrap();
    assert_eq!(x.data[..4], [255, 1, 255, 0]);
    let y = data.load_mask(&data.items[1]).unwrap();
    assert_eq!(y.data[..4], [2, 1, 255, 0]);
}

/// The dataset YAML ferrovis writes for its synthetic sets resolves to the same folders in
/// Ultralytics (its own `check_det_dataset`, run from another working directory) as in ferrovis,
/// so `yolo val data=shapes.yaml` works on them.
#[test]
fn synthetic_detection_yaml_resolves_the_same_in_ultralytics() {
    let dir = tempfile::tempdir().unwrap();
    let config = ferrovis_data::synthetic::ShapesConfig {
        image_size: 32,
        train: 2,
        val: 1,
        ..Default::default()
    };
    let yaml =
        ferrovis_data::synthetic::write_detection(&dir.path().join("shapes"), &config).unwrap();
    let ours = DatasetYaml::read(&yaml).unwrap();
    let out = ferrovis_tests::run_reference("ultralytics_yaml.py", &[yaml.as_os_str()]);
    let theirs: serde_json::Value =
        serde_json::from_str(out.trim().lines().last().unwrap()).unwrap();
    let real = |p: &Path| fs::canonicalize(p).unwrap().display().to_string();
    assert_eq!(theirs["train"], real(&ours.train[0]), "{out}");
    assert_eq!(theirs["val"], real(&ours.val[0]), "{out}");
    assert_eq!(
        real(&ours.train[0]),
        real(&yaml.parent().unwrap().join("images/train"))
    );
    assert_eq!(theirs["nc"], serde_json::json!(ours.names.len()));
    assert_eq!(theirs["names"], serde_json::json!(ours.names));
}
