//! `muster startup` / `muster unstartup`: a systemd system unit that starts one user's daemon
//! at boot and resurrects the saved apps (pm2's `startup`, with its `-u USER --hp HOME`).
//! We write the file and say how to enable it; running `systemctl` is left to the admin.

use crate::systemd::unit::{self, UnitSpec};
use anyhow::Context;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

const SYSTEM_UNIT_DIR: &str = "/etc/systemd/system";

/// Arguments of `muster startup`.
#[derive(Debug, clap::Args)]
pub struct StartupArgs {
    /// The init system; only `systemd` is supported.
    #[arg(default_value = "systemd")]
    pub platform: String,
    /// The user the daemon runs as (default: the invoking user, or `$SUDO_USER` under sudo).
    #[arg(short = 'u', long = "user", value_name = "USER")]
    pub user: Option<String>,
    /// That user's home directory (default: from /etc/passwd).
    #[arg(long = "hp", value_name = "HOME")]
    pub home: Option<PathBuf>,
    /// Where to write the unit (default /etc/systemd/system).
    #[arg(long, value_name = "DIR", default_value = SYSTEM_UNIT_DIR)]
    pub unit_dir: PathBuf,
    /// Print the unit without writing it.
    #[arg(long)]
    pub dry_run: bool,
}

/// Arguments of `muster unstartup`.
#[derive(Debug, clap::Args)]
pub struct UnstartupArgs {
    /// The init system; only `systemd` is supported.
    #[arg(default_value = "systemd")]
    pub platform: String,
    /// The user whose unit to remove (default: as for `startup`).
    #[arg(short = 'u', long = "user", value_name = "USER")]
    pub user: Option<String>,
    /// Where the unit is (default /etc/systemd/system).
    #[arg(long, value_name = "DIR", default_value = SYSTEM_UNIT_DIR)]
    pub unit_dir: PathBuf,
}

fn check_platform(p: &str) -> anyhow::Result<()> {
    if p != "systemd" {
        anyhow::bail!("startup {p:?}: only systemd is supported");
    }
    Ok(())
}

/// The user named, or the one who ran us (through sudo too), as /etc/passwd has them.
fn account(user: Option<&str>) -> anyhow::Result<Option<unit::Account>> {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let sudo = std::env::var("SUDO_USER").ok().filter(|u| !u.is_empty());
    Ok(match user.or(sudo.as_deref()) {
        Some(name) => unit::find_account(&passwd, Some(name), None),
        None => unit::find_account(&passwd, None, Some(rustix::process::getuid().as_raw())),
    })
}

fn user_name(user: Option<&str>) -> anyhow::Result<String> {
    if let Some(u) = user {
        return Ok(u.to_owned());
    }
    match account(None)? {
        Some(a) => Ok(a.name),
        None => std::env::var("USER")
            .ok()
            .filter(|u| !u.is_empty())
            .context("cannot tell who you are (no /etc/passwd entry, no $USER): give -u USER"),
    }
}

pub fn startup(args: StartupArgs) -> anyhow::Result<i32> {
    check_platform(&args.platform)?;
    let found = account(args.user.as_deref())?;
    let user = user_name(args.user.as_deref())?;
    let home = match (&args.home, &found) {
        (Some(h), _) => h.clone(),
        (None, Some(a)) => a.home.clone(),
        (None, None) => anyhow::bail!("user {user:?} is not in /etc/passwd: give --hp HOME"),
    };
    // The caller's own MUSTER_HOME, when the unit is for the caller: their apps live there.
    let muster_home = match std::env::var_os("MUSTER_HOME") {
        Some(h) if !h.is_empty() && args.user.is_none() && args.home.is_none() => h.into(),
        _ => home.join(".muster"),
    };
    let spec = UnitSpec {
        user: user.clone(),
        home: home.clone(),
        muster_home,
        exe: std::env::current_exe()
            .and_then(std::fs::canonicalize)
            .context("finding the muster executable")?,
        path: std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
    };
    let text = unit::render(&spec);
    let name = unit::service_name(&user);
    let path = args.unit_dir.join(&name);
    let mut out = std::io::stdout().lock();
    if args.dry_run {
        writeln!(out, "Would write {}:\n", path.display())?;
        write!(out, "{text}")?;
        return Ok(0);
    }
    write_unit(&path, &text).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::PermissionDenied {
            format!(
                "; run it as root: sudo env PATH=\"$PATH\" {} startup -u {user} --hp {}",
                spec.exe.display(),
                home.display()
            )
        } else {
            String::new()
        };
        anyhow::anyhow!("writing {}: {e}{hint}", path.display())
    })?;
    writeln!(out, "Wrote {}:\n", path.display())?;
    write!(out, "{text}")?;
    writeln!(
        out,
        "\nTo start muster at boot (and now):\n  systemctl daemon-reload\n  systemctl enable --now {name}\n\
         Save the apps to bring back at boot with `muster save` (as {user})."
    )?;
    Ok(0)
}

/// Writes through a temporary file and a rename, so systemd never reads half a unit.
fn write_unit(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("service.tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

pub fn unstartup(args: UnstartupArgs) -> anyhow::Result<i32> {
    check_platform(&args.platform)?;
    let user = user_name(args.user.as_deref())?;
    let name = unit::service_name(&user);
    let path = args.unit_dir.join(&name);
    std::fs::remove_file(&path).map_err(|e| anyhow::anyhow!("removing {}: {e}", path.display()))?;
    println!(
        "Removed {}.\nTo stop starting muster at boot:\n  systemctl disable {name}\n  systemctl daemon-reload\n\
         (The daemon and the apps running now are left as they are.)",
        path.display()
    );
    Ok(0)
}
