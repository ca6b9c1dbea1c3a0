//! ByteTrack (Zhang et al., "ByteTrack: Multi-Object Tracking by Associating Every Detection
//! Box", ECCV 2022) with Ultralytics' rules and settings: every detection box takes part, the
//! confident ones first. Per frame: predict every tracked and lost track with the Kalman filter;
//! match the confident boxes (score ≥ `track_high_thresh`) to them by IoU fused with the score
//! (limit `match_thresh`); match the remaining tracked ones to the low-score boxes
//! (`track_low_thresh` < score < `track_high_thresh`) by IoU alone (limit 0.5), the unmatched
//! becoming lost; match last frame's new, unconfirmed tracks to the confident boxes left (limit
//! 0.7), dropping the unmatched; start a track from each confident box left whose score reaches
//! `new_track_thresh` (confirmed at once only on the first frame); drop tracks lost for more
//! than `track_buffer` frames; of a tracked and a lost track overlapping by IoU > 0.85, keep the
//! one tracked longer. Written from the paper and Ultralytics' documented behaviour, checked
//! frame by frame against its `BYTETracker` (`tests/tests/suite/bytetrack.rs`).
//!
//! BoT-SORT without re-identification ([`ByteTracker::bot_sort`], Ultralytics' `BOTSORT`
//! with `with_reid: False`) is the same association with two changes: the Kalman filter
//! tracks `(x, y, w, h)` (a lost track's width and height both stop changing), and after the
//! prediction every track is moved by the camera's motion since the last frame ([`Gmc`]).

use std::collections::{HashSet, VecDeque};

use serde::Serialize;

use ferrovis_data::image::RgbImage;

use super::config::TrackerConfig;
use super::gmc::{Gmc, Warp};
use super::kalman::{self, Covariance, Mean, Space};
use super::matching::{fuse_score, iou_distance, linear_assignment};

/// One detection of a frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    /// `x1, y1, x2, y2` in pixels.
    pub xyxy: [f32; 4],
    /// Confidence.
    pub score: f32,
    /// Class index.
    pub class: f32,
}

/// A confirmed track in a frame's output.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TrackedBox {
    /// The track's box (the Kalman filter's estimate), `x1, y1, x2, y2`.
    pub xyxy: [f32; 4],
    /// The track's identity, from 1.
    pub track_id: u64,
    /// The last matched detection's score.
    pub score: f32,
    /// Its class.
    pub class: f32,
    /// The index, in this frame's detections, of the detection last matched.
    pub detection: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Tracked,
    Lost,
    Removed,
}

/// A detection's box as the tracker keeps it: `(left, top, width, height)`, through the centre
/// and size in single precision as the reference computes it.
fn tlwh(d: &Detection) -> [f32; 4] {
    let [x1, y1, x2, y2] = d.xyxy;
    let (cx, cy, w, h) = ((x1 + x2) / 2.0, (y1 + y2) / 2.0, x2 - x1, y2 - y1);
    [cx - w / 2.0, cy - h / 2.0, w, h]
}

/// A `tlwh` box as `space` measures it, `(x, y, a, h)` or `(x, y, w, h)`, computed in single
/// precision as the reference does.
fn measure(space: Space, t: [f32; 4]) -> [f64; 4] {
    let (x, y) = (t[0] + t[2] / 2.0, t[1] + t[3] / 2.0);
    match space {
        Space::Xyah => [x as f64, y as f64, (t[2] / t[3]) as f64, t[3] as f64],
        Space::Xywh => [x as f64, y as f64, t[2] as f64, t[3] as f64],
    }
}

#[derive(Debug, Clone)]
struct Track {
    id: u64,
    mean: Mean,
    cov: Covariance,
    state: State,
    activated: bool,
    score: f32,
    class: f32,
    detection: usize,
    frame_id: u64,
    start_frame: u64,
}

impl Track {
    fn xyxy(&self, space: Space) -> [f32; 4] {
        let w = match space {
            Space::Xyah => self.mean[2] * self.mean[3],
            Space::Xywh => self.mean[2],
        };
        let h = self.mean[3];
        let (x1, y1) = (self.mean[0] - w / 2.0, self.mean[1] - h / 2.0);
        [x1 as f32, y1 as f32, (x1 + w) as f32, (y1 + h) as f32]
    }

    fn update(&mut self, space: Space, det: &Candidate, frame_id: u64) {
        (self.mean, self.cov) =
            kalman::update(space, &self.mean, &self.cov, measure(space, det.tlwh));
        self.state = State::Tracked;
        self.activated = true;
        self.frame_id = frame_id;
        self.score = det.score;
        self.class = det.class;
        self.detection = det.index;
    }
}

/// A detection of this frame with the box the tracker compares.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    tlwh: [f32; 4],
    score: f32,
    class: f32,
    index: usize,
}

impl Candidate {
    fn xyxy(&self) -> [f32; 4] {
        let t = self.tlwh;
        [t[0], t[1], t[0] + t[2], t[1] + t[3]]
    }
}

/// ByteTrack (or BoT-SORT) over a sequence of frames (one tracker per video or stream).
#[derive(Debug, Clone)]
pub struct ByteTracker {
    config: TrackerConfig,
    space: Space,
    /// BoT-SORT's camera-motion compensation.
    gmc: Option<Gmc>,
    /// The tracked and lost tracks (compacted after each frame); the lists below index it.
    tracks: Vec<Track>,
    tracked: Vec<usize>,
    lost: Vec<usize>,
    /// Identities of the last 1000 removed tracks (a lost track among them is dropped).
    removed: VecDeque<u64>,
    frame_id: u64,
    next_id: u64,
}

impl ByteTracker {
    /// A tracker with `config`, before its first frame.
    pub fn new(config: TrackerConfig) -> Self {
        ByteTracker {
            config,
            space: Space::Xyah,
            gmc: None,
            tracks: Vec::new(),
            tracked: Vec::new(),
            lost: Vec::new(),
            removed: VecDeque::new(),
            frame_id: 0,
            next_id: 1,
        }
    }

    /// BoT-SORT with `config`, before its first frame: `(x, y, w, h)` tracks moved by the
    /// camera's motion, which [`ByteTracker::update_with_frame`] estimates from the frames.
    pub fn bot_sort(config: TrackerConfig) -> Self {
        ByteTracker {
            space: Space::Xywh,
            gmc: Some(Gmc::new()),
            ..ByteTracker::new(config)
        }
    }

    /// BoT-SORT with `gmc_method: none`: `(x, y, w, h)` tracks, the camera taken as still.
    pub fn bot_sort_still(config: TrackerConfig) -> Self {
        ByteTracker {
            space: Space::Xywh,
            ..ByteTracker::new(config)
        }
    }

    /// Frames seen so far (the last one's number, from 1).
    pub fn frame(&self) -> u64 {
        self.frame_id
    }

    /// Boxes of `indices` (tracks) for matching.
    fn boxes(&self, indices: &[usize]) -> Vec<[f32; 4]> {
        indices
            .iter()
            .map(|&i| self.tracks[i].xyxy(self.space))
            .collect()
    }

    fn costs(&self, tracks: &[usize], dets: &[Candidate], fuse: bool) -> Vec<Vec<f64>> {
        let boxes: Vec<[f32; 4]> = dets.iter().map(Candidate::xyxy).collect();
        let mut cost = iou_distance(&self.boxes(tracks), &boxes);
        if fuse {
            let scores: Vec<f64> = dets.iter().map(|d| d.score as f64).collect();
            fuse_score(&mut cost, &scores);
        }
        cost
    }

    /// Matches track `t` with `det`: a tracked track is updated, a lost one found again.
    fn apply_match(
        &mut self,
        t: usize,
        det: &Candidate,
        activated: &mut Vec<usize>,
        refound: &mut Vec<usize>,
    ) {
        let was_tracked = self.tracks[t].state == State::Tracked;
        self.tracks[t].update(self.space, det, self.frame_id);
        if was_tracked {
            activated.push(t);
        } else {
            refound.push(t);
        }
    }

    /// Tracks the detections of the next frame; returns the confirmed tracks. (BoT-SORT
    /// without the frame cannot see the camera move: see [`ByteTracker::update_with_frame`].)
    pub fn update(&mut self, detections: &[Detection]) -> Vec<TrackedBox> {
        self.update_with_frame(detections, None)
    }

    /// [`ByteTracker::update`] with the frame the detections are of, from which BoT-SORT
    /// estimates the camera's motion (a frame it cannot analyse counts as a still camera,
    /// with a warning, as in the reference).
    pub fn update_with_frame(
        &mut self,
        detections: &[Detection],
        image: Option<&RgbImage>,
    ) -> Vec<TrackedBox> {
        self.frame_id += 1;
        let frame = self.frame_id;
        let cfg = self.config;
        let (mut activated, mut refound, mut lost_now, mut removed_now) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let candidate = |(index, d): (usize, &Detection)| Candidate {
            tlwh: tlwh(d),
            score: d.score,
            class: d.class,
            index,
        };
        // Boxes with no area would divide by zero in (x, y, a, h).
        let valid = |d: &&Detection| d.xyxy[2] - d.xyxy[0] > 0.0 && d.xyxy[3] - d.xyxy[1] > 0.0;
        let high: Vec<Candidate> = detections
            .iter()
            .enumerate()
            .filter(|(_, d)| valid(d) && d.score as f64 >= cfg.track_high_thresh)
            .map(candidate)
            .collect();
        let low: Vec<Candidate> = detections
            .iter()
            .enumerate()
            .filter(|(_, d)| {
                let s = d.score as f64;
                valid(d) && s > cfg.track_low_thresh && s < cfg.track_high_thresh
            })
            .map(candidate)
            .collect();
        let (unconfirmed, confirmed): (Vec<usize>, Vec<usize>) = self
            .tracked
            .iter()
            .partition(|&&t| !self.tracks[t].activated);
        // The pool: confirmed tracks, then the lost ones (never both: see `merge`).
        let mut pool = confirmed.clone();
        pool.extend(&self.lost);
        let space = self.space;
        for &t in &pool {
            let track = &mut self.tracks[t];
            let mut mean = track.mean;
            // A lost track keeps its size: its height (and in (x, y, w, h) its width) stops
            // changing.
            if track.state != State::Tracked {
                mean[7] = 0.0;
                if space == Space::Xywh {
                    mean[6] = 0.0;
                }
            }
            (track.mean, track.cov) = kalman::predict(space, &mean, &track.cov);
        }
        if let (Some(gmc), Some(image)) = (self.gmc.as_mut(), image) {
            let warp = gmc.apply(image).unwrap_or_else(|e| {
                tracing::warn!("motion compensation failed, taking the camera as still: {e:#}");
                super::gmc::IDENTITY
            });
            for &t in pool.iter().chain(&unconfirmed) {
                let track = &mut self.tracks[t];
                (track.mean, track.cov) = warp_state(&warp, &track.mean, &track.cov);
            }
        }

        // First association: the confident boxes.
        let cost = self.costs(&pool, &high, cfg.fuse_score);
        let (matches, u_track, u_det) = linear_assignment(&cost, high.len(), cfg.match_thresh);
        for (t, d) in matches {
            self.apply_match(pool[t], &high[d], &mut activated, &mut refound);
        }
        // Second: the tracked ones left, with the low-score boxes, by IoU alone.
        let remaining: Vec<usize> = u_track
            .iter()
            .map(|&i| pool[i])
            .filter(|&t| self.tracks[t].state == State::Tracked)
            .collect();
        let u_remaining = if !remaining.is_empty() && !low.is_empty() {
            let cost = self.costs(&remaining, &low, false);
            let (matches, u, _) = linear_assignment(&cost, low.len(), 0.5);
            for (t, d) in matches {
                self.apply_match(remaining[t], &low[d], &mut activated, &mut refound);
            }
            u
        } else {
            (0..remaining.len()).collect()
        };
        for i in u_remaining {
            let t = remaining[i];
            self.tracks[t].state = State::Lost;
            lost_now.push(t);
        }
        // Last frame's new tracks, with the confident boxes left.
        let left: Vec<Candidate> = u_det.iter().map(|&i| high[i]).collect();
        let u_left: Vec<usize> = if unconfirmed.is_empty() {
            (0..left.len()).collect()
        } else {
            let cost = self.costs(&unconfirmed, &left, cfg.fuse_score);
            let (matches, u_unconfirmed, u) = linear_assignment(&cost, left.len(), 0.7);
            for (t, d) in matches {
                self.tracks[unconfirmed[t]].update(space, &left[d], frame);
                activated.push(unconfirmed[t]);
            }
            for i in u_unconfirmed {
                self.tracks[unconfirmed[i]].state = State::Removed;
                removed_now.push(unconfirmed[i]);
            }
            u
        };
        // New tracks.
        for i in u_left {
            let det = &left[i];
            if (det.score as f64) < cfg.new_track_thresh {
                continue;
            }
            let (mean, cov) = kalman::initiate(space, measure(space, det.tlwh));
            self.tracks.push(Track {
                id: self.next_id,
                mean,
                cov,
                state: State::Tracked,
                activated: frame == 1,
                score: det.score,
                class: det.class,
                detection: det.index,
                frame_id: frame,
                start_frame: frame,
            });
            self.next_id += 1;
            activated.push(self.tracks.len() - 1);
        }
        // Tracks lost too long.
        for &t in &self.lost {
            if frame - self.tracks[t].frame_id > cfg.track_buffer {
                self.tracks[t].state = State::Removed;
                removed_now.push(t);
            }
        }
        self.merge(activated, refound, lost_now, removed_now);
        self.tracked
            .iter()
            .map(|&t| &self.tracks[t])
            .filter(|t| t.activated)
            .map(|t| TrackedBox {
                xyxy: t.xyxy(space),
                track_id: t.id,
                score: t.score,
                class: t.class,
                detection: t.detection,
            })
            .collect()
    }

    /// The lists for the next frame, in the reference's order of operations (a track is one
    /// index of `tracks`, so lists are joined and subtracted by index), then `tracks` compacted
    /// to the tracks the lists still hold.
    fn merge(
        &mut self,
        activated: Vec<usize>,
        refound: Vec<usize>,
        lost: Vec<usize>,
        removed: Vec<usize>,
    ) {
        let join = |mut a: Vec<usize>, b: &[usize]| {
            let have: HashSet<usize> = a.iter().copied().collect();
            a.extend(b.iter().filter(|t| !have.contains(t)));
            a
        };
        let tracked: Vec<usize> = self
            .tracked
            .iter()
            .copied()
            .filter(|&t| self.tracks[t].state == State::Tracked)
            .collect();
        let tracked = join(join(tracked, &activated), &refound);
        let in_tracked: HashSet<usize> = tracked.iter().copied().collect();
        let mut lost_list: Vec<usize> = self
            .lost
            .iter()
            .copied()
            .filter(|t| !in_tracked.contains(t))
            .collect();
        lost_list.extend(lost);
        // Removed in an earlier frame (this frame's removals join the list below, so a track
        // removed now stays lost, and in the next frame's pool, for one more frame).
        lost_list.retain(|&t| !self.removed.contains(&self.tracks[t].id));
        let (tracked, lost_list) = self.remove_duplicates(tracked, lost_list);
        for t in removed {
            self.removed.push_back(self.tracks[t].id);
        }
        while self.removed.len() > 1000 {
            self.removed.pop_front();
        }
        // Keep only what the lists hold, renumbered.
        let mut renumber = vec![usize::MAX; self.tracks.len()];
        let mut kept = Vec::with_capacity(tracked.len() + lost_list.len());
        for &t in tracked.iter().chain(&lost_list) {
            renumber[t] = kept.len();
            kept.push(self.tracks[t].clone());
        }
        self.tracks = kept;
        self.tracked = tracked.iter().map(|&t| renumber[t]).collect();
        self.lost = lost_list.iter().map(|&t| renumber[t]).collect();
    }

    /// Of a tracked and a lost track closer than 0.15 in IoU distance, the one tracked for
    /// fewer frames goes (on a tie the tracked one, as in the reference).
    fn remove_duplicates(&self, a: Vec<usize>, b: Vec<usize>) -> (Vec<usize>, Vec<usize>) {
        let cost = iou_distance(&self.boxes(&a), &self.boxes(&b));
        let (mut drop_a, mut drop_b) = (HashSet::new(), HashSet::new());
        for (p, row) in cost.iter().enumerate() {
            for (q, &c) in row.iter().enumerate() {
                if c < 0.15 {
                    let (ta, tb) = (&self.tracks[a[p]], &self.tracks[b[q]]);
                    if ta.frame_id - ta.start_frame > tb.frame_id - tb.start_frame {
                        drop_b.insert(q);
                    } else {
                        drop_a.insert(p);
                    }
                }
            }
        }
        let keep = |v: Vec<usize>, drop: &HashSet<usize>| {
            v.into_iter()
                .enumerate()
                .filter(|(i, _)| !drop.contains(i))
                .map(|(_, t)| t)
                .collect()
        };
        (keep(a, &drop_a), keep(b, &drop_b))
    }
}

/// An `(x, y, w, h)` state moved by the camera's `warp` (BoT-SORT): the centre and its velocity
/// rotate and scale with it, the centre also translates, and the size and its velocity take the
/// absolute values of the rotation part, so a box's size never turns negative.
fn warp_state(warp: &Warp, mean: &Mean, cov: &Covariance) -> (Mean, Covariance) {
    let r = [[warp[0][0], warp[0][1]], [warp[1][0], warp[1][1]]];
    // The block-diagonal 8×8 transform: r for each (x, y) pair, |r| for the sizes.
    let mut m = [[0.0; 8]; 8];
    for block in 0..4 {
        let abs = block == 1 || block == 3;
        for i in 0..2 {
            for j in 0..2 {
                let v = r[i][j];
                m[2 * block + i][2 * block + j] = if abs { v.abs() } else { v };
            }
        }
    }
    let mut new_mean = [0.0; 8];
    for (i, row) in m.iter().enumerate() {
        new_mean[i] = row.iter().zip(mean).map(|(a, b)| a * b).sum();
    }
    new_mean[0] += warp[0][2];
    new_mean[1] += warp[1][2];
    let mut mc = [[0.0; 8]; 8];
    for i in 0..8 {
        for j in 0..8 {
            mc[i][j] = (0..8).map(|k| m[i][k] * cov[k][j]).sum();
        }
    }
    let mut new_cov = [[0.0; 8]; 8];
    for i in 0..8 {
        for j in 0..8 {
            new_cov[i][j] = (0..8).map(|k| mc[i][k] * m[j][k]).sum();
        }
    }
    (new_mean, new_cov)
}
