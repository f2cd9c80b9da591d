//! Interventions on the residual stream (activation steering and direction ablation), and
//! [`Steered`], a model that carries one, so that every function taking a [`LanguageModel`] (sampling,
//! evaluation) runs the intervened model unchanged.

use candle_core::{DType, Device, Result, Tensor, Var, D};

use super::LanguageModel;

/// A change to the residual stream, called at every layer (see [`LanguageModel`] for the numbering).
pub trait Intervention {
    /// The stream `x` (B, T, C) at `layer` -> the stream the model continues with. In a cached forward
    /// `x` holds only the new positions.
    fn apply(&self, layer: usize, x: Tensor) -> Result<Tensor>;
}

/// Adds `scale * vector` (C) to every position of the stream at `layer`: a steering vector.
#[derive(Debug, Clone)]
pub struct AddVector {
    pub layer: usize,
    pub vector: Tensor,
    pub scale: f64,
}

impl Intervention for AddVector {
    fn apply(&self, layer: usize, x: Tensor) -> Result<Tensor> {
        if layer != self.layer {
            return Ok(x);
        }
        x.broadcast_add(&(&self.vector * self.scale)?)
    }
}

/// Removes the component along `direction` (C, any length) from every position of the stream at
/// `layer`: `x - (x . d) d` with `d` the unit direction.
#[derive(Debug, Clone)]
pub struct ProjectOut {
    pub layer: usize,
    pub direction: Tensor,
}

impl Intervention for ProjectOut {
    fn apply(&self, layer: usize, x: Tensor) -> Result<Tensor> {
        if layer != self.layer {
            return Ok(x);
        }
        let d = self
            .direction
            .broadcast_div(&self.direction.sqr()?.sum_all()?.sqrt()?)?; // (C)
        let along = x.broadcast_mul(&d)?.sum_keepdim(D::Minus1)?; // (B, T, 1)
        x.broadcast_sub(&along.broadcast_mul(&d)?)
    }
}

/// Several owned interventions, applied in order (an empty one changes nothing).
pub struct Sequence(pub Vec<Box<dyn Intervention>>);

impl Intervention for Sequence {
    fn apply(&self, layer: usize, mut x: Tensor) -> Result<Tensor> {
        for i in &self.0 {
            x = i.apply(layer, x)?;
        }
        Ok(x)
    }
}

/// `first`, then `then` if any: a carried intervention composed with one passed per call, borrowed
/// for one forward pass (a [`Sequence`] would need to own them).
struct Then<'a> {
    first: &'a dyn Intervention,
    then: Option<&'a dyn Intervention>,
}

impl Intervention for Then<'_> {
    fn apply(&self, layer: usize, x: Tensor) -> Result<Tensor> {
        let x = self.first.apply(layer, x)?;
        match self.then {
            Some(h) => h.apply(layer, x),
            None => Ok(x),
        }
    }
}

/// `model` with `intervention` applied in every forward pass (full and cached), before any hook passed
/// per call. Sampling from a `Steered` model samples the steered model.
pub struct Steered<'a, M> {
    pub model: &'a M,
    pub intervention: &'a dyn Intervention,
}

impl<M> Steered<'_, M> {
    fn hook<'b>(&'b self, then: Option<&'b dyn Intervention>) -> Then<'b> {
        Then {
            first: self.intervention,
            then,
        }
    }
}

impl<M: LanguageModel> LanguageModel for Steered<'_, M> {
    type Cache = M::Cache;

    fn device(&self) -> &Device {
        self.model.device()
    }

    fn dtype(&self) -> DType {
        self.model.dtype()
    }

    fn vocab_size(&self) -> usize {
        self.model.vocab_size()
    }

    fn context_length(&self) -> usize {
        self.model.context_length()
    }

    fn num_layers(&self) -> usize {
        self.model.num_layers()
    }

    fn trainable_vars(&self) -> &[(String, Var)] {
        self.model.trainable_vars()
    }

    fn new_cache(&self) -> Self::Cache {
        self.model.new_cache()
    }

    fn forward_hooked(&self, ids: &Tensor, hook: Option<&dyn Intervention>) -> Result<Tensor> {
        self.model.forward_hooked(ids, Some(&self.hook(hook)))
    }

    fn forward_cached_hooked(
        &self,
        ids: &Tensor,
        cache: &mut Self::Cache,
        hook: Option<&dyn Intervention>,
    ) -> Result<Tensor> {
        self.model
            .forward_cached_hooked(ids, cache, Some(&self.hook(hook)))
    }

    fn next_logits_hooked(
        &self,
        ids: &Tensor,
        cache: &mut Self::Cache,
        hook: Option<&dyn Intervention>,
    ) -> Result<Tensor> {
        self.model
            .next_logits_hooked(ids, cache, Some(&self.hook(hook)))
    }

    fn logits_from_hooked(
        &self,
        ids: &Tensor,
        first: usize,
        hook: Option<&dyn Intervention>,
    ) -> Result<Tensor> {
        self.model
            .logits_from_hooked(ids, first, Some(&self.hook(hook)))
    }

    fn hidden_states(&self, ids: &Tensor, hook: Option<&dyn Intervention>) -> Result<Vec<Tensor>> {
        self.model.hidden_states(ids, Some(&self.hook(hook)))
    }

    fn loss_hooked(
        &self,
        ids: &Tensor,
        targets: &Tensor,
        mask: &Tensor,
        hook: Option<&dyn Intervention>,
    ) -> Result<Tensor> {
        self.model
            .loss_hooked(ids, targets, mask, Some(&self.hook(hook)))
    }
}
