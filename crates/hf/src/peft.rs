//! Adapters in PEFT's layout, as PEFT writes them as well as as the kit does: `adapter_config.json`
//! (every key of PEFT's `LoraConfig`) and `adapter_model.safetensors` with tensors named
//! `base_model.model.<module>.lora_A.weight` and `.lora_B.weight`. The modules come from the tensor
//! names, since PEFT writes `target_modules` as the names it matched with (`["q_proj", "v_proj"]`),
//! the kit as full module names; every tensor's module must be one `target_modules` names (PEFT's
//! rule: the name itself or a `.`-separated suffix of it), or PEFT would not have loaded it.
//!
//! Every key of `adapter_config.json` is read, known not to change what the adapter computes, or
//! allowed only with the value plain LoRA (or rsLoRA) has: DoRA, per-module ranks or alphas, fully
//! trained modules saved beside the adapters and the like are refused naming the key, not dropped.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor, Var};
use emsl_core::model::LoraAdapter;
use serde_json::{Map, Value};

use crate::lora::scale;

/// Adapters read from PEFT's layout.
pub struct PeftAdapters {
    pub rank: usize,
    pub alpha: f64,
    pub use_rslora: bool,
    /// Module name -> adapter, sorted by module, each scaled as the config says.
    pub adapters: Vec<(String, LoraAdapter)>,
}

/// What the kit does with one key of `adapter_config.json`.
enum Key {
    /// Read: `r`, `lora_alpha`, `use_rslora`, `target_modules`.
    Read,
    /// Known not to change what a trained adapter computes.
    Inert,
    /// Allowed only with the value plain LoRA has, which the text names.
    Only(&'static str, fn(&Value) -> bool),
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

fn is_false(v: &Value) -> bool {
    v.as_bool() == Some(false)
}

/// The initialisations that leave the base weights as they are. PiSSA, OLoRA, CorDA, LoftQ and
/// LoRA-GA subtract the initial update from the base weights, so their adapters apply to a
/// residual model rather than the checkpoint; MiCA is a LoRA variant.
fn leaves_the_base(v: &Value) -> bool {
    v.is_boolean() || matches!(v.as_str(), Some("gaussian" | "eva" | "orthogonal"))
}

/// Every key PEFT 0.21's and 0.22's `LoraConfig` (with `PeftConfig`'s) write.
const KEYS: &[(&str, Key)] = &[
    ("r", Key::Read),
    ("lora_alpha", Key::Read),
    ("use_rslora", Key::Read),
    ("target_modules", Key::Read),
    ("peft_type", Key::Only("LoRA (\"LORA\")", |v| v == "LORA")),
    // A causal LM's adapter; other task types save a task head in `modules_to_save`.
    (
        "task_type",
        Key::Only("a causal LM's adapter (\"CAUSAL_LM\")", |v| {
            v.is_null() || v == "CAUSAL_LM"
        }),
    ),
    // Where the base model came from and which PEFT wrote the file: the kit applies the adapter to
    // the model it is given.
    ("base_model_name_or_path", Key::Inert),
    ("revision", Key::Inert),
    ("peft_version", Key::Inert),
    ("auto_mapping", Key::Inert),
    // Whether PEFT froze the adapter when it saved it.
    ("inference_mode", Key::Inert),
    // Dropout on the adapter's input acts only in training; the kit evaluates loaded adapters.
    ("lora_dropout", Key::Inert),
    // Settings of initialisations that leave the base as it is (EVA), of a variant that is off
    // (QALoRA's group size, Megatron's module path), and of tying an adapted embedding to the head,
    // which the kit's adapters never cover.
    ("eva_config", Key::Inert),
    ("qalora_group_size", Key::Inert),
    ("megatron_core", Key::Inert),
    ("ensure_weight_tying", Key::Inert),
    (
        "init_lora_weights",
        Key::Only(
            "adapters on the unchanged base (true, false, \"gaussian\", \"eva\" or \
             \"orthogonal\")",
            leaves_the_base,
        ),
    ),
    ("bias", Key::Only("no bias (\"none\")", |v| v == "none")),
    (
        "lora_bias",
        Key::Only("no bias on lora_B (false)", is_false),
    ),
    (
        "fan_in_fan_out",
        Key::Only("untransposed weights (false)", is_false),
    ),
    (
        "use_dora",
        Key::Only("plain LoRA, not DoRA (false)", is_false),
    ),
    (
        "use_qalora",
        Key::Only("plain LoRA, not QALoRA (false)", is_false),
    ),
    (
        "rank_pattern",
        Key::Only("one rank for every module (empty)", is_empty),
    ),
    (
        "alpha_pattern",
        Key::Only("one alpha for every module (empty)", is_empty),
    ),
    (
        "modules_to_save",
        Key::Only("adapters only, no fully trained modules (null)", is_empty),
    ),
    (
        "layers_to_transform",
        Key::Only("no layer selection (null)", is_empty),
    ),
    (
        "layers_pattern",
        Key::Only("no layer selection (null)", is_empty),
    ),
    (
        "exclude_modules",
        Key::Only("no excluded modules (null)", is_empty),
    ),
    (
        "trainable_token_indices",
        Key::Only("no trained token embeddings (null)", is_empty),
    ),
    (
        "layer_replication",
        Key::Only("the base's layers as they are (null)", is_empty),
    ),
    (
        "target_parameters",
        Key::Only("adapters on linear layers only (null)", is_empty),
    ),
    (
        "alora_invocation_tokens",
        Key::Only("LoRA on every token, not aLoRA (null)", is_empty),
    ),
    (
        "megatron_config",
        Key::Only("no Megatron layers (null)", is_empty),
    ),
    ("loftq_config", Key::Only("no LoftQ (empty)", is_empty)),
    ("corda_config", Key::Only("no CorDA (null)", is_empty)),
    ("lora_ga_config", Key::Only("no LoRA-GA (null)", is_empty)),
    // PEFT 0.22: Astra builds its adapters from a residual of the base weights.
    ("astra_config", Key::Only("no Astra (null)", is_empty)),
    (
        "velora_config",
        Key::Only("plain LoRA, not VeLoRA (null)", is_empty),
    ),
    (
        "monteclora_config",
        Key::Only("plain LoRA, not MonteCLoRA (null)", is_empty),
    ),
    (
        "arrow_config",
        Key::Only("plain LoRA, not Arrow routing (null)", is_empty),
    ),
    (
        "kasa_config",
        Key::Only("plain LoRA, not KaSA (null)", is_empty),
    ),
    (
        "use_bdlora",
        Key::Only("plain LoRA, not BD-LoRA (null)", is_empty),
    ),
];

fn check_keys(config: &Map<String, Value>) -> Result<()> {
    for (key, value) in config {
        match KEYS.iter().find(|(k, _)| k == key) {
            None => bail!(
                "key '{key}' is not one the kit knows in PEFT's LoraConfig: it may change what \
                 the adapter computes, so the kit refuses it rather than ignore it (if PEFT \
                 documents it as leaving a trained adapter's forward unchanged, delete it)"
            ),
            Some((_, Key::Only(computes, accepts))) if !accepts(value) => bail!(
                "key '{key}' = {value}: the kit computes {computes}, so it cannot apply this \
                 adapter as PEFT would"
            ),
            Some(_) => {}
        }
    }
    Ok(())
}

/// `target_modules`: the names PEFT matched modules with (short or full).
fn target_modules(config: &Map<String, Value>) -> Result<Vec<String>> {
    match config.get("target_modules") {
        Some(Value::Array(names)) => names
            .iter()
            .map(|n| n.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .context("key 'target_modules' lists something that is not a module name"),
        Some(Value::String(pattern)) => bail!(
            "key 'target_modules' = \"{pattern}\" is a regular expression: list the modules by \
             name (PEFT saves \"all-linear\" as the names it stands for)"
        ),
        _ => bail!("key 'target_modules' is missing or not a list of module names"),
    }
}

/// Whether PEFT's `target_modules` selects `module`: the name itself or a `.`-separated suffix.
fn targets(target: &str, module: &str) -> bool {
    module == target || module.ends_with(&format!(".{target}"))
}

/// The module and matrix (`A` or `B`) of a PEFT tensor name.
fn module_of(name: &str) -> Option<(&str, char)> {
    let rest = name.strip_prefix("base_model.model.")?;
    if let Some(m) = rest.strip_suffix(".lora_A.weight") {
        return Some((m, 'A'));
    }
    rest.strip_suffix(".lora_B.weight").map(|m| (m, 'B'))
}

/// Reads the adapters in `dir` (written by PEFT or by [`crate::lora::save_peft`]) onto `device`,
/// in f32, each scaled as its config says.
pub fn load_peft(dir: &Path, device: &Device) -> Result<PeftAdapters> {
    let config_path = dir.join("adapter_config.json");
    let text = std::fs::read_to_string(&config_path)
        .with_context(|| format!("reading {}", config_path.display()))?;
    let json: Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not valid JSON", config_path.display()))?;
    let config = json
        .as_object()
        .with_context(|| format!("{}: not a JSON object", config_path.display()))?;
    let (rank, alpha, use_rslora, targets_named) = read_config(config).with_context(|| {
        format!(
            "{}: not a LoRA adapter the kit applies",
            config_path.display()
        )
    })?;
    let weights_path = dir.join("adapter_model.safetensors");
    let tensors = candle_core::safetensors::load(&weights_path, device)
        .with_context(|| format!("reading {}", weights_path.display()))?;
    let modules = adapters_of(&tensors, rank, &targets_named).with_context(|| {
        format!(
            "{} (with {})",
            weights_path.display(),
            config_path.display()
        )
    })?;
    let s = scale(alpha, rank, use_rslora);
    let adapters = modules
        .into_iter()
        .map(|(m, (a, b))| {
            let adapter = LoraAdapter {
                a: Var::from_tensor(&a.to_dtype(DType::F32)?)?,
                b: Var::from_tensor(&b.to_dtype(DType::F32)?)?,
                scale: s,
            };
            Ok((m, adapter))
        })
        .collect::<Result<_>>()?;
    Ok(PeftAdapters {
        rank,
        alpha,
        use_rslora,
        adapters,
    })
}

/// `r`, `lora_alpha`, `use_rslora` and `target_modules` of a config whose keys are all checked.
fn read_config(config: &Map<String, Value>) -> Result<(usize, f64, bool, Vec<String>)> {
    check_keys(config)?;
    let rank = match config.get("r").and_then(Value::as_u64) {
        Some(r) if r > 0 => r as usize,
        _ => bail!("key 'r' is missing or not a positive whole number"),
    };
    let alpha = config
        .get("lora_alpha")
        .and_then(Value::as_f64)
        .context("key 'lora_alpha' is missing or not a number")?;
    let use_rslora = match config.get("use_rslora") {
        None | Some(Value::Null) => false,
        Some(v) => v
            .as_bool()
            .context("key 'use_rslora' is not true or false")?,
    };
    Ok((rank, alpha, use_rslora, target_modules(config)?))
}

/// Each module's `A` (r, in) and `B` (out, r), by module name, checked against the rank and the
/// targets: every module targeted, every target matching a module.
fn adapters_of(
    tensors: &std::collections::HashMap<String, Tensor>,
    rank: usize,
    targets_named: &[String],
) -> Result<BTreeMap<String, (Tensor, Tensor)>> {
    let mut halves: BTreeMap<String, [Option<Tensor>; 2]> = BTreeMap::new();
    for (name, t) in tensors {
        let Some((module, which)) = module_of(name) else {
            bail!(
                "tensor '{name}' is not a LoRA matrix in PEFT's naming \
                 (base_model.model.<module>.lora_A.weight or .lora_B.weight): the kit applies \
                 plain LoRA only"
            );
        };
        halves.entry(module.to_owned()).or_default()[usize::from(which == 'B')] = Some(t.clone());
    }
    let mut out = BTreeMap::new();
    for (module, [a, b]) in halves {
        let (Some(a), Some(b)) = (a, b) else {
            bail!("module '{module}' has only one of its lora_A and lora_B tensors");
        };
        if a.dims().len() != 2 || b.dims().len() != 2 || a.dim(0)? != rank || b.dim(1)? != rank {
            bail!(
                "module '{module}': lora_A is {:?} and lora_B {:?}, not (r, in) and (out, r) \
                 with r = {rank}",
                a.dims(),
                b.dims()
            );
        }
        if !targets_named.iter().any(|t| targets(t, &module)) {
            bail!(
                "module '{module}' has an adapter but target_modules {targets_named:?} does not \
                 name it, so PEFT would not load it"
            );
        }
        out.insert(module, (a, b));
    }
    if let Some(t) = targets_named
        .iter()
        .find(|t| !out.keys().any(|m| targets(t, m)))
    {
        bail!("target_modules names '{t}' but no tensor is an adapter of such a module");
    }
    Ok(out)
}
