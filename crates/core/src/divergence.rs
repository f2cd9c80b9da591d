//! Divergences between teacher and student next-token distributions, per position, over the last axis
//! of log-probability tensors (B, T, V) -> (B, T).
//!
//! The generalised Jensen-Shannon divergence of GKD (Agarwal et al.), written as TRL's GKDTrainer
//! writes it: with the mixture M = beta * P_teacher + (1 - beta) * P_student,
//! `JSD(beta) = beta * KL(P_teacher || M) + (1 - beta) * KL(P_student || M)`.
//! At the end points the mixture collapses and the divergence is 0, so, as in TRL, beta = 0 is taken to
//! mean the forward KL(P_teacher || P_student) and beta = 1 the reverse KL(P_student || P_teacher). The
//! scaling that links them: JSD(beta) / beta -> forward KL as beta -> 0, and JSD(beta) / (1 - beta) ->
//! reverse KL as beta -> 1 (tested).

use candle_core::{Result, Tensor, D};

use crate::model::log_softmax_last;

/// KL(P || Q) per position from log-probabilities: sum_v p (log p - log q).
pub fn kl(p_log: &Tensor, q_log: &Tensor) -> Result<Tensor> {
    (p_log.exp()? * (p_log - q_log)?)?.sum(D::Minus1)
}

/// log(a_w * exp(a) + b_w * exp(b)) elementwise, stably.
fn log_mix(a: &Tensor, a_w: f64, b: &Tensor, b_w: f64) -> Result<Tensor> {
    let a = (a + a_w.ln())?;
    let b = (b + b_w.ln())?;
    let m = a.maximum(&b)?.detach();
    (a.broadcast_sub(&m)?.exp()? + b.broadcast_sub(&m)?.exp()?)?.log()? + m
}

/// Generalised JSD(beta) per position between teacher and student log-probabilities.
pub fn generalized_jsd(student_log: &Tensor, teacher_log: &Tensor, beta: f64) -> Result<Tensor> {
    if beta <= 0.0 {
        return kl(teacher_log, student_log);
    }
    if beta >= 1.0 {
        return kl(student_log, teacher_log);
    }
    let mix = log_mix(teacher_log, beta, student_log, 1.0 - beta)?;
    (kl(teacher_log, &mix)? * beta)? + (kl(student_log, &mix)? * (1.0 - beta))?
}

/// Log-probabilities over the last axis, optionally restricted to `subset` token ids (renormalised).
pub fn log_probs(logits: &Tensor, subset: Option<&Tensor>) -> Result<Tensor> {
    match subset {
        Some(ids) => log_softmax_last(&logits.index_select(ids, D::Minus1)?),
        None => log_softmax_last(logits),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn logs(p: &[f64]) -> Tensor {
        let v: Vec<f32> = p.iter().map(|x| x.ln() as f32).collect();
        Tensor::from_vec(v, (1, 1, p.len()), &Device::Cpu).unwrap()
    }

    fn scalar(t: Tensor) -> f64 {
        f64::from(t.flatten_all().unwrap().to_vec1::<f32>().unwrap()[0])
    }

    #[test]
    fn divergences_match_hand_computed_values() {
        let t = logs(&[0.5, 0.25, 0.25]);
        let s = logs(&[0.25, 0.5, 0.25]);
        // KL(t || s) = 0.5 ln 2 + 0.25 ln 0.5 = 0.25 ln 2; by symmetry of this pair, KL(s || t) too.
        let ln2 = std::f64::consts::LN_2;
        assert!((scalar(kl(&t, &s).unwrap()) - 0.25 * ln2).abs() < 1e-6);
        let u = logs(&[0.9, 0.05, 0.05]);
        // KL(u || s) = 0.9 ln(0.9/0.25) + 0.05 ln(0.05/0.5) + 0.05 ln(0.05/0.25)
        let want = 0.9 * (0.9f64 / 0.25).ln() + 0.05 * (0.1f64).ln() + 0.05 * (0.2f64).ln();
        assert!((scalar(kl(&u, &s).unwrap()) - want).abs() < 1e-5);
        // JSD(0.5) with M = (0.575, 0.275, 0.15) between u (teacher) and s (student).
        let m = [0.575f64, 0.275, 0.15];
        let kl_um: f64 = [0.9, 0.05, 0.05]
            .iter()
            .zip(m)
            .map(|(p, q)| p * (p / q).ln())
            .sum();
        let kl_sm: f64 = [0.25, 0.5, 0.25]
            .iter()
            .zip(m)
            .map(|(p, q)| p * (p / q).ln())
            .sum();
        let jsd = scalar(generalized_jsd(&s, &u, 0.5).unwrap());
        assert!((jsd - 0.5 * (kl_um + kl_sm)).abs() < 1e-5, "{jsd}");
    }

    #[test]
    fn jsd_end_points_are_the_forward_and_reverse_kl() {
        let t = logs(&[0.7, 0.2, 0.1]);
        let s = logs(&[0.2, 0.3, 0.5]);
        let fwd = scalar(kl(&t, &s).unwrap());
        let rev = scalar(kl(&s, &t).unwrap());
        assert_ne!(fwd, rev);
        assert_eq!(scalar(generalized_jsd(&s, &t, 0.0).unwrap()), fwd);
        assert_eq!(scalar(generalized_jsd(&s, &t, 1.0).unwrap()), rev);
        let eps = 1e-3;
        assert!((scalar(generalized_jsd(&s, &t, eps).unwrap()) / eps - fwd).abs() < 0.02 * fwd);
        assert!(
            (scalar(generalized_jsd(&s, &t, 1.0 - eps).unwrap()) / eps - rev).abs() < 0.02 * rev
        );
    }
}
