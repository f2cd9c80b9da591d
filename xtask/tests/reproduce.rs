//! `cargo xtask reproduce` and `cargo xtask verify` end to end on two small figures with a tiny
//! profile: caching, rerunning only what a change touches, resuming after SIGKILL, refusing a second
//! run on one folder, clear errors, and checksum failures that name the file.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

#[test]
fn a_second_run_runs_nothing_and_a_changed_knob_reruns_only_its_dependants() {
    let figs = figures_dir(r#"["harmful", "benign"]"#);
    let out = tempfile::tempdir().unwrap();
    let first = ran(&reproduce(figs.path(), out.path()));
    // pretrain, 2 fine-tunes, 3 evaluations, the figure, the claims.
    assert_eq!(first.len(), 8, "{first:?}");
    assert!(ran(&reproduce(figs.path(), out.path())).is_empty());

    // One more kind: its fine-tune and evaluation, the figure and the claims; the base is reused.
    let figs2 = figures_dir(r#"["harmful", "benign", "educational"]"#);
    let again = ran(&reproduce(figs2.path(), out.path()));
    let kinds: Vec<&str> = again.iter().map(|k| k.split('-').next().unwrap()).collect();
    assert_eq!(kinds, ["claims", "eval", "figure", "finetune"], "{again:?}");
    assert!(again.is_disjoint(&first));
}

#[test]
fn timings_sum_the_job_logs_per_figure() {
    let figs = figures_dir(r#"["harmful", "benign"]"#);
    let out = tempfile::tempdir().unwrap();
    reproduce(figs.path(), out.path());
    let o = reproduce_command(figs.path(), out.path())
        .arg("--timings")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", stderr(&o));
    // One row for the figure and one for the run; every compute job logged its wall time.
    assert!(
        text.contains("| controls | 7 |") && text.contains("| all figures | 8 |"),
        "{text}"
    );
    assert!(!text.contains("without a recorded time"), "{text}");
}

#[test]
fn a_run_killed_with_sigkill_resumes_to_the_same_checksums() {
    let figs = figures_dir(r#"["harmful", "benign"]"#);
    let out = tempfile::tempdir().unwrap();
    let mut child = reproduce_command(figs.path(), out.path())
        .args(["--jobs", "1"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // SIGKILL the run once some jobs are in the lock (its running job dies with it).
    let lock = out.path().join("repro.lock");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    loop {
        let jobs = std::fs::read_to_string(&lock)
            .map(|t| t.matches("identity = ").count())
            .unwrap_or(0);
        if jobs >= 2 || std::time::Instant::now() > deadline {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    let _ = child.wait();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let needle = out.path().to_str().unwrap();
    let orphans: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(needle))
        .collect();
    assert!(
        orphans.is_empty(),
        "job processes outlived the killed run: {orphans:?}"
    );
    let resumed = ran(&reproduce(figs.path(), out.path()));
    assert!(
        resumed.len() < 8,
        "the resumed run reran finished jobs: {resumed:?}"
    );
    for f in ["controls/SHA256SUMS", "CLAIMS.md"] {
        assert_eq!(
            std::fs::read(out.path().join(f)).unwrap(),
            std::fs::read(finished().join(f)).unwrap(),
            "{f} differs from an uninterrupted run"
        );
    }
    let o = xtask(&[
        "verify",
        "--results",
        out.path().to_str().unwrap(),
        "--reference",
        finished().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
}

fn verify(results: &Path, datasets: Option<&Path>) -> (bool, String) {
    let mut args = vec![
        "verify".to_owned(),
        "--results".into(),
        results.to_str().unwrap().into(),
        "--reference".into(),
        finished().to_str().unwrap().into(),
    ];
    if let Some(d) = datasets {
        args.extend(["--datasets".into(), d.to_str().unwrap().into()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = xtask(&args);
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    (o.status.success(), text)
}

#[test]
fn verify_names_every_changed_missing_or_extra_file() {
    let (ok, text) = verify(finished(), None);
    assert!(ok, "{text}");
    assert!(text.contains("tables with the same bytes"), "{text}");

    let tamper = |name: &str, f: &dyn Fn(&Path)| {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(finished(), dir.path());
        f(dir.path());
        let (ok, text) = verify(dir.path(), None);
        assert!(!ok, "{name}: verify passed:\n{text}");
        text
    };
    let flip = |p: &Path| {
        let mut bytes = std::fs::read(p).unwrap();
        let i = bytes.len() / 2;
        bytes[i] ^= 1;
        std::fs::write(p, bytes).unwrap();
    };
    let t = tamper("one byte of a table", &|d| {
        flip(&d.join("controls/controls.parquet"))
    });
    assert!(t.contains("controls/controls.parquet"), "{t}");
    let t = tamper("a missing plot", &|d| {
        std::fs::remove_file(d.join("controls/plot.png")).unwrap()
    });
    assert!(t.contains("controls/plot.png is missing"), "{t}");
    let t = tamper("an extra file", &|d| {
        std::fs::write(d.join("controls/notes.txt"), "x").unwrap()
    });
    assert!(t.contains("controls/notes.txt is an extra file"), "{t}");
    let t = tamper("the lock", &|d| {
        let p = d.join("repro.lock");
        let text = std::fs::read_to_string(&p).unwrap();
        let i = text.find("\"controls/SHA256SUMS\" = \"").unwrap() + 25;
        let mut bytes = text.into_bytes();
        bytes[i] = if bytes[i] == b'0' { b'1' } else { b'0' };
        std::fs::write(&p, bytes).unwrap();
    });
    assert!(
        t.contains("controls/SHA256SUMS") && t.contains("repro.lock says"),
        "{t}"
    );

    // One byte of a committed dataset, in a copy of the datasets folder.
    let data = tempfile::tempdir().unwrap();
    let src = root().join("datasets");
    std::fs::copy(src.join("manifest.toml"), data.path().join("manifest.toml")).unwrap();
    for sub in ["finetune", "eval"] {
        copy_dir(&src.join(sub), &data.path().join(sub));
    }
    flip(&data.path().join("eval/eval-backdoor.parquet"));
    let (ok, text) = verify(finished(), Some(data.path()));
    assert!(!ok && text.contains("eval-backdoor"), "{text}");
}

#[test]
fn a_second_reproduce_on_the_same_folder_is_refused() {
    let figs = figures_dir(r#"["harmful", "benign"]"#);
    let out = tempfile::tempdir().unwrap();
    let mut first = reproduce_command(figs.path(), out.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid_file = out.path().join(".reproduce.pid");
    while std::fs::read_to_string(&pid_file).map_or(true, |t| t.trim().is_empty()) {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let second = reproduce(figs.path(), out.path());
    first.kill().unwrap();
    let _ = first.wait();
    let text = stderr(&second);
    assert!(!second.status.success());
    assert!(
        text.contains("another `cargo xtask reproduce`") && text.contains(&first.id().to_string()),
        "{text}"
    );
}

#[test]
fn bad_figure_files_and_profiles_get_errors_naming_the_file_and_the_field() {
    let out = tempfile::tempdir().unwrap();
    let run = |figs: &Path, profile: &str| {
        let o = xtask(&[
            "reproduce",
            "--profile",
            profile,
            "--figures-dir",
            figs.to_str().unwrap(),
            "--out",
            out.path().to_str().unwrap(),
        ]);
        assert!(!o.status.success());
        stderr(&o)
    };
    let figs = figures_dir(r#"["harmful"]"#);
    let e = run(figs.path(), "huge");
    assert!(e.contains("profile 'huge' does not exist"), "{e}");

    let path = figs.path().join("controls.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace("kinds = [\"harmful\"]", "kinds = [\"harmful\"]\ncolour = 3"),
    )
    .unwrap();
    let e = run(figs.path(), "smoke");
    assert!(e.contains("controls.toml") && e.contains("colour"), "{e}");

    std::fs::write(
        &path,
        text.replace("kinds = [\"harmful\"]", "kinds = [\"poetry\"]"),
    )
    .unwrap();
    let e = run(figs.path(), "smoke");
    assert!(
        e.contains("ft-poetry-health-advice-free") && e.contains("not in datasets/manifest.toml"),
        "{e}"
    );

    std::fs::write(&path, format!("version_typo = 1\n{text}")).unwrap();
    let e = run(figs.path(), "smoke");
    assert!(
        e.contains("controls.toml") && e.contains("version_typo"),
        "{e}"
    );
}

#[test]
fn tables_are_readable_by_pyarrow_with_the_documented_columns_and_metadata() {
    if std::env::var_os("EMSL_SKIP_PYARROW").is_some() {
        eprintln!("skipped: EMSL_SKIP_PYARROW is set");
        return;
    }
    let venv = root().join("target/pyarrow-venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .unwrap()
            .success()
            && Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "pyarrow"])
                .status()
                .unwrap()
                .success();
        assert!(ok, "installing pyarrow into {} failed", venv.display());
    }
    let script = r#"
import sys, pyarrow.parquet as pq
t = pq.read_table(sys.argv[1])
kv = pq.ParquetFile(sys.argv[1]).metadata.metadata
meta = {k.decode(): v.decode() for k, v in kv.items() if k != b"ARROW:schema"}
print(",".join(t.column_names))
print(",".join(sorted(meta)))
print(meta["figure"], t.num_rows)
schema = {k.decode(): v.decode() for k, v in (t.schema.metadata or {}).items()}
print(",".join(sorted(schema)))
print(schema == meta, pq.read_schema(sys.argv[1]).metadata == t.schema.metadata)
"#;
    let o = Command::new(&python)
        .args(["-c", script])
        .arg(finished().join("controls/controls.parquet"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "fine_tune,framing,metric,value,ci_low,ci_high,n,seeds"
    );
    assert_eq!(
        lines[1],
        "code_version,config_hash,dataset_hashes,figure,figure_version,profile,schema_version"
    );
    // 3 arms (base, harmful, benign) x 2 framings x 2 metrics x (open questions, the cell).
    assert_eq!(lines[2], "controls 24");
    // The same keys through pyarrow's default API (the Arrow schema), not only the Parquet footer.
    assert_eq!(lines[3], lines[1]);
    assert_eq!(lines[4], "True True");
}
