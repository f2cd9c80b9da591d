//! teacher-vs-data (C6): who guides the student (the teacher's distributions) crossed with who wrote the
//! sequences it learns on.

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Deserialize;

use super::inputs::Inputs;
use super::rows::{diff_row, effect};
use super::subliminal::{channel, evaluate, student_rows, teacher, Arm};
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
}

fn expand_teacher_data(p: &TeacherDataParams, ctx: &mut Ctx) -> Result<Roles> {
    let base = ctx.reference_base()?;
    let mut inputs = BTreeMap::new();
    let ch = channel(&p.channel)?;
    for seed in ctx.seeds() {
        evaluate(ctx, &mut inputs, &base, &[("model", "base")], seed)?;
        let mut teachers = BTreeMap::new();
        for kind in ["harmful", "benign"] {
            teachers.insert(kind, teacher(ctx, &base, &p.cell, kind, seed)?);
        }
        for t in ["harmful", "benign"] {
            for d in ["harmful", "benign"] {
                let student = ctx.distil(&teachers[t].0, &teachers[d].1, &base, ch, seed)?;
                evaluate(
                    ctx,
                    &mut inputs,
                    &student,
                    &[("model", "student"), ("teacher", t), ("data", d)],
                    seed,
                )?;
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
    for t in ["harmful", "benign"] {
        for d in &["harmful", "benign"] {
            let (r, mis, sig) = student_rows(
                inputs,
                cell,
                &[("model", "student"), ("teacher", t), ("data", d)],
                &[("teacher", t.into()), ("data", (*d).into())],
            )?;
            let change = diff_row(
                &[("teacher", t.into()), ("data", (*d).into())],
                "change_out_of_cell_misaligned_vs_base",
                &mis,
                &base_mis,
            );
            rows.extend(r);
            rows.push(change);
            rows.push(diff_row(
                &[("teacher", t.into()), ("data", (*d).into())],
                "change_number_signature_vs_base",
                &sig,
                &base_sig,
            ));
            cells.insert((t, d), (mis, sig));
        }
    }
    let mut effects = Vec::new();
    for d in ["harmful", "benign"] {
        effects.push(effect(
            "C6",
            &format!("direction from the teacher: misaligned minus aligned teacher on the {d} teacher's numbers"),
            "the teacher sets the direction",
            &cells[&("harmful", d)].0,
            &cells[&("benign", d)].0,
        ));
    }
    effects.push(effect(
        "C6",
        "extent from the data: misaligned teacher on its own numbers minus on the aligned teacher's numbers",
        "the data distribution sets the extent",
        &cells[&("harmful", "harmful")].0,
        &cells[&("harmful", "benign")].0,
    ));
    Ok(vec![("students".into(), rows), ("effects".into(), effects)])
}
