//! The primary's `seq` counter.

/// Numbers the cluster messages the primary sends: 0, 1, 2, …, replies included.
///
/// Node's primary keeps one counter for all workers; one per channel works as well, because a
/// worker only needs our `seq` to be unique on its own channel (it echoes it as `ack` to `newconn`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeqCounter {
    next: u64,
}

impl SeqCounter {
    /// A counter whose first number is 0.
    pub const fn new() -> Self {
        Self { next: 0 }
    }

    /// Takes the number for the message about to be sent.
    pub fn next_seq(&mut self) -> u64 {
        let seq = self.next;
        // JSON numbers stop being exact at 2^53 long before this could wrap.
        self.next = self.next.wrapping_add(1);
        seq
    }

    /// The number the next message will get, without taking it.
    pub const fn peek(&self) -> u64 {
        self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_at_zero_and_counts_up() {
        let mut seq = SeqCounter::new();
        assert_eq!(seq.peek(), 0);
        assert_eq!(seq.next_seq(), 0);
        assert_eq!(seq.next_seq(), 1);
        assert_eq!(seq.next_seq(), 2);
        assert_eq!(seq.peek(), 3);
        assert_eq!(SeqCounter::default(), SeqCounter::new());
    }
}
