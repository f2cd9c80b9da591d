//! The plots of the persona figures and of the training paths, drawn from their tables alone.

use anyhow::Result;

use crate::figures::{bars, fig, lines, table, Tables, MISALIGNED};
use crate::plot::{Chart, Figure, Series};

/// Open-question misalignment per context (k earlier episodes by one persona), one series per model.
pub fn persona_inference(t: &Tables) -> Result<Figure> {
    Ok(fig(
        "In-context persona: open questions after k episodes by one persona",
        "earlier episodes before the question",
        MISALIGNED,
        bars(
            table(t, "persona-inference")?,
            "open_misaligned",
            &[],
            "context",
            "model",
            str::to_owned,
        ),
    ))
}

/// The base steered along its persona direction: open-question misalignment and coherence per scale.
pub fn persona_direction(t: &Tables) -> Result<Figure> {
    Ok(fig(
        "Steering the base along its persona direction (open questions)",
        "multiple of (misaligned mean - aligned mean) added at the best layer",
        "share of answers",
        lines(
            table(t, "steering")?,
            &[
                ("open_misaligned", "misaligned among coherent"),
                ("open_coherent", "coherent"),
            ],
            "scale",
        ),
    ))
}

/// Out-of-cell misalignment over fine-tuning steps, one line per training path.
pub fn training_paths(t: &Tables) -> Result<Figure> {
    let tab = table(t, "dynamics")?;
    let rows = tab.select("out_of_cell_misaligned", &[]);
    let paths = crate::figures::distinct(&rows, "path");
    let series = paths
        .iter()
        .map(|p| Series {
            name: if p.is_empty() {
                "out of cell".into()
            } else {
                format!("{p}, out of cell")
            },
            points: rows
                .iter()
                .filter(|r| r.var("path").map(|v| v.to_string()).unwrap_or_default() == *p)
                .map(|r| crate::figures::point(r.num("step"), r))
                .collect(),
        })
        .collect();
    Ok(fig(
        "Fine-tuning dynamics per training path (constant learning rate)",
        "fine-tuning step",
        MISALIGNED,
        Chart::Lines { series },
    ))
}
