//! Flow-control window arithmetic.
//!
//! SPDY/3 (section 2.6.8) keeps one window per stream on the sending side;
//! SPDY/3.1 adds one for the whole session. A window grows by WINDOW_UPDATE
//! deltas and shrinks by DATA payload lengths. It may go negative when
//! SETTINGS_INITIAL_WINDOW_SIZE is lowered while data is in flight, and it
//! must never exceed 2^31 - 1.

use super::config::MAX_WINDOW;
use crate::frame::Version;

/// The largest window a version allows: SPDY/3 says a window "must never
/// exceed 2^31"; SPDY/3.1 lowers that to 2^31 - 1.
pub(crate) fn max_window(version: Option<Version>) -> i64 {
    match version {
        Some(Version::V3) => i64::from(MAX_WINDOW) + 1,
        _ => i64::from(MAX_WINDOW),
    }
}

/// A window, as a signed count of bytes that may still be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window(i64);

/// A window would exceed 2^31 - 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Overflow;

impl Window {
    pub(crate) const fn new(size: u32) -> Window {
        Window(size as i64)
    }

    /// A window that never runs out (SPDY/2 has no flow control).
    pub(crate) const fn unlimited() -> Window {
        Window(i64::MAX / 2)
    }

    /// Bytes that may be sent now (0 when the window is negative).
    pub(crate) fn available(self) -> usize {
        usize::try_from(self.0.max(0)).unwrap_or(usize::MAX)
    }

    #[cfg(test)]
    pub(crate) fn value(self) -> i64 {
        self.0
    }

    /// Takes `n` sent or received bytes off the window. The caller checks
    /// `available` first when the limit matters.
    pub(crate) fn consume(&mut self, n: usize) {
        self.0 -= n as i64;
    }

    /// Adds a WINDOW_UPDATE delta, refusing to pass `max` ("If a sender
    /// receives a WINDOW_UPDATE that causes the its window size to exceed
    /// this limit, it must send RST_STREAM with status code
    /// FLOW_CONTROL_ERROR").
    pub(crate) fn increase(&mut self, delta: u32, max: i64) -> Result<(), Overflow> {
        self.adjust(i64::from(delta), max)
    }

    /// Shifts the window by the difference between a new and an old initial
    /// window size (SPDY/3.1 section 2.6.8): the result may be negative.
    pub(crate) fn adjust(&mut self, delta: i64, max: i64) -> Result<(), Overflow> {
        let next = self.0 + delta;
        if next > max && self.0 < i64::MAX / 4 {
            return Err(Overflow);
        }
        self.0 = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: i64 = MAX_WINDOW as i64;

    #[test]
    fn consumes_and_grows() {
        let mut w = Window::new(100);
        w.consume(60);
        assert_eq!(w.available(), 40);
        w.increase(10, M).unwrap();
        assert_eq!(w.available(), 50);
    }

    #[test]
    fn may_go_negative_after_a_settings_change() {
        let mut w = Window::new(65536);
        w.consume(65536);
        w.adjust(16384 - 65536, M).unwrap();
        assert_eq!(w.value(), -49152);
        assert_eq!(w.available(), 0);
    }

    /// 3.1 section 2.6.8: a window "may never exceed 2^31 - 1".
    #[test]
    fn overflow_past_2_pow_31_minus_1_is_refused() {
        let mut w = Window::new(MAX_WINDOW);
        assert_eq!(w.increase(1, M), Err(Overflow));
        assert_eq!(w.value(), i64::from(MAX_WINDOW));
        let mut w = Window::new(1);
        assert!(w.increase(MAX_WINDOW - 1, M).is_ok());
        assert_eq!(w.increase(1, M), Err(Overflow));
        // SPDY/3 allows exactly 2^31.
        assert!(w.increase(1, max_window(Some(Version::V3))).is_ok());
    }

    #[test]
    fn unlimited_never_overflows() {
        let mut w = Window::unlimited();
        for _ in 0..10 {
            w.increase(MAX_WINDOW, M).unwrap();
            w.consume(1 << 30);
        }
        assert!(w.available() > 1 << 40);
    }
}
