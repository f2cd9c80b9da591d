//! A model given as a local folder in the Hugging Face layout: `config.json`, the weights as one
//! `model.safetensors` or as shards listed by `model.safetensors.index.json`, `tokenizer.json` and
//! `tokenizer_config.json` (which carries the chat template, or names its special tokens when
//! transformers 5 saved the template as `chat_template.jinja`). Nothing is downloaded: a missing file is
//! an error that names the file and the folder.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};

use crate::config::DecoderConfig;

/// The files of a model folder, checked to exist.
#[derive(Debug, Clone)]
pub struct HfFolder {
    pub dir: PathBuf,
    /// The safetensors files holding the weights, sorted (one, or the shards of the index).
    pub weights: Vec<PathBuf>,
}

/// `dir/name`, or an error naming both when it is not a file.
pub fn require(dir: &Path, name: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    if !path.is_file() {
        bail!(
            "model folder {}: missing file '{name}' (a Hugging Face model folder holds config.json, \
             model.safetensors or model.safetensors.index.json with its shards, tokenizer.json and \
             tokenizer_config.json; nothing is downloaded)",
            dir.display()
        );
    }
    Ok(path)
}

impl HfFolder {
    /// Checks that every file the kit reads is there, shards included.
    pub fn open(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            bail!("model folder {} does not exist", dir.display());
        }
        for name in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
            require(dir, name)?;
        }
        let weights = if dir.join("model.safetensors").is_file() {
            vec![dir.join("model.safetensors")]
        } else if dir.join("model.safetensors.index.json").is_file() {
            shards(dir)?
        } else {
            bail!(
                "model folder {}: missing file 'model.safetensors' (or 'model.safetensors.index.json' \
                 with its shards)",
                dir.display()
            );
        };
        Ok(HfFolder {
            dir: dir.to_path_buf(),
            weights,
        })
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    pub fn tokenizer_path(&self) -> PathBuf {
        self.dir.join("tokenizer.json")
    }

    pub fn tokenizer_config_path(&self) -> PathBuf {
        self.dir.join("tokenizer_config.json")
    }

    /// The family and sizes from `config.json`.
    pub fn config(&self) -> Result<DecoderConfig> {
        DecoderConfig::from_file(&self.config_path())
    }

    /// Every weight, converted to `dtype`, by its Hugging Face name.
    pub fn load_tensors(&self, dtype: DType, device: &Device) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for path in &self.weights {
            let tensors = candle_core::safetensors::load(path, device)
                .with_context(|| format!("reading weights {}", path.display()))?;
            for (name, t) in tensors {
                let t = t.to_dtype(dtype)?;
                if out.insert(name.clone(), t).is_some() {
                    bail!(
                        "tensor '{name}' appears in more than one shard of {}",
                        self.dir.display()
                    );
                }
            }
        }
        Ok(out)
    }
}

/// The shard files named by `model.safetensors.index.json`, each checked to exist.
fn shards(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = dir.join("model.safetensors.index.json");
    let text =
        std::fs::read_to_string(&index).with_context(|| format!("reading {}", index.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not valid JSON", index.display()))?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .with_context(|| format!("{}: no 'weight_map' object", index.display()))?;
    let files: BTreeSet<&str> = map.values().filter_map(|v| v.as_str()).collect();
    if files.is_empty() {
        bail!("{}: 'weight_map' names no shard file", index.display());
    }
    files.into_iter().map(|f| require(dir, f)).collect()
}

/// Every file of the folder by its path relative to it (`/`-separated) and its path, sorted by the
/// former, subfolders included: what a job's identity records for a model, as it does for a dataset.
/// Hidden files and folders (`.cache/` of a hub download, `.git/`) are left out: they are not the
/// model.
pub fn files_under(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) -> Result<()> {
        let entries =
            std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))?;
        for entry in entries {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out)?;
            } else {
                let rel = path.strip_prefix(root).expect("under root");
                out.push((rel.to_string_lossy().replace('\\', "/"), path));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out)?;
    out.sort();
    Ok(out)
}

/// sha256 of every file of [`files_under`] the folder, by its path relative to it.
pub fn file_hashes(dir: &Path) -> Result<Vec<(String, String)>> {
    files_under(dir)?
        .into_iter()
        .map(|(rel, path)| {
            let hash = emsl_io::sha256_file(&path)
                .with_context(|| format!("hashing {}", path.display()))?;
            Ok((rel, hash))
        })
        .collect()
}
