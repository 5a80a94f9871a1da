//! Opening muster's own files inside the home without following any symbolic link.
//!
//! A link planted in the home (`logs/api-out.log` → `/etc/shadow`) must not make muster write
//! or read a file its user did not mean. Files beneath the home are opened with `openat2`
//! (`RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`) from the home's directory, or, on a kernel without
//! `openat2`, by a walk that opens every component with `O_NOFOLLOW`. A path outside the home
//! (an `out_file` the user chose, `/dev/stdout`) is the user's and is opened as it is.

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Component, Path};

/// Opens `path` with `flags` (and `mode` when it creates): beneath `root` without following
/// a link on the way, elsewhere as it is.
pub(crate) fn open(root: Option<&Path>, path: &Path, flags: OFlags, mode: u32) -> io::Result<File> {
    let flags = flags | OFlags::CLOEXEC;
    let mode = Mode::from_raw_mode(mode);
    let Some((root, rel)) = root.and_then(|r| Some((r, path.strip_prefix(r).ok()?))) else {
        return Ok(File::from(rustix::fs::open(path, flags, mode)?));
    };
    let fd = open_beneath(root, rel, flags, mode).map_err(|e| explain(e, path))?;
    Ok(File::from(fd))
}

/// Removes `path` if it is beneath `root` (a link is removed, never followed; a missing file
/// is fine); elsewhere removes it as `std::fs::remove_file` does.
pub(crate) fn remove(root: Option<&Path>, path: &Path) -> io::Result<()> {
    let r = match root.and_then(|r| Some((r, path.strip_prefix(r).ok()?))) {
        Some((root, rel)) => {
            let (dir, name) = parent_of(root, rel)?;
            rustix::fs::unlinkat(&dir, name, AtFlags::empty()).map_err(io::Error::from)
        }
        None => std::fs::remove_file(path),
    };
    match r {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

fn open_beneath(root: &Path, rel: &Path, flags: OFlags, mode: Mode) -> io::Result<OwnedFd> {
    components(rel)?;
    let dir = open_dir(root)?;
    match rustix::fs::openat2(
        &dir,
        rel,
        flags,
        mode,
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
    ) {
        // No openat2 (Linux before 5.6): the same, one component at a time.
        Err(rustix::io::Errno::NOSYS) => walk(root, rel, flags, mode),
        r => r.map_err(io::Error::from),
    }
}

/// Opens `rel` beneath `root` with `O_NOFOLLOW` on every component.
fn walk(root: &Path, rel: &Path, flags: OFlags, mode: Mode) -> io::Result<OwnedFd> {
    let (dir, name) = parent_of(root, rel)?;
    Ok(rustix::fs::openat(
        &dir,
        name,
        flags | OFlags::NOFOLLOW,
        mode,
    )?)
}

/// The directory holding `rel` (reached without following links) and the last name.
fn parent_of<'a>(root: &Path, rel: &'a Path) -> io::Result<(OwnedFd, &'a OsStr)> {
    let names = components(rel)?;
    let (last, dirs) = names.split_last().expect("components() is never empty");
    let mut at = open_dir(root)?;
    for name in dirs {
        at = rustix::fs::openat(
            &at,
            *name,
            OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
    }
    Ok((at, last))
}

/// The home itself (a link there, if any, was checked by [`super::Home::check`]).
fn open_dir(root: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        root,
        OFlags::DIRECTORY | OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// The plain names of `rel`: no `..`, no root, at least one.
fn components(rel: &Path) -> io::Result<Vec<&OsStr>> {
    let mut names = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(n) => names.push(n),
            Component::CurDir => {}
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{} leaves the home", rel.display()),
                ));
            }
        }
    }
    if names.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "an empty path"));
    }
    Ok(names)
}

/// ELOOP/EXDEV from a refused link, said plainly.
fn explain(e: io::Error, path: &Path) -> io::Error {
    match e.raw_os_error() {
        Some(code)
            if code == rustix::io::Errno::LOOP.raw_os_error()
                || code == rustix::io::Errno::XDEV.raw_os_error() =>
        {
            io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "it (or a directory on the way to it inside the muster home) is a symbolic \
                     link, and muster follows no link inside its home; remove {}",
                    path.display()
                ),
            )
        }
        _ => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::test_dir::TestDir;

    #[test]
    fn a_link_beneath_the_root_is_not_followed() {
        let dir = TestDir::new("beneath");
        let root = dir.path().join("home");
        std::fs::create_dir_all(root.join("logs")).unwrap();
        let target = dir.path().join("secret");
        std::fs::write(&target, "secret\n").unwrap();
        std::os::unix::fs::symlink(&target, root.join("logs/a.log")).unwrap();
        std::os::unix::fs::symlink(dir.path(), root.join("sub")).unwrap();
        let w = OFlags::WRONLY | OFlags::APPEND | OFlags::CREATE;
        let e = open(Some(&root), &root.join("logs/a.log"), w, 0o600).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        let e = open(Some(&root), &root.join("sub/secret"), OFlags::RDONLY, 0).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "secret\n");
        // Outside the root, a link is the user's choice.
        open(Some(&root), &dir.path().join("secret"), OFlags::RDONLY, 0).unwrap();
        let link = dir.path().join("out-link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        open(Some(&root), &link, OFlags::RDONLY, 0).unwrap();
        // The walk (old kernels) refuses the same.
        let e = walk(
            &root,
            Path::new("logs/a.log"),
            OFlags::RDONLY,
            Mode::empty(),
        )
        .unwrap_err();
        assert_eq!(
            e.raw_os_error(),
            Some(rustix::io::Errno::LOOP.raw_os_error())
        );
        let e = walk(
            &root,
            Path::new("sub/secret"),
            OFlags::RDONLY,
            Mode::empty(),
        )
        .unwrap_err();
        assert!(e.raw_os_error().is_some(), "{e}");
        remove(Some(&root), &root.join("logs/a.log")).unwrap();
        assert!(target.exists(), "removing a link removes the link only");
    }
}
