//! The local runner: each compute job is a child process of its job binary (`xtask job CONFIG`, or
//! `emsl-hf job CONFIG` for your own model) with its thread count in the environment and its output
//! and errors in the job's log.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::{ComputeJob, Runner};
use crate::graph::JobBinary;

pub struct LocalRunner {
    /// Each job binary and its arguments before the config path.
    programs: BTreeMap<JobBinary, (PathBuf, Vec<String>)>,
    /// The children still running, by job key (cancel_all kills them).
    running: Mutex<BTreeMap<String, Child>>,
}

impl LocalRunner {
    /// A runner with no program yet ([`LocalRunner::with`] adds them).
    pub fn new() -> LocalRunner {
        LocalRunner {
            programs: BTreeMap::new(),
            running: Mutex::new(BTreeMap::new()),
        }
    }

    /// Runs the jobs of `binary` as `program args... CONFIG`.
    pub fn with(mut self, binary: JobBinary, program: PathBuf, args: Vec<String>) -> LocalRunner {
        self.programs.insert(binary, (program, args));
        self
    }
}

/// How often a running job is checked (a child is polled rather than waited for, so that cancel_all
/// can kill it while its runner thread waits).
const POLL: Duration = Duration::from_millis(20);

impl Default for LocalRunner {
    fn default() -> Self {
        LocalRunner::new()
    }
}

impl Runner for LocalRunner {
    fn run(&self, job: &ComputeJob) -> Result<()> {
        let log = std::fs::File::create(job.log)
            .with_context(|| format!("creating {}", job.log.display()))?;
        let Some((program, args)) = self.programs.get(&job.binary) else {
            bail!("this runner has no program for {:?} jobs", job.binary);
        };
        let child = Command::new(program)
            .args(args)
            .arg(job.config)
            .env("RAYON_NUM_THREADS", job.threads.to_string())
            .env("CANDLE_NUM_THREADS", job.threads.to_string())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        self.running
            .lock()
            .expect("not poisoned")
            .insert(job.key.to_owned(), child);
        loop {
            let mut running = self.running.lock().expect("not poisoned");
            let Some(child) = running.get_mut(job.key) else {
                bail!("cancelled");
            };
            if let Some(status) = child.try_wait()? {
                running.remove(job.key);
                if !status.success() {
                    bail!("the job process exited with {status}");
                }
                return Ok(());
            }
            drop(running);
            std::thread::sleep(POLL);
        }
    }

    fn cancel_all(&self) {
        let mut running = self.running.lock().expect("not poisoned");
        for (_, mut child) in std::mem::take(&mut *running) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
