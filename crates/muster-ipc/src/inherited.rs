//! Descriptors a process inherited without anyone meaning to pass them on.
//!
//! A shell or a CI runner may start `muster` with descriptors open beyond stdin, stdout and
//! stderr (the write end of a pipe it waits on, say). Whatever muster then starts — the
//! daemon, the supervisors, the workers — would inherit them too, and the caller would never
//! see its pipe end. [`close_on_exec_inherited`] marks them close-on-exec, so that only what a
//! spawn places on purpose reaches a child.

use rustix::io::{Errno, FdFlags, fcntl_getfd, fcntl_setfd};
use std::io;
use std::os::fd::{BorrowedFd, RawFd};

/// Marks close-on-exec every descriptor above 2 that is open now, except those in `keep`.
/// Call it early, before other threads open or close descriptors (at worst such a race marks
/// a descriptor that was just opened, which is harmless: muster opens everything
/// close-on-exec anyway). Returns how many were marked.
pub fn close_on_exec_inherited(keep: &[RawFd]) -> io::Result<usize> {
    let open: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    let mut marked = 0;
    for fd in open {
        if fd <= 2 || keep.contains(&fd) {
            continue;
        }
        // SAFETY: `fd` was listed in /proc/self/fd, and the borrow is used only for the two
        // fcntl calls below, within this call. If it was closed since (the directory
        // listing's own descriptor is), fcntl fails with EBADF, which is skipped; nothing is
        // read or written through it and it is never closed here.
        #[allow(unsafe_code)]
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        match fcntl_getfd(borrowed) {
            Ok(flags) if flags.contains(FdFlags::CLOEXEC) => {}
            Ok(flags) => {
                fcntl_setfd(borrowed, flags | FdFlags::CLOEXEC)?;
                marked += 1;
            }
            Err(Errno::BADF) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(marked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn inherited_descriptors_are_marked_and_kept_ones_are_not() {
        let (a, b) = std::io::pipe().unwrap();
        fcntl_setfd(&a, FdFlags::empty()).unwrap();
        fcntl_setfd(&b, FdFlags::empty()).unwrap();
        close_on_exec_inherited(&[b.as_raw_fd()]).unwrap();
        assert!(fcntl_getfd(&a).unwrap().contains(FdFlags::CLOEXEC));
        assert!(!fcntl_getfd(&b).unwrap().contains(FdFlags::CLOEXEC));
    }
}
