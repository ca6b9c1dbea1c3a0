//! The four binaries' shared vocabulary, run as a user runs them (through `ferrovis-cli`, their
//! command lines in one executable): the same subcommands, settings typed by their defaults from
//! `key=value` or `--set` in every binary, old spellings accepted with a note.

use std::process::Command;

/// Runs `ferrovis-cli args…`; returns (success, stdout, stderr).
pub(crate) fn cli<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ferrovis-cli"))
        .args(args)
        .output()
        .expect("start ferrovis-cli");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_binary_has_the_same_subcommands() {
    for task in ["classify", "detect", "segment", "style"] {
        let (ok, help, err) = cli(&[task, "--help"]);
        assert!(ok, "{task} --help: {err}");
        for sub in ["train", "val", "predict", "export", "demo", "weights"] {
            assert!(
                help.lines()
                    .any(|l| l.trim_start().starts_with(&format!("{sub} "))),
                "{task} has no {sub}:\n{help}"
            );
        }
    }
    // The old names still parse.
    for args in [
        ["classify", "eval", "--help"],
        ["style", "train-fast", "--help"],
        ["style", "stylize", "--help"],
    ] {
        let (ok, _, err) = cli(&args);
        assert!(ok, "{args:?}: {err}");
    }
}

#[test]
fn settings_are_typed_in_every_binary() {
    // key=value arguments and --set reach the one config loader, which types them by default.
    let (ok, _, err) = cli(&["classify", "train", "train.name=2024", "train.epochs=three"]);
    assert!(!ok);
    assert!(
        err.contains("train.epochs=three: expected an integer"),
        "{err}"
    );
    let (ok, _, err) = cli(&["segment", "train", "--set", "train.epoch=3"]);
    assert!(!ok);
    assert!(
        err.contains("unknown key \"train.epoch\"")
            && err.contains("did you mean \"train.epochs\"?"),
        "{err}"
    );
    let (ok, _, err) = cli(&["detect", "train", "--set", "epochs=three"]);
    assert!(!ok);
    assert!(err.contains("epochs=three: expected an integer"), "{err}");
    let (ok, _, err) = cli(&["classify", "train", "epochs"]);
    assert!(!ok);
    assert!(
        err.contains("unexpected argument \"epochs\": settings are key=value"),
        "{err}"
    );
}

#[test]
fn every_train_takes_the_shared_flags() {
    // Declared once (ferrovis_app::args), flattened into each binary's `train`.
    for task in ["classify", "detect", "segment", "style"] {
        let (ok, help, err) = cli(&[task, "train", "--help"]);
        assert!(ok, "{task} train --help: {err}");
        for flag in [
            "--device",
            "--config",
            "--set",
            "--resume",
            "--project",
            "--name",
        ] {
            assert!(
                help.contains(&format!("{flag} ")),
                "{task} train has no {flag}:\n{help}"
            );
        }
    }
    // style's settings go through the same typed loader as the others'.
    let (ok, _, err) = cli(&[
        "style",
        "train",
        "--style",
        "s.png",
        "--content-dir",
        "c",
        "--set",
        "epoch=3",
    ]);
    assert!(!ok);
    assert!(
        err.contains("unknown key \"epoch\"") && err.contains("did you mean \"epochs\"?"),
        "{err}"
    );
}

#[test]
fn a_setting_the_family_ignores_is_warned_about() {
    // SSD has a fixed input size and no proposals: min_size is Faster R-CNN's. The warning comes
    // when the settings load, before the missing data set stops the command.
    let (ok, _, err) = cli(&[
        "detect",
        "train",
        "arch=ssdlite320_mobilenet_v3_large",
        "min_size=300",
        "mosaic=0.5",
    ]);
    assert!(!ok);
    for key in ["min_size", "mosaic"] {
        assert!(
            err.lines()
                .any(|l| l.contains("WARN") && l.contains("ignored") && l.contains(key)),
            "no warning for {key}:\n{err}"
        );
    }
    assert!(err.contains("data= is required"), "{err}");
}

#[test]
fn old_spellings_work_with_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-run");
    let missing = missing.to_str().unwrap();
    for args in [
        vec!["classify", "predict", "--run", missing, "x.jpg"],
        vec!["classify", "eval", "--run", missing],
        vec!["segment", "val", "--run", missing],
    ] {
        let (ok, _, err) = cli(&args);
        assert!(!ok, "{args:?}");
        assert!(
            err.contains("note: --run is deprecated; use --weights"),
            "{args:?}: {err}"
        );
        assert!(
            err.contains("no-run: no such weights file or run folder"),
            "{args:?}: {err}"
        );
    }
    let (ok, _, err) = cli(&["style", "predict", "--model", missing, "x.jpg"]);
    assert!(!ok);
    assert!(
        err.contains("note: --model is deprecated; use --weights"),
        "{err}"
    );
}

#[test]
fn weights_have_no_default_outside_the_user_s_own_files() {
    // No ../shared default: without --encoder or FERROVIS_WEIGHTS, adain asks for the registry's
    // `vgg_r31`; offline and not cached, it says what to pass and where the file would go.
    let cache = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ferrovis-cli"))
        .args(["style", "adain", "--content", "c.png", "--style", "s.png"])
        .env_remove("FERROVIS_WEIGHTS")
        .env_remove("FERROVIS_VGG")
        .env_remove("FERROVIS_WEIGHTS_DIR")
        .env("FERROVIS_OFFLINE", "1")
        .env("FERROVIS_CACHE", cache.path())
        .output()
        .expect("start ferrovis-cli");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("no vgg_r31.pth: pass --encoder FILE or NAME, or set FERROVIS_WEIGHTS")
            && err.contains(&cache.path().join("vgg_r31.pth").display().to_string())
            && err.contains("offline"),
        "{err}"
    );
}
