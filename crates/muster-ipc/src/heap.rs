//! Giving freed heap memory back to the kernel.
//!
//! A supervisor runs for months, one per app. What it allocates while starting (the spec's
//! JSON, directory scans, the workers' spawn) is freed at once, but glibc keeps the freed pages
//! inside the heap, dirty, until memory at the heap's very top is free — so each idle
//! supervisor would carry its start-up's high-water mark. This crate holds the workspace's
//! `unsafe`, so the one libc call lives here.

/// Returns the free pages of every malloc arena to the kernel (`malloc_trim(0)`); whole pages
/// inside the heap are released too, not only its top. Costs a walk over the free lists: call
/// it when a burst of work is over (a supervisor: once its workers are up), not per request.
pub fn release_free_heap() {
    // SAFETY: malloc_trim takes no pointers and only works on the allocator's own free lists,
    // under the allocator's locks; it is safe to call from any thread at any time.
    #[allow(unsafe_code)]
    unsafe {
        libc::malloc_trim(0);
    }
}
