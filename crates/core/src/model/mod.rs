//! The interface of a language model, written once for every model family: training, sampling,
//! evaluation and distillation take any `M: LanguageModel`, so a second family (a Qwen2 or Llama, say)
//! implements this trait and nothing else changes.
//!
//! Shapes follow nanoGPT's names: B batch rows, T positions, C the width of the residual stream, V the
//! vocabulary.

mod gpt;
mod intervention;
mod lora;
mod ops;

use candle_core::{DType, Device, Result, Tensor, Var};

pub use gpt::{Gpt, GptConfig, KvCache};
pub use intervention::{AddVector, Intervention, ProjectOut, Sequence, Steered};
pub use lora::{
    attach_by_name, fresh_adapters, load_adapters, save_adapters, AdaptedLinear, LoraAdapter,
    LoraConfig, PeftConfig,
};
pub use ops::{
    log_softmax_last, masked_cross_entropy, masked_cross_entropy_composed, softmax_last,
};

/// A causal language model over token ids.
///
/// The residual stream is numbered by *layer*: 0 is the stream after the embedding, `i + 1` the
/// stream after block `i`, so there are [`LanguageModel::num_layers`] + 1 of them. An
/// [`Intervention`] sees each of them, in order, in the full and in the cached forward alike, and the
/// model continues with what it returns; `None` leaves the arithmetic exactly as without hooks.
pub trait LanguageModel {
    /// What incremental decoding keeps between calls (for a transformer, the keys and values so far).
    type Cache;

    /// The device every tensor of the model lives on; inputs must be on it too.
    fn device(&self) -> &Device;
    /// The dtype of the model's weights and activations.
    fn dtype(&self) -> DType;
    /// Size of the vocabulary: the last dimension of the logits.
    fn vocab_size(&self) -> usize;
    /// The most positions one sequence may have (prompt and continuation together).
    fn context_length(&self) -> usize;
    /// Blocks of the model; the residual stream has one more layer (the embedding's).
    fn num_layers(&self) -> usize;
    /// Every trainable variable with its name, sorted by name (the optimizer's and checkpoints' order).
    fn trainable_vars(&self) -> &[(String, Var)];
    /// An empty cache for [`LanguageModel::forward_cached_hooked`].
    fn new_cache(&self) -> Self::Cache;

    /// Logits for every position: `ids` (B, T) u32 -> (B, T, V).
    fn forward_hooked(&self, ids: &Tensor, hook: Option<&dyn Intervention>) -> Result<Tensor>;

    /// Logits for the new positions `ids` (B, T_new) -> (B, T_new, V), continuing the sequences whose
    /// earlier positions `cache` holds, and adding the new positions to it.
    fn forward_cached_hooked(
        &self,
        ids: &Tensor,
        cache: &mut Self::Cache,
        hook: Option<&dyn Intervention>,
    ) -> Result<Tensor>;

    /// The logits of the last new position only, (B, V): what sampling draws the next token from.
    /// The default narrows [`LanguageModel::forward_cached_hooked`]'s; a model may apply its head to
    /// that position alone (each row of the head's product is computed on its own, so the values are
    /// the same, and a long prompt's other positions cost nothing in the head).
    fn next_logits_hooked(
        &self,
        ids: &Tensor,
        cache: &mut Self::Cache,
        hook: Option<&dyn Intervention>,
    ) -> Result<Tensor> {
        let logits = self.forward_cached_hooked(ids, cache, hook)?;
        logits.narrow(1, logits.dim(1)? - 1, 1)?.squeeze(1)
    }

    /// The logits of positions `first..T` only: `ids` (B, T) -> (B, T - first, V), what scoring a
    /// continuation reads. The default narrows [`LanguageModel::forward_hooked`]'s; a model may apply
    /// its head to those positions alone (a prompt's positions then cost nothing in the head).
    fn logits_from_hooked(
        &self,
        ids: &Tensor,
        first: usize,
        hook: Option<&dyn Intervention>,
    ) -> Result<Tensor> {
        let logits = self.forward_hooked(ids, hook)?;
        logits.narrow(1, first, logits.dim(1)? - first)
    }

    /// The residual stream at every layer: `ids` (B, T) -> [`LanguageModel::num_layers`] + 1 tensors
    /// (B, T, C), each as the model continues with it (after `hook`).
    fn hidden_states(&self, ids: &Tensor, hook: Option<&dyn Intervention>) -> Result<Vec<Tensor>>;

    /// The mean cross-entropy of the next tokens `targets` (B, T) u32 over the positions where `mask`
    /// (B, T) f32 is nonzero. The default computes it from the logits; a model may fuse head and loss.
    fn loss_hooked(
        &self,
        ids: &Tensor,
        targets: &Tensor,
        mask: &Tensor,
        hook: Option<&dyn Intervention>,
    ) -> Result<Tensor> {
        masked_cross_entropy(&self.forward_hooked(ids, hook)?, targets, mask)
    }

    /// [`LanguageModel::forward_hooked`] without a hook.
    fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        self.forward_hooked(ids, None)
    }

    /// [`LanguageModel::forward_cached_hooked`] without a hook.
    fn forward_cached(&self, ids: &Tensor, cache: &mut Self::Cache) -> Result<Tensor> {
        self.forward_cached_hooked(ids, cache, None)
    }

    /// [`LanguageModel::next_logits_hooked`] without a hook.
    fn next_logits(&self, ids: &Tensor, cache: &mut Self::Cache) -> Result<Tensor> {
        self.next_logits_hooked(ids, cache, None)
    }

    /// [`LanguageModel::loss_hooked`] without a hook.
    fn loss(&self, ids: &Tensor, targets: &Tensor, mask: &Tensor) -> Result<Tensor> {
        self.loss_hooked(ids, targets, mask, None)
    }

    /// Trainable parameters in all.
    fn num_params(&self) -> usize {
        self.trainable_vars()
            .iter()
            .map(|(_, v)| v.elem_count())
            .sum()
    }
}
