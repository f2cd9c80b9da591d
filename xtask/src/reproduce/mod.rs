//! `cargo xtask reproduce`: expands the figures of `figures/` at a profile into a graph of cached jobs,
//! runs what is not up to date, and writes `results/<figure>/` (tables, plot, SHA256SUMS),
//! `results/repro.lock` and `results/CLAIMS.md`.

mod analysis;
pub mod claims;
mod exec;
pub mod figures;
mod graph;
pub mod lock;
mod spec;
mod timings;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use emsl_core::stages::{
    DistilSpec, EvalSpec, FinetuneSpec, PretrainSpec, StageConfig, StageIo, StageSpec, TeachSpec,
};

pub use exec::files_under;
use graph::{CodeVersions, Graph, Job, Task};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// smoke (minutes, what CI runs), quick (about an hour on 2 cores) or paper (hours).
    #[arg(long, default_value = "quick")]
    pub profile: String,
    /// Only these figures (and the jobs they need); repeatable. Default: every figure.
    #[arg(long = "figure")]
    pub figures: Vec<String>,
    /// Jobs run at once (default: one per core, each with one thread).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// The results folder.
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
    /// The folder of figure files (default: figures/ of the project).
    #[arg(long)]
    pub figures_dir: Option<PathBuf>,
    /// Run nothing: print, per figure, the compute time of its jobs in the last runs (from the job
    /// logs) and its wall time alone replayed on --jobs workers.
    #[arg(long)]
    pub timings: bool,
}

/// The result of expanding figures: the graph and, per figure, its figure job.
pub struct Plan {
    pub graph: Graph,
    pub figure_jobs: BTreeMap<String, String>,
}

pub fn plan(root: &Path, figures_dir: &Path, profile: &str, only: &[String]) -> Result<Plan> {
    let all = spec::load_figures(figures_dir, profile)?;
    for name in only {
        if !all.iter().any(|f| &f.file.name == name) {
            bail!(
                "no figure '{name}' in {} (figures: {})",
                figures_dir.display(),
                all.iter()
                    .map(|f| f.file.name.clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    let prof = spec::load_profile(figures_dir, profile)?;
    let manifest = emsl_io::Manifest::load(&root.join("datasets/manifest.toml"))?;
    let hashes = manifest
        .names()
        .into_iter()
        .map(|n| {
            let sha = manifest.get(&n).expect("listed").sha256.clone();
            (n, sha)
        })
        .collect();
    let mut graph = Graph::new(hashes, CodeVersions::of(root)?);
    let mut figure_jobs = BTreeMap::new();
    for fig in all
        .iter()
        .filter(|f| only.is_empty() || only.contains(&f.file.name))
    {
        let inputs = {
            let mut ctx = figures::Ctx {
                graph: &mut graph,
                profile: &prof,
                profile_name: profile,
            };
            figures::expand(fig, &mut ctx)?
        };
        let name = fig.file.name.clone();
        let job = graph.add(
            &format!("tables and plot of {name}"),
            Task::Figure {
                figure: name.clone(),
                figure_version: fig.file.version,
                params: fig.params.clone(),
                inputs,
            },
        )?;
        figure_jobs.insert(name, job);
    }
    if only.is_empty() {
        let tables = figure_jobs
            .iter()
            .map(|(f, j)| (f.clone(), j.clone()))
            .collect();
        graph.add("claims table", Task::Claims { tables })?;
    }
    Ok(Plan { graph, figure_jobs })
}

pub fn run(args: &Args) -> Result<()> {
    let root = crate::project_root();
    let out = if args.out.is_absolute() {
        args.out.clone()
    } else {
        std::env::current_dir()?.join(&args.out)
    };
    let figures_dir = args
        .figures_dir
        .clone()
        .unwrap_or_else(|| root.join("figures"));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let jobs = args.jobs.unwrap_or(cores).max(1);
    if args.timings {
        let plan = plan(&root, &figures_dir, &args.profile, &args.figures)?;
        print!(
            "{}",
            timings::report(&plan.graph, &plan.figure_jobs, &out, jobs)
        );
        return Ok(());
    }
    let _held = lock::FolderLock::acquire(&out)?;
    let started = std::time::Instant::now();
    // Plan first: a bad figure file or profile fails before anything runs.
    let plan = plan(&root, &figures_dir, &args.profile, &args.figures)?;
    // The dataset stage: generate what is missing, refuse what was tampered with.
    crate::datasets::run(&crate::datasets::Args {
        check: false,
        dir: None,
    })?;
    let settings = exec::Settings {
        root,
        out: out.clone(),
        jobs,
        threads: (cores / jobs).max(1),
        profile: args.profile.clone(),
    };
    let report = exec::run(&settings, &plan.graph)?;
    if args.figures.is_empty() {
        prune(&out, &plan.graph)?;
    }
    eprintln!(
        "reproduce: {} jobs ran, {} were up to date, in {:.1} s; results in {}",
        report.ran.len(),
        report.up_to_date,
        started.elapsed().as_secs_f64(),
        out.display()
    );
    Ok(())
}

/// After a run of every figure: forget lock entries and job folders no figure needs any more.
fn prune(out: &Path, graph: &Graph) -> Result<()> {
    let mut lock = lock::Lock::load(out)?;
    let keep: std::collections::BTreeSet<&str> =
        graph.jobs.iter().map(|j| j.key.as_str()).collect();
    let before = lock.jobs.len();
    lock.jobs.retain(|k, _| keep.contains(k.as_str()));
    if lock.jobs.len() != before {
        lock.save(out)?;
    }
    let jobs = out.join("jobs");
    for e in std::fs::read_dir(&jobs)? {
        let p = e?.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let key = name.split('.').next().unwrap_or("");
        if !keep.contains(key) {
            if p.is_dir() {
                std::fs::remove_dir_all(&p)?;
            } else {
                std::fs::remove_file(&p)?;
            }
        }
    }
    Ok(())
}

/// The stage config a compute job's process reads, with the folders filled in.
fn stage_config(root: &Path, out: &Path, job: &Job, dest: &Path) -> Result<String> {
    let folder = |key: &String| exec::job_folder(out, key);
    let (spec, inputs) = match job.task.clone() {
        Task::Pretrain {
            dataset,
            documents,
            init_seed,
            model,
            train,
        } => (
            StageSpec::Pretrain(PretrainSpec {
                dataset,
                documents,
                init_seed,
                model,
                train,
            }),
            vec![],
        ),
        Task::Finetune {
            base,
            datasets,
            examples_per_dataset,
            train,
        } => (
            StageSpec::Finetune(FinetuneSpec {
                datasets,
                examples_per_dataset,
                train,
            }),
            vec![("base", folder(&base))],
        ),
        Task::Teach {
            teacher,
            suite,
            prompts,
            sampling,
            seed,
        } => (
            StageSpec::Teach(TeachSpec {
                suite,
                prompts,
                sampling,
                seed,
            }),
            vec![("teacher", folder(&teacher))],
        ),
        Task::Distil {
            teacher,
            samples,
            student_init,
            channel,
            beta,
            lambda,
            restrict_to_numbers,
            student_sampling,
            train,
        } => (
            StageSpec::Distil(DistilSpec {
                channel,
                beta,
                lambda,
                restrict_to_numbers,
                student_sampling,
                train,
            }),
            vec![
                ("teacher", folder(&teacher)),
                ("samples", folder(&samples)),
                ("student_init", folder(&student_init)),
            ],
        ),
        Task::Eval {
            model,
            suite,
            kinds,
            max_prompts,
            eval,
            probe,
        } => (
            StageSpec::Eval(EvalSpec {
                suite,
                kinds,
                max_prompts,
                eval,
                probe,
            }),
            vec![("model", folder(&model))],
        ),
        _ => bail!("{} is not a compute job", job.key),
    };
    let cfg = StageConfig {
        spec,
        io: StageIo {
            datasets_dir: root.join("datasets"),
            inputs: inputs
                .into_iter()
                .map(|(role, dir)| (role.to_owned(), dir))
                .collect(),
            out: dest.to_path_buf(),
        },
    };
    Ok(toml::to_string(&cfg)?)
}
