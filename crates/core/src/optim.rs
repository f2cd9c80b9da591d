//! AdamW with state we own (candle's is private and cannot be saved), global-norm gradient clipping, and
//! a warm-up plus cosine learning-rate schedule. Parameters are visited in sorted-name order.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};
use serde::{Deserialize, Serialize};

/// Optimizer and schedule settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimConfig {
    pub lr: f64,
    /// The cosine schedule ends at `lr * min_lr_ratio`.
    pub min_lr_ratio: f64,
    pub warmup_steps: usize,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Clip the global gradient norm to this (0 = no clipping).
    pub grad_clip: f64,
}

impl OptimConfig {
    /// Learning rate at `step` (0-based) of `total`: linear warm-up, then cosine decay.
    pub fn lr_at(&self, step: usize, total: usize) -> f64 {
        if step < self.warmup_steps {
            return self.lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let span = total.saturating_sub(self.warmup_steps).max(1);
        let progress = ((step - self.warmup_steps) as f64 / span as f64).min(1.0);
        let min = self.lr * self.min_lr_ratio;
        min + 0.5 * (self.lr - min) * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}

/// AdamW over a fixed, sorted list of parameters.
pub struct AdamW {
    pub config: OptimConfig,
    params: Vec<(String, Var)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    /// Steps taken so far.
    pub step: usize,
}

impl AdamW {
    pub fn new(config: OptimConfig, params: &[(String, Var)]) -> Result<Self> {
        let zeros = |p: &Var| p.as_tensor().zeros_like();
        Ok(AdamW {
            config,
            m: params
                .iter()
                .map(|(_, p)| zeros(p))
                .collect::<Result<_>>()?,
            v: params
                .iter()
                .map(|(_, p)| zeros(p))
                .collect::<Result<_>>()?,
            params: params.to_vec(),
            step: 0,
        })
    }

    /// The gradients of every parameter; an error names a parameter that received none.
    fn grads(&self, grads: &GradStore) -> Result<Vec<Tensor>> {
        self.params
            .iter()
            .map(|(name, p)| {
                grads.get(p.as_tensor()).cloned().ok_or_else(|| {
                    candle_core::Error::msg(format!("parameter '{name}' received no gradient"))
                })
            })
            .collect()
    }

    /// The global gradient norm (before clipping).
    pub fn grad_norm(grads: &[Tensor]) -> Result<f64> {
        let mut total = 0f64;
        for g in grads {
            total += f64::from(g.sqr()?.sum_all()?.to_scalar::<f32>()?);
        }
        Ok(total.sqrt())
    }

    /// One update with learning rate `lr`. Returns the gradient norm before clipping.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<f64> {
        let grads = self.grads(grads)?;
        let norm = Self::grad_norm(&grads)?;
        let c = &self.config;
        let scale = if c.grad_clip > 0.0 && norm > c.grad_clip {
            c.grad_clip / (norm + 1e-6)
        } else {
            1.0
        };
        self.step += 1;
        let t = self.step as i32;
        let (bc1, bc2) = (1.0 - c.beta1.powi(t), 1.0 - c.beta2.powi(t));
        for (i, (name, p)) in self.params.iter().enumerate() {
            let g = (&grads[i] * scale)?;
            self.m[i] = ((&self.m[i] * c.beta1)? + (&g * (1.0 - c.beta1))?)?;
            self.v[i] = ((&self.v[i] * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
            let m_hat = (&self.m[i] / bc1)?;
            let v_hat = (&self.v[i] / bc2)?;
            let mut update = m_hat.div(&(v_hat.sqrt()? + c.eps)?)?;
            // Decay matrices only (nanoGPT): not biases, layer norms or position tables.
            if p.rank() >= 2 && !name.starts_with("wpe") && c.weight_decay > 0.0 {
                update = (update + (p.as_tensor() * c.weight_decay)?)?;
            }
            p.set(&(p.as_tensor() - (update * lr)?)?)?;
        }
        Ok(norm)
    }

    /// The state to save: `m.<name>` and `v.<name>` tensors; the step goes into metadata.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for (i, (name, _)) in self.params.iter().enumerate() {
            out.push((format!("m.{name}"), self.m[i].clone()));
            out.push((format!("v.{name}"), self.v[i].clone()));
        }
        out
    }

    /// Restores the state written by `state`.
    pub fn load_state(
        &mut self,
        tensors: &HashMap<String, Tensor>,
        step: usize,
    ) -> std::result::Result<(), String> {
        for (i, (name, p)) in self.params.iter().enumerate() {
            for (prefix, slot) in [("m", &mut self.m[i]), ("v", &mut self.v[i])] {
                let key = format!("{prefix}.{name}");
                let t = tensors
                    .get(&key)
                    .ok_or_else(|| format!("optimizer state has no tensor '{key}'"))?;
                if t.shape() != p.shape() {
                    return Err(format!(
                        "optimizer tensor '{key}' has shape {:?}, parameter has {:?}",
                        t.dims(),
                        p.dims()
                    ));
                }
                *slot = t.clone();
            }
        }
        self.step = step;
        Ok(())
    }
}
