//! The loader and the synthetic shapes generator: same batches whatever the thread count, a new
//! order each epoch, failed samples skipped without shifting labels, and generated data sets that
//! load through the standard scanners with exact counts.

use std::fs;
use std::path::Path;

use ferrovis_data::dataset::{
    image_folder, scan_pairs, ClassificationDataset, DatasetYaml, DetectionDataset, MaskEncoding,
    ScanOptions, SegmentResize, SegmentationDataset,
};
use ferrovis_data::loader::{Loader, LoaderOptions, Sampler};
use ferrovis_data::synthetic::{self, ShapesConfig};
use ferrovis_data::transform::detect::DetectAugment;
use ferrovis_data::transform::segment::SegmentAugment;
use ferrovis_data::transform::{ClassifyTransform, ColorJitter};
use ferrovis_tests::tensor_sha256;

fn shapes(classes: &[&str], train: usize, val: usize) -> ShapesConfig {
    ShapesConfig {
        seed: 3,
        image_size: 64,
        train,
        val,
        classes: classes.iter().map(|c| c.to_string()).collect(),
        max_objects: 3,
    }
}

fn tree_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((
                    p.strip_prefix(dir).unwrap().display().to_string(),
                    fs::read(&p).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

fn classification_loader(
    root: &Path,
    workers: usize,
    batch_size: usize,
) -> Loader<ClassificationDataset> {
    let data = image_folder(root, ScanOptions::default()).unwrap();
    let transform = ClassifyTransform {
        color_jitter: ColorJitter {
            brightness: 0.3,
            contrast: 0.3,
            saturation: 0.3,
            hue: 0.05,
        },
        ..ClassifyTransform::train(48)
    };
    Loader::new(
        ClassificationDataset::new(data.items, transform),
        LoaderOptions {
            batch_size,
            workers,
            seed: 5,
            ..Default::default()
        },
    )
    .unwrap()
}

fn epoch_fingerprint(
    loader: &Loader<ClassificationDataset>,
    epoch: usize,
) -> Vec<(Vec<usize>, String, Vec<i64>)> {
    loader
        .epoch(epoch)
        .map(|b| {
            let b = b.unwrap();
            (
                b.indices,
                tensor_sha256(&b.images),
                Vec::<i64>::try_from(&b.labels).unwrap(),
            )
        })
        .collect()
}

#[test]
fn synthetic_sets_are_deterministic_and_load_with_exact_counts() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let c = tempfile::tempdir().unwrap();
    let cfg = shapes(&["circle", "star", "cross"], 4, 2);
    synthetic::write_classification(a.path(), &cfg).unwrap();
    synthetic::write_classification(b.path(), &cfg).unwrap();
    synthetic::write_classification(
        c.path(),
        &ShapesConfig {
            seed: 4,
            ..cfg.clone()
        },
    )
    .unwrap();
    assert_eq!(
        tree_bytes(a.path()),
        tree_bytes(b.path()),
        "same seed, same files"
    );
    assert_ne!(
        tree_bytes(a.path()),
        tree_bytes(c.path()),
        "another seed, other images"
    );
    let train = image_folder(&a.path().join("train"), ScanOptions { strict: true }).unwrap();
    assert_eq!(train.classes, ["circle", "cross", "star"]);
    assert_eq!(train.class_counts(), [4, 4, 4]);
    assert_eq!(
        image_folder(&a.path().join("val"), ScanOptions::default())
            .unwrap()
            .items
            .len(),
        6
    );

    // A class subset draws the same circles whatever else is in the set.
    let d = tempfile::tempdir().unwrap();
    synthetic::write_classification(d.path(), &shapes(&["circle"], 4, 2)).unwrap();
    assert_eq!(
        fs::read(d.path().join("train/circle/0002.png")).unwrap(),
        fs::read(a.path().join("train/circle/0002.png")).unwrap()
    );
    assert!(
        synthetic::write_classification(d.path(), &shapes(&["blob"], 1, 1))
            .unwrap_err()
            .to_string()
            .contains("unknown class \"blob\"")
    );

    let det = tempfile::tempdir().unwrap();
    let yaml =
        synthetic::write_detection(det.path(), &shapes(&["square", "triangle"], 10, 3)).unwrap();
    let yaml = DatasetYaml::read(&yaml).unwrap();
    assert_eq!(yaml.names, ["square", "triangle"]);
    let train = yaml.scan("train", ScanOptions { strict: true }).unwrap();
    assert_eq!(train.items.len(), 10);
    assert!(train.num_boxes() >= 10 && train.num_boxes() <= 30);
    assert_eq!(train.num_background(), 0);
    assert!(train.report.is_clean(), "{}", train.report);

    let seg = tempfile::tempdir().unwrap();
    synthetic::write_segmentation(seg.path(), &shapes(&["hexagon", "star"], 6, 2)).unwrap();
    let data = scan_pairs(
        &seg.path().join("train/images"),
        &seg.path().join("train/masks"),
        MaskEncoding::Index,
        None,
        Some(3),
        ScanOptions { strict: true },
    )
    .unwrap();
    assert_eq!(data.items.len(), 6);
    assert_eq!(
        data.classes_seen.iter().copied().collect::<Vec<_>>(),
        [0, 1, 2]
    );
    assert_eq!(
        fs::read_to_string(seg.path().join("classes.txt")).unwrap(),
        "background\nhexagon\nstar\n"
    );
}

#[test]
fn batches_are_identical_across_thread_counts_and_differ_across_epochs() {
    let dir = tempfile::tempdir().unwrap();
    synthetic::write_classification(dir.path(), &shapes(&["circle", "square", "star"], 7, 0))
        .unwrap();
    let root = dir.path().join("train");
    let one = epoch_fingerprint(&classification_loader(&root, 1, 4), 0);
    let two = epoch_fingerprint(&classification_loader(&root, 2, 4), 0);
    let four = epoch_fingerprint(&classification_loader(&root, 4, 4), 0);
    assert_eq!(one, two);
    assert_eq!(one, four);
    assert_eq!(
        one.len(),
        6,
        "21 images in batches of 4: 5 full and one of 1"
    );
    assert_eq!(one.last().unwrap().0.len(), 1);
    let loader = classification_loader(&root, 2, 4);
    let next = epoch_fingerprint(&loader, 1);
    assert_ne!(one[0].0, next[0].0, "a new shuffle each epoch");
    // Labels come from each sample's own file.
    let items = loader.dataset().items().to_vec();
    for (indices, _, labels) in one.iter().chain(&next) {
        let want: Vec<i64> = indices.iter().map(|&i| items[i].label as i64).collect();
        assert_eq!(*labels, want);
    }
    // Every sample once per epoch.
    let mut seen: Vec<usize> = next.iter().flat_map(|(i, _, _)| i.clone()).collect();
    seen.sort();
    assert_eq!(seen, (0..21).collect::<Vec<_>>());

    // drop_last, sequential and weighted orders.
    let data = image_folder(&root, ScanOptions::default()).unwrap();
    let make = |opts: LoaderOptions| {
        Loader::new(
            ClassificationDataset::new(data.items.clone(), ClassifyTransform::eval(32)),
            opts,
        )
        .unwrap()
    };
    let l = make(LoaderOptions {
        batch_size: 4,
        drop_last: true,
        sampler: Sampler::Sequential,
        ..Default::default()
    });
    assert_eq!(l.num_batches(), 5);
    let batches: Vec<Vec<usize>> = l.epoch(0).map(|b| b.unwrap().indices).collect();
    assert_eq!(batches.concat(), (0..20).collect::<Vec<_>>());
    let mut weights = vec![0.0; 21];
    weights[3] = 1.0;
    weights[17] = 3.0;
    let l = make(LoaderOptions {
        sampler: Sampler::Weighted(weights),
        seed: 1,
        ..Default::default()
    });
    let order: Vec<usize> = (0..50).flat_map(|e| l.order(e)).collect();
    assert!(order.iter().all(|&i| i == 3 || i == 17));
    let share = order.iter().filter(|&&i| i == 17).count() as f64 / order.len() as f64;
    assert!((share - 0.75).abs() < 0.04, "weight 3 of 4 drawn {share}");
    assert!(Loader::new(
        ClassificationDataset::new(data.items.clone(), ClassifyTransform::eval(32)),
        LoaderOptions {
            sampler: Sampler::Weighted(vec![1.0; 3]),
            ..Default::default()
        }
    )
    .is_err());
}

#[test]
fn a_file_that_disappears_is_skipped_and_named_without_shifting_labels() {
    let dir = tempfile::tempdir().unwrap();
    synthetic::write_classification(dir.path(), &shapes(&["circle", "triangle"], 5, 0)).unwrap();
    let loader = classification_loader(&dir.path().join("train"), 2, 3);
    let items = loader.dataset().items().to_vec();
    fs::remove_file(&items[2].path).unwrap();
    fs::write(&items[6].path, b"\x89PNG\r\n\x1a\n garbage that is no PNG").unwrap();
    let mut seen = Vec::new();
    for batch in loader.epoch(0) {
        let b = batch.unwrap();
        let labels = Vec::<i64>::try_from(&b.labels).unwrap();
        for (&i, &l) in b.indices.iter().zip(&labels) {
            assert_eq!(l, items[i].label as i64);
        }
        assert_eq!(b.images.size()[0] as usize, b.indices.len());
        seen.extend(b.indices);
    }
    seen.sort();
    assert_eq!(seen, [0, 1, 3, 4, 5, 7, 8, 9]);
    let failures = loader.failures();
    assert_eq!(failures.len(), 2);
    let text: Vec<String> = failures
        .iter()
        .map(|f| format!("{} {}", f.source.as_ref().unwrap().display(), f.message))
        .collect();
    assert!(
        text.iter()
            .any(|t| t.contains(&*items[2].path.to_string_lossy()) && t.contains("no such file")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|t| t.contains(&*items[6].path.to_string_lossy())),
        "{text:?}"
    );
}

#[test]
fn detection_and_segmentation_batches() {
    let dir = tempfile::tempdir().unwrap();
    let yaml =
        synthetic::write_detection(dir.path(), &shapes(&["circle", "square", "star"], 12, 4))
            .unwrap();
    let yaml = DatasetYaml::read(&yaml).unwrap();
    let train = yaml.scan("train", ScanOptions::default()).unwrap();
    let loader = Loader::new(
        DetectionDataset::new(train.items.clone(), 96, Some(DetectAugment::default())),
        LoaderOptions {
            batch_size: 4,
            workers: 2,
            ..Default::default()
        },
    )
    .unwrap();
    for batch in loader.epoch(0) {
        let b = batch.unwrap();
        assert_eq!(b.images.size(), [4, 3, 96, 96]);
        let t = Vec::<f32>::try_from(b.targets.flatten(0, -1)).unwrap();
        assert!(!t.is_empty());
        for row in t.chunks(6) {
            assert!(
                (0.0..4.0).contains(&row[0]) && (0.0..3.0).contains(&row[1]),
                "{row:?}"
            );
            assert!(row[2..].iter().all(|v| (0.0..=1.0).contains(v)), "{row:?}");
            assert!(
                row[4] * 96.0 > 2.0 && row[5] * 96.0 > 2.0,
                "tiny boxes are dropped: {row:?}"
            );
        }
    }
    // Evaluation: letterbox only, and each box maps back to its label on the original image.
    let eval = DetectionDataset::new(train.items.clone(), 96, None);
    let loader = Loader::new(
        eval,
        LoaderOptions {
            batch_size: 3,
            sampler: Sampler::Sequential,
            ..Default::default()
        },
    )
    .unwrap();
    for batch in loader.epoch(0) {
        let b = batch.unwrap();
        for (info, &i) in b.info.iter().zip(&b.indices) {
            assert_eq!(info.original_size, (64, 64));
            for (got, want) in info.boxes.iter().zip(&train.items[i].boxes) {
                let back = info.letterbox.to_original(got.xyxy);
                let [cx, cy, w, h] = want.cxcywh.map(|v| v * 64.0);
                let expect = [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0];
                for k in 0..4 {
                    assert!((back[k] - expect[k]).abs() < 0.01, "{back:?} vs {expect:?}");
                }
            }
        }
    }

    let seg = tempfile::tempdir().unwrap();
    synthetic::write_segmentation(seg.path(), &shapes(&["triangle", "cross"], 6, 2)).unwrap();
    let data = scan_pairs(
        &seg.path().join("train/images"),
        &seg.path().join("train/masks"),
        MaskEncoding::Index,
        None,
        Some(3),
        ScanOptions::default(),
    )
    .unwrap();
    let aug = SegmentAugment {
        size: 48,
        scale: (0.5, 1.5),
        hflip: 0.5,
        rotate90: false,
    };
    let loader = Loader::new(
        SegmentationDataset::new(data, SegmentResize::Augment(aug), [0.5; 3], [0.25; 3])
            .with_cache(),
        LoaderOptions {
            batch_size: 3,
            ..Default::default()
        },
    )
    .unwrap();
    for epoch in 0..2 {
        for batch in loader.epoch(epoch) {
            let b = batch.unwrap();
            assert_eq!(b.images.size(), [3, 3, 48, 48]);
            assert_eq!(b.masks.size(), [3, 48, 48]);
            let values =
                Vec::<i64>::try_from(b.masks.flatten(0, -1).unique_dim(0, true, false, false).0)
                    .unwrap();
            assert!(
                values.iter().all(|v| [0, 1, 2, 255].contains(v)),
                "{values:?}"
            );
        }
    }
}

/// A data set whose samples are their own indices.
struct Indices(usize);

impl ferrovis_data::loader::Dataset for Indices {
    type Sample = usize;
    type Batch = Vec<usize>;

    fn len(&self) -> usize {
        self.0
    }

    fn get(
        &self,
        index: usize,
        _epoch: usize,
        _rng: &mut ferrovis_data::rng::Rng,
    ) -> ferrovis_data::Result<usize> {
        Ok(index)
    }

    fn collate(&self, samples: Vec<(usize, usize)>) -> ferrovis_data::Result<Vec<usize>> {
        Ok(samples.into_iter().map(|(_, s)| s).collect())
    }
}

/// torchvision's aspect-ratio grouping: bins at 2^(i/3) (hand-checked ratios), and batches that
/// each hold one group until the groups run short; every sample once per epoch, a new
/// arrangement each epoch, the same for the same seed.
#[test]
fn grouped_sampler_batches_one_aspect_ratio_group_at_a_time() {
    use ferrovis_data::loader::aspect_ratio_groups;
    // Bins 0.5, 0.63, 0.79, 1, 1.26, 1.59, 2: bisect_right puts a ratio equal to a bin above it.
    assert_eq!(
        aspect_ratio_groups(&[0.4, 0.5, 0.7, 1.0, 1.333, 1.5, 2.0, 3.0], 3),
        [0, 1, 2, 4, 5, 5, 7, 7]
    );
    let groups: Vec<usize> = (0..50).map(|i| [4, 4, 5, 1, 7][i % 5]).collect();
    let loader = |seed| {
        Loader::new(
            Indices(50),
            LoaderOptions {
                batch_size: 4,
                sampler: Sampler::Grouped(groups.clone()),
                seed,
                workers: 1,
                ..Default::default()
            },
        )
        .unwrap()
    };
    let l = loader(5);
    let epoch =
        |l: &Loader<Indices>, e| -> Vec<Vec<usize>> { l.epoch(e).map(|b| b.unwrap()).collect() };
    let batches = epoch(&l, 0);
    let mut all: Vec<usize> = batches.concat();
    all.sort_unstable();
    assert_eq!(all, (0..50).collect::<Vec<_>>(), "every sample once");
    // Groups 4 (20 samples), 5, 1, 7 (10 each): 5 + 2 + 2 + 2 full batches, then what waits.
    let single = batches
        .iter()
        .take_while(|b| b.len() == 4 && b.iter().all(|&i| groups[i] == groups[b[0]]))
        .count();
    assert!(
        single >= 11,
        "{single} single-group batches first: {batches:?}"
    );
    assert_eq!(
        batches,
        epoch(&loader(5), 0),
        "the same seed, the same batches"
    );
    assert_ne!(batches, epoch(&l, 1), "a new arrangement each epoch");
    let err = Loader::new(
        Indices(3),
        LoaderOptions {
            sampler: Sampler::Grouped(vec![0, 1]),
            ..Default::default()
        },
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("sampler groups: 2 for 3 samples"), "{err}");
}

#[test]
fn shards_share_each_epoch_out_once_as_distributed_sampler() {
    use ferrovis_data::loader::Shard;
    let dir = tempfile::tempdir().unwrap();
    synthetic::write_classification(dir.path(), &shapes(&["circle", "triangle", "star"], 7, 0))
        .unwrap();
    let data = image_folder(&dir.path().join("train"), ScanOptions::default()).unwrap();
    let make = |sampler: Sampler, shard: Option<Shard>| {
        Loader::new(
            ClassificationDataset::new(data.items.clone(), ClassifyTransform::eval(32)),
            LoaderOptions {
                batch_size: 4,
                sampler,
                seed: 9,
                ..Default::default()
            },
        )
        .unwrap()
        .with_shard(shard)
    };
    // 21 samples on 2 ranks: training pads to 22 (sample order[0] twice), validation does not.
    for epoch in 0..3 {
        let whole = make(Sampler::Shuffle, None).order(epoch);
        let ranks: Vec<_> = (0..2)
            .map(|rank| {
                make(
                    Sampler::Shuffle,
                    Some(Shard {
                        rank,
                        world_size: 2,
                        pad: true,
                    }),
                )
            })
            .collect();
        let parts: Vec<Vec<usize>> = ranks.iter().map(|l| l.order(epoch)).collect();
        assert_eq!(parts[0].len(), 11);
        assert_eq!(parts[1].len(), 11);
        assert_eq!(ranks[0].num_batches(), 3);
        // Interleaved, as DistributedSampler: rank r takes positions r, r + 2, …
        assert_eq!(parts[0][..3], [whole[0], whole[2], whole[4]]);
        assert_eq!(parts[1][10], whole[0], "the padding repeats the start");
        let mut seen: Vec<usize> = parts.concat();
        seen.pop();
        seen.sort_unstable();
        assert_eq!(seen, (0..21).collect::<Vec<_>>(), "epoch {epoch}");
        // The batches the loader gives hold exactly that share.
        let batches: Vec<usize> = ranks[1]
            .epoch(epoch)
            .flat_map(|b| b.unwrap().indices)
            .collect();
        assert_eq!(batches, parts[1]);

        let val: Vec<Vec<usize>> = (0..2)
            .map(|rank| {
                make(
                    Sampler::Sequential,
                    Some(Shard {
                        rank,
                        world_size: 2,
                        pad: false,
                    }),
                )
                .order(epoch)
            })
            .collect();
        assert_eq!((val[0].len(), val[1].len()), (11, 10));
        let mut all = val.concat();
        all.sort_unstable();
        assert_eq!(all, (0..21).collect::<Vec<_>>());
    }
    // A new order each epoch on each rank, from the shared seed.
    let r0 = make(
        Sampler::Shuffle,
        Some(Shard {
            rank: 0,
            world_size: 2,
            pad: true,
        }),
    );
    assert_ne!(r0.order(0), r0.order(1));
    // The grouped sampler groups within the share: every batch one group.
    let groups: Vec<usize> = (0..21).map(|i| i % 2).collect();
    let g = make(
        Sampler::Grouped(groups.clone()),
        Some(Shard {
            rank: 1,
            world_size: 2,
            pad: true,
        }),
    );
    let order = g.order(0);
    assert_eq!(order.len(), 11);
    // Whole batches of one group come first; only the leftovers at the end mix.
    let in_group = |k: usize| order.iter().filter(|&&i| groups[i] == k).count();
    let whole = in_group(0) / 4 + in_group(1) / 4;
    assert!(whole >= 1);
    for chunk in order[..whole * 4].chunks(4) {
        assert!(
            chunk.iter().all(|&i| groups[i] == groups[chunk[0]]),
            "{order:?}"
        );
    }
}
