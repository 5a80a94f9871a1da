//! Operating muster every day: shell completions, the man page, pm2-style `logs`, the systemd
//! unit of `startup`, sd_notify, socket activation, watch and cron restarts, metrics, monit.
//! Real tools where the behaviour is theirs to judge (bash, groff, systemd-socket-activate,
//! promtool, tmux); every wait has a deadline and every process is cleaned up by its guard.

// Shared with tests/daemon.rs, which uses all of it; this file only part.
#[path = "support/daemon.rs"]
#[allow(dead_code)]
mod harness;

use harness::Home;
use std::process::Command;

fn stdout_of(home: &Home, args: &[&str]) -> String {
    let out = home.ok(args);
    out.stdout
}

#[test]
fn completions_name_every_command_for_each_shell() {
    let home = Home::new("compl");
    for shell in ["bash", "zsh", "fish"] {
        let text = stdout_of(&home, &["completions", shell]);
        for cmd in ["start", "reload", "logs", "run", "completions", "man"] {
            assert!(
                text.contains(cmd),
                "{shell} completions lack `{cmd}`:\n{text}"
            );
        }
    }
    // bash itself accepts the script and registers it for `muster`.
    let script = home.path("muster.bash");
    std::fs::write(&script, stdout_of(&home, &["completions", "bash"])).unwrap();
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source '{}' && complete -p muster",
            script.display()
        ))
        .output()
        .expect("running bash");
    assert!(
        out.status.success(),
        "bash rejected the completions: {out:?}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("muster"));
    let bad = home.run(&["completions", "tcsh"]);
    assert_eq!(bad.code, Some(2), "a usage error: {bad}");
    assert!(bad.stderr.contains("tcsh"), "{bad}");
}

/// Renders roff with groff, as `man` would (`-k`: UTF-8 input through preconv); a page with
/// roff errors produces warnings.
fn render_man(page: &std::path::Path) -> String {
    let out = Command::new("groff")
        .args(["-k", "-man", "-Tutf8", "-ww", "-z"])
        .arg(page)
        .output()
        .expect("groff is needed to render the man page (.ci/run installs groff-base)");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "groff warns about {}: {}",
        page.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new("groff")
        // Plain text: no overstrike for bold and underline.
        .args(["-k", "-man", "-Tutf8", "-P-cbou"])
        .arg(page)
        .output()
        .expect("groff");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn man_page_renders_and_lists_the_commands() {
    let home = Home::new("man");
    let page = home.path("muster.1");
    std::fs::write(&page, stdout_of(&home, &["man"])).unwrap();
    let text = render_man(&page);
    assert!(text.contains("SYNOPSIS"), "{text}");
    for cmd in ["muster-start", "muster-logs", "muster-completions"] {
        assert!(text.contains(cmd), "man page lacks {cmd}:\n{text}");
    }
    let dir = home.path("man1");
    home.ok(&["man", "--dir", dir.to_str().unwrap()]);
    let logs = render_man(&dir.join("muster-logs.1"));
    assert!(logs.contains("--lines"), "{logs}");
    assert!(!dir.join("muster-supervise.1").exists());
}
