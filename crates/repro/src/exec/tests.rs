//! The executor's failure paths with a runner that panics or waits: a panicking job fails the run at
//! once, naming the job, and the jobs still running are cancelled rather than waited for.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;

use super::{ComputeJob, Runner, Settings};
use crate::graph::Graph;
use crate::test_support::{empty_graph, pretrain};

/// Panics on the job labelled `boom`; any other job waits until cancelled (or 60 s) and succeeds.
struct Injected {
    out: PathBuf,
    cancelled: AtomicBool,
}

impl Runner for Injected {
    fn run(&self, job: &ComputeJob) -> Result<()> {
        if job.label == "boom" {
            panic!("injected panic");
        }
        let started = Instant::now();
        while !self.cancelled.load(Ordering::SeqCst) {
            if started.elapsed() > Duration::from_secs(60) {
                std::fs::create_dir_all(crate::store::partial_folder(&self.out, job.key))?;
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        anyhow::bail!("cancelled")
    }

    fn cancel_all(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }
}

fn graph(root: &Path) -> Graph {
    let mut g = empty_graph(root);
    g.add("slow", pretrain(1)).unwrap();
    g.add("boom", pretrain(2)).unwrap();
    g
}

#[test]
fn a_panicking_job_fails_the_run_at_once_naming_it() {
    let root = crate::test_support::root();
    let out = tempfile::tempdir().unwrap();
    let settings = Settings {
        root: root.clone(),
        out: out.path().to_path_buf(),
        jobs: 2,
        threads: 1,
        profile: "smoke".into(),
    };
    let g = graph(&root);
    let boom = g
        .jobs
        .iter()
        .find(|j| j.label == "boom")
        .unwrap()
        .key
        .clone();
    let runner = Injected {
        out: out.path().to_path_buf(),
        cancelled: AtomicBool::new(false),
    };
    let started = Instant::now();
    let err = match super::run(&settings, &g, &runner) {
        Ok(_) => panic!("a run with a panicking job succeeded"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the run waited for the slow job instead of stopping"
    );
    assert!(
        runner.cancelled.load(Ordering::SeqCst),
        "the slow job was not cancelled"
    );
    assert!(err.contains(&format!("job {boom} (boom) failed")), "{err}");
    assert!(err.contains("panicked: injected panic"), "{err}");
}
