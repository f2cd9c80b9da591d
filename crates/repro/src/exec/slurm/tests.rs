//! The coordinator against a fake Slurm: `sbatch`, `squeue`, `sacct` and `scancel` scripts written
//! into a temporary folder (`Commands::dir`), which keep their queue in a file. They check what the
//! coordinator asks of Slurm when a submission was interrupted, when the controller fails for a while,
//! and what `--dry-run` prints for a results folder whose path has a `%`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::batch::Sizing;
use super::commands::{Commands, State};
use super::files::{read, read_record, write_record};
use super::{run, Mode, Options, Outcome};
use crate::exec::Settings;
use crate::graph::{Graph, JobBinary};
use crate::test_support::{empty_graph, pretrain, root};

/// A fake Slurm in `dir/bin` with its state in `dir/state`: `sbatch` appends `id|name|PENDING|None` to
/// `state/queue` (ids from 101) and, while `state/die-after-accept` exists, then fails as a coordinator
/// killed after the controller took the job would see it (the job queued, no id recorded). `squeue`
/// prints the queue (by `--name` with `%i|%j|%T|%r`, else `%i|%T|%r`) and fails as many times as
/// `state/squeue-fails` says first. `sacct` fails (no accounting). Each logs its arguments.
struct FakeSlurm {
    _dir: tempfile::TempDir,
    bin: PathBuf,
    state: PathBuf,
}

impl FakeSlurm {
    fn new() -> FakeSlurm {
        let dir = tempfile::tempdir().unwrap();
        let (bin, state) = (dir.path().join("bin"), dir.path().join("state"));
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(&state).unwrap();
        std::fs::write(state.join("queue"), "").unwrap();
        let s = state.display();
        let scripts = [
            (
                "sbatch",
                format!(
                    r#"echo "$*" >> "{s}/sbatch.calls"
name=""
for a in "$@"; do case "$a" in --job-name=*) name=${{a#--job-name=}};; esac; done
n=$(( $(cat "{s}/next" 2>/dev/null || echo 100) + 1 ))
echo "$n" > "{s}/next"
echo "$n|$name|PENDING|None" >> "{s}/queue"
if [ -e "{s}/die-after-accept" ]; then
    echo "sbatch: error: Socket timed out on send/recv operation" >&2
    exit 1
fi
echo "$n""#
                ),
            ),
            (
                "squeue",
                format!(
                    r#"n=$(cat "{s}/squeue-fails" 2>/dev/null || echo 0)
if [ "$n" -gt 0 ]; then
    echo $((n - 1)) > "{s}/squeue-fails"
    echo "squeue: error: Unable to contact slurm controller (connect failure)" >&2
    exit 1
fi
echo "$*" >> "{s}/squeue.calls"
name=""
for a in "$@"; do case "$a" in --name=*) name=${{a#--name=}};; esac; done
if [ -n "$name" ]; then
    awk -F'|' -v names=",$name," 'index(names, "," $2 ",")' "{s}/queue"
else
    awk -F'|' '{{ print $1 "|" $3 "|" $4 }}' "{s}/queue"
fi"#
                ),
            ),
            (
                "sacct",
                "echo 'sacct: error: Slurm accounting storage is disabled' >&2; exit 1".to_owned(),
            ),
            ("scancel", format!(r#"echo "$*" >> "{s}/scancel.calls""#)),
        ];
        for (name, body) in scripts {
            let path = bin.join(name);
            std::fs::write(&path, format!("#!/bin/bash\nset -eu\n{body}\n")).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        FakeSlurm {
            _dir: dir,
            bin,
            state,
        }
    }

    fn commands(&self, retry_for: Duration) -> Commands {
        Commands {
            dir: Some(self.bin.clone()),
            retry_for,
            first_backoff: Duration::from_millis(10),
        }
    }

    fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.state.join(name)).unwrap_or_default()
    }

    fn set(&self, name: &str, text: &str) {
        std::fs::write(self.state.join(name), text).unwrap();
    }
}

fn options(mode: Mode, commands: Commands) -> Options {
    Options {
        mode,
        partition: None,
        account: None,
        sizing: Sizing {
            time_factor: 3.0,
            min_minutes: 5,
            default_minutes: 120,
            default_mem_mib: 4096,
        },
        poll: Duration::from_millis(10),
        commands,
    }
}

/// Two independent compute jobs, a and b (in that order).
fn two_jobs() -> (Graph, String, String) {
    let mut g = empty_graph(&root());
    let a = g.add("a", pretrain(1)).unwrap();
    let b = g.add("b", pretrain(2)).unwrap();
    (g, a, b)
}

/// One call of the coordinator on `out`; the job binary is any file (it is only copied).
fn call(out: &Path, graph: &Graph, opts: &Options) -> anyhow::Result<Outcome> {
    let s = Settings {
        root: root(),
        out: out.to_path_buf(),
        jobs: 1,
        threads: 1,
        profile: "smoke".into(),
    };
    let binary = out.with_extension("binary");
    std::fs::write(&binary, "a job binary").unwrap();
    run(&s, graph, &BTreeMap::from([(JobBinary::Kit, binary)]), opts)
}

/// The state a coordinator killed between `sbatch` and its record leaves (sbatch took job a, its
/// record has a's name and no id) is reached through the real submit path; the next call finds a's
/// job by that name and adopts it, submitting only b: sbatch ran once per job.
#[test]
fn a_coordinator_stopped_between_sbatch_and_its_record_does_not_submit_twice() {
    let slurm = FakeSlurm::new();
    let out = tempfile::tempdir().unwrap();
    let (g, a, b) = two_jobs();
    let opts = options(Mode::Submit, slurm.commands(Duration::from_secs(5)));
    slurm.set("die-after-accept", "");
    let err = format!("{:#}", call(out.path(), &g, &opts).unwrap_err());
    assert!(err.contains(&format!("submitting job {a}")), "{err}");
    assert!(err.contains("the next call asks Slurm"), "{err}");
    let intent = read(out.path(), &a).expect("an intent is recorded before sbatch");
    let name = intent.name.expect("the intent names the job");
    assert_eq!(intent.id, None);
    assert_eq!(slurm.file("queue"), format!("101|{name}|PENDING|None\n"));

    std::fs::remove_file(slurm.state.join("die-after-accept")).unwrap();
    let o = call(out.path(), &g, &opts).unwrap();
    assert_eq!(
        read_record(out.path(), &a).as_deref(),
        Some("101"),
        "adopted"
    );
    assert_eq!(o.submitted, [(b.clone(), "102".to_owned())]);
    assert_eq!(o.in_flight, 2);
    let calls = slurm.file("sbatch.calls");
    assert_eq!(calls.lines().count(), 2, "{calls}");
    assert_eq!(calls.matches(&format!("--job-name=emsl-{a}-")).count(), 1);
    // The adoption asked by name, once.
    assert!(slurm
        .file("squeue.calls")
        .contains(&format!("--name={name}")));
}

/// An intent whose name Slurm does not know (sbatch never reached the controller) is submitted
/// again, under a new name, and recorded.
#[test]
fn an_interrupted_submission_slurm_never_took_is_submitted_again() {
    let slurm = FakeSlurm::new();
    let out = tempfile::tempdir().unwrap();
    let (g, a, b) = two_jobs();
    std::fs::create_dir_all(crate::store::jobs_dir(out.path())).unwrap();
    write_record(out.path(), &a, &format!("emsl-{a}-0badc0de"), None).unwrap();
    let opts = options(Mode::Submit, slurm.commands(Duration::from_secs(5)));
    let o = call(out.path(), &g, &opts).unwrap();
    let ids: BTreeSet<&str> = o.submitted.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(ids, BTreeSet::from([a.as_str(), b.as_str()]));
    let r = read(out.path(), &a).unwrap();
    assert!(r.id.is_some());
    assert_ne!(
        r.name.as_deref(),
        Some(format!("emsl-{a}-0badc0de").as_str())
    );
}

/// Two live jobs under one intent's name: the call stops naming both ids and the way out, submits
/// nothing and leaves the intent as it was.
#[test]
fn two_live_copies_of_one_submission_stop_the_call() {
    let slurm = FakeSlurm::new();
    let out = tempfile::tempdir().unwrap();
    let (g, a, _) = two_jobs();
    let name = format!("emsl-{a}-0badc0de");
    std::fs::create_dir_all(crate::store::jobs_dir(out.path())).unwrap();
    write_record(out.path(), &a, &name, None).unwrap();
    slurm.set(
        "queue",
        &format!("101|{name}|RUNNING|None\n102|{name}|PENDING|None\n"),
    );
    let opts = options(Mode::Submit, slurm.commands(Duration::from_secs(5)));
    let err = format!("{:#}", call(out.path(), &g, &opts).unwrap_err());
    assert!(
        err.contains(&format!("job {a} was submitted more than once")),
        "{err}"
    );
    assert!(err.contains("101 RUNNING, 102 PENDING"), "{err}");
    assert!(err.contains("scancel 101 102"), "{err}");
    assert_eq!(slurm.file("sbatch.calls"), "");
    assert_eq!(read(out.path(), &a).unwrap().name, Some(name));
}

/// A squeue that fails twice (a controller restarting) is tried again and its third answer used.
#[test]
fn a_squeue_that_fails_twice_is_tried_again() {
    let slurm = FakeSlurm::new();
    slurm.set("queue", "7|emsl-x-1|RUNNING|None\n");
    slurm.set("squeue-fails", "2");
    let ids = BTreeSet::from(["7".to_owned()]);
    let states = slurm
        .commands(Duration::from_secs(30))
        .states(&ids)
        .unwrap();
    assert!(matches!(&states["7"], State::Active { state, .. } if state == "RUNNING"));
    assert_eq!(
        slurm.file("squeue-fails").trim(),
        "0",
        "both failures were used up"
    );
}

/// A squeue that keeps failing is given up after the bound, naming the command, its stderr and the
/// option that sets the bound.
#[test]
fn a_squeue_that_keeps_failing_is_given_up_naming_it() {
    let slurm = FakeSlurm::new();
    slurm.set("squeue-fails", "1000");
    let ids = BTreeSet::from(["7".to_owned()]);
    // A second of retries (waits of 10, 20, 40, ... ms): room for several tries even when the fake
    // squeue takes a hundred milliseconds on a loaded machine (50 ms gave one try there).
    let err = slurm
        .commands(Duration::from_secs(1))
        .states(&ids)
        .unwrap_err()
        .to_string();
    assert!(err.contains("squeue -h -t all -u"), "{err}");
    assert!(err.contains("Unable to contact slurm controller"), "{err}");
    assert!(err.contains("--slurm-retry"), "{err}");
    let left: u32 = slurm.file("squeue-fails").trim().parse().unwrap();
    assert!(left < 999, "tried more than once: {left} failures left");
}

/// `--dry-run` on a results folder named `run%j` prints each job's sbatch command in full, with
/// `%%` where sbatch would expand `%` (`--output`) and the path as it is elsewhere; it asks Slurm
/// nothing.
#[test]
fn the_dry_run_prints_full_sbatch_options_with_escaped_percent() {
    let slurm = FakeSlurm::new();
    let parent = tempfile::tempdir().unwrap();
    let out = parent.path().join("run%j");
    let (g, a, b) = two_jobs();
    let opts = options(Mode::DryRun, slurm.commands(Duration::from_secs(5)));
    let o = call(&out, &g, &opts).unwrap();
    assert_eq!(o.dry_run.len(), 2, "{:?}", o.dry_run);
    let p = parent.path().display();
    for (line, key) in o.dry_run.iter().zip([&a, &b]) {
        for want in [
            format!("--job-name=emsl-{key}-<tag>"),
            format!("--output={p}/run%%j/jobs/{key}.log"),
            format!("--chdir={}", root().display()),
            "--cpus-per-task=1 --mem=4096M --time=120".to_owned(),
            format!(" {p}/run%j/jobs/{key}.sbatch"),
        ] {
            assert!(line.contains(&want), "{want} not in {line}");
        }
    }
    assert_eq!(slurm.file("squeue.calls") + &slurm.file("sbatch.calls"), "");
}
