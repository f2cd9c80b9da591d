//! A Rust source file as what it computes: its token stream without comments, doc comments and
//! layout, so that rewording a comment or reflowing a line (what `cargo fmt` does) changes no job's
//! identity and reruns nothing, while any change to a token still does.
//!
//! What is dropped, and why each is safe:
//! - comments and whitespace: the lexer never hands them on;
//! - doc comments, which the lexer turns into `#[doc = "..."]` and `#![doc = "..."]` attributes (an
//!   attribute spelled that way by hand goes too: it only documents); `#[doc(hidden)]` and every other
//!   attribute stay;
//! - the commas rustfmt adds or removes without changing the program: a trailing comma before `}` or
//!   `]`, before `)` where the parentheses hold another comma at their own level (so `(a,)`, a tuple,
//!   stays apart from `(a)`), and the comma after a match arm's block (`=> { ... },`).
//!
//! What still moves an identity though it computes nothing: reordered `use` lines and `mod`
//! declarations (rustfmt reorders them only when they were out of order, and the lint keeps them in
//! order on every commit).

use std::fmt::Write;

use anyhow::{anyhow, Result};
use proc_macro2::{Delimiter, Spacing, TokenStream, TokenTree};

/// The normalised token text of a Rust source file; `what` names it in the error when the file does
/// not lex (unbalanced delimiters, an unterminated string).
pub fn normalised(text: &str, what: &str) -> Result<String> {
    let stream: TokenStream = text
        .parse()
        .map_err(|e| anyhow!("{what} is not Rust source the lexer reads: {e}"))?;
    let mut out = String::new();
    write_level(&stream.into_iter().collect::<Vec<_>>(), None, &mut out);
    Ok(out)
}

/// Writes one level of tokens (the contents of a group delimited by `delimiter`, or the file).
fn write_level(trees: &[TokenTree], delimiter: Option<Delimiter>, out: &mut String) {
    let trees = without_doc_attributes(trees);
    let commas = trees.iter().filter(|t| is_punct(t, ',')).count();
    for (i, tree) in trees.iter().enumerate() {
        if is_punct(tree, ',') && comma_is_layout(&trees, i, delimiter, commas) {
            continue;
        }
        match tree {
            TokenTree::Group(g) => {
                let (open, close) = match g.delimiter() {
                    Delimiter::Parenthesis => ("(", ")"),
                    Delimiter::Brace => ("{", "}"),
                    Delimiter::Bracket => ("[", "]"),
                    Delimiter::None => ("\u{1}", "\u{2}"),
                };
                out.push_str(open);
                out.push(' ');
                let inner: Vec<TokenTree> = g.stream().into_iter().collect();
                write_level(&inner, Some(g.delimiter()), out);
                out.push_str(close);
                out.push(' ');
            }
            TokenTree::Punct(p) => {
                out.push(p.as_char());
                // `<<` and `< <` are different programs: a joint punct is written without a space.
                if p.spacing() == Spacing::Alone {
                    out.push(' ');
                }
            }
            TokenTree::Ident(id) => {
                let _ = write!(out, "{id} ");
            }
            TokenTree::Literal(lit) => {
                let _ = write!(out, "{lit} ");
            }
        }
    }
}

/// Whether the comma at `i` is one rustfmt may add or remove without changing the program.
fn comma_is_layout(
    trees: &[&TokenTree],
    i: usize,
    delimiter: Option<Delimiter>,
    commas: usize,
) -> bool {
    let last = i + 1 == trees.len();
    let trailing = last
        && match delimiter {
            Some(Delimiter::Brace | Delimiter::Bracket) => true,
            Some(Delimiter::Parenthesis) => commas > 1,
            _ => false,
        };
    let after_arm_block = i >= 3
        && matches!(trees[i - 1], TokenTree::Group(g) if g.delimiter() == Delimiter::Brace)
        && is_punct(trees[i - 2], '>')
        && is_punct(trees[i - 3], '=');
    trailing || after_arm_block
}

/// The level's tokens without `#[doc ...= ...]` and `#![doc = ...]` attributes.
fn without_doc_attributes(trees: &[TokenTree]) -> Vec<&TokenTree> {
    let mut kept = Vec::with_capacity(trees.len());
    let mut i = 0;
    while i < trees.len() {
        if is_punct(&trees[i], '#') {
            let bang = trees.get(i + 1).is_some_and(|t| is_punct(t, '!'));
            let at = if bang { i + 2 } else { i + 1 };
            if trees.get(at).is_some_and(is_doc_value) {
                i = at + 1;
                continue;
            }
        }
        kept.push(&trees[i]);
        i += 1;
    }
    kept
}

/// `[doc = ...]`: the bracket group of a doc attribute with a value (not `doc(hidden)`).
fn is_doc_value(tree: &TokenTree) -> bool {
    let TokenTree::Group(g) = tree else {
        return false;
    };
    let mut inner = g.stream().into_iter();
    g.delimiter() == Delimiter::Bracket
        && matches!(inner.next(), Some(TokenTree::Ident(id)) if id == "doc")
        && inner.next().is_some_and(|t| is_punct(&t, '='))
}

fn is_punct(tree: &TokenTree, c: char) -> bool {
    matches!(tree, TokenTree::Punct(p) if p.as_char() == c)
}

#[cfg(test)]
mod tests {
    use super::normalised;

    fn same(a: &str, b: &str) -> bool {
        normalised(a, "a").unwrap() == normalised(b, "b").unwrap()
    }

    const BASE: &str = r#"//! The module.
/// Adds.
pub fn add(a: f32, b: f32) -> f32 {
    // why
    a + b /* inline */
}
"#;

    #[test]
    fn comments_docs_and_layout_are_not_code() {
        let reworded = "//! Another module doc.\n\n/// Adds two numbers,\n/// in f32.\npub fn add(a: f32, b: f32) -> f32 { a + b } // done\n";
        assert!(same(BASE, reworded));
        assert!(same("#[doc = \"x\"] fn f() {}", "/** y */ fn f() {}"));
        assert!(same("#![doc = \"x\"] fn f() {}", "fn f() {}"));
    }

    #[test]
    fn every_token_change_is_code() {
        assert!(!same(BASE, &BASE.replace("a + b", "a - b")));
        assert!(!same(BASE, &BASE.replace("f32 {", "f64 {")));
        assert!(!same("fn f() { 1.0 }", "fn f() { 1.00 }"));
        assert!(!same("fn f() { \"a b\" }", "fn f() { \"a  b\" }"));
        assert!(!same("#[doc(hidden)] fn f() {}", "fn f() {}"));
        assert!(!same("#[inline] fn f() {}", "fn f() {}"));
        // Joint and separate puncts: a shift is not two comparisons.
        assert!(!same("fn f() { a << b }", "fn f() { a < < b }"));
    }

    #[test]
    fn the_commas_rustfmt_moves_are_not_code() {
        assert!(same(
            "fn f() { g(a, b) }",
            "fn f() {\n    g(\n        a,\n        b,\n    )\n}"
        ));
        assert!(same(
            "const A: [u8; 2] = [1, 2];",
            "const A: [u8; 2] = [1, 2,];"
        ));
        assert!(same("S { a: 1 }", "S { a: 1, }"));
        assert!(same(
            "match x { 1 => { a() } 2 => b, }",
            "match x { 1 => { a() }, 2 => b }"
        ));
        // A one-element tuple is not a parenthesised expression.
        assert!(!same("let t = (a,);", "let t = (a);"));
        assert!(!same("g(a, b)", "g(a b)"));
    }

    #[test]
    fn a_file_that_does_not_lex_is_named() {
        let err = normalised("fn f() { ", "crates/core/src/x.rs").unwrap_err();
        assert!(err.to_string().contains("crates/core/src/x.rs"), "{err}");
    }
}
