//! The core crate: tiny GPTs in candle that pretrain, fine-tune, sample and are judged by the world's
//! exact judge, deterministically (docs/design.md, "Models and training").

pub mod checkpoint;
pub mod data;
pub mod distil;
pub mod divergence;
pub mod eval;
pub mod kernel_check;
pub mod kernels;
pub mod model;
pub mod optim;
pub mod persona;
pub mod prompted;
pub mod sample;
pub mod tokenizer;
pub mod train;

pub mod stages;

pub use model::{Gpt, GptConfig, LanguageModel};
pub use tokenizer::Tok;
