//! The version of the code behind each job: a hash of exactly the sources that compute its outputs, so
//! editing a training file reruns training, editing one figure's builder reruns that figure's tables,
//! and editing the scheduler, the progress display or the command line reruns nothing.
//!
//! - compute jobs (pretrain, fine-tune, teach, distil, eval): the world, io and core crates, and the
//!   toolchain (`rustc -vV` and the CPU features the kernels dispatch on, which change floating-point
//!   results as much as a source edit);
//! - a figure's table job: the world, io and analysis crates, the table writer, the figures' shared
//!   code and the figure's own file;
//! - the claims job: the world, io and analysis crates and the claims table's code;
//! - a stage of your own model (`emsl-hf job`): the compute jobs' crates and crates/hf, and the
//!   toolchain.
//!
//! A source file is hashed as its tokens ([`tokens`]): a comment, a doc comment or a reflowed line
//! moves no identity, any token does. Every version also hashes each of its crates' manifests (a
//! feature such as gemm's AVX-512 kernels changes results as much as a source edit) and, of the
//! workspace's lock and manifest, what those crates depend on ([`cargo`]): the packages they reach,
//! the resolver and the release profile. Tests are not hashed.

mod cargo;
mod tokens;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Where the repro crate's sources sit in the workspace.
const REPRO: &str = "crates/repro/src";

#[derive(Debug, Clone)]
pub struct CodeVersions {
    pub compute: String,
    /// Per registered figure, the version of its table job.
    pub figures: BTreeMap<String, String>,
    pub claims: String,
    /// Your own model's stages (`emsl-hf job`): the compute crates, crates/hf and what they reach.
    pub own: String,
}

/// A figure as the hasher sees it: its name and its own source file (relative to the workspace), which
/// no other figure's table job hashes.
#[derive(Debug, Clone, Copy)]
pub struct FigureSource<'a> {
    pub name: &'a str,
    pub source: &'a str,
}

impl CodeVersions {
    /// The versions of this checkout's sources, with `figures` the registered figures.
    pub fn of_sources(root: &Path, figures: &[FigureSource]) -> Result<CodeVersions> {
        CodeVersions::with_toolchain(root, figures, &toolchain())
    }

    /// The versions with `toolchain` as the compute jobs' toolchain (tests pass a fixed one).
    pub fn with_toolchain(
        root: &Path,
        figures_registered: &[FigureSource],
        toolchain: &str,
    ) -> Result<CodeVersions> {
        let cargo = cargo::CargoFiles::read(root)?;
        let mut compute = code_parts(&cargo, &["world", "io", "core"])?;
        compute.push(Part::Text(toolchain.to_owned()));
        let mut own = code_parts(&cargo, &["world", "io", "core", "hf"])?;
        own.push(Part::Text(toolchain.to_owned()));
        let analysis = code_parts(&cargo, &["world", "io", "analysis"])?;
        let figures_dir = format!("{REPRO}/figures");
        let mut figures = BTreeMap::new();
        for f in figures_registered {
            let mut parts = analysis.clone();
            parts.push(Part::File(format!("{REPRO}/analysis.rs")));
            // The figures folder without the other figures' files.
            let others = figures_registered.iter().filter(|o| o.source != f.source);
            parts.push(Part::DirExcept(
                figures_dir.clone(),
                others.map(|o| o.source.to_owned()).collect(),
            ));
            figures.insert(f.name.to_owned(), hash(root, &parts)?);
        }
        let mut claims = analysis;
        claims.push(Part::File(format!("{REPRO}/claims.rs")));
        Ok(CodeVersions {
            compute: hash(root, &compute)?,
            figures,
            claims: hash(root, &claims)?,
            own: hash(root, &own)?,
        })
    }
}

/// What a version hashes.
#[derive(Debug, Clone)]
enum Part {
    /// A file, or every `.rs` file under a folder.
    File(String),
    /// Every `.rs` file under a folder except the listed paths.
    DirExcept(String, Vec<String>),
    /// Text that is not a file (the toolchain).
    Text(String),
}

/// Each crate's manifest and sources (crate `crates/{c}` is package `emsl-{c}`), and what of the
/// workspace's lock and manifest they depend on.
fn code_parts(cargo: &cargo::CargoFiles, crates: &[&str]) -> Result<Vec<Part>> {
    let packages: Vec<String> = crates.iter().map(|c| format!("emsl-{c}")).collect();
    let packages: Vec<&str> = packages.iter().map(String::as_str).collect();
    let mut parts = vec![Part::Text(cargo.dependency_text(&packages)?)];
    for c in crates {
        parts.push(Part::File(format!("crates/{c}/Cargo.toml")));
        parts.push(Part::File(format!("crates/{c}/src")));
    }
    Ok(parts)
}

fn hash(root: &Path, parts: &[Part]) -> Result<String> {
    let mut files = Vec::new();
    let mut texts = Vec::new();
    for part in parts {
        match part {
            Part::File(p) if root.join(p).is_file() => files.push(root.join(p)),
            Part::File(p) => rust_files(&root.join(p), &mut files)
                .with_context(|| format!("reading {}", root.join(p).display()))?,
            Part::DirExcept(p, except) => {
                let mut found = Vec::new();
                rust_files(&root.join(p), &mut found)
                    .with_context(|| format!("reading {}", root.join(p).display()))?;
                let except: Vec<PathBuf> = except.iter().map(|e| root.join(e)).collect();
                files.extend(found.into_iter().filter(|f| !except.contains(f)));
            }
            Part::Text(t) => texts.push(t.clone()),
        }
    }
    files.sort();
    files.dedup();
    let mut bytes = Vec::new();
    for f in files {
        let rel = f.strip_prefix(root).unwrap_or(&f);
        bytes.extend_from_slice(rel.to_string_lossy().as_bytes());
        bytes.push(0);
        let text = std::fs::read(&f).with_context(|| format!("reading {}", f.display()))?;
        if f.extension().is_some_and(|e| e == "rs") {
            let text =
                String::from_utf8(text).with_context(|| format!("{} is not UTF-8", f.display()))?;
            bytes.extend_from_slice(
                tokens::normalised(&text, &rel.display().to_string())?.as_bytes(),
            );
        } else {
            bytes.extend_from_slice(&text);
        }
        bytes.push(0);
    }
    for t in texts {
        bytes.extend_from_slice(t.as_bytes());
        bytes.push(0);
    }
    Ok(emsl_io::sha256_bytes(&bytes))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            rust_files(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
    Ok(())
}

/// The toolchain and CPU the compute jobs run with: `rustc -vV` and the instruction-set features the
/// kernels and the matrix products dispatch on at run time.
pub fn toolchain() -> String {
    let rustc =
        std::process::Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
            .arg("-vV")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|| "rustc: unknown".into());
    format!("{rustc}\ncpu features: {}", cpu_features())
}

/// The dispatched-on features this CPU has (x86-64: AVX-512 F/VL, AVX2, FMA).
pub fn cpu_features() -> String {
    #[cfg(target_arch = "x86_64")]
    {
        let all = [
            ("avx512f", std::arch::is_x86_feature_detected!("avx512f")),
            ("avx512vl", std::arch::is_x86_feature_detected!("avx512vl")),
            ("avx2", std::arch::is_x86_feature_detected!("avx2")),
            ("fma", std::arch::is_x86_feature_detected!("fma")),
        ];
        let on: Vec<&str> = all.iter().filter(|(_, on)| *on).map(|(n, _)| *n).collect();
        format!("x86_64 {}", on.join(" "))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        std::env::consts::ARCH.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::CodeVersions;

    /// A crate's source, and the same with other comments and rustfmt's layout.
    const CORE: &str = "/// Adds.\npub fn add(a: f32, b: f32) -> f32 { a + b }\n";
    const CORE_RECOMMENTED: &str =
        "//! The kernels.\n\n/// Adds two numbers.\npub fn add(\n    a: f32,\n    b: f32,\n) -> f32 {\n    a + b // in f32\n}\n";

    const MANIFEST: &str = r#"
[workspace]
resolver = "2"
[workspace.dependencies]
gemm = { version = "0.19", features = ["x86-v4"] }
minijinja = "2"
[profile.release]
debug = "line-tables-only"
[profile.dev.package."*"]
opt-level = 2
"#;

    /// emsl-hf and its minijinja: only your own model's stages reach them.
    const LOCK: &str = r#"
version = 4
[[package]]
name = "emsl-world"
version = "0.1.0"
dependencies = ["rand_core"]
[[package]]
name = "emsl-io"
version = "0.1.0"
dependencies = ["emsl-world"]
[[package]]
name = "emsl-core"
version = "0.1.0"
dependencies = ["emsl-io", "emsl-world", "gemm"]
[[package]]
name = "emsl-analysis"
version = "0.1.0"
dependencies = ["emsl-io", "emsl-world"]
[[package]]
name = "emsl-hf"
version = "0.1.0"
dependencies = ["emsl-core", "minijinja"]
[[package]]
name = "gemm"
version = "0.19.0"
checksum = "aa"
[[package]]
name = "minijinja"
version = "2.0.0"
checksum = "bb"
[[package]]
name = "rand_core"
version = "0.9.0"
checksum = "cc"
"#;

    #[test]
    fn code_versions_follow_what_computes_each_job() {
        let root = tempfile::tempdir().unwrap();
        let write = |path: &str, text: &str| {
            let p = root.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        let registered = crate::figures::sources();
        let figure_files: Vec<&str> = registered.iter().map(|f| f.source).collect();
        let mut files = vec![
            "crates/repro/src/analysis.rs",
            "crates/repro/src/claims.rs",
            "crates/repro/src/exec/mod.rs",
            "crates/repro/src/figures/mod.rs",
        ];
        files.extend(&figure_files);
        for f in files {
            write(f, "a");
        }
        write("Cargo.toml", MANIFEST);
        write("Cargo.lock", LOCK);
        for c in ["world", "io", "core", "analysis", "hf"] {
            write(&format!("crates/{c}/Cargo.toml"), "a");
            write(&format!("crates/{c}/src/lib.rs"), CORE);
            write(&format!("crates/{c}/tests/t.rs"), "a");
        }
        let v0 = CodeVersions::with_toolchain(root.path(), &registered, "rustc 1").unwrap();
        let grid = figure_files[0];
        // Writes `text` to `path`, takes the versions, and puts the file back.
        let changed_to = |path: &str, text: &str, toolchain: &str| {
            let old = std::fs::read_to_string(root.path().join(path)).unwrap();
            write(path, text);
            let v = CodeVersions::with_toolchain(root.path(), &registered, toolchain).unwrap();
            write(path, &old);
            (
                v.compute != v0.compute,
                v.figures["transfer-grid"] != v0.figures["transfer-grid"],
                v.figures["shared-init"] != v0.figures["shared-init"],
                v.claims != v0.claims,
                v.own != v0.own,
            )
        };
        let changed = |path: &str, toolchain: &str| changed_to(path, "b", toolchain);
        let manifest =
            |from: &str, to: &str| changed_to("Cargo.toml", &MANIFEST.replace(from, to), "rustc 1");
        let lock =
            |from: &str, to: &str| changed_to("Cargo.lock", &LOCK.replace(from, to), "rustc 1");
        let all = (true, true, true, true, true);
        let none = (false, false, false, false, false);
        let compute = (true, false, false, false, true);
        let own = (false, false, false, false, true);
        // (compute, transfer-grid's tables, shared-init's tables, claims, own-model stages)
        assert_eq!(changed("crates/core/tests/t.rs", "rustc 1"), none);
        assert_eq!(
            manifest("debug = \"line-tables-only\"", "debug = false"),
            all
        );
        assert_eq!(manifest("opt-level = 2", "opt-level = 1"), none);
        assert_eq!(manifest("[\"x86-v4\"]", "[]"), compute);
        assert_eq!(manifest("minijinja = \"2\"", "minijinja = \"3\""), own);
        assert_eq!(lock("\"cc\"", "\"dd\""), all);
        assert_eq!(lock("\"0.19.0\"", "\"0.19.1\""), compute);
        assert_eq!(lock("\"2.0.0\"", "\"2.1.0\""), own);
        assert_eq!(changed("crates/core/Cargo.toml", "rustc 1"), compute);
        assert_eq!(changed("crates/core/src/lib.rs", "rustc 1"), compute);
        // Comments and layout move nothing; an operator moves what the crate computes.
        let core = "crates/core/src/lib.rs";
        assert_eq!(changed_to(core, CORE_RECOMMENTED, "rustc 1"), none);
        assert_eq!(
            changed_to(core, &CORE.replace('+', "-"), "rustc 1"),
            compute
        );
        let world = "crates/world/src/lib.rs";
        assert_eq!(changed_to(world, CORE_RECOMMENTED, "rustc 1"), none);
        assert_eq!(changed_to(world, &CORE.replace('+', "*"), "rustc 1"), all);
        let hf = "crates/hf/src/lib.rs";
        assert_eq!(changed_to(hf, &CORE.replace('+', "-"), "rustc 1"), own);
        assert_eq!(changed("crates/world/src/lib.rs", "rustc 1"), all);
        assert_eq!(changed("crates/hf/src/lib.rs", "rustc 1"), own);
        assert_eq!(changed("crates/hf/Cargo.toml", "rustc 1"), own);
        assert_eq!(changed("crates/hf/tests/t.rs", "rustc 1"), none);
        assert_eq!(
            changed("crates/analysis/Cargo.toml", "rustc 1"),
            (false, true, true, true, false)
        );
        assert_eq!(changed("crates/repro/src/exec/mod.rs", "rustc 1"), none);
        assert_eq!(
            changed("crates/repro/src/figures/mod.rs", "rustc 1"),
            (false, true, true, false, false)
        );
        assert_eq!(changed(grid, "rustc 1"), (false, true, false, false, false));
        assert_eq!(
            changed("crates/repro/src/claims.rs", "rustc 1"),
            (false, false, false, true, false)
        );
        assert_eq!(
            changed("crates/repro/src/claims.rs", "rustc 2"),
            (true, false, false, true, true)
        );
    }
}
