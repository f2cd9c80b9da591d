//! LoRA on the GPT: attach adapters to its linear layers (then only they train), list them, merge
//! them into the weights. The adapter arithmetic itself is family-independent (`super::super::lora`).

use candle_core::Result;

use super::Gpt;
use crate::model::lora::{attach_by_name, fresh_adapters, AdaptedLinear, LoraAdapter, LoraConfig};

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

    /// [`Gpt::linears`], mutable (in the same order).
    fn linears_mut(&mut self) -> Vec<(String, &mut AdaptedLinear)> {
        let mut out = Vec::new();
        for (i, b) in self.blocks.iter_mut().enumerate() {
            out.push((format!("h.{i}.attn.c_attn"), &mut b.attn.c_attn));
            out.push((format!("h.{i}.attn.c_proj"), &mut b.attn.c_proj));
            out.push((format!("h.{i}.mlp.c_fc"), &mut b.c_fc));
            out.push((format!("h.{i}.mlp.c_proj"), &mut b.c_proj));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// The linear layer named `module` (`h.{i}.attn.c_attn`, ...), found without listing them all.
    fn linear_mut(&mut self, module: &str) -> Option<&mut AdaptedLinear> {
        let (i, name) = module.strip_prefix("h.")?.split_once('.')?;
        let b = self.blocks.get_mut(i.parse::<usize>().ok()?)?;
        match name {
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
        let made = fresh_adapters(&self.linears(), cfg, cfg.scale(), &self.device)?;
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
        self.adapter_vars = attach_by_name(self.linears_mut(), adapters)?;
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
