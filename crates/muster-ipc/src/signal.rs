//! Waiting for signals, at the cost of the signals waited for.
//!
//! tokio's `signal()` builds, on its first use in a process, a broadcast channel for every
//! signal number there is (65 on Linux: ~23 kB of heap), whichever signal is asked for. A
//! supervisor, one per app, waits for three (`SIGCHLD`, `SIGTERM`, and catches `SIGXFSZ`), so
//! at a hundred apps that table cost 2.3 MB (bench/README.md, "Footprint"). Here each listener
//! owns one eventfd, and the handler writes to the eventfds of the listeners of its signal.
//!
//! Like tokio's, a listener sees deliveries made after it was created, several deliveries
//! between two waits wake it once, and a handled signal is reset to its default in a program
//! the process execs (unlike an ignored one). A handler found installed before ours (tokio's,
//! for `tokio::process`) is still called after ours, so the two can live in one process.

use crate::AsyncSocket;
use rustix::process::Signal;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Listeners at once, over all signals. A supervisor has one per waiting child and a few more.
const SLOTS: usize = 256;
/// An unused slot; a used one holds `signal << 32 | eventfd`.
const EMPTY: u64 = u64::MAX;
static LISTENERS: [AtomicU64; SLOTS] = [const { AtomicU64::new(EMPTY) }; SLOTS];
/// Handlers running now, on any thread: a listener closes its eventfd only when none is, so a
/// handler never writes to a descriptor number that was closed (and maybe reused) under it.
static IN_HANDLER: AtomicUsize = AtomicUsize::new(0);

/// The highest signal number (`SIGRTMAX` on Linux).
const MAX_SIGNAL: usize = 64;
/// Per signal: 0 until our handler is installed, then 1 + the previous handler's address if
/// it was a function to chain to, else 1.
static PREVIOUS: [AtomicUsize; MAX_SIGNAL + 1] = [const { AtomicUsize::new(0) }; MAX_SIGNAL + 1];
/// Per signal: whether the previous handler takes `siginfo` (`SA_SIGINFO`).
static PREVIOUS_SIGINFO: [AtomicUsize; MAX_SIGNAL + 1] =
    [const { AtomicUsize::new(0) }; MAX_SIGNAL + 1];
/// Serialises installing handlers.
static INSTALL: Mutex<()> = Mutex::new(());

/// Why a signal cannot be listened to.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    #[error(
        "signal {0} cannot be handled (valid: 1-{MAX_SIGNAL}, except KILL, STOP, ILL, FPE, SEGV)"
    )]
    Forbidden(i32),
    #[error("more than {SLOTS} signal listeners at once")]
    TooMany,
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl From<SignalError> for io::Error {
    fn from(e: SignalError) -> io::Error {
        match e {
            SignalError::Io(e) => e,
            other => io::Error::other(other),
        }
    }
}

/// Waits for one signal; see the module docs.
#[derive(Debug)]
pub struct SignalListener {
    slot: usize,
    fd: AsyncSocket,
}

/// Starts listening to `signal`.
pub fn listen(signal: Signal) -> Result<SignalListener, SignalError> {
    let signal = signal.as_raw();
    install(signal)?;
    let fd: OwnedFd = rustix::event::eventfd(
        0,
        rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK,
    )
    .map_err(io::Error::from)?;
    let word = ((signal as u64) << 32) | fd.as_raw_fd() as u32 as u64;
    let slot = LISTENERS
        .iter()
        .position(|s| {
            s.compare_exchange(EMPTY, word, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        })
        .ok_or(SignalError::TooMany)?;
    match AsyncSocket::new(fd) {
        Ok(fd) => Ok(SignalListener { slot, fd }),
        Err(e) => {
            // The descriptor is closed already (dropped by `new`); the handler may have seen it.
            release(slot);
            Err(e.into())
        }
    }
}

/// Installs the handler for `signal` without listening: the process then survives a signal
/// whose default is to end it (`SIGXFSZ`, so that a write past the file size limit fails with
/// `EFBIG` instead), and its children still get the default.
pub fn catch(signal: Signal) -> Result<(), SignalError> {
    install(signal.as_raw())
}

impl SignalListener {
    /// Waits for the next delivery (or several, counted once) since the last `recv`.
    pub async fn recv(&mut self) -> io::Result<()> {
        self.fd
            .read_with(|fd| {
                let mut count = [0u8; 8];
                rustix::io::read(fd, &mut count).map_err(io::Error::from)
            })
            .await
            .map(drop)
    }
}

impl Drop for SignalListener {
    fn drop(&mut self) {
        release(self.slot);
        // The eventfd closes when the field drops, after this.
    }
}

/// Frees a slot, returning once no handler can still be writing to its descriptor.
fn release(slot: usize) {
    LISTENERS[slot].store(EMPTY, Ordering::SeqCst);
    // A handler that started before the store may still hold the old word; one that starts
    // after it cannot. Handlers are a few instructions long.
    while IN_HANDLER.load(Ordering::SeqCst) != 0 {
        std::thread::yield_now();
    }
}

fn install(signal: i32) -> Result<(), SignalError> {
    let forbidden = [
        libc::SIGKILL,
        libc::SIGSTOP,
        libc::SIGILL,
        libc::SIGFPE,
        libc::SIGSEGV,
    ];
    if signal < 1 || signal as usize > MAX_SIGNAL || forbidden.contains(&signal) {
        return Err(SignalError::Forbidden(signal));
    }
    let _once = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let n = signal as usize;
    if PREVIOUS[n].load(Ordering::SeqCst) != 0 {
        return Ok(());
    }
    // SAFETY: `sigaction` with a zeroed struct is valid input once its fields are set: the
    // handler is an `extern "C"` function that lives as long as the program, `sa_mask` is
    // emptied with `sigemptyset`, and the previous action is written into memory we own.
    // The handler does only async-signal-safe things (atomics, `write`, errno).
    #[allow(unsafe_code)]
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_signal as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        let mut old: libc::sigaction = std::mem::zeroed();
        // Publish where to chain before the handler can run.
        if libc::sigaction(signal, std::ptr::null(), &mut old) != 0 {
            return Err(io::Error::last_os_error().into());
        }
        let chained = if old.sa_sigaction == libc::SIG_DFL || old.sa_sigaction == libc::SIG_IGN {
            1
        } else {
            1 + old.sa_sigaction
        };
        PREVIOUS_SIGINFO[n].store(
            usize::from(old.sa_flags & libc::SA_SIGINFO != 0),
            Ordering::SeqCst,
        );
        PREVIOUS[n].store(chained, Ordering::SeqCst);
        if libc::sigaction(signal, &action, std::ptr::null_mut()) != 0 {
            PREVIOUS[n].store(0, Ordering::SeqCst);
            return Err(io::Error::last_os_error().into());
        }
    }
    Ok(())
}

extern "C" fn on_signal(
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    IN_HANDLER.fetch_add(1, Ordering::SeqCst);
    // SAFETY: errno is thread-local and we restore what we found; `write` of 8 bytes from a
    // local to a descriptor that stays open while IN_HANDLER is non-zero (see `release`) is
    // async-signal-safe. A full eventfd counter (EAGAIN) only means a wake-up is pending.
    #[allow(unsafe_code)]
    unsafe {
        let errno = *libc::__errno_location();
        let one: u64 = 1;
        for slot in &LISTENERS {
            let word = slot.load(Ordering::SeqCst);
            if word != EMPTY && (word >> 32) as libc::c_int == signal {
                let fd = word as u32 as libc::c_int;
                libc::write(fd, (&one as *const u64).cast(), 8);
            }
        }
        *libc::__errno_location() = errno;
    }
    IN_HANDLER.fetch_sub(1, Ordering::SeqCst);
    let n = signal as usize;
    let previous = PREVIOUS.get(n).map_or(0, |p| p.load(Ordering::SeqCst));
    if previous > 1 {
        let address = previous - 1;
        // SAFETY: `address` was the previous handler's `sa_sigaction`, a function of the kind
        // its `SA_SIGINFO` flag says, installed by code that expects to be called like this.
        #[allow(unsafe_code)]
        unsafe {
            if PREVIOUS_SIGINFO[n].load(Ordering::SeqCst) != 0 {
                let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    std::mem::transmute(address);
                f(signal, info, context);
            } else {
                let f: extern "C" fn(libc::c_int) = std::mem::transmute(address);
                f(signal);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn raise(signal: Signal) {
        rustix::process::kill_process(rustix::process::getpid(), signal).expect("kill");
    }

    #[tokio::test]
    async fn a_listener_wakes_once_per_burst_and_only_for_its_signal() {
        let mut usr1 = listen(Signal::USR1).unwrap();
        let mut usr2 = listen(Signal::USR2).unwrap();
        raise(Signal::USR1);
        raise(Signal::USR1);
        tokio::time::timeout(Duration::from_secs(5), usr1.recv())
            .await
            .expect("woken")
            .unwrap();
        // Two deliveries, one wake-up; and SIGUSR2's listener heard nothing.
        let again = tokio::time::timeout(Duration::from_millis(100), usr1.recv()).await;
        assert!(again.is_err(), "woken twice for one burst");
        let other = tokio::time::timeout(Duration::from_millis(100), usr2.recv()).await;
        assert!(other.is_err(), "woken by another signal");
    }

    #[tokio::test]
    async fn every_listener_of_a_signal_wakes_and_a_dropped_one_frees_its_slot() {
        let mut a = listen(Signal::WINCH).unwrap();
        let mut b = listen(Signal::WINCH).unwrap();
        let c = listen(Signal::WINCH).unwrap();
        let slot = c.slot;
        drop(c);
        // Only this test listens to SIGWINCH: the slot is free, or another test's now.
        let word = LISTENERS[slot].load(Ordering::SeqCst);
        assert!(
            word == EMPTY || (word >> 32) as i32 != libc::SIGWINCH,
            "the slot is still taken"
        );
        raise(Signal::WINCH);
        for l in [&mut a, &mut b] {
            tokio::time::timeout(Duration::from_secs(5), l.recv())
                .await
                .expect("woken")
                .unwrap();
        }
    }

    #[test]
    fn signals_that_cannot_be_handled_are_refused_with_the_range() {
        for s in [Signal::KILL, Signal::STOP, Signal::SEGV] {
            let e = listen(s).unwrap_err();
            assert!(
                matches!(e, SignalError::Forbidden(n) if n == s.as_raw()),
                "{e}"
            );
            assert!(e.to_string().contains("1-64"), "{e}");
        }
    }
}
