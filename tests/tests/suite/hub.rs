//! Weights by name (`core::hub`), with no internet: a small HTTP server on 127.0.0.1 started by
//! the test serves the files (byte ranges, a connection cut mid-file, 404, HEAD with the Hugging
//! Face hub's `X-Repo-Commit`). Downloads land whole and hash-checked, resume after a cut with a
//! Range request, refuse a wrong hash and clean up, name URL and path when they fail, happen once
//! when two processes fetch the same file, respect offline mode, use a torch-hub-layout cache without a
//! request, and store `hf-hub:` files in the hub's layout, loadable into a ResNet. The registry's
//! torchvision URLs equal torchvision's own (`reference/hub_urls.py`), and its Ultralytics URLs the
//! ones the installed `ultralytics` package downloads from (`reference/ultralytics_urls.py`).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};

use ferrovis_core::backbone::{self, BackboneOptions, Interpolation};
use ferrovis_core::checkpoint::{self, LoadOptions};
use ferrovis_core::hub::download::{fetch, sha256_file, Request};
use ferrovis_core::hub::{Hub, Source, ENTRIES};
use ferrovis_tests::run_reference;
use tch::nn::VarStore;
use tch::Device;

/// What the server saw: per path, the requests and the Range headers.
#[derive(Default)]
struct Log {
    gets: HashMap<String, usize>,
    ranges: Vec<String>,
}

struct Server {
    base: String,
    log: Arc<Mutex<Log>>,
}

/// Serves `files` (path → bytes). Paths listed in `cut` are sent only halfway the first time
/// they are asked for whole (the Content-Length announces all of it); every other request is
/// answered in full, a Range from its start. Unknown paths are 404.
fn serve(files: HashMap<String, Vec<u8>>, cut: &[&str], commit: &str) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Log::default()));
    let state = (
        Arc::new(files),
        Arc::new(Mutex::new(
            cut.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )),
        log.clone(),
        commit.to_string(),
    );
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (files, cut, log, commit) = (
                state.0.clone(),
                state.1.clone(),
                state.2.clone(),
                state.3.clone(),
            );
            std::thread::spawn(move || {
                let _ = handle(stream, &files, &cut, &log, &commit);
            });
        }
    });
    Server { base, log }
}

fn handle(
    mut stream: TcpStream,
    files: &HashMap<String, Vec<u8>>,
    cut: &Mutex<Vec<String>>,
    log: &Mutex<Log>,
    commit: &str,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    );
    let mut range = None;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        if h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("range") {
                range = Some(v.trim().to_string());
            }
        }
    }
    let Some(body) = files.get(&path) else {
        stream.write_all(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )?;
        return Ok(());
    };
    let head = |status: &str, len: usize, extra: &str| {
        format!(
            "HTTP/1.1 {status}\r\nContent-Length: {len}\r\nX-Repo-Commit: {commit}\r\n\
             Connection: close\r\n{extra}\r\n"
        )
    };
    if method == "HEAD" {
        stream.write_all(head("200 OK", body.len(), "").as_bytes())?;
        return Ok(());
    }
    {
        let mut log = log.lock().unwrap();
        *log.gets.entry(path.clone()).or_default() += 1;
        if let Some(r) = &range {
            log.ranges.push(r.clone());
        }
    }
    let start = range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.trim_end_matches('-').parse::<usize>().ok());
    match start {
        Some(s) => {
            let extra = format!(
                "Content-Range: bytes {s}-{}/{}\r\n",
                body.len() - 1,
                body.len()
            );
            stream.write_all(head("206 Partial Content", body.len() - s, &extra).as_bytes())?;
            stream.write_all(&body[s..])?;
        }
        None => {
            stream.write_all(head("200 OK", body.len(), "").as_bytes())?;
            let mut cut = cut.lock().unwrap();
            if let Some(i) = cut.iter().position(|c| *c == path) {
                cut.remove(i);
                stream.write_all(&body[..body.len() / 2])?;
                stream.flush()?;
                return Ok(()); // dropped: the connection closes mid-file
            }
            stream.write_all(body)?;
        }
    }
    Ok(())
}

fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn sha_hex(data: &[u8], dir: &Path) -> String {
    let f = dir.join("sha-probe");
    std::fs::write(&f, data).unwrap();
    sha256_file(&f).unwrap()
}

#[test]
fn downloads_resume_check_hashes_and_name_failures() {
    let dir = tempfile::tempdir().unwrap();
    let whole = bytes(300_000, 1);
    let cut = bytes(250_000, 2);
    let sha = sha_hex(&whole, dir.path());
    let files = HashMap::from([
        ("/whole.pth".to_string(), whole.clone()),
        ("/cut.pth".to_string(), cut.clone()),
    ]);
    let server = serve(files, &["/cut.pth"], "c0ffee");

    // Whole, hash prefix checked.
    let dest = dir.path().join("cache/whole-abc.pth");
    let url = format!("{}/whole.pth", server.base);
    let got = fetch(&Request {
        url: &url,
        dest: &dest,
        sha256_prefix: Some(&sha[..8]),
    })
    .unwrap();
    assert_eq!(std::fs::read(&got).unwrap(), whole);
    assert!(!dir.path().join("cache/whole-abc.pth.partial").exists());

    // Cut halfway, then resumed from where it stopped with a Range request.
    let dest = dir.path().join("cache/cut.pth");
    let url = format!("{}/cut.pth", server.base);
    fetch(&Request {
        url: &url,
        dest: &dest,
        sha256_prefix: None,
    })
    .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), cut);
    {
        let log = server.log.lock().unwrap();
        assert_eq!(log.gets["/cut.pth"], 2, "one cut request, one resumed");
        assert_eq!(log.ranges, vec![format!("bytes={}-", cut.len() / 2)]);
    }

    // A wrong hash: refused, nothing left behind, both hashes printed.
    let dest = dir.path().join("cache/bad-00000000.pth");
    let url = format!("{}/whole.pth", server.base);
    let err = fetch(&Request {
        url: &url,
        dest: &dest,
        sha256_prefix: Some("00000000"),
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains(&sha) && err.contains("00000000"), "{err}");
    assert!(!dest.exists() && !dir.path().join("cache/bad-00000000.pth.partial").exists());

    // 404 and a refused connection name the URL and where to put the file.
    let dest = dir.path().join("cache/missing.pth");
    let url = format!("{}/missing.pth", server.base);
    let err = fetch(&Request {
        url: &url,
        dest: &dest,
        sha256_prefix: None,
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains(&url) && err.contains("404"), "{err}");
    assert!(err.contains(&dest.display().to_string()), "{err}");
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/x.pth", closed.local_addr().unwrap());
    drop(closed);
    let err = fetch(&Request {
        url: &url,
        dest: &dest,
        sha256_prefix: None,
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.contains(&url) && err.contains(&dest.display().to_string()),
        "{err}"
    );
}

/// Two processes (this test binary run twice, each running [`fetch_in_child`]) fetch the same
/// file at once: one request reaches the server, and both end with the whole file.
#[test]
fn two_processes_fetching_one_file_download_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = bytes(4_000_000, 3);
    let server = serve(
        HashMap::from([("/big.pth".to_string(), data.clone())]),
        &[],
        "c",
    );
    let url = format!("{}/big.pth", server.base);
    let dest = dir.path().join("big.pth");
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..2)
        .map(|_| {
            std::process::Command::new(&exe)
                .args(["--ignored", "--exact", "hub::fetch_in_child", "--nocapture"])
                .env("FERROVIS_TEST_FETCH_URL", &url)
                .env("FERROVIS_TEST_FETCH_DEST", &dest)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("1 passed"),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    assert_eq!(server.log.lock().unwrap().gets["/big.pth"], 1);
}

/// The child side of [`two_processes_fetching_one_file_download_it_once`]: fetches the file the
/// environment names (ignored, so it runs only when that test starts it).
#[test]
#[ignore = "run by two_processes_fetching_one_file_download_it_once"]
fn fetch_in_child() {
    let url = std::env::var("FERROVIS_TEST_FETCH_URL").unwrap();
    let dest = std::path::PathBuf::from(std::env::var("FERROVIS_TEST_FETCH_DEST").unwrap());
    let file = fetch(&Request {
        url: &url,
        dest: &dest,
        sha256_prefix: None,
    })
    .unwrap();
    assert!(file.is_file());
}

fn hub(dir: &Path, endpoint: &str, offline: bool) -> Hub {
    Hub {
        torch_hub: dir.join("torch/hub/checkpoints"),
        hf_cache: dir.join("huggingface/hub"),
        hf_endpoint: endpoint.to_string(),
        ferrovis_cache: dir.join("ferrovis"),
        offline,
    }
}

#[test]
fn names_use_torch_hub_caches_offline_mode_and_the_hf_hub_layout() {
    let dir = tempfile::tempdir().unwrap();
    // A file already where torch.hub keeps it: used, offline or not, with no request (the
    // registry's URL is not reachable from here).
    let h = hub(dir.path(), "http://127.0.0.1:9", true);
    let cached = h.torch_hub.join("resnet18-f37072fd.pth");
    std::fs::create_dir_all(cached.parent().unwrap()).unwrap();
    std::fs::write(&cached, b"not checked when cached").unwrap();
    assert_eq!(h.resolve("resnet18").unwrap(), cached);
    assert_eq!(h.resolve("resnet18:IMAGENET1K_V1").unwrap(), cached);
    // Offline and not cached: the URL and the path to put it at.
    let err = h.resolve("resnet34").unwrap_err().to_string();
    assert!(
        err.contains("resnet34-b627a593.pth")
            && err.contains(&h.torch_hub.display().to_string())
            && err.contains("offline"),
        "{err}"
    );
    let err = h.resolve("resnet50:IMAGENET9K").unwrap_err().to_string();
    assert!(err.contains("resnet50:IMAGENET1K_V2"), "{err}");

    // hf-hub: a ResNet-18's safetensors served with the hub's URL layout.
    let vs = VarStore::new(Device::Cpu);
    let _net = backbone::create("resnet18", &vs.root(), &BackboneOptions::default()).unwrap();
    let file = dir.path().join("resnet18.safetensors");
    checkpoint::save_varstore(&vs, &file).unwrap();
    let body = std::fs::read(&file).unwrap();
    let server = serve(
        HashMap::from([(
            "/timm/resnet18.test/resolve/main/model.safetensors".to_string(),
            body.clone(),
        )]),
        &[],
        "0123abcd",
    );
    let h = hub(dir.path(), &server.base, false);
    let got = h.resolve("hf-hub:timm/resnet18.test").unwrap();
    let repo = h.hf_cache.join("models--timm--resnet18.test");
    assert_eq!(got, repo.join("snapshots/0123abcd/model.safetensors"));
    assert_eq!(
        std::fs::read_to_string(repo.join("refs/main")).unwrap(),
        "0123abcd"
    );
    assert_eq!(std::fs::read(&got).unwrap(), body);
    let vs2 = VarStore::new(Device::Cpu);
    let _net2 = backbone::create("resnet18", &vs2.root(), &BackboneOptions::default()).unwrap();
    let report = checkpoint::load_file(&vs2, &got, &LoadOptions::default().strict(true)).unwrap();
    assert!(report.is_complete());
    // Cached now: offline finds it through refs/main.
    let offline = hub(dir.path(), "http://127.0.0.1:9", true);
    assert_eq!(offline.resolve("hf-hub:timm/resnet18.test").unwrap(), got);
    assert_eq!(server.log.lock().unwrap().gets.values().sum::<usize>(), 1);
}

/// A zip holding `members` (name → bytes).
fn zip_bytes(dir: &Path, members: &[(&str, &[u8])]) -> Vec<u8> {
    let path = dir.join("built.zip");
    let mut z = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    for (name, data) in members {
        z.start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        z.write_all(data).unwrap();
    }
    z.finish().unwrap();
    std::fs::read(&path).unwrap()
}

#[test]
fn archived_weights_come_out_of_their_zip_once_hash_checked() {
    use ferrovis_core::hub::archive::{fetch_members, Wanted};
    let dir = tempfile::tempdir().unwrap();
    let (enc, dec) = (bytes(70_000, 3), bytes(50_000, 9));
    let body = zip_bytes(
        dir.path(),
        &[
            ("models/vgg_r31.pth", &enc),
            ("models/r31.pth", b"not wanted"),
            ("models/dec_r31.pth", &dec),
        ],
    );
    // Cut the first time, as a long download from Drive may be: resumed with a Range.
    let server = serve(
        HashMap::from([("/download".to_string(), body)]),
        &["/download"],
        "",
    );
    let url = format!("{}/download", server.base);
    let cache = dir.path().join("cache");
    let archive = cache.join("models.zip");
    let wanted = [
        Wanted {
            file_name: "vgg_r31.pth".into(),
            sha256: sha_hex(&enc, dir.path()),
            dest: cache.join("vgg_r31.pth"),
        },
        Wanted {
            file_name: "dec_r31.pth".into(),
            sha256: sha_hex(&dec, dir.path()),
            dest: cache.join("dec_r31.pth"),
        },
    ];
    fetch_members(&url, &archive, &wanted).unwrap();
    assert_eq!(std::fs::read(&wanted[0].dest).unwrap(), enc);
    assert_eq!(std::fs::read(&wanted[1].dest).unwrap(), dec);
    assert!(
        !archive.exists(),
        "the archive is deleted once its members are out"
    );
    let names: Vec<String> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.ends_with(".partial")), "{names:?}");
    // Both members in place: no request at all.
    fetch_members(&url, &archive, &wanted).unwrap();
    assert_eq!(server.log.lock().unwrap().gets["/download"], 2);
    assert_eq!(server.log.lock().unwrap().ranges.len(), 1);

    // A member whose bytes are not the registry's is refused, nothing of it kept.
    std::fs::remove_file(&wanted[1].dest).unwrap();
    let wrong = [Wanted {
        sha256: sha_hex(b"something else", dir.path()),
        ..wanted[1].clone()
    }];
    let err = fetch_members(&url, &archive, &wrong)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&wrong[0].sha256) && err.contains(&wanted[1].sha256),
        "{err}"
    );
    assert!(!wanted[1].dest.exists() && !archive.exists());

    // The registry's style pair by name: offline and absent, the error says what to place where;
    // placed there, it is used with no request.
    let h = hub(dir.path(), "http://127.0.0.1:9", true);
    let err = h.resolve("vgg_r31").unwrap_err().to_string();
    let place = h.ferrovis_cache.join("vgg_r31.pth");
    assert!(
        err.contains("vgg_r31.pth inside the zip archive")
            && err.contains("drive.usercontent.google.com")
            && err.contains(&place.display().to_string()),
        "{err}"
    );
    std::fs::create_dir_all(&h.ferrovis_cache).unwrap();
    std::fs::write(&place, &enc).unwrap();
    assert_eq!(h.resolve("vgg_r31").unwrap(), place);
}

#[test]
fn registry_urls_equal_torchvisions() {
    let archs: Vec<&str> = {
        let mut v: Vec<&str> = ENTRIES
            .iter()
            .filter(|e| e.source == Source::Torchvision)
            .map(|e| e.arch)
            .collect();
        v.dedup();
        v
    };
    let args: Vec<std::ffi::OsString> = archs.iter().map(|a| a.into()).collect();
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let out = run_reference("hub_urls.py", &args);
    // name → (url, default, classification transforms as hub_urls.py prints them)
    let theirs: HashMap<String, (String, bool, Option<String>)> = out
        .lines()
        .map(|l| {
            let mut p = l.split_whitespace();
            let name = p.next().unwrap().to_string();
            let url = p.next().unwrap().to_string();
            let default = p.next() == Some("default");
            let rest: Vec<&str> = p.collect();
            (
                name,
                (url, default, (!rest.is_empty()).then(|| rest.join(" "))),
            )
        })
        .collect();
    let ours: Vec<_> = ENTRIES
        .iter()
        .filter(|e| e.source == Source::Torchvision)
        .collect();
    assert_eq!(ours.len(), theirs.len(), "entries per architecture");
    for e in ours {
        let (url, default, transforms) = &theirs[&e.name()];
        assert_eq!(e.url, url, "{}", e.name());
        assert_eq!(e.default, *default, "{} DEFAULT", e.name());
        let ours = e.transforms.map(|t| {
            let list = |v: [f64; 3]| format!("{:?},{:?},{:?}", v[0], v[1], v[2]);
            let interp = match t.interpolation {
                Interpolation::Bilinear => "bilinear",
                Interpolation::Bicubic => "bicubic",
            };
            format!(
                "{} {} {interp} {} {}",
                t.input_size,
                t.resize_size,
                list(t.mean),
                list(t.std)
            )
        });
        assert_eq!(&ours, transforms, "{} transforms", e.name());
        assert!(
            e.sha256_prefix().is_some(),
            "{}: no hash in its name",
            e.name()
        );
    }
    println!("{} torchvision weight sets checked", theirs.len());
}

#[test]
fn registry_urls_equal_the_ultralytics_packages() {
    let ours: Vec<_> = ENTRIES
        .iter()
        .filter(|e| e.source == Source::Ultralytics)
        .collect();
    assert_eq!(
        ours.len(),
        15,
        "yolov8n … yolov8x, yolo11n … yolo11x, yolo26n … yolo26x"
    );
    let args: Vec<std::ffi::OsString> = ours.iter().map(|e| e.arch.into()).collect();
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let out = run_reference("ultralytics_urls.py", &args);
    let theirs: HashMap<&str, &str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("URL "))
        .filter_map(|l| l.split_once(' '))
        .collect();
    assert_eq!(theirs.len(), ours.len(), "{out}");
    for e in ours {
        assert_eq!(e.url, theirs[e.arch], "{}", e.arch);
    }
}
