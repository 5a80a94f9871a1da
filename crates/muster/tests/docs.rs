//! docs/commands.md against the binary: every flag the page gives a command exists in that
//! command's `--help`, and every command it has a section for exists. Drift between the two
//! is what users meet first (a flag from the docs that the binary refuses).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

fn commands_md() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/commands.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// `muster CMD --help`.
fn help(cmd: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_muster"))
        .args([cmd, "--help"])
        .env(
            "MUSTER_HOME",
            std::env::temp_dir().join("muster-docs-test-home"),
        )
        .output()
        .expect("running muster");
    assert!(
        out.status.success(),
        "`muster {cmd} --help` failed: {out:?}"
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The long flags (`--name`) in `text`, outside of what follows ` -- ` (a program's own).
fn long_flags(text: &str) -> Vec<String> {
    let text = text.split(" -- ").next().unwrap_or(text);
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(at) = text[i..].find("--") {
        let start = i + at;
        let mut end = start + 2;
        while end < bytes.len() && (bytes[end].is_ascii_lowercase() || bytes[end] == b'-') {
            end += 1;
        }
        // `--` alone, or `---` of a table rule, is no flag; a flag is preceded by a space,
        // a backtick, `[` or `|`.
        let before = start.checked_sub(1).map(|b| bytes[b]);
        let is_flag = end > start + 2
            && bytes[start + 2].is_ascii_lowercase()
            && matches!(before, None | Some(b' ' | b'`' | b'[' | b'|' | b'('));
        if is_flag {
            out.push(text[start..end].trim_end_matches('-').to_owned());
        }
        i = end.max(start + 2);
    }
    out
}

/// Each `### \`muster CMD\`` section of commands.md: its flags, from the synopsis block and
/// the flag tables (rows whose first cell is a flag).
fn documented_flags() -> BTreeMap<String, Vec<String>> {
    let mut sections: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut in_block = false;
    for line in commands_md().lines() {
        if let Some(title) = line.strip_prefix("### `muster ") {
            current = title.strip_suffix('`').map(str::to_owned);
            in_block = false;
            continue;
        }
        if line.starts_with("## ") {
            current = None;
            continue;
        }
        let Some(cmd) = &current else { continue };
        if line.starts_with("```") {
            in_block = !in_block;
            continue;
        }
        let flags = if in_block {
            // The synopsis: `muster CMD …` (not `$ muster …` examples, which may be other
            // commands' output).
            match line.strip_prefix(&format!("muster {cmd}")) {
                Some(rest) => long_flags(rest),
                None => continue,
            }
        } else if let Some(row) = line.strip_prefix("| `-") {
            let first = row.split(" |").next().unwrap_or("");
            long_flags(&format!("`-{first}"))
        } else {
            continue;
        };
        sections.entry(cmd.clone()).or_default().extend(flags);
    }
    sections
}

#[test]
fn every_flag_in_commands_md_is_in_the_commands_help() {
    let sections = documented_flags();
    for cmd in ["start", "send", "ping", "reload", "restart", "run", "logs"] {
        assert!(
            sections.contains_key(cmd),
            "no section for {cmd}: {sections:?}"
        );
    }
    // The reader found the tables (a page that lost them would pass vacuously).
    let start = &sections["start"];
    for flag in [
        "--name",
        "--instances",
        "--listen",
        "--stop-signal",
        "--update-env",
    ] {
        assert!(
            start.iter().any(|f| f == flag),
            "{flag} not read: {start:?}"
        );
    }
    assert!(sections["ping"].iter().any(|f| f == "--no-start"));
    assert!(sections["send"].iter().any(|f| f == "--worker"));
    let mut missing = Vec::new();
    for (cmd, flags) in &sections {
        let text = help(cmd);
        for flag in flags {
            let listed = text
                .split(|c: char| c.is_whitespace() || c == ',' || c == '=' || c == '[')
                .any(|w| w == flag);
            if !listed {
                missing.push(format!("muster {cmd} {flag}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/commands.md gives flags the binary does not have: {missing:#?}"
    );
}

#[test]
fn the_flag_reader_reads_what_the_page_writes() {
    assert_eq!(
        long_flags("`-i, --instances <N\\|max>` | Cluster mode"),
        ["--instances"]
    );
    assert_eq!(
        long_flags(" <TARGET|FILE> [--env <PROFILE>] [--update-env]"),
        ["--env", "--update-env"]
    );
    assert_eq!(long_flags(" app.js -- --port 80"), Vec::<String>::new());
    assert_eq!(long_flags("|---|---|"), Vec::<String>::new());
}
