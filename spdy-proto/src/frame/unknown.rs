use super::head::ControlType;

/// A control frame of a type the session's version does not define.
///
/// SPDY/2 (section "Control frames"): "If an endpoint receives a control
/// frame for a type it does not recognize, it must ignore the frame." Later
/// drafts keep the rule implicitly. The decoder also reports a control frame
/// whose version differs from the session's this way (except SYN_STREAM, which
/// is refused with UNSUPPORTED_VERSION), following SPDY/2's "lazy version
/// checking".
///
/// The decoder skips the payload without buffering it, so an unknown frame
/// costs no memory whatever its length, and reports the header so that a
/// session can log it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unknown {
    /// The version field.
    pub version: u16,
    /// The type field.
    pub kind: ControlType,
    /// The flags byte.
    pub flags: u8,
    /// The length of the skipped payload.
    pub length: u32,
}
