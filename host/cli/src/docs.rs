//! What the docs say that the code must keep true. docs/cli.md is rendered
//! from the clap definitions, so every command, flag, environment variable
//! and default has one source, the code: the test fails when the file is
//! stale, and `STRATBOX_UPDATE_DOCS=1 cargo test -p stratbox --bin
//! stratbox docs` rewrites it. The README's strategy snippet is real code.

use clap::{Arg, ArgAction, Command};
use std::fmt::Write;

const HEADER: &str = "\
# Command line reference

Generated from the code by `host/cli/src/docs.rs`; do not edit by hand.
Regenerate with `STRATBOX_UPDATE_DOCS=1 cargo test -p stratbox --bin stratbox docs`.
Every default shown here is read from the code that applies it.
";

pub fn render(root: &Command) -> String {
    let mut out = String::from(HEADER);
    render_command(&mut out, root, "stratbox");
    out
}

fn render_command(out: &mut String, command: &Command, path: &str) {
    if command.is_hide_set() {
        return;
    }
    let _ = write!(out, "\n## `{path}`\n\n");
    if let Some(about) = command.get_long_about().or(command.get_about()) {
        let _ = writeln!(out, "{}\n", about.to_string().trim());
    }
    let subcommands: Vec<&Command> = command
        .get_subcommands()
        .filter(|c| !c.is_hide_set() && c.get_name() != "help")
        .collect();
    if !subcommands.is_empty() {
        out.push_str("| command | what it does |\n| --- | --- |\n");
        for sub in &subcommands {
            let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
            let _ = writeln!(
                out,
                "| `{path} {}` | {} |",
                sub.get_name(),
                one_line(&about)
            );
        }
        out.push('\n');
    }
    let positionals: Vec<&Arg> = command
        .get_positionals()
        .filter(|a| !a.is_hide_set())
        .collect();
    let options: Vec<&Arg> = command
        .get_arguments()
        .filter(|a| !a.is_positional() && !a.is_hide_set())
        .filter(|a| !matches!(a.get_id().as_str(), "help" | "version"))
        .collect();
    if !positionals.is_empty() || !options.is_empty() {
        out.push_str("| argument | environment | default | what it sets |\n");
        out.push_str("| --- | --- | --- | --- |\n");
        for arg in positionals.iter().chain(options.iter()) {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                usage(arg),
                arg.get_env()
                    .map(|e| format!("`{}`", e.to_string_lossy()))
                    .unwrap_or_default(),
                defaults(arg),
                one_line(&arg.get_help().map(|h| h.to_string()).unwrap_or_default()),
            );
        }
    }
    for sub in subcommands {
        render_command(out, sub, &format!("{path} {}", sub.get_name()));
    }
}

fn usage(arg: &Arg) -> String {
    let value = arg
        .get_value_names()
        .and_then(|names| names.first())
        .map(|n| n.to_string())
        .unwrap_or_else(|| arg.get_id().as_str().to_uppercase());
    let takes_value = !matches!(
        arg.get_action(),
        ArgAction::SetTrue | ArgAction::SetFalse | ArgAction::Count
    );
    let mut text = match (arg.get_long(), arg.get_short()) {
        (Some(long), _) => format!("--{long}"),
        (None, Some(short)) => format!("-{short}"),
        (None, None) => return format!("`{value}`"),
    };
    if takes_value {
        let _ = write!(text, " {value}");
    }
    if let Some(short) = arg.get_short().filter(|_| arg.get_long().is_some()) {
        text = format!("-{short}, {text}");
    }
    let possible: Vec<String> = arg
        .get_possible_values()
        .iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| v.get_name().to_string())
        .collect();
    if takes_value && !possible.is_empty() && arg.get_action().takes_values() {
        let _ = write!(text, " ({})", possible.join(", "));
    }
    format!("`{}`", text.replace('|', "\\|"))
}

fn defaults(arg: &Arg) -> String {
    if matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse) {
        return String::new();
    }
    arg.get_default_values()
        .iter()
        .map(|v| format!("`{}`", v.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A table cell: one line, pipes escaped.
fn one_line(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn workspace_file(path: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(path)
    }

    #[test]
    fn docs_cli_md_is_current() {
        let path = workspace_file("docs/cli.md");
        let rendered = render(&crate::Cli::command());
        if std::env::var_os("STRATBOX_UPDATE_DOCS").is_some() {
            std::fs::write(&path, &rendered).unwrap();
            return;
        }
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            current == rendered,
            "docs/cli.md is stale: run `STRATBOX_UPDATE_DOCS=1 cargo test -p stratbox --bin stratbox docs`"
        );
    }

    #[test]
    fn defaults_come_from_the_configs() {
        let rendered = render(&crate::Cli::command());
        let queue = stratbox_queue::QueueConfig::default();
        let row = rendered
            .lines()
            .find(|l| l.starts_with("| `--max-attempts"))
            .unwrap();
        assert!(row.contains(&format!("`{}`", queue.max_attempts)), "{row}");
        let sandbox = stratbox_sandbox::SandboxConfig::default();
        let row = rendered
            .lines()
            .find(|l| l.starts_with("| `--fuel-per-bar"))
            .unwrap();
        assert!(
            row.contains(&format!("`{}`", sandbox.fuel_per_bar)),
            "{row}"
        );
    }

    /// Newcomers read the README first; manuals live in docs/.
    #[test]
    fn readme_fits_in_8_kib() {
        let size = std::fs::metadata(workspace_file("README.md"))
            .unwrap()
            .len();
        assert!(size <= 8192, "README.md is {size} bytes");
    }

    /// The README's first Rust block is copied from a plugin that builds
    /// and is tested, so it cannot drift into code that does not compile.
    #[test]
    fn readme_snippet_is_in_the_example_plugin() {
        let readme = std::fs::read_to_string(workspace_file("README.md")).unwrap();
        let start = readme.find("```rust\n").expect("a Rust block in README.md") + 8;
        let len = readme[start..].find("```").unwrap();
        let snippet = &readme[start..start + len];
        assert!(snippet.lines().count() >= 5, "{snippet}");
        let plugin =
            std::fs::read_to_string(workspace_file("plugins/ema-crossover/src/lib.rs")).unwrap();
        assert!(
            plugin.contains(snippet),
            "README.md's Rust block is not in plugins/ema-crossover/src/lib.rs:\n{snippet}"
        );
    }
}
