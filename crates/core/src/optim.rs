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
    /// An error naming the first field (of `[...optim]`) whose value the optimizer cannot use: a
    /// learning rate that is not finite and positive, betas outside [0, 1), a negative weight decay,
    /// epsilon or clip, a `min_lr_ratio` outside [0, 1].
    pub fn check(&self) -> anyhow::Result<()> {
        let field = |name: &str, value: f64, ok: bool, want: &str| {
            anyhow::ensure!(ok, "optim.{name} = {value}: it must be {want}");
            Ok(())
        };
        let lr = self.lr;
        field(
            "lr",
            lr,
            lr.is_finite() && lr > 0.0,
            "a finite number above 0",
        )?;
        let r = self.min_lr_ratio;
        field(
            "min_lr_ratio",
            r,
            (0.0..=1.0).contains(&r),
            "between 0 and 1",
        )?;
        let d = self.weight_decay;
        field(
            "weight_decay",
            d,
            d.is_finite() && d >= 0.0,
            "finite and at least 0",
        )?;
        for (name, b) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            field(name, b, (0.0..1.0).contains(&b), "at least 0 and below 1")?;
        }
        let e = self.eps;
        field(
            "eps",
            e,
            e.is_finite() && e > 0.0,
            "a finite number above 0",
        )?;
        let c = self.grad_clip;
        let want = "finite and at least 0 (0: no clipping)";
        field("grad_clip", c, c.is_finite() && c >= 0.0, want)
    }

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

/// How the learning rate moves over a run: the kit's warm-up and cosine ([`OptimConfig::lr_at`], to
/// `lr * min_lr_ratio`), or the linear warm-up and decay to 0 of transformers'
/// `get_linear_schedule_with_warmup`, which Betley et al.'s open-model fine-tunes used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    #[default]
    Cosine,
    Linear,
}

impl Schedule {
    /// The learning rate of optimizer step `step` (0-based) of `total`.
    pub fn lr_at(self, optim: &OptimConfig, step: usize, total: usize) -> f64 {
        match self {
            Schedule::Cosine => optim.lr_at(step, total),
            // transformers: step / warmup during warm-up (0 at the first step), then (total - step) /
            // (total - warmup), never below 0.
            Schedule::Linear => {
                let warmup = optim.warmup_steps;
                let factor = if step < warmup {
                    step as f64 / warmup.max(1) as f64
                } else {
                    (total.saturating_sub(step)) as f64 / total.saturating_sub(warmup).max(1) as f64
                };
                optim.lr * factor.max(0.0)
            }
        }
    }
}

/// AdamW over a fixed, sorted list of parameters. The moments are plain buffers and each step is one
/// pass over each parameter's memory (gradient in, moments and weights updated in place), rather than
/// a dozen tensor ops per parameter.
pub struct AdamW {
    pub config: OptimConfig,
    params: Vec<(String, Var)>,
    m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    /// Steps taken so far.
    pub step: usize,
}

/// The constants of one update.
#[derive(Clone, Copy)]
struct Update {
    scale: f32,
    beta1: f32,
    beta2: f32,
    inv_bc1: f32,
    inv_bc2: f32,
    eps: f32,
    decay: f32,
    lr: f32,
}

/// A parameter with its moments and gradient, as the update loop visits them.
type ParamSlot<'a> = (
    &'a (String, Var),
    ((&'a mut Vec<f32>, &'a mut Vec<f32>), &'a Tensor),
);

/// One parameter's update, applied in place to its storage.
struct Apply<'a> {
    u: Update,
    grad: &'a [f32],
    moments: std::sync::Mutex<(&'a mut [f32], &'a mut [f32])>,
}

impl candle_core::InplaceOp1 for Apply<'_> {
    fn name(&self) -> &'static str {
        "fused-adamw"
    }

    fn cpu_fwd(
        &self,
        storage: &mut candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> Result<()> {
        let (a, b) = layout
            .contiguous_offsets()
            .ok_or_else(|| candle_core::Error::msg("parameters are contiguous"))?;
        let p = match storage {
            candle_core::CpuStorage::F32(p) => &mut p[a..b],
            _ => candle_core::bail!("parameters are f32"),
        };
        let mut guard = self.moments.lock().expect("moments lock");
        let (m, v) = &mut *guard;
        let (u, g) = (self.u, self.grad);
        crate::kernels::simd(
            #[inline(always)]
            || {
                for i in 0..p.len() {
                    // The arithmetic of the composed version, op for op.
                    let gi = g[i] * u.scale;
                    m[i] = m[i] * u.beta1 + gi * (1.0 - u.beta1);
                    v[i] = v[i] * u.beta2 + gi * gi * (1.0 - u.beta2);
                    let mut update = (m[i] * u.inv_bc1) / ((v[i] * u.inv_bc2).sqrt() + u.eps);
                    if u.decay > 0.0 {
                        update += p[i] * u.decay;
                    }
                    p[i] -= update * u.lr;
                }
            },
        );
        Ok(())
    }
}

impl AdamW {
    pub fn new(config: OptimConfig, params: &[(String, Var)]) -> Result<Self> {
        Ok(AdamW {
            config,
            m: params
                .iter()
                .map(|(_, p)| vec![0f32; p.elem_count()])
                .collect(),
            v: params
                .iter()
                .map(|(_, p)| vec![0f32; p.elem_count()])
                .collect(),
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

    /// The global gradient norm (before clipping), summed in f64.
    pub fn grad_norm(grads: &[Tensor]) -> Result<f64> {
        let square = |g: &Tensor| {
            crate::kernels::with_data(g, |g| {
                g.iter().map(|x| f64::from(*x) * f64::from(*x)).sum::<f64>()
            })
        };
        // Per-tensor sums (in parallel at several threads), added in parameter order.
        let sums: Vec<f64> = if crate::kernels::threads() > 1 {
            use rayon::prelude::*;
            grads.par_iter().map(square).collect::<Result<_>>()?
        } else {
            grads.iter().map(square).collect::<Result<_>>()?
        };
        Ok(sums.iter().sum::<f64>().sqrt())
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
        let update = |((name, p), ((m, v), g)): ParamSlot| -> Result<()> {
            // Decay matrices only (nanoGPT): not biases, layer norms or position tables.
            let decays = p.rank() >= 2 && !name.starts_with("wpe") && c.weight_decay > 0.0;
            let u = Update {
                scale: scale as f32,
                beta1: c.beta1 as f32,
                beta2: c.beta2 as f32,
                inv_bc1: (1.0 / bc1) as f32,
                inv_bc2: (1.0 / bc2) as f32,
                eps: c.eps as f32,
                decay: if decays { c.weight_decay as f32 } else { 0.0 },
                lr: lr as f32,
            };
            crate::kernels::with_data(g, |grad| {
                p.as_tensor().inplace_op1(&Apply {
                    u,
                    grad,
                    moments: std::sync::Mutex::new((m.as_mut_slice(), v.as_mut_slice())),
                })
            })?
        };
        // Parameters are independent: at several threads they update in parallel (same arithmetic).
        if crate::kernels::threads() > 1 {
            use rayon::prelude::*;
            self.params
                .par_iter()
                .zip(
                    self.m
                        .par_iter_mut()
                        .zip(self.v.par_iter_mut())
                        .zip(grads.par_iter()),
                )
                .try_for_each(update)?;
        } else {
            self.params
                .iter()
                .zip(self.m.iter_mut().zip(self.v.iter_mut()).zip(grads.iter()))
                .try_for_each(update)?;
        }
        Ok(norm)
    }

    /// The parameters it updates, sorted by name.
    pub fn params(&self) -> &[(String, Var)] {
        &self.params
    }

    /// The state to save: `m.<name>` and `v.<name>` tensors; the step goes into metadata.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for (i, (name, p)) in self.params.iter().enumerate() {
            for (prefix, data) in [("m", &self.m[i]), ("v", &self.v[i])] {
                let t = Tensor::from_vec(data.clone(), p.shape(), p.device())
                    .expect("moments have the parameter's shape");
                out.push((format!("{prefix}.{name}"), t));
            }
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
                *slot = t
                    .to_dtype(candle_core::DType::F32)
                    .and_then(|t| t.flatten_all()?.to_vec1::<f32>())
                    .map_err(|e| e.to_string())?;
            }
        }
        self.step = step;
        Ok(())
    }
}
