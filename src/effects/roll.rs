//! The random roll behind weighted target and key choices.

/// xorshift64 state: weighted choice needs spread, not secrecy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roll(u64);

impl Default for Roll {
    fn default() -> Self {
        Roll::seeded(0)
    }
}

impl Roll {
    /// A roll seeded from `seed` (the host clock): xorshift needs a non-zero state, so the
    /// low bit is set.
    pub fn seeded(seed: u64) -> Self {
        Roll(seed | 1)
    }

    /// The next value of the sequence (never 0).
    pub fn next_value(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}
