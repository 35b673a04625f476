//! `cargo xtask`: the project's automation, one subcommand per file.

fn main() {}
