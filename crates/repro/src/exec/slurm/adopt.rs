//! Submissions neither lost nor repeated. Before `sbatch` runs, the coordinator writes the job's record
//! with the name the job is submitted under and no id (the intent); after, the id. A coordinator killed
//! in between leaves an intent, and `sbatch` may or may not have reached the controller. The next call
//! asks Slurm for jobs of that name: one is adopted (its id recorded, nothing submitted), none means
//! Slurm never took it (it is submitted again), and more than one copy, one of them live, stops the call with the
//! ids, since two copies would write into one `.partial` folder.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, Hasher};
use std::path::Path;

use anyhow::{bail, Result};

use super::commands::{Commands, State};
use super::files::{read, record_path, write_record};
use crate::store;

/// A fresh Slurm job name for job `key`: `emsl-<key>-<tag>`, the tag new for each submission. A key
/// alone is not enough: the same job has the same key in every results folder, and a failed job is
/// submitted again under it; with the tag a name stands for one submission, so what Slurm holds under
/// it is that submission's job alone.
pub fn job_name(key: &str) -> String {
    // std's RandomState is seeded from the OS per process and advanced per instance; with the time
    // and the process id it gives tags that two coordinators do not share.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.write_u128(nanos);
    h.write_u32(std::process::id());
    h.write(key.as_bytes());
    format!("emsl-{key}-{:08x}", h.finish() as u32)
}

/// Settles the interrupted submissions among the jobs `keys` of the results folder `out` (one
/// `squeue` for all of them): adopts the one job Slurm holds under an intent's name, forgets an intent
/// whose name Slurm does not know, and refuses to guess where a name has
/// more than one job, one of them live.
pub fn settle<'k>(
    cmds: &Commands,
    out: &Path,
    keys: impl IntoIterator<Item = &'k str>,
) -> Result<()> {
    let mut intents = BTreeMap::new();
    for key in keys {
        if let Some(r) = read(out, key).filter(|r| r.id.is_none()) {
            match r.name {
                Some(name) => intents.insert(name, key),
                // Neither name nor id: nothing was asked of Slurm under it.
                None => intents.insert(String::new(), key),
            };
        }
    }
    if let Some(key) = intents.remove("") {
        std::fs::remove_file(record_path(out, key))?;
    }
    if intents.is_empty() {
        return Ok(());
    }
    let names: BTreeSet<String> = intents.keys().cloned().collect();
    let found = cmds.named(&names)?;
    for (name, key) in intents {
        let jobs = found.get(&name).map(Vec::as_slice).unwrap_or(&[]);
        let live: Vec<&str> = jobs
            .iter()
            .filter(|(_, s)| matches!(s, State::Active { .. }))
            .map(|(id, _)| id.as_str())
            .collect();
        match jobs {
            [(id, _)] => {
                write_record(out, key, &name, Some(id))?;
                eprintln!(
                    "slurm: job {key}: adopted Slurm job {id} ({name}), which an interrupted call \
                     submitted without recording it"
                );
            }
            // Two copies, one of them still running: both wrote, or write, into one folder.
            _ if !live.is_empty() => bail!(
                "job {key} was submitted more than once under the name {name}: Slurm holds jobs {} \
                 ({} of them queued or running), and they write into one folder, {}; the kit does \
                 not pick one. Cancel them (`scancel {}`) and run again: the job is then submitted \
                 once more, into a cleared folder",
                jobs.iter()
                    .map(|(id, s)| format!("{id} {}", s.name()))
                    .collect::<Vec<_>>()
                    .join(", "),
                live.len(),
                store::partial_folder(out, key).display(),
                live.join(" ")
            ),
            // None known (sbatch never reached the controller, or its job ended and was forgotten),
            // or only ended copies: nothing of it runs, so it is submitted again, into a cleared
            // folder, unless it finished (its folder is then collected).
            _ => {
                std::fs::remove_file(record_path(out, key))?;
                let ids: Vec<&str> = jobs.iter().map(|(id, _)| id.as_str()).collect();
                eprintln!(
                    "slurm: job {key}: an interrupted call meant to submit it as {name}; Slurm holds \
                     {} under that name, so it is submitted again if it did not finish",
                    if ids.is_empty() {
                        "no job".to_owned()
                    } else {
                        format!("only ended jobs ({})", ids.join(", "))
                    }
                );
            }
        }
    }
    Ok(())
}
