//! LoRA (Hu et al. 2021): a frozen linear layer `W` plus a trainable low-rank update
//! `(alpha / r) B A`, `A` (r, in) and `B` (out, r). `B` starts at zero, so an adapter at initialisation
//! leaves the model's logits unchanged; `A` starts as PEFT's default (Kaiming-uniform, bound
//! `1 / sqrt(in)`).
//!
//! Written against plain tensors, not against the GPT: any model family wraps its linear layers in
//! [`AdaptedLinear`] and names them, and the adapters save in PEFT's layout (`adapter_config.json` and
//! `adapter_model.safetensors` with `base_model.model.<module>.lora_A.weight`), so a reader of a
//! Hugging Face model loads them as it loads any PEFT adapter.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context};
use candle_core::{Device, Result, Tensor, Var};
use candle_nn::Linear;
use emsl_world::Rng;
use serde::{Deserialize, Serialize};

/// Which linear layers get an adapter, and its size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraConfig {
    /// r: the rank of the update.
    pub rank: usize,
    /// The update is scaled by alpha / r.
    pub alpha: f64,
    /// Modules that get an adapter: a full name (`h.2.mlp.c_proj`), a name every block has
    /// (`mlp.c_proj`), or `all-linear` (PEFT's word) for every linear layer but the head.
    pub modules: Vec<String>,
    /// Seeds the initialisation of every `A`.
    pub seed: u64,
}

impl LoraConfig {
    /// alpha / r.
    pub fn scale(&self) -> f64 {
        self.alpha / self.rank as f64
    }

    /// Whether `module` (a full name such as `h.0.attn.c_attn`) gets an adapter.
    pub fn matches(&self, module: &str) -> bool {
        self.modules
            .iter()
            .any(|m| m == "all-linear" || m == module || module.ends_with(&format!(".{m}")))
    }

    /// An error naming the first field that cannot build adapters.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.rank == 0 {
            return Err("adapter.rank must be at least 1".to_owned());
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return Err(format!("adapter.alpha = {} must be positive", self.alpha));
        }
        if self.modules.is_empty() {
            return Err(
                "adapter.modules is empty: name the linear layers (e.g. [\"all-linear\"])"
                    .to_owned(),
            );
        }
        Ok(())
    }
}

/// One adapter's variables.
#[derive(Debug, Clone)]
pub struct LoraAdapter {
    /// (r, in)
    pub a: Var,
    /// (out, r)
    pub b: Var,
    pub scale: f64,
}

impl LoraAdapter {
    /// A fresh adapter for a layer of `fan_in` inputs and `fan_out` outputs, `A` drawn from `rng`.
    pub fn new(
        fan_in: usize,
        fan_out: usize,
        cfg: &LoraConfig,
        rng: &mut Rng,
        device: &Device,
    ) -> Result<Self> {
        let bound = 1.0 / (fan_in as f64).sqrt();
        let a: Vec<f32> = (0..cfg.rank * fan_in)
            .map(|_| ((2.0 * rng.unit() - 1.0) * bound) as f32)
            .collect();
        Ok(LoraAdapter {
            a: Var::from_tensor(&Tensor::from_vec(a, (cfg.rank, fan_in), device)?)?,
            b: Var::zeros((fan_out, cfg.rank), candle_core::DType::F32, device)?,
            scale: cfg.scale(),
        })
    }

    /// The update of `x` (B, T, in) -> (B, T, out).
    pub fn delta(&self, x: &Tensor) -> Result<Tensor> {
        let h = crate::kernels::matmul_t(x, self.a.as_tensor())?; // (B, T, r)
        crate::kernels::matmul_t(&h, self.b.as_tensor())? * self.scale // (B, T, out)
    }

    /// The update as a weight (out, in): what merging adds to `W`.
    pub fn weight_delta(&self) -> Result<Tensor> {
        self.b.as_tensor().matmul(self.a.as_tensor())? * self.scale
    }
}

/// A linear layer `x W^T + b` that may carry an adapter. With one, `W` and `b` are frozen: the
/// forward reads them detached, so no gradient reaches them.
#[derive(Debug, Clone)]
pub struct AdaptedLinear {
    pub linear: Linear,
    pub adapter: Option<LoraAdapter>,
}

impl AdaptedLinear {
    pub fn new(linear: Linear) -> Self {
        AdaptedLinear {
            linear,
            adapter: None,
        }
    }

    /// (in, out) of the layer.
    pub fn fans(&self) -> Result<(usize, usize)> {
        let (out, inp) = self.linear.weight().dims2()?;
        Ok((inp, out))
    }

    /// `x` (B, T, in) -> (B, T, out), the base as one fused kernel.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let Some(adapter) = &self.adapter else {
            return base(x, self.linear.weight(), self.linear.bias());
        };
        let w = self.linear.weight().detach();
        let b = self.linear.bias().map(Tensor::detach);
        base(x, &w, b.as_ref())? + adapter.delta(x)?
    }
}

fn base(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    match b {
        Some(b) => crate::kernels::linear(x, w, b),
        None => crate::kernels::matmul_t(x, w),
    }
}

/// Fresh adapters (`B` zero) for every layer of `linears` (a model's linear layers by module name,
/// sorted) that `cfg` names, each `A` drawn in that order from one stream of `cfg.seed`, each scaled by
/// `scale` (`cfg.scale()`, or rsLoRA's). Empty when `cfg` names none (the caller says which names
/// its family has).
pub fn fresh_adapters(
    linears: &[(String, &AdaptedLinear)],
    cfg: &LoraConfig,
    scale: f64,
    device: &Device,
) -> Result<Vec<(String, LoraAdapter)>> {
    cfg.validate().map_err(candle_core::Error::msg)?;
    let mut rng = Rng::new(cfg.seed, "lora");
    let mut made = Vec::new();
    for (module, l) in linears {
        if cfg.matches(module) {
            let (fan_in, fan_out) = l.fans()?;
            let mut a = LoraAdapter::new(fan_in, fan_out, cfg, &mut rng, device)?;
            a.scale = scale;
            made.push((module.clone(), a));
        }
    }
    Ok(made)
}

/// Puts each of `adapters` on the layer of its module name among `linears` (a model's linear layers
/// by name), refusing a name the model lacks or a shape that differs; returns the adapters' variables
/// (`<module>.lora_A`, `<module>.lora_B`), sorted: what trains from now on.
pub fn attach_by_name(
    mut linears: Vec<(String, &mut AdaptedLinear)>,
    adapters: Vec<(String, LoraAdapter)>,
) -> Result<Vec<(String, Var)>> {
    let mut vars: Vec<(String, Var)> = Vec::new();
    for (module, a) in adapters {
        let l = linears
            .iter_mut()
            .find(|(m, _)| *m == module)
            .map(|(_, l)| l)
            .ok_or_else(|| {
                candle_core::Error::msg(format!("the model has no linear layer '{module}'"))
            })?;
        let (fan_in, fan_out) = l.fans()?;
        if a.a.dims2()?.1 != fan_in || a.b.dims2()?.0 != fan_out {
            candle_core::bail!(
                "adapter of '{module}' is {:?} x {:?}, the layer is {fan_out} x {fan_in}",
                a.b.dims(),
                a.a.dims()
            );
        }
        vars.push((format!("{module}.lora_A"), a.a.clone()));
        vars.push((format!("{module}.lora_B"), a.b.clone()));
        l.adapter = Some(a);
    }
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(vars)
}

/// PEFT's `adapter_config.json`, with the fields a LoRA adapter of the kit sets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeftConfig {
    pub peft_type: String,
    pub task_type: String,
    pub r: usize,
    pub lora_alpha: f64,
    pub lora_dropout: f64,
    pub bias: String,
    pub fan_in_fan_out: bool,
    /// The modules that carry an adapter, by full name, sorted.
    pub target_modules: Vec<String>,
}

fn tensor_name(module: &str, which: &str) -> String {
    format!("base_model.model.{module}.lora_{which}.weight")
}

/// Writes `adapters` (module name -> adapter) in PEFT's layout into `dir`.
pub fn save_adapters(
    dir: &Path,
    cfg: &LoraConfig,
    adapters: &[(String, &LoraAdapter)],
) -> anyhow::Result<()> {
    let mut modules: Vec<String> = adapters.iter().map(|(m, _)| m.clone()).collect();
    modules.sort();
    let peft = PeftConfig {
        peft_type: "LORA".into(),
        task_type: "CAUSAL_LM".into(),
        r: cfg.rank,
        lora_alpha: cfg.alpha,
        lora_dropout: 0.0,
        bias: "none".into(),
        fan_in_fan_out: false,
        target_modules: modules,
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    emsl_io::write_atomic(
        &dir.join("adapter_config.json"),
        serde_json::to_string_pretty(&peft)?.as_bytes(),
    )?;
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    for (m, a) in adapters {
        tensors.push((tensor_name(m, "A"), a.a.as_tensor().clone()));
        tensors.push((tensor_name(m, "B"), a.b.as_tensor().clone()));
    }
    tensors.sort_by(|x, y| x.0.cmp(&y.0));
    let bytes = safetensors::serialize(
        tensors.iter().map(|(n, t)| (n.as_str(), t)),
        None::<HashMap<String, String>>,
    )?;
    emsl_io::write_atomic(&dir.join("adapter_model.safetensors"), &bytes)?;
    Ok(())
}

/// Reads adapters saved by [`save_adapters`]: module name -> adapter, sorted by module.
pub fn load_adapters(
    dir: &Path,
    device: &Device,
) -> anyhow::Result<(PeftConfig, Vec<(String, LoraAdapter)>)> {
    let cfg_path = dir.join("adapter_config.json");
    let text = std::fs::read_to_string(&cfg_path)
        .with_context(|| format!("reading {}", cfg_path.display()))?;
    let peft: PeftConfig = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a PEFT LoRA config", cfg_path.display()))?;
    if peft.peft_type != "LORA" {
        bail!(
            "{}: peft_type is '{}', only LORA adapters load",
            cfg_path.display(),
            peft.peft_type
        );
    }
    let path = dir.join("adapter_model.safetensors");
    let tensors = candle_core::safetensors::load(&path, device)
        .with_context(|| format!("reading {}", path.display()))?;
    let scale = peft.lora_alpha / peft.r as f64;
    let mut out = Vec::new();
    for m in &peft.target_modules {
        let get = |which: &str| {
            tensors.get(&tensor_name(m, which)).with_context(|| {
                format!(
                    "{}: no tensor '{}' for module '{m}' of adapter_config.json",
                    path.display(),
                    tensor_name(m, which)
                )
            })
        };
        out.push((
            m.clone(),
            LoraAdapter {
                a: Var::from_tensor(get("A")?)?,
                b: Var::from_tensor(get("B")?)?,
                scale,
            },
        ));
    }
    Ok((peft, out))
}
