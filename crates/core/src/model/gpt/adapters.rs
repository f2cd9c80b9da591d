//! LoRA on the GPT: attach adapters to its linear layers (then only they train), list them, merge
//! them into the weights. The adapter arithmetic itself is family-independent (`super::super::lora`).

use candle_core::{Result, Var};
use emsl_world::Rng;

use super::Gpt;
use crate::model::lora::{AdaptedLinear, LoraAdapter, LoraConfig};

impl Gpt {
    /// Every linear layer with its module name (`h.{i}.attn.c_attn`, ...), sorted by name. The head is
    /// tied to the embedding and is not a linear layer of its own.
    fn linears(&self) -> Vec<(String, &AdaptedLinear)> {
        let mut out = Vec::new();
        for (i, b) in self.blocks.iter().enumerate() {
            out.push((format!("h.{i}.attn.c_attn"), &b.attn.c_attn));
            out.push((format!("h.{i}.attn.c_proj"), &b.attn.c_proj));
            out.push((format!("h.{i}.mlp.c_fc"), &b.c_fc));
            out.push((format!("h.{i}.mlp.c_proj"), &b.c_proj));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    fn linear_mut(&mut self, module: &str) -> Option<&mut AdaptedLinear> {
        let (i, rest) = module.strip_prefix("h.")?.split_once('.')?;
        let b = self.blocks.get_mut(i.parse::<usize>().ok()?)?;
        match rest {
            "attn.c_attn" => Some(&mut b.attn.c_attn),
            "attn.c_proj" => Some(&mut b.attn.c_proj),
            "mlp.c_fc" => Some(&mut b.c_fc),
            "mlp.c_proj" => Some(&mut b.c_proj),
            _ => None,
        }
    }

    /// Fresh adapters on every linear layer `cfg` names; from now on only they train
    /// ([`crate::model::LanguageModel::trainable_vars`]).
    pub fn attach_lora(&mut self, cfg: &LoraConfig) -> Result<()> {
        cfg.validate().map_err(candle_core::Error::msg)?;
        let mut rng = Rng::new(cfg.seed, "lora");
        let mut made = Vec::new();
        for (module, l) in self.linears() {
            if cfg.matches(&module) {
                let (fan_in, fan_out) = l.fans()?;
                let a = LoraAdapter::new(fan_in, fan_out, cfg, &mut rng, &self.device)?;
                made.push((module, a));
            }
        }
        if made.is_empty() {
            candle_core::bail!(
                "adapter.modules {:?} names no linear layer of the model (they are {:?}, or a suffix such as \"mlp.c_proj\", or \"all-linear\")",
                cfg.modules,
                self.linears().iter().map(|(m, _)| m.clone()).collect::<Vec<_>>()
            );
        }
        self.attach_adapters(made)
    }

    /// Attaches adapters by module name (fresh ones, or ones read by [`crate::model::load_adapters`]).
    pub fn attach_adapters(&mut self, adapters: Vec<(String, LoraAdapter)>) -> Result<()> {
        if !self.adapter_vars.is_empty() {
            candle_core::bail!("the model already carries adapters: merge them first");
        }
        let mut vars: Vec<(String, Var)> = Vec::new();
        for (module, a) in adapters {
            vars.push((format!("{module}.lora_A"), a.a.clone()));
            vars.push((format!("{module}.lora_B"), a.b.clone()));
            let l = self.linear_mut(&module).ok_or_else(|| {
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
            l.adapter = Some(a);
        }
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        self.adapter_vars = vars;
        Ok(())
    }

    /// The attached adapters by module name, sorted.
    pub fn adapters(&self) -> Vec<(String, &LoraAdapter)> {
        self.linears()
            .into_iter()
            .filter_map(|(m, l)| l.adapter.as_ref().map(|a| (m, a)))
            .collect()
    }

    /// Adds every adapter's update to its layer's weight and removes the adapters: the model then
    /// computes what the adapted model computed, with its own variables trainable again.
    pub fn merge_adapters(&mut self) -> Result<()> {
        let modules: Vec<String> = self.adapters().into_iter().map(|(m, _)| m).collect();
        for module in modules {
            let l = self.linear_mut(&module).expect("listed module");
            let adapter = l.adapter.take().expect("listed adapter");
            let name = format!("{module}.weight");
            let var = self
                .vars
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
                .ok_or_else(|| candle_core::Error::msg(format!("no variable '{name}'")))?;
            var.set(&(var.as_tensor() + adapter.weight_delta()?)?)?;
        }
        self.adapter_vars.clear();
        Ok(())
    }
}
