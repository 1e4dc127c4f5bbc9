//! Which of the peer's recent stream ids were used, for the tolerant mode
//! of [`Config::with_tolerate_unordered_stream_ids`](super::Config::with_tolerate_unordered_stream_ids).
//!
//! A fixed bitset indexed by `id / 2` modulo [`UNORDERED_ID_WINDOW`]: ids
//! of one parity within the window below the highest map to distinct
//! bits, so it answers exactly for them, in 128 bytes whatever the peer
//! sends. Older ids are not remembered and are refused as before.

use crate::frame::StreamId;

/// How many of the peer's ids below the highest are remembered.
pub const UNORDERED_ID_WINDOW: u32 = 1024;

const WORDS: usize = (UNORDERED_ID_WINDOW / 64) as usize;

/// What a new id below or at the highest is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// Within the window and never used: may be opened.
    Unused,
    /// Already used (a second SYN_STREAM for it).
    Used,
    /// Too far below the highest to know.
    Forgotten,
}

#[derive(Debug, Default)]
pub(crate) struct SeenIds {
    highest: u32,
    bits: [u64; WORDS],
}

fn slot(id: u32) -> (usize, u64) {
    let i = (id / 2) % UNORDERED_ID_WINDOW;
    ((i / 64) as usize, 1u64 << (i % 64))
}

impl SeenIds {
    /// Records `id` as used, moving the window up if it is the new highest.
    pub(crate) fn mark(&mut self, id: StreamId) {
        let id = id.value();
        if id > self.highest {
            let steps = (id - self.highest) / 2;
            if steps >= UNORDERED_ID_WINDOW || self.highest == 0 {
                self.bits = [0; WORDS];
            } else {
                // The slots of the ids now entering the window held ids
                // that fall out of it: clear them.
                let mut next = self.highest + 2;
                while next <= id {
                    let (w, b) = slot(next);
                    self.bits[w] &= !b;
                    next += 2;
                }
            }
            self.highest = id;
        }
        let (w, b) = slot(id);
        self.bits[w] |= b;
    }

    /// Whether `id` (at or below the highest, of the peer's parity) may
    /// still be opened.
    pub(crate) fn lookup(&self, id: StreamId) -> Lookup {
        let id = id.value();
        if id > self.highest {
            return Lookup::Unused;
        }
        if (self.highest - id) / 2 >= UNORDERED_ID_WINDOW {
            return Lookup::Forgotten;
        }
        let (w, b) = slot(id);
        if self.bits[w] & b != 0 {
            Lookup::Used
        } else {
            Lookup::Unused
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sid(id: u32) -> StreamId {
        StreamId::from_wire(id)
    }

    #[test]
    fn remembers_exactly_the_window_below_the_highest() {
        let mut seen = SeenIds::default();
        seen.mark(sid(5));
        assert_eq!(seen.lookup(sid(3)), Lookup::Unused);
        assert_eq!(seen.lookup(sid(5)), Lookup::Used);
        seen.mark(sid(3));
        assert_eq!(seen.lookup(sid(3)), Lookup::Used);
        assert_eq!(seen.lookup(sid(1)), Lookup::Unused);
        // Move far up: 3 and 5 leave the window, their slots are reused.
        let top = 5 + 2 * UNORDERED_ID_WINDOW;
        seen.mark(sid(top));
        assert_eq!(seen.lookup(sid(5)), Lookup::Forgotten);
        assert_eq!(seen.lookup(sid(top - 2)), Lookup::Unused);
        // A step up by less than the window clears only what left it.
        let mut seen = SeenIds::default();
        for id in (1..4001).step_by(2) {
            seen.mark(sid(id));
        }
        seen.mark(sid(3999 + 2 * 10));
        assert_eq!(seen.lookup(sid(3999)), Lookup::Used);
        assert_eq!(seen.lookup(sid(4001)), Lookup::Unused);
        assert_eq!(seen.lookup(sid(4017)), Lookup::Unused);
        let low = 4019 - 2 * (UNORDERED_ID_WINDOW - 1);
        assert_eq!(seen.lookup(sid(low)), Lookup::Used);
        assert_eq!(seen.lookup(sid(low - 2)), Lookup::Forgotten);
    }
}
