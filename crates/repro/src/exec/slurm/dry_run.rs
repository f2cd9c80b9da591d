//! `--dry-run`: what a call would submit, each job with its full sbatch command, asking Slurm nothing.

use anyhow::Result;

use super::files::{self, read_record, script_path};
use super::{batch, Coordinator};
use crate::store;

impl Coordinator<'_> {
    /// The jobs of the graph not in the lock and not in flight, each with the sbatch command it would
    /// be submitted with (an input not yet submitted stands as `<key>`, the name's tag as `<tag>`).
    pub(super) fn dry_run(&self) -> Result<Vec<String>> {
        let out = &self.s.out;
        let recorded = batch::Recorded::read(out, self.graph);
        let mut lines = Vec::new();
        for job in self.graph.jobs.iter().filter(|j| j.task.is_compute()) {
            let record = files::read(out, &job.key).unwrap_or_default();
            if self.done.contains(&job.key) || record.id.is_some() {
                continue;
            }
            if let Some(name) = record.name {
                lines.push(format!(
                    "{} ({}): an interrupted call may have submitted it as {name}; the next call \
                     asks Slurm for a job of that name before it submits anything",
                    job.key, job.label
                ));
                continue;
            }
            let r = batch::request(&recorded, job, self.s.threads, &self.opts.sizing);
            let after = job
                .task
                .deps()
                .iter()
                .filter(|d| !self.done.contains(*d))
                .map(|d| read_record(out, d).unwrap_or_else(|| format!("<{d}>")))
                .collect();
            let paths = (script_path(out, &job.key), store::log_path(out, &job.key));
            let name = format!("emsl-{}-<tag>", job.key);
            let args = self.submission(name, &r, &paths, after).args()?;
            let words: Vec<String> = args.iter().map(|a| batch::shell_word(a)).collect();
            lines.push(format!(
                "{} ({}), sized from {}:\n  sbatch {}",
                job.key,
                job.label,
                r.basis,
                words.join(" ")
            ));
        }
        Ok(lines)
    }
}
