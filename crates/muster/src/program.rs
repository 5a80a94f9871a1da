//! What program an app's workers run — Node or not — decided from the files, never by running
//! them.
//!
//! Whether the workers are Node decides two things: the default schedule (Node speaks the
//! cluster protocol and gets `rr`; anything else gets `shared`, i.e. `LISTEN_FDS`) and whether
//! the keep-alive drain preload is added. A file name alone is not enough: installs name the
//! binary `node22`, `nodejs`, or reach it through a symlink (`/usr/bin/node` →
//! `/etc/alternatives/…`) or a shebang (`#!/usr/bin/env node`). So the interpreter's path is
//! looked up in `PATH`, resolved through symlinks, and a script's first line is read. The app's
//! own script is only read, never executed, and nothing is executed to find out.

use std::io::Read;
use std::path::{Path, PathBuf};

use muster_proto::{AppSpec, Interpreter};

/// How many shebang or symlink hops are followed before giving up (a loop, or a silly chain).
const MAX_HOPS: usize = 4;
/// The longest first line read for a shebang (Linux itself reads 256 bytes).
const SHEBANG_MAX: usize = 256;

/// Whether `spec`'s workers run Node.
pub fn runs_node(spec: &AppSpec) -> bool {
    let cwd = spec
        .cwd
        .clone()
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_default();
    let path = spec
        .env
        .get("PATH")
        .or(spec.inherited_env.get("PATH"))
        .cloned()
        .or_else(|| std::env::var("PATH").ok())
        .unwrap_or_default();
    let finder = Finder {
        cwd: &cwd,
        path: &path,
    };
    match spec.resolved_interpreter() {
        Interpreter::Program(p) => finder.is_node(Path::new(&p), MAX_HOPS),
        // A script run directly is Node when its shebang names Node (or it is Node itself).
        Interpreter::Direct => finder.is_node(&spec.script, MAX_HOPS),
    }
}

/// Whether a file name is one Node installs use: `node`, `nodejs`, `node22`, `node-20`,
/// `nodejs18`, `node20.11.1`.
pub fn is_node_name(name: &str) -> bool {
    let rest = name
        .strip_prefix("nodejs")
        .or_else(|| name.strip_prefix("node"));
    rest.is_some_and(|r| {
        r.chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == '-')
            && !r.starts_with('.')
    })
}

/// Where programs are looked up: the app's directory for relative paths, its `PATH` for bare
/// names.
struct Finder<'a> {
    cwd: &'a Path,
    path: &'a str,
}

impl Finder<'_> {
    /// Whether `program` (a bare name, a relative or absolute path) is Node; `hops` bounds the
    /// shebangs followed.
    fn is_node(&self, program: &Path, hops: usize) -> bool {
        if program
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(is_node_name)
        {
            return true;
        }
        let Some(found) = self.locate(program) else {
            return false;
        };
        // A symlink's target names what really runs (`/usr/bin/nodejs` → `…/node`).
        if let Ok(real) = std::fs::canonicalize(&found)
            && real
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(is_node_name)
        {
            return true;
        }
        if hops == 0 {
            return false;
        }
        match shebang(&found) {
            Some((interpreter, first_arg)) => {
                // `#!/usr/bin/env node` and `#!/usr/bin/env -S node --flag`: the program is
                // the first word after env's own options.
                if interpreter.file_name().is_some_and(|n| n == "env") {
                    first_arg.is_some_and(|a| self.is_node(Path::new(&a), hops - 1))
                } else {
                    self.is_node(&interpreter, hops - 1)
                }
            }
            None => false,
        }
    }

    /// The file `program` names: a path relative to the app's directory, or a bare name found
    /// in `PATH` as `Spawn` would find it.
    fn locate(&self, program: &Path) -> Option<PathBuf> {
        if program.is_absolute() || program.components().count() > 1 {
            let p = self.cwd.join(program);
            return p.is_file().then_some(p);
        }
        if let Some(p) = Some(self.cwd.join(program)).filter(|p| p.is_file())
            && program.extension().is_some()
        {
            // A script named in the app's directory (`app.js`); a bare program name is not
            // looked for there, as the shell does not.
            return Some(p);
        }
        // The one PATH rule (muster-ipc's, as `Spawn` runs it): the app's PATH and the
        // execute bit.
        muster_ipc::resolve_program(program.as_os_str(), Some(std::ffi::OsStr::new(self.path))).ok()
    }
}

/// The interpreter of a `#!` script and, for `env`, the program it runs (after `-S` and other
/// options); `None` if the file is no script.
fn shebang(file: &Path) -> Option<(PathBuf, Option<String>)> {
    let mut head = [0u8; SHEBANG_MAX];
    let mut f = std::fs::File::open(file).ok()?;
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(_) => return None,
        }
    }
    let line = head[..n].strip_prefix(b"#!")?;
    let line = &line[..line.iter().position(|&b| b == b'\n').unwrap_or(line.len())];
    let line = std::str::from_utf8(line).ok()?;
    let mut words = line.split_whitespace();
    let interpreter = PathBuf::from(words.next()?);
    let program = words.find(|w| !w.starts_with('-')).map(str::to_owned);
    Some((interpreter, program))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("muster-program-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn executable(path: &Path, text: &str) {
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn spec_in(dir: &Path, script: &str, interpreter: Option<&str>) -> AppSpec {
        let mut spec = AppSpec::new("t", dir.join(script));
        spec.cwd = Some(dir.to_owned());
        spec.interpreter = interpreter.map(str::to_owned);
        spec.env.insert("PATH".into(), dir.display().to_string());
        spec
    }

    #[test]
    fn node_names() {
        for yes in [
            "node",
            "nodejs",
            "node22",
            "node-20",
            "nodejs18",
            "node20.11.1",
        ] {
            assert!(is_node_name(yes), "{yes}");
        }
        for no in [
            "nodemon", "node.sh", "python3", "bun", "deno", "xnode", "node_x",
        ] {
            assert!(!is_node_name(no), "{no}");
        }
    }

    #[test]
    fn symlinks_are_followed() {
        let dir = scratch("symlink");
        executable(&dir.join("node"), "\x7fELF not really");
        std::os::unix::fs::symlink(dir.join("node"), dir.join("js-runtime")).unwrap();
        executable(&dir.join("app.js"), "");
        let spec = spec_in(
            &dir,
            "app.js",
            Some(dir.join("js-runtime").to_str().unwrap()),
        );
        assert!(runs_node(&spec), "a symlink to a file named node");
        let spec = spec_in(&dir, "app.js", Some("js-runtime"));
        assert!(runs_node(&spec), "the same, found in PATH");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn shebangs_are_read_not_run() {
        let dir = scratch("shebang");
        // Were this script run, it would leave a file behind.
        let marker = dir.join("ran");
        executable(
            &dir.join("server"),
            &format!(
                "#!/usr/bin/env -S node --max-old-space-size=64\ntouch {}\n",
                marker.display()
            ),
        );
        executable(&dir.join("py-server"), "#!/usr/bin/env python3\n");
        executable(&dir.join("wrapper"), "#!/bin/sh\nexec node \"$@\"\n");
        executable(&dir.join("abs"), "#!/opt/node22/bin/node22\n");
        assert!(runs_node(&spec_in(&dir, "server", None)));
        assert!(runs_node(&spec_in(&dir, "abs", None)));
        assert!(!runs_node(&spec_in(&dir, "py-server", None)));
        assert!(
            !runs_node(&spec_in(&dir, "wrapper", None)),
            "only the shebang counts"
        );
        assert!(!marker.exists(), "the script was executed");
        // A shebang loop ends.
        executable(&dir.join("a"), &format!("#!{}\n", dir.join("b").display()));
        executable(&dir.join("b"), &format!("#!{}\n", dir.join("a").display()));
        assert!(!runs_node(&spec_in(&dir, "a", None)));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn interpreters_by_name_and_binaries() {
        let dir = scratch("names");
        executable(&dir.join("server"), "\x7fELF");
        executable(&dir.join("app.js"), "");
        assert!(!runs_node(&spec_in(&dir, "server", None)));
        assert!(
            runs_node(&spec_in(&dir, "app.js", None)),
            "node by extension"
        );
        assert!(runs_node(&spec_in(
            &dir,
            "app.js",
            Some("/opt/node22/bin/node22")
        )));
        assert!(!runs_node(&spec_in(&dir, "app.js", Some("bun"))));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
