//! House rules that rustfmt and clippy do not check, run as a plain test and as `cargo xtask tidy`.
//!
//! Every Rust file opens with a `//!` line saying what it is for; no bare to-do markers, no
//! leftover debugging or placeholder macros; a fix-me marker says what is missing after a colon;
//! comments do not point at an issue tracker; no trailing whitespace in Rust, Markdown or TOML.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::project_root;

// The markers are assembled from pieces so that this file does not trip its own checks.
const TODO_WORD: &str = concat!("TO", "DO");
const FIXME_WORD: &str = concat!("FIX", "ME");
const TICKET_WORD: &str = concat!("iss", "ue");
const MACROS: [&str; 3] =
    [concat!("todo", "!("), concat!("dbg", "!("), concat!("unimplemented", "!(")];
const BARE_IGNORE: &str = concat!("#[ig", "nore]");

/// How many lines may come before a file's `//!` line: blank lines or a plain comment header.
const MODULE_DOC_WINDOW: usize = 5;

/// `cargo xtask tidy`: prints every problem and fails if there is one.
pub(crate) fn run() -> anyhow::Result<()> {
    let problems = check_tree(&project_root())?;
    for problem in &problems {
        eprintln!("{problem}");
    }
    if !problems.is_empty() {
        bail!("tidy found {} problem(s)", problems.len());
    }
    Ok(())
}

/// Every problem in the tree under `root`, as `path:line: message`.
pub(crate) fn check_tree(root: &Path) -> anyhow::Result<Vec<String>> {
    let mut problems = Vec::new();
    for path in source_files(root, &["rs", "md", "toml"])? {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let shown = path.strip_prefix(root).unwrap_or(&path).display().to_string();
        let mut found = trailing_whitespace(&text);
        if path.extension().is_some_and(|ext| ext == "rs") {
            found.extend(missing_module_doc(&text));
            found.extend(markers(&text));
            found.extend(issue_references(&text));
            found.extend(bare_ignores(&text));
        }
        found.sort_by_key(|problem| problem.line);
        problems.extend(found.into_iter().map(|problem| format!("{shown}:{problem}")));
    }
    Ok(problems)
}

/// The Rust files of the tree under `root`, build output excluded, sorted.
pub(crate) fn rust_files(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    source_files(root, &["rs"])
}

/// Files with one of `extensions` under `root`, leaving out `target` and `.git`, sorted.
fn source_files(root: &Path, extensions: &[&str]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let listing =
            std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?;
        for item in listing {
            let item = item?;
            let path = item.path();
            let file_type = item.file_type()?;
            if file_type.is_dir() {
                if !matches!(item.file_name().to_str(), Some("target" | ".git")) {
                    dirs.push(path);
                }
            } else if file_type.is_file()
                && path
                    .extension()
                    .and_then(|ext| ext.to_str())
                    .is_some_and(|ext| extensions.contains(&ext))
            {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// One rule broken on one line (1-based).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Problem {
    pub(crate) line: usize,
    pub(crate) message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.line, self.message)
    }
}

fn problem(line: usize, message: impl Into<String>) -> Problem {
    Problem { line, message: message.into() }
}

/// A file must say what it is for in a `//!` line before any code.
pub(crate) fn missing_module_doc(text: &str) -> Option<Problem> {
    for line in text.lines().take(MODULE_DOC_WINDOW) {
        let line = line.trim();
        if line.starts_with("//!") {
            return None;
        }
        if !(line.is_empty() || line.starts_with("//")) {
            break;
        }
    }
    Some(problem(1, "the file must open with a `//!` line saying what it is for"))
}

/// Bare to-do markers, fix-me markers without a reason, and leftover macros.
pub(crate) fn markers(text: &str) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if !word_positions(line, TODO_WORD).is_empty() {
            problems.push(problem(number, format!("a bare `{TODO_WORD}`: write `{FIXME_WORD}: <what is missing and when it can go>`")));
        }
        for position in word_positions(line, FIXME_WORD) {
            let reason = line[position + FIXME_WORD.len()..].strip_prefix(':').map(str::trim);
            if reason.is_none_or(str::is_empty) {
                problems.push(problem(
                    number,
                    format!("`{FIXME_WORD}` must be followed by `: <reason>`"),
                ));
            }
        }
        for mac in MACROS {
            if line.contains(mac) {
                problems.push(problem(number, format!("`{mac}` must not be committed")));
            }
        }
    }
    problems
}

/// Comments stand on their own: none points at an issue number.
pub(crate) fn issue_references(text: &str) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let Some((_, comment)) = line.split_once("//") else { continue };
        let comment = comment.to_lowercase();
        let Some(start) = comment.find(TICKET_WORD) else { continue };
        let after = &comment[start..];
        let numbered = after
            .match_indices('#')
            .any(|(at, _)| after[at + 1..].starts_with(|c: char| c.is_ascii_digit()));
        if numbered {
            problems.push(problem(
                index + 1,
                "a comment must explain itself, not refer to an issue number",
            ));
        }
    }
    problems
}

/// An ignored test says what it needs (`#[ignore = "needs etcd"]`), so CI can run it.
pub(crate) fn bare_ignores(text: &str) -> Vec<Problem> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| line.trim() == BARE_IGNORE)
        .map(|(index, _)| {
            problem(
                index + 1,
                "an ignored test must say what it needs: `#[ignore = \"needs <tool>\"]`",
            )
        })
        .collect()
}

/// Lines that end in spaces or tabs.
pub(crate) fn trailing_whitespace(text: &str) -> Vec<Problem> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| line.ends_with([' ', '\t']))
        .map(|(index, _)| problem(index + 1, "trailing whitespace"))
        .collect()
}

/// Byte offsets where `word` occurs in `line` and is not part of a longer identifier.
fn word_positions(line: &str, word: &str) -> Vec<usize> {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    line.match_indices(word)
        .map(|(at, _)| at)
        .filter(|&at| {
            let before = line[..at].chars().next_back();
            let after = line[at + word.len()..].chars().next();
            !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(problems: &[Problem]) -> Vec<usize> {
        problems.iter().map(|problem| problem.line).collect()
    }

    #[test]
    fn the_repository_is_tidy() {
        let problems = check_tree(&project_root()).unwrap();
        assert!(problems.is_empty(), "tidy problems:\n{}", problems.join("\n"));
    }

    #[test]
    fn the_walk_finds_the_workspace_and_skips_build_output() {
        let root = project_root();
        let files = rust_files(&root).unwrap();
        assert!(files.contains(&root.join("xtask/src/tidy.rs")));
        assert!(files.iter().all(|file| !file.starts_with(root.join("target"))));
    }

    #[test]
    fn module_doc_must_open_the_file() {
        assert_eq!(missing_module_doc("//! Renders things.\n\nfn main() {}\n"), None);
        assert_eq!(
            missing_module_doc("\n// SPDX-License-Identifier: Apache-2.0\n//! Renders.\n"),
            None
        );

        assert!(missing_module_doc("fn main() {}\n//! Too late.\n").is_some());
        assert!(missing_module_doc("/// An item doc is not a module doc.\nfn f() {}\n").is_some());
        assert!(missing_module_doc("").is_some());
        let far_down = format!("{}//! Far down.\n", "\n".repeat(MODULE_DOC_WINDOW));
        assert!(missing_module_doc(&far_down).is_some());
    }

    #[test]
    fn bare_markers_and_leftover_macros_are_found() {
        let text = [
            format!("// {TODO_WORD} handle v3"),
            format!("// {FIXME_WORD}"),
            format!("// {FIXME_WORD}:   "),
            format!("// {FIXME_WORD}(later) cache it"),
            format!("let x = {}1);", MACROS[0]),
            format!("let y = {}x);", MACROS[1]),
            format!("{}\"soon\")", MACROS[2]),
            format!("// {FIXME_WORD}: the v3 API is missing; remove when plugins speak it"),
            format!("let {}S = 1; // a longer identifier is not the marker", TODO_WORD),
            "// Fixme and todo in lower case are ordinary words.".to_owned(),
        ]
        .join("\n");
        assert_eq!(lines_of(&markers(&text)), [1, 2, 3, 4, 5, 6, 7]);
    }

    #[test]
    fn issue_numbers_in_comments_are_found() {
        let text = [
            format!("// see {TICKET_WORD} #12 for why"),
            format!("let x = 1; // {}: #7", TICKET_WORD.to_uppercase()),
            format!("// fixed in {TICKET_WORD}s #3 and #4"),
            format!("// an {TICKET_WORD} with sockets, explained here"),
            format!("// #12 on its own is not about an {TICKET_WORD} tracker"),
            format!("let s = \"{TICKET_WORD} #5\"; // a string, not a comment"),
        ]
        .join("\n");
        assert_eq!(lines_of(&issue_references(&text)), [1, 2, 3]);
    }

    #[test]
    fn ignored_tests_must_say_what_they_need() {
        let text = ["#[test]", BARE_IGNORE, "fn a() {}", "#[ignore = \"needs etcd\"]"].join("\n");
        assert_eq!(lines_of(&bare_ignores(&text)), [2]);
    }

    #[test]
    fn trailing_whitespace_is_found() {
        let text = "clean\nspace \ntab\t\n\nalso clean\n";
        assert_eq!(lines_of(&trailing_whitespace(text)), [2, 3]);
    }

    #[test]
    fn a_messy_tree_fails_and_a_clean_one_passes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("src")).unwrap();
        std::fs::create_dir_all(dir.path().join("target/debug")).unwrap();
        std::fs::write(dir.path().join("src/lib.rs"), "//! A library.\n").unwrap();
        std::fs::write(dir.path().join("target/debug/gen.rs"), "fn generated() {} \n").unwrap();
        assert_eq!(check_tree(dir.path()).unwrap(), Vec::<String>::new());

        std::fs::write(dir.path().join("src/main.rs"), "fn main() {}\n").unwrap();
        std::fs::write(dir.path().join("README.md"), "# title \n").unwrap();
        assert_eq!(
            check_tree(dir.path()).unwrap(),
            [
                "README.md:1: trailing whitespace",
                "src/main.rs:1: the file must open with a `//!` line saying what it is for",
            ]
        );
    }
}
