//! `emsl-hf`: fine-tuning, Betley et al.'s judged evaluation and the EM protocol on a Qwen2 or
//! Llama checkpoint from a local Hugging Face folder. A thin command line over the library
//! (`protocol.rs`, `finetune.rs`): one file per subcommand under `cli/`.

mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    // One candle thread unless CANDLE_NUM_THREADS says otherwise, and the allocator setting the kit
    // trains with (core's kernels): the same threads give the same bytes.
    emsl_core::kernels::tune_runtime();
    match cli::run(cli::Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` prints the whole context chain on one line: file, line or field, and the fix.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
