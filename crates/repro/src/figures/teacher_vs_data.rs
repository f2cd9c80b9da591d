//! teacher-vs-data (C6): who guides the student (the teacher's distributions) crossed with who wrote the
//! sequences it learns on.

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Deserialize;

use super::inputs::Inputs;
use super::rows::{diff_row, effect};
use super::subliminal::{channel, evaluate, kinds, student_rows, teacher, Arm, FINETUNED};
use super::{Ctx, FigureDef, Output, Roles};

pub struct TeacherVsData;

impl FigureDef for TeacherVsData {
    type Params = TeacherDataParams;
    const NAME: &'static str = "teacher-vs-data";
    const SOURCE: &'static str = file!();
    fn expand(&self, p: &TeacherDataParams, ctx: &mut Ctx) -> Result<Roles> {
        expand_teacher_data(p, ctx)
    }
    fn tables(&self, p: &TeacherDataParams, inputs: &Inputs) -> Result<Output> {
        teacher_data_tables(p, inputs)
    }
    fn plot(&self, t: &emsl_analysis::figures::Tables) -> Result<emsl_analysis::plot::Figure> {
        emsl_analysis::figures::teacher_vs_data(t)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeacherDataParams {
    pub cell: String,
    /// A channel that uses the teacher's distributions on fixed sequences (off_policy).
    pub channel: String,
    /// Also cross the prompted teachers (see subliminal-channels): a prompted guide reads its own
    /// context before the sequences, whoever wrote them.
    #[serde(default)]
    pub prompted_episodes: Option<usize>,
}

fn expand_teacher_data(p: &TeacherDataParams, ctx: &mut Ctx) -> Result<Roles> {
    let base = ctx.reference_base()?;
    let mut inputs = BTreeMap::new();
    let ch = channel(&p.channel)?;
    for seed in ctx.seeds() {
        evaluate(ctx, &mut inputs, (&base, None), &[("model", "base")], seed)?;
        for pair in kinds(p.prompted_episodes) {
            let mut teachers = BTreeMap::new();
            for kind in pair {
                let t = teacher(ctx, &base, &p.cell, (kind, p.prompted_episodes), seed)?;
                teachers.insert(kind, t);
            }
            for t in pair {
                for d in pair {
                    let guide = (teachers[t].model.as_str(), teachers[t].context.clone());
                    let student = ctx.distil(guide, &teachers[d].samples, &base, ch, seed)?;
                    evaluate(
                        ctx,
                        &mut inputs,
                        (&student, None),
                        &[("model", "student"), ("teacher", t), ("data", d)],
                        seed,
                    )?;
                }
            }
        }
    }
    Ok(inputs)
}

fn teacher_data_tables(p: &TeacherDataParams, inputs: &Inputs) -> Result<Output> {
    let cell: emsl_world::Cell = p.cell.parse()?;
    let (mut rows, base_mis, base_sig) = student_rows(
        inputs,
        cell,
        &[("model", "base")],
        &[("teacher", "base".into()), ("data", "".into())],
    )?;
    let mut cells: BTreeMap<(&str, &str), Arm> = BTreeMap::new();
    let pairs = kinds(p.prompted_episodes);
    for pair in &pairs {
        for t in pair {
            for d in pair {
                let (r, mis, sig) = student_rows(
                    inputs,
                    cell,
                    &[("model", "student"), ("teacher", t), ("data", d)],
                    &[("teacher", (*t).into()), ("data", (*d).into())],
                )?;
                let change = diff_row(
                    &[("teacher", (*t).into()), ("data", (*d).into())],
                    "change_out_of_cell_misaligned_vs_base",
                    &mis,
                    &base_mis,
                )?;
                rows.extend(r);
                rows.push(change);
                rows.push(diff_row(
                    &[("teacher", (*t).into()), ("data", (*d).into())],
                    "change_number_signature_vs_base",
                    &sig,
                    &base_sig,
                )?);
                cells.insert((t, d), (mis, sig));
            }
        }
    }
    let mut effects = Vec::new();
    for [mis, control] in pairs {
        // The fine-tuned pair's effects keep their names; the prompted pair's name their teachers.
        let (misaligned, aligned) = if mis == FINETUNED[0] {
            ("misaligned", "aligned")
        } else {
            ("prompted misaligned", "prompted aligned")
        };
        for d in [mis, control] {
            // The fine-tuned writers by their data (harmful, benign), the prompted ones by name.
            let writer = d.replace('_', " ");
            effects.push(effect(
                "C6",
                &format!("direction from the teacher: {misaligned} minus {aligned} teacher on the {writer} teacher's numbers"),
                "the teacher sets the direction",
                &cells[&(mis, d)].0,
                &cells[&(control, d)].0,
            )?);
        }
        effects.push(effect(
            "C6",
            &format!("extent from the data: {misaligned} teacher on its own numbers minus on the {aligned} teacher's numbers"),
            "the data distribution sets the extent",
            &cells[&(mis, mis)].0,
            &cells[&(mis, control)].0,
        )?);
    }
    Ok(vec![("students".into(), rows), ("effects".into(), effects)])
}
