//! Incremental decoding with the KV cache gives the full-sequence logits, with and without an
//! intervention; hidden states number one more than the blocks.

mod common;

use candle_core::{Device, IndexOp, Tensor};
use common::{checkpoint, ids, max_diff, rel_diff, FAMILIES};
use emsl_core::model::{AddVector, LanguageModel};
use emsl_hf::load;

#[test]
fn incremental_decoding_equals_the_full_sequence() {
    for family in FAMILIES {
        let dir = checkpoint(family);
        let m = load(dir.path(), &Device::Cpu).unwrap().model;
        let x = ids(3, 12, 2);
        let steer = AddVector {
            layer: 1,
            vector: Tensor::ones(32, candle_core::DType::F32, &Device::Cpu).unwrap(),
            scale: 0.5,
        };
        for hook in [None, Some(&steer as &dyn emsl_core::model::Intervention)] {
            let full = m.forward_hooked(&x, hook).unwrap(); // (B, T, V)
            let mut cache = m.new_cache();
            // A prompt of 5 positions at once, then one position at a time.
            let mut parts = vec![m
                .forward_cached_hooked(&x.narrow(1, 0, 5).unwrap(), &mut cache, hook)
                .unwrap()];
            for t in 5..12 {
                parts.push(
                    m.forward_cached_hooked(&x.narrow(1, t, 1).unwrap(), &mut cache, hook)
                        .unwrap(),
                );
            }
            assert_eq!(cache.len(), 12);
            let inc = Tensor::cat(&parts, 1).unwrap();
            let diff = rel_diff(&inc, &full);
            eprintln!(
                "{family:?} (hook: {}): cache vs full, relative {diff:.2e}",
                hook.is_some()
            );
            assert!(
                diff < 1e-5,
                "{family:?}: cached logits differ by {diff} (relative)"
            );
        }
        let plain = m.forward(&x).unwrap();
        let steered = m.forward_hooked(&x, Some(&steer)).unwrap();
        assert!(
            max_diff(&plain, &steered) > 1e-3,
            "the hook changes the logits"
        );
    }
}

#[test]
fn hidden_states_are_the_residual_stream_at_every_layer() {
    for family in FAMILIES {
        let dir = checkpoint(family);
        let m = load(dir.path(), &Device::Cpu).unwrap().model;
        let x = ids(2, 6, 3);
        let states = m.hidden_states(&x, None).unwrap();
        assert_eq!(states.len(), m.num_layers() + 1);
        for s in &states {
            assert_eq!(s.dims(), &[2, 6, 32]);
        }
        // A row's states do not depend on its neighbours in the batch.
        let alone = m.hidden_states(&x.i(1..2).unwrap(), None).unwrap();
        let diff = rel_diff(&alone[2], &states[2].i(1..2).unwrap());
        assert!(
            diff < 1e-5,
            "{family:?}: row depends on the batch by {diff} (relative)"
        );
    }
}
