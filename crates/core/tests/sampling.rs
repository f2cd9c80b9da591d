//! The sampler's draws are a result: every evaluation's answers come from them. `sample_token` sorts
//! tokens by one integer key per token for speed; this test holds it to the draw-for-draw behaviour of
//! the plain version it replaced (sort (id, probability) pairs by probability, then id), on logits with
//! ties, at several temperatures and top-p values.

use emsl_core::sample::{sample_token, SampleConfig};
use emsl_world::Rng;

/// The sampler as it was before the integer-key sort (commit 42f6d10), kept verbatim as the reference.
fn reference(logits: &[f32], cfg: &SampleConfig, rng: &mut Rng) -> u32 {
    let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let mut probs: Vec<(usize, f64)> = logits
        .iter()
        .enumerate()
        .map(|(i, l)| (i, (f64::from(l - max) / cfg.temperature).exp()))
        .collect();
    let total: f64 = probs.iter().map(|p| p.1).sum();
    probs.iter_mut().for_each(|p| p.1 /= total);
    probs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut kept = 0;
    let mut mass = 0.0;
    while kept < probs.len() && (kept == 0 || mass < cfg.top_p) {
        mass += probs[kept].1;
        kept += 1;
    }
    let mut u = rng.unit() * mass;
    for (i, p) in &probs[..kept] {
        if u < *p {
            return *i as u32;
        }
        u -= p;
    }
    probs[kept - 1].0 as u32
}

#[test]
fn draws_equal_the_pairwise_sort_draw_for_draw() {
    let mut data = Rng::new(7, "logits");
    let mut draws = 0;
    let mut distinct = std::collections::BTreeSet::new();
    for case in 0..300 {
        let vocab = [2, 17, 1609][case % 3];
        // Every third vector is rounded to a coarse grid, so many tokens tie exactly.
        let coarse = case % 3 == 1;
        let logits: Vec<f32> = (0..vocab)
            .map(|_| {
                let x = (data.normal() * 3.0) as f32;
                if coarse {
                    (x * 2.0).round() / 2.0
                } else {
                    x
                }
            })
            .collect();
        for (temperature, top_p) in [(1.0, 1.0), (0.7, 0.9), (1.5, 0.5), (1.0, 0.01)] {
            let cfg = SampleConfig {
                temperature,
                top_p,
                max_new_tokens: 1,
            };
            let (mut a, mut b) = (Rng::new(case as u64, "draw"), Rng::new(case as u64, "draw"));
            for _ in 0..5 {
                let (x, y) = (
                    sample_token(&logits, &cfg, &mut a),
                    reference(&logits, &cfg, &mut b),
                );
                assert_eq!(
                    x, y,
                    "case {case}, temperature {temperature}, top-p {top_p}"
                );
                distinct.insert(x);
                draws += 1;
            }
        }
    }
    assert_eq!(draws, 6000);
    // The cases exercise the sampler, not one token over and over.
    assert!(
        distinct.len() > 100,
        "{} distinct tokens drawn",
        distinct.len()
    );
}

/// The head applied to the last position alone gives the bits of the full head's last row, at the
/// sizes of the quick profile (whose products take other matrix kernels than a tiny model's), for the
/// prompt and a decoding step, one row and several.
#[test]
fn the_last_positions_logits_are_the_full_heads_last_row_bit_for_bit() {
    use candle_core::{Device, Tensor};
    use emsl_core::{Gpt, GptConfig, LanguageModel};
    let cfg = GptConfig {
        vocab_size: 1609,
        n_ctx: 128,
        d_model: 64,
        n_layer: 4,
        n_head: 4,
        d_ff: 256,
    };
    let model = Gpt::new(&cfg, 3, &Device::Cpu).unwrap();
    let mut ids = Rng::new(4, "ids");
    for rows in [1, 2, 3, 5, 8, 24, 64] {
        let prompt: Vec<u32> = (0..rows * 37).map(|_| ids.below(1609) as u32).collect();
        let prompt = Tensor::from_vec(prompt, (rows, 37), &Device::Cpu).unwrap();
        let step = Tensor::from_vec(vec![5u32; rows], (rows, 1), &Device::Cpu).unwrap();
        let (mut full_cache, mut last_cache) = (model.new_cache(), model.new_cache());
        for input in [&prompt, &step] {
            let full = model.forward_cached(input, &mut full_cache).unwrap();
            let full = full.narrow(1, full.dim(1).unwrap() - 1, 1).unwrap();
            let full: Vec<Vec<f32>> = full.squeeze(1).unwrap().to_vec2().unwrap();
            let last: Vec<Vec<f32>> = model
                .next_logits(input, &mut last_cache)
                .unwrap()
                .to_vec2()
                .unwrap();
            let bits = |v: &Vec<Vec<f32>>| -> Vec<u32> {
                v.concat().iter().map(|x| x.to_bits()).collect()
            };
            assert_eq!(
                bits(&full),
                bits(&last),
                "{rows} rows, {} positions",
                input.dim(1).unwrap()
            );
        }
    }
}

/// `logprob` as it was before it ran several rows per pass (commit 81b62ad), kept as the reference.
fn one_row_logprob(model: &emsl_core::model::Gpt, prompt: &[u32], completion: &[u32]) -> f64 {
    use candle_core::{Tensor, D};
    use emsl_core::model::log_softmax_last;
    use emsl_core::LanguageModel;
    let ids: Vec<u32> = prompt.iter().chain(completion).copied().collect();
    let n = ids.len().min(model.context_length() + 1);
    let dev = model.device();
    let input = Tensor::from_vec(ids[..n - 1].to_vec(), (1, n - 1), dev).unwrap();
    let logits = model.forward(&input).unwrap();
    let logp = log_softmax_last(&logits).unwrap().squeeze(0).unwrap();
    let targets = Tensor::from_vec(ids[1..n].to_vec(), (n - 1, 1), dev).unwrap();
    let picked: Vec<f32> = logp
        .gather(&targets, D::Minus1)
        .unwrap()
        .squeeze(D::Minus1)
        .unwrap()
        .to_vec1()
        .unwrap();
    picked[prompt.len() - 1..]
        .iter()
        .map(|x| f64::from(*x))
        .sum()
}

/// The probe's rows run many per pass: every value must be that of a pass of its row alone up to
/// float rounding (the products' row blocks change with the pass), at the quick profile's width, for
/// lengths from a few tokens to past the context (cut), in passes of several rows and of one.
#[test]
fn batched_logprobs_equal_one_row_passes_up_to_rounding() {
    use emsl_core::model::{Gpt, GptConfig};
    let cfg = GptConfig {
        vocab_size: 300,
        n_ctx: 128,
        d_model: 64,
        n_layer: 4,
        n_head: 4,
        d_ff: 256,
    };
    let model = Gpt::new(&cfg, 5, &candle_core::Device::Cpu).unwrap();
    let mut rng = Rng::new(3, "probe rows");
    let mut ids = |n: usize| -> Vec<u32> { (0..n).map(|_| rng.below(300) as u32).collect() };
    // 15 shapes three times over (passes of several rows, some cut to the context), and one alone.
    let shapes = (0..45).map(|i| ([5, 17, 40, 90, 120][i % 5], [3, 9, 20][i % 3]));
    let owned: Vec<(Vec<u32>, Vec<u32>)> = shapes
        .chain([(7, 4)])
        .map(|(p, c)| (ids(p), ids(c)))
        .collect();
    let pairs: Vec<(&[u32], &[u32])> = owned.iter().map(|(p, c)| (&p[..], &c[..])).collect();
    let batched = emsl_core::sample::logprobs(&model, &pairs).unwrap();
    let mut cut = 0;
    for ((p, c), got) in pairs.iter().zip(&batched) {
        cut += usize::from(p.len() + c.len() > cfg.n_ctx + 1);
        let want = one_row_logprob(&model, p, c);
        assert!(
            (got - want).abs() <= 1e-6 * want.abs().max(1.0),
            "{got} against {want}"
        );
    }
    assert!(
        cut >= 2,
        "fewer than two rows cut to the context: no pass of several rows"
    );
}
