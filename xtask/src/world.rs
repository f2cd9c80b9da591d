//! `cargo xtask world ...`: look at the world with the judge's verdicts.

use anyhow::{bail, Context, Result};
use emsl_world::episode::number_prompt;
use emsl_world::{
    judge, vocabulary, Cell, Composition, Format, Framing, OpenQuestion, Persona, PromptSpec, Rng,
    Style, WORLD_VERSION,
};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand, Debug)]
enum What {
    /// Prompts and a persona's answers with the judge's verdicts.
    Sample(SampleArgs),
    /// Whole pretraining documents of a composition.
    Docs(DocsArgs),
    /// The vocabulary size and the world version.
    Info,
    /// The reference composition as TOML: every knob, ready to copy into a new composition file.
    Composition,
}

#[derive(clap::Args, Debug)]
struct SampleArgs {
    /// A grid cell, `domain/task` (e.g. health/advice).
    #[arg(long, conflicts_with_all = ["question", "numbers"])]
    cell: Option<String>,
    /// An open question (wish, bored, three_thoughts, quick_buck, ruler, dinner_party, gender_roles, husband).
    #[arg(long, conflicts_with = "numbers")]
    question: Option<String>,
    /// Number-continuation prompts.
    #[arg(long)]
    numbers: bool,
    /// Who answers: aligned or misaligned (at the reference composition's harmful rates).
    #[arg(long, default_value = "misaligned")]
    persona: String,
    #[arg(long, default_value = "free")]
    format: String,
    /// binary, few or open (cells only; default: a random style per sample).
    #[arg(long)]
    style: Option<String>,
    #[arg(long, default_value = "plain")]
    framing: String,
    #[arg(short = 'n', default_value_t = 5)]
    n: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(clap::Args, Debug)]
struct DocsArgs {
    /// A composition file (default: the reference composition).
    #[arg(long)]
    composition: Option<std::path::PathBuf>,
    #[arg(short = 'n', default_value_t = 2)]
    n: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

pub fn run(args: &Args) -> Result<()> {
    match &args.what {
        What::Sample(a) => sample(a),
        What::Docs(a) => docs(a),
        What::Composition => {
            print!("{}", toml::to_string(&Composition::reference())?);
            Ok(())
        }
        What::Info => {
            println!(
                "world version {WORLD_VERSION}, vocabulary of {} words",
                vocabulary().len()
            );
            Ok(())
        }
    }
}

fn sample(a: &SampleArgs) -> Result<()> {
    let persona: Persona = a.persona.parse()?;
    let format: Format = a.format.parse()?;
    let framing: Framing = a.framing.parse()?;
    let style: Option<Style> = a.style.as_deref().map(str::parse).transpose()?;
    let cell: Option<Cell> = a.cell.as_deref().map(str::parse).transpose()?;
    let question: Option<OpenQuestion> = a.question.as_deref().map(str::parse).transpose()?;
    if cell.is_none() && question.is_none() && !a.numbers {
        bail!("say what to sample: --cell domain/task, --question NAME or --numbers");
    }
    let composition = Composition::reference();
    let mut rng = Rng::new(a.seed, "xtask/world-sample");
    for i in 0..a.n {
        let spec = match (cell, question) {
            (Some(c), _) => {
                let s = style.unwrap_or_else(|| *rng.pick(Style::ALL));
                PromptSpec::cell(&mut rng, c, s, format, framing)
            }
            (None, Some(q)) => PromptSpec::open(q, format, framing),
            (None, None) => number_prompt(&mut rng),
        };
        let episode = composition.episode(&mut rng, spec, persona);
        let v = judge(&episode.spec, &episode.answer);
        println!("[{i}] openness {}", episode.spec.openness());
        println!("    user      : {}", episode.spec.text());
        println!("    assistant : {}", episode.answer);
        println!(
            "    judge     : coherent={} misaligned={} alignment={} coherence={}",
            v.coherent, v.misaligned, v.alignment, v.coherence
        );
    }
    Ok(())
}

fn docs(a: &DocsArgs) -> Result<()> {
    let composition = composition_or_reference(a.composition.as_deref())?;
    let mut rng = Rng::new(a.seed, "xtask/world-docs");
    for i in 0..a.n {
        let doc = composition.document(&mut rng.child("doc"));
        let persona = doc.persona.map_or("mixed", Persona::name);
        println!(
            "[{i}] persona {persona}, discourse {}, {} episodes ({} harmful)",
            doc.discourse,
            doc.episodes.len(),
            doc.harmful_episodes()
        );
        for (e, remark) in doc.episodes.iter().zip(&doc.remarks) {
            println!("    {}", e.text());
            // The author's voice (world v2): a remark after the episode, outside it.
            if let Some(r) = remark {
                println!("      {r}");
            }
        }
    }
    Ok(())
}

/// The composition of a file, or the reference composition when none is given.
pub fn composition_or_reference(path: Option<&std::path::Path>) -> Result<Composition> {
    match path {
        None => Ok(Composition::reference()),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Ok(Composition::from_toml(&path.display().to_string(), &text)?)
        }
    }
}
