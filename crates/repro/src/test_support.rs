//! Small jobs and graphs for the unit tests of the graph and the executor.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::code_version::CodeVersions;
use crate::graph::{Graph, Task};

/// A graph over one dataset, `pretrain-reference`, with the code versions of `root`'s sources.
pub fn empty_graph(root: &Path) -> Graph {
    let hashes = BTreeMap::from([("pretrain-reference".to_owned(), "0".repeat(64))]);
    let code = CodeVersions::with_toolchain(root, &crate::figures::sources(), "test")
        .expect("the sources are readable");
    Graph::new(hashes, code)
}

pub fn root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A copy of the project's figures folder (in a temporary folder, returned with it), each file's
/// text passed through `edit` with its file name.
pub fn edited_figures(edit: impl Fn(&str, String) -> String) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let figures = tmp.path().join("figures");
    std::fs::create_dir(&figures).unwrap();
    for f in std::fs::read_dir(root().join("figures")).unwrap() {
        let f = f.unwrap().path();
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let text = edit(&name, std::fs::read_to_string(&f).unwrap());
        std::fs::write(figures.join(&name), text).unwrap();
    }
    (tmp, figures)
}

/// A one-step pretrain of a tiny model from `seed`.
pub fn pretrain(seed: u64) -> Task {
    let optim = emsl_core::optim::OptimConfig {
        lr: 1e-3,
        min_lr_ratio: 0.1,
        warmup_steps: 1,
        weight_decay: 0.0,
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        grad_clip: 1.0,
    };
    let spec = emsl_core::stages::StageSpec::Pretrain(emsl_core::stages::PretrainSpec {
        dataset: "pretrain-reference".into(),
        documents: 1,
        init_seed: seed,
        model: emsl_core::stages::ModelSize {
            n_ctx: 8,
            d_model: 8,
            n_layer: 1,
            n_head: 1,
            d_ff: 8,
        },
        train: emsl_core::train::TrainConfig {
            steps: 1,
            batch_size: 1,
            seed,
            log_every: 1,
            optim,
        },
        checkpoints: vec![],
    });
    Task::compute(spec, &[])
}
