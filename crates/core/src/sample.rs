//! Batched sampling with a KV cache, temperature and top-p. Each row draws from its own generator, and
//! rows are grouped into batches deterministically, so a run repeats exactly. A row's logits do not
//! mix with its neighbours', but a batch of another size can round differently in the last bits, which
//! flips a rare near-tie draw (measured: 1 of 3,552 samples differed between batches of 4 and of 64).

use anyhow::Result;
use candle_core::{Tensor, D};
use emsl_world::Rng;
use serde::{Deserialize, Serialize};

use crate::model::{log_softmax_last, LanguageModel};

/// How a continuation is drawn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleConfig {
    /// 0 means greedy.
    pub temperature: f64,
    /// Nucleus mass in (0, 1]; 1 keeps the whole distribution.
    pub top_p: f64,
    pub max_new_tokens: usize,
}

/// Draws a token from `logits` with temperature and top-p.
pub fn sample_token(logits: &[f32], cfg: &SampleConfig, rng: &mut Rng) -> u32 {
    let Some(unit) = uniform(cfg, rng) else {
        // Greedy; ties go to the lowest id.
        let mut best = 0;
        for (i, l) in logits.iter().enumerate() {
            if *l > logits[best] {
                best = i;
            }
        }
        return best as u32;
    };
    let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let mut probs: Vec<f64> = logits
        .iter()
        .map(|l| (f64::from(l - max) / cfg.temperature).exp())
        .collect();
    let total: f64 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= total);
    let order = descending(&probs);
    let mut kept = 0;
    let mut mass = 0.0;
    while kept < order.len() && (kept == 0 || mass < cfg.top_p) {
        mass += probs[order[kept] as usize];
        kept += 1;
    }
    let mut u = unit * mass;
    for &i in &order[..kept] {
        let p = probs[i as usize];
        if u < p {
            return i;
        }
        u -= p;
    }
    order[kept - 1]
}

/// The one uniform a draw takes from its row's stream (none when greedy). [`sample_token`] takes it
/// first, and a finished row takes it alone, so both advance the stream alike.
fn uniform(cfg: &SampleConfig, rng: &mut Rng) -> Option<f64> {
    (cfg.temperature > 0.0).then(|| rng.unit())
}

/// The ids of `probs` (non-negative) by descending probability, ties to the lowest id: the order in
/// which the draw walks the distribution and sums the nucleus's mass. A non-negative f64's bits order
/// as its value, so the complemented bits are a key whose ascending order is the one wanted, and a
/// stable least-significant-digit radix sort of the ids by that key keeps tied ids in ascending order.
/// It gives exactly the order of a comparison sort; at top-p 1 the sort runs over the whole vocabulary
/// for every row and token, and a comparison sort there was a quarter of an evaluation's time.
fn descending(probs: &[f64]) -> Vec<u32> {
    let n = probs.len();
    let mut keys: Vec<u64> = probs.iter().map(|p| !p.to_bits()).collect();
    let mut ids: Vec<u32> = (0..n as u32).collect();
    let (mut keys_out, mut ids_out) = (vec![0u64; n], vec![0u32; n]);
    for shift in (0..64).step_by(8) {
        let mut count = [0usize; 256];
        for k in &keys {
            count[((k >> shift) & 0xff) as usize] += 1;
        }
        // A digit every key shares leaves the order as it is.
        if count.contains(&n) {
            continue;
        }
        let mut start = 0;
        for c in count.iter_mut() {
            let here = *c;
            *c = start;
            start += here;
        }
        for (k, i) in keys.iter().zip(&ids) {
            let slot = &mut count[((k >> shift) & 0xff) as usize];
            keys_out[*slot] = *k;
            ids_out[*slot] = *i;
            *slot += 1;
        }
        std::mem::swap(&mut keys, &mut keys_out);
        std::mem::swap(&mut ids, &mut ids_out);
    }
    ids
}

/// Continues `prompt` once per generator in `rngs`, stopping a row at `stop` (kept out of the
/// output) or after `max_new_tokens`. `use_cache = false` recomputes every position each step (slow;
/// it exists to test the cache).
pub fn generate<M: LanguageModel>(
    model: &M,
    prompt: &[u32],
    rngs: &mut [Rng],
    cfg: &SampleConfig,
    stop: u32,
    use_cache: bool,
) -> Result<Vec<Vec<u32>>> {
    let prompts = vec![prompt.to_vec(); rngs.len()];
    generate_rows(model, &prompts, rngs, cfg, stop, use_cache)
}

/// Continues every prompt of `prompts`, all of the same length, row `r` drawing from `rngs[r]`.
pub fn generate_rows<M: LanguageModel>(
    model: &M,
    prompts: &[Vec<u32>],
    rngs: &mut [Rng],
    cfg: &SampleConfig,
    stop: u32,
    use_cache: bool,
) -> Result<Vec<Vec<u32>>> {
    let b = rngs.len();
    anyhow::ensure!(
        prompts.len() == b,
        "{} prompts for {b} generators",
        prompts.len()
    );
    let prompt = &prompts[0];
    anyhow::ensure!(
        prompts.iter().all(|p| p.len() == prompt.len()),
        "rows of one batch must have prompts of one length"
    );
    let room = model.context_length().saturating_sub(prompt.len());
    let max_new = cfg.max_new_tokens.min(room);
    let mut out: Vec<Vec<u32>> = vec![Vec::new(); b];
    let mut done = vec![false; b];
    let mut cache = model.new_cache();
    let dev = model.device();
    let mut seqs: Vec<Vec<u32>> = prompts.to_vec();
    let mut next_input = Tensor::from_vec(prompts.concat(), (b, prompt.len()), dev)?;
    for _ in 0..max_new {
        let last = if use_cache {
            model.next_logits(&next_input, &mut cache)? // (B, V)
        } else {
            let flat: Vec<u32> = seqs.concat();
            let logits = model.forward(&Tensor::from_vec(flat, (b, seqs[0].len()), dev)?)?;
            logits.narrow(1, logits.dim(1)? - 1, 1)?.squeeze(1)?
        };
        let rows: Vec<Vec<f32>> = last.to_dtype(candle_core::DType::F32)?.to_vec2()?;
        let mut step_tokens = Vec::with_capacity(b);
        for r in 0..b {
            // A finished row's stream advances as a draw would advance it, so that every row's
            // stream is the same whatever its neighbours do; the draw itself is not made (its token
            // would be discarded, and most of a batch's rows finish long before its last). The stop
            // token it is fed instead changes no other row: rows do not mix.
            if done[r] {
                uniform(cfg, &mut rngs[r]);
                seqs[r].push(stop);
                step_tokens.push(stop);
                continue;
            }
            let t = sample_token(&rows[r], cfg, &mut rngs[r]);
            if t == stop {
                done[r] = true;
            } else {
                out[r].push(t);
            }
            seqs[r].push(t);
            step_tokens.push(t);
        }
        if done.iter().all(|d| *d) {
            break;
        }
        next_input = Tensor::from_vec(step_tokens, (b, 1), dev)?;
    }
    Ok(out)
}

/// Continues many prompts of any lengths, batching rows whose prompts have the same length (at most
/// `max_batch` rows at a time). Output `i` continues `prompts[i]` with `rngs[i]`.
pub fn generate_many<M: LanguageModel>(
    model: &M,
    prompts: &[Vec<u32>],
    rngs: Vec<Rng>,
    cfg: &SampleConfig,
    stop: u32,
    max_batch: usize,
) -> Result<Vec<Vec<u32>>> {
    anyhow::ensure!(
        prompts.len() == rngs.len(),
        "{} prompts for {} generators",
        prompts.len(),
        rngs.len()
    );
    let mut by_len: std::collections::BTreeMap<usize, Vec<usize>> =
        std::collections::BTreeMap::new();
    for (i, p) in prompts.iter().enumerate() {
        by_len.entry(p.len()).or_default().push(i);
    }
    let mut rngs: Vec<Option<Rng>> = rngs.into_iter().map(Some).collect();
    let mut out: Vec<Vec<u32>> = vec![Vec::new(); prompts.len()];
    for rows in by_len.values() {
        for chunk in rows.chunks(max_batch.max(1)) {
            let batch: Vec<Vec<u32>> = chunk.iter().map(|i| prompts[*i].clone()).collect();
            let mut batch_rngs: Vec<Rng> = chunk
                .iter()
                .map(|i| rngs[*i].take().expect("each generator used once"))
                .collect();
            for (i, o) in chunk.iter().zip(generate_rows(
                model,
                &batch,
                &mut batch_rngs,
                cfg,
                stop,
                true,
            )?) {
                out[*i] = o;
            }
        }
    }
    Ok(out)
}

/// Sum of log-probabilities of `completion` after `prompt` (both token ids).
pub fn logprob<M: LanguageModel>(model: &M, prompt: &[u32], completion: &[u32]) -> Result<f64> {
    Ok(logprobs(model, &[(prompt, completion)])?[0])
}

/// Rows of one forward pass of [`logprobs`]: enough to amortise the per-call cost of small models,
/// few enough that the logits (rows x T x vocabulary) stay a few tens of megabytes.
const LOGPROB_ROWS: usize = 32;

/// [`logprob`] of many (prompt, completion) pairs, several rows of the same length per forward pass
/// (nothing padded), with the head and the softmax only on the positions a row of the pass scores.
/// The values equal one-row passes' up to rounding: the matrix products cut their rows into blocks
/// by the size of the pass, and a block of a few rows takes the library's horizontal kernel, which
/// sums in another order (on one quick-size evaluation, 17 of 864 probes moved, by at most 2.4e-7).
pub fn logprobs<M: LanguageModel>(model: &M, pairs: &[(&[u32], &[u32])]) -> Result<Vec<f64>> {
    // Each row's ids, cut to the context as one pass would cut them (one more than the inputs).
    let rows: Vec<Vec<u32>> = pairs
        .iter()
        .map(|(p, c)| {
            let ids: Vec<u32> = p.iter().chain(c.iter()).copied().collect();
            let n = ids.len().min(model.context_length() + 1);
            ids[..n].to_vec()
        })
        .collect();
    let mut order: Vec<usize> = (0..pairs.len()).collect();
    order.sort_by_key(|&i| (rows[i].len(), pairs[i].0.len(), i));
    let dev = model.device();
    let mut out = vec![0.0; pairs.len()];
    let same_length = order.chunk_by(|&i, &j| rows[i].len() == rows[j].len());
    for chunk in same_length.flat_map(|c| c.chunks(LOGPROB_ROWS)) {
        let t = rows[chunk[0]].len() - 1;
        let (mut input, mut targets) = (Vec::<u32>::new(), Vec::<u32>::new());
        for &i in chunk {
            input.extend_from_slice(&rows[i][..t]);
            targets.extend_from_slice(&rows[i][1..]);
        }
        // The logits from the first position any row of the pass scores (the shortest prompt's last).
        let first = pairs[chunk[0]].0.len() - 1;
        let b = chunk.len();
        let input = Tensor::from_vec(input, (b, t), dev)?;
        let targets = Tensor::from_vec(targets, (b, t, 1), dev)?.narrow(1, first, t - first)?;
        let logits = model.logits_from_hooked(&input, first, None)?;
        let picked: Vec<Vec<f32>> = log_softmax_last(&logits)?
            .gather(&targets.contiguous()?, D::Minus1)?
            .squeeze(D::Minus1)?
            .to_vec2()?;
        for (&i, row) in chunk.iter().zip(&picked) {
            out[i] = row[pairs[i].0.len() - 1 - first..]
                .iter()
                .map(|x| f64::from(*x))
                .sum();
        }
    }
    Ok(out)
}
