//! What of the workspace's manifest and lock a job's code depends on: the packages its crates reach in
//! `Cargo.lock` (name, version, source, checksum, dependencies) and, of the root `Cargo.toml`, the
//! resolver, the release profile and the `[workspace.dependencies]` entries of those packages (their
//! features). A crate that no job reaches (emsl-hf and its candle-transformers, tokenizers, minijinja;
//! xtask's xshell) can then change its dependencies without moving any result's identity, and a
//! dev-profile setting, which no job is built with, moves none either.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{bail, Context, Result};

/// The workspace's `Cargo.lock` and root `Cargo.toml`, read and parsed once for every version.
pub(super) struct CargoFiles {
    lock: toml::Table,
    manifest: toml::Table,
}

impl CargoFiles {
    pub(super) fn read(root: &Path) -> Result<CargoFiles> {
        Ok(CargoFiles {
            lock: read_toml(&root.join("Cargo.lock"))?,
            manifest: read_toml(&root.join("Cargo.toml"))?,
        })
    }

    /// The text a version hashes for the lock and root manifest, given the workspace crates' package
    /// names.
    pub(super) fn dependency_text(&self, packages: &[&str]) -> Result<String> {
        dependency_text(&self.lock, &self.manifest, packages)
    }
}

fn dependency_text(
    lock: &toml::Table,
    manifest: &toml::Table,
    packages: &[&str],
) -> Result<String> {
    let closure = lock_closure(lock, packages).context("reading Cargo.lock")?;
    let names: BTreeSet<&str> = closure.keys().map(|k| k.0.as_str()).collect();
    let mut text = String::new();
    for ((name, version), entry) in &closure {
        text.push_str(&format!("lock {name} {version} {entry}\n"));
    }
    let workspace = manifest.get("workspace");
    let resolver = workspace.and_then(|w| w.get("resolver"));
    text.push_str(&format!("resolver {}\n", json(resolver)));
    let release = manifest.get("profile").and_then(|p| p.get("release"));
    text.push_str(&format!("profile.release {}\n", json(release)));
    if let Some(deps) = workspace
        .and_then(|w| w.get("dependencies"))
        .and_then(|d| d.as_table())
    {
        for (name, spec) in deps {
            if names.contains(name.as_str()) {
                text.push_str(&format!(
                    "workspace.dependencies {name} {}\n",
                    json(Some(spec))
                ));
            }
        }
    }
    Ok(text)
}

fn read_toml(path: &Path) -> Result<toml::Table> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing {} as TOML", path.display()))
}

fn json(v: Option<&toml::Value>) -> String {
    v.map(|v| serde_json::to_string(v).expect("TOML values serialise"))
        .unwrap_or_else(|| "none".into())
}

/// The lock's packages reachable from `roots` (package names), keyed by (name, version), each with its
/// whole lock entry as canonical JSON.
fn lock_closure(lock: &toml::Table, roots: &[&str]) -> Result<BTreeMap<(String, String), String>> {
    let packages = lock
        .get("package")
        .and_then(|p| p.as_array())
        .context("no [[package]] list")?;
    let mut by_key: BTreeMap<(String, String), &toml::Value> = BTreeMap::new();
    let mut versions: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in packages {
        let field = |f: &str| p.get(f).and_then(|v| v.as_str()).map(str::to_owned);
        let (Some(name), Some(version)) = (field("name"), field("version")) else {
            bail!("a [[package]] entry without name or version");
        };
        versions
            .entry(name.clone())
            .or_default()
            .push(version.clone());
        by_key.insert((name, version), p);
    }
    // A dependency is written "name", or "name version" where several versions are locked (with
    // " (source)" after it where several sources are).
    let resolve = |dep: &str| -> Result<(String, String)> {
        let mut words = dep.split_whitespace();
        let name = words.next().unwrap_or_default().to_owned();
        match words.next() {
            Some(version) => Ok((name, version.to_owned())),
            None => match versions.get(&name).map(Vec::as_slice) {
                Some([only]) => Ok((name, only.clone())),
                _ => bail!("dependency '{dep}' names no single locked package"),
            },
        }
    };
    let mut out = BTreeMap::new();
    let mut todo: Vec<(String, String)> =
        roots.iter().map(|r| resolve(r)).collect::<Result<_>>()?;
    while let Some(key) = todo.pop() {
        if out.contains_key(&key) {
            continue;
        }
        let entry = by_key
            .get(&key)
            .with_context(|| format!("no locked package {} {}", key.0, key.1))?;
        for dep in entry
            .get("dependencies")
            .and_then(|d| d.as_array())
            .into_iter()
            .flatten()
        {
            todo.push(resolve(
                dep.as_str().context("a dependency that is not a string")?,
            )?);
        }
        out.insert(key, json(Some(entry)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCK: &str = r#"
version = 4
[[package]]
name = "a"
version = "0.1.0"
dependencies = ["b", "c 1.0.0"]
[[package]]
name = "b"
version = "2.0.0"
checksum = "bb"
[[package]]
name = "c"
version = "1.0.0"
[[package]]
name = "c"
version = "2.0.0"
[[package]]
name = "unused"
version = "0.1.0"
dependencies = ["c 2.0.0"]
"#;

    #[test]
    fn the_closure_follows_dependencies_and_versions() {
        let lock: toml::Table = toml::from_str(LOCK).unwrap();
        let keys: Vec<String> = lock_closure(&lock, &["a"])
            .unwrap()
            .into_keys()
            .map(|(n, v)| format!("{n} {v}"))
            .collect();
        assert_eq!(keys, ["a 0.1.0", "b 2.0.0", "c 1.0.0"]);
        let err = lock_closure(&lock, &["c"]).unwrap_err();
        assert!(err.to_string().contains("'c' names no single"), "{err}");
    }
}
