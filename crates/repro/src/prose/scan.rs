//! The prose the check reads and the numbers in it: the checked sections of the docs pages
//! (`SECTIONS`) and every markdown cell of the notebooks, with whitespace collapsed (so an entry's text
//! matches across line breaks) and each byte mapped back to its line in the file, for messages a
//! reader can jump to.

use std::path::Path;

use anyhow::{bail, Context, Result};

/// A part of a page whose numbers are checked: from the line `start` (a heading, matched whole) to
/// the first line after it that starts with `end`, or to the end of the file.
pub struct Section {
    /// The page, relative to the project root, as entries name it (`docs/results.md`).
    pub file: &'static str,
    pub start: &'static str,
    pub end: Option<&'static str>,
}

/// The checked sections: every number in them is checked against a table or listed as a fact.
pub const SECTIONS: &[Section] = &[
    Section {
        file: "docs/results.md",
        start: "# Results (`quick` profile)",
        end: None,
    },
    Section {
        file: "docs/performance.md",
        start: "# Performance",
        end: None,
    },
];

/// One scanned file: its prose with every whitespace run as one space, and each byte's line.
pub struct Doc {
    /// The path as entries name it (`docs/results.md`, `notebooks/transfer.ipynb`).
    pub file: String,
    pub text: String,
    line_of: Vec<usize>,
}

impl Doc {
    /// Builds a document from `(line number, line)` pairs.
    pub fn new(file: &str, lines: &[(usize, String)]) -> Doc {
        let (mut text, mut line_of) = (String::new(), Vec::new());
        for (no, line) in lines {
            for c in line.chars().chain(std::iter::once('\n')) {
                let c = if c.is_whitespace() { ' ' } else { c };
                if c == ' ' && (text.is_empty() || text.ends_with(' ')) {
                    continue;
                }
                text.push(c);
                line_of.extend(std::iter::repeat_n(*no, c.len_utf8()));
            }
        }
        Doc {
            file: file.to_owned(),
            text,
            line_of,
        }
    }

    pub fn line(&self, byte: usize) -> usize {
        self.line_of.get(byte).copied().unwrap_or(0)
    }
}

/// `text` with every whitespace run as one space, trimmed: how an entry's text is matched.
pub fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// One checked section of a page, numbered by its lines in the page's file.
pub fn section(root: &Path, s: &Section) -> Result<Doc> {
    let (file, start_line) = (s.file, s.start);
    let path = root.join(file);
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path:?}"))?;
    let all: Vec<(usize, String)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.to_owned()))
        .collect();
    let Some(start) = all.iter().position(|(_, l)| l.trim() == start_line) else {
        bail!("{file} has no line '{start_line}': the check would read nothing");
    };
    let len = match s.end {
        None => all.len() - start,
        Some(end) => {
            let Some(len) = all[start..].iter().position(|(_, l)| l.starts_with(end)) else {
                bail!("{file} has no '{end}' after '{start_line}'");
            };
            len
        }
    };
    Ok(Doc::new(file, &all[start..start + len]))
}

/// The markdown cells of one notebook, each source line numbered by its line in the `.ipynb` file
/// (found by searching the JSON text forward for the line as JSON encodes it).
pub fn notebook(root: &Path, file: &str) -> Result<Doc> {
    let path = root.join(file);
    let raw = std::fs::read_to_string(&path).with_context(|| format!("reading {path:?}"))?;
    let nb: serde_json::Value =
        serde_json::from_str(&raw).with_context(|| format!("parsing {path:?}"))?;
    let (mut lines, mut cursor) = (Vec::new(), 0);
    for cell in nb["cells"].as_array().into_iter().flatten() {
        let source: Vec<String> = match &cell["source"] {
            serde_json::Value::String(s) => s.split_inclusive('\n').map(str::to_owned).collect(),
            v => v
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|l| l.as_str().map(str::to_owned))
                .collect(),
        };
        for line in source {
            let encoded = serde_json::to_string(&line)?;
            if let Some(at) = raw[cursor..].find(&encoded) {
                cursor += at + encoded.len();
            }
            if cell["cell_type"] == "markdown" {
                lines.push((raw[..cursor].matches('\n').count() + 1, line));
            }
        }
        // Cells apart: a phrase never runs from one cell into the next.
        lines.push((raw[..cursor].matches('\n').count() + 1, String::new()));
    }
    Ok(Doc::new(file, &lines))
}

/// A number as printed: its byte span in the scanned text, its text (sign, digits, `%`) and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Num {
    pub start: usize,
    pub end: usize,
    pub shown: String,
    pub value: f64,
    /// Digits after the decimal point: the precision the table value is rounded to.
    pub decimals: usize,
}

fn word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Every number of `text` outside inline code spans: signed (`+11.4`, `-1.1`, `+-4`), with thousands
/// separators (`5,000`), decimals, exponents (`1e-4`) and a trailing `%`. Digits glued to a word
/// are identifiers, not numbers (`C1`, `r2`, `log10`, `AVX-512`, `2nd`); `28-30` is two numbers.
pub fn numbers(text: &str) -> Vec<Num> {
    let b = text.as_bytes();
    let at = |k: usize| b.get(k).copied().unwrap_or(b' ');
    let digit = |k: usize| at(k).is_ascii_digit();
    let (mut out, mut i, mut code) = (Vec::new(), 0, false);
    while i < b.len() {
        if b[i] == b'`' {
            code = !code;
        }
        if code || !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let prev = |k: usize| if k == 0 { b' ' } else { b[k - 1] };
        let glued_before = word(prev(i))
            || (matches!(prev(i), b'-' | b'/' | b'.') && i >= 2 && b[i - 2].is_ascii_alphabetic());
        let mut start = i;
        if matches!(prev(i), b'+' | b'-') && !prev(i - 1).is_ascii_alphanumeric() {
            start -= 1;
            if b[start] == b'-' && prev(start) == b'+' && !prev(start - 1).is_ascii_alphanumeric() {
                start -= 1;
            }
        }
        let mut j = i;
        loop {
            while digit(j) {
                j += 1;
            }
            // A thousands separator is a comma before exactly three digits.
            if at(j) == b',' && (1..=3).all(|k| digit(j + k)) && !digit(j + 4) {
                j += 1;
            } else {
                break;
            }
        }
        if at(j) == b'.' && digit(j + 1) {
            j += 1;
            while digit(j) {
                j += 1;
            }
        }
        let decimals = text[i..j].split('.').nth(1).map_or(0, str::len);
        if matches!(at(j), b'e' | b'E')
            && (digit(j + 1) || (matches!(at(j + 1), b'+' | b'-') && digit(j + 2)))
        {
            j += 2;
            while digit(j) {
                j += 1;
            }
        }
        if glued_before || word(at(j)) {
            while word(at(j)) || (matches!(at(j), b'-' | b'.' | b'/') && word(at(j + 1))) {
                j += 1;
            }
            i = j;
            continue;
        }
        let digits: String = text[i..j].chars().filter(|c| *c != ',').collect();
        let magnitude: f64 = digits
            .parse()
            .expect("digits, a point and an exponent parse");
        let negative = &text[start..i] == "-";
        let end = if at(j) == b'%' { j + 1 } else { j };
        out.push(Num {
            start,
            end,
            shown: text[start..end].to_owned(),
            value: if negative { -magnitude } else { magnitude },
            decimals,
        });
        i = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(text: &str) -> Vec<String> {
        numbers(text).into_iter().map(|n| n.shown).collect()
    }

    #[test]
    fn numbers_are_found_as_printed_and_identifiers_are_not_numbers() {
        assert_eq!(
            shown("C1 +25.8 pp [22.5, 29.1] (+22.5 -1.1) 28-30% at 0.2, r2 0.99"),
            ["+25.8", "22.5", "29.1", "+22.5", "-1.1", "28", "30%", "0.2", "0.99"]
        );
        assert_eq!(
            shown("5,000 steps, lr 1e-4, AVX-512, log10, `examples = 0`, +-4 points, 0.5, 2"),
            ["5,000", "1e-4", "+-4", "0.5", "2"]
        );
        let n = &numbers("fell 6,000 then -3.25%")[..];
        assert_eq!((n[0].value, n[0].decimals), (6000.0, 0));
        assert_eq!((n[1].value, n[1].decimals), (-3.25, 2));
    }

    #[test]
    fn a_document_maps_its_collapsed_text_to_lines() {
        let d = Doc::new("f", &[(7, "a  b".into()), (8, "  12.5 c".into())]);
        assert_eq!(d.text, "a b 12.5 c ");
        let n = &numbers(&d.text)[0];
        assert_eq!((n.shown.as_str(), d.line(n.start)), ("12.5", 8));
    }
}
