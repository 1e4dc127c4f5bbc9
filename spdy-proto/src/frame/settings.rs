use bytes::{BufMut, BytesMut};

use super::head::{ControlType, Head, MAX_PAYLOAD_LEN};
use super::{read_u32, EncodeError, FrameError, Version};

/// SETTINGS' frame flag FLAG_SETTINGS_CLEAR_SETTINGS (SPDY/2 calls it
/// FLAG_SETTINGS_CLEAR_PREVIOUSLY_PERSISTED_SETTINGS).
pub const FLAG_CLEAR_SETTINGS: u8 = 0x01;
/// Entry flag FLAG_SETTINGS_PERSIST_VALUE: the server asks the client to
/// remember this value and send it back on later sessions.
pub const FLAG_PERSIST_VALUE: u8 = 0x01;
/// Entry flag FLAG_SETTINGS_PERSISTED: the client returns a value the server
/// asked it to persist.
pub const FLAG_PERSISTED: u8 = 0x02;

/// A SETTINGS id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SettingId {
    /// 1: expected upload bandwidth, kB/s.
    UploadBandwidth,
    /// 2: expected download bandwidth, kB/s.
    DownloadBandwidth,
    /// 3: expected round-trip time, ms.
    RoundTripTime,
    /// 4: most concurrent streams the sender allows the recipient to open.
    MaxConcurrentStreams,
    /// 5: current TCP congestion window.
    CurrentCwnd,
    /// 6: download retransmission rate, percent.
    DownloadRetransRate,
    /// 7: initial flow-control window of new streams, bytes.
    InitialWindowSize,
    /// 8 (SPDY/3): size of the client certificate vector.
    ClientCertificateVectorSize,
    /// Any other 24-bit id.
    Unknown(u32),
}

impl SettingId {
    /// The id on the wire (24 bits).
    pub const fn to_u32(self) -> u32 {
        match self {
            SettingId::UploadBandwidth => 1,
            SettingId::DownloadBandwidth => 2,
            SettingId::RoundTripTime => 3,
            SettingId::MaxConcurrentStreams => 4,
            SettingId::CurrentCwnd => 5,
            SettingId::DownloadRetransRate => 6,
            SettingId::InitialWindowSize => 7,
            SettingId::ClientCertificateVectorSize => 8,
            SettingId::Unknown(n) => n,
        }
    }

    /// The id for a wire value.
    pub const fn from_u32(n: u32) -> SettingId {
        match n {
            1 => SettingId::UploadBandwidth,
            2 => SettingId::DownloadBandwidth,
            3 => SettingId::RoundTripTime,
            4 => SettingId::MaxConcurrentStreams,
            5 => SettingId::CurrentCwnd,
            6 => SettingId::DownloadRetransRate,
            7 => SettingId::InitialWindowSize,
            8 => SettingId::ClientCertificateVectorSize,
            n => SettingId::Unknown(n),
        }
    }
}

/// One SETTINGS entry: an id, a 32-bit value and the persistence flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// Which setting.
    pub id: SettingId,
    /// Its value.
    pub value: u32,
    /// FLAG_SETTINGS_PERSIST_VALUE (only a server sends it).
    pub persist_value: bool,
    /// FLAG_SETTINGS_PERSISTED (only a client sends it).
    pub persisted: bool,
}

impl Setting {
    /// An entry without flags.
    pub const fn new(id: SettingId, value: u32) -> Setting {
        Setting {
            id,
            value,
            persist_value: false,
            persisted: false,
        }
    }

    fn flags(&self) -> u8 {
        let mut flags = 0;
        if self.persist_value {
            flags |= FLAG_PERSIST_VALUE;
        }
        if self.persisted {
            flags |= FLAG_PERSISTED;
        }
        flags
    }
}

/// SETTINGS (type 4): session parameters, sent at any time by either side.
///
/// ```text
/// +-+---------------+---------------+
/// |1| version       |       4       |
/// +---------+-------+---------------+
/// | Flags(8)| Length (24)           |
/// +---------+-----------------------+
/// |     Number of entries (32)      |
/// +---------------------------------+
/// | entry: 4 bytes id+flags,        |
/// |        4 bytes value ...        |
/// ```
///
/// The entry's first word differs between versions:
///
/// ```text
/// SPDY/3, 3.1: | Flags (8) | ID (24, big-endian)    |
/// SPDY/2:      | ID (24, little-endian) | Flags (8) |
/// ```
///
/// The SPDY/2 draft says its little-endian id "is the result of a bug in the
/// initial v2 implementation", which wrote the word in host order on a
/// little-endian machine. In byte order that is `id[0..8], id[8..16],
/// id[16..24], flags`; node-spdy reads and writes the same bytes.
///
/// Entries are kept in wire order, duplicates included; "If the recipient of
/// a SETTINGS frame discovers multiple values for the same ID, it MUST ignore
/// all values except the first one", which is what [`Settings::get`] does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// FLAG_SETTINGS_CLEAR_SETTINGS: forget previously persisted values.
    pub clear_persisted: bool,
    /// The entries in wire order.
    pub entries: Vec<Setting>,
}

impl Settings {
    /// A SETTINGS frame with these entries and no flags.
    pub fn new(entries: Vec<Setting>) -> Settings {
        Settings {
            clear_persisted: false,
            entries,
        }
    }

    /// The first value given for `id`, if any.
    pub fn get(&self, id: SettingId) -> Option<u32> {
        self.entries.iter().find(|e| e.id == id).map(|e| e.value)
    }

    pub(crate) fn decode(
        version: Version,
        flags: u8,
        payload: &[u8],
    ) -> Result<Settings, FrameError> {
        let Some(count) = read_u32(payload, 0) else {
            return Err(FrameError::BadLength {
                kind: ControlType::Settings,
                length: payload.len() as u32,
                expected: "at least 4",
            });
        };
        // The count must describe exactly the bytes that follow; checking
        // before allocating keeps a lying count from reserving memory.
        if u64::from(count) * 8 + 4 != payload.len() as u64 {
            return Err(FrameError::SettingsCountMismatch {
                count,
                length: payload.len() as u32,
            });
        }
        let entries = payload[4..]
            .chunks_exact(8)
            .map(|entry| {
                let (id, entry_flags) = if version.is_v2() {
                    (
                        u32::from_le_bytes([entry[0], entry[1], entry[2], 0]),
                        entry[3],
                    )
                } else {
                    (
                        u32::from_be_bytes([0, entry[1], entry[2], entry[3]]),
                        entry[0],
                    )
                };
                Setting {
                    id: SettingId::from_u32(id),
                    value: u32::from_be_bytes([entry[4], entry[5], entry[6], entry[7]]),
                    persist_value: entry_flags & FLAG_PERSIST_VALUE != 0,
                    persisted: entry_flags & FLAG_PERSISTED != 0,
                }
            })
            .collect();
        Ok(Settings {
            clear_persisted: flags & FLAG_CLEAR_SETTINGS != 0,
            entries,
        })
    }

    pub(crate) fn encode(&self, version: Version, dst: &mut BytesMut) -> Result<(), EncodeError> {
        let length = self.entries.len().saturating_mul(8).saturating_add(4);
        if length > MAX_PAYLOAD_LEN as usize {
            return Err(EncodeError::PayloadTooLarge { length });
        }
        if let Some(bad) = self.entries.iter().find(|e| e.id.to_u32() > 0x00ff_ffff) {
            return Err(EncodeError::SettingIdTooLarge(bad.id.to_u32()));
        }
        dst.reserve(8 + length);
        Head::Control {
            version: version.wire_number(),
            kind: ControlType::Settings,
            flags: if self.clear_persisted {
                FLAG_CLEAR_SETTINGS
            } else {
                0
            },
            length: length as u32,
        }
        .encode(dst);
        dst.put_u32(self.entries.len() as u32);
        for entry in &self.entries {
            let id = entry.id.to_u32().to_be_bytes();
            if version.is_v2() {
                dst.put_slice(&[id[3], id[2], id[1], entry.flags()]);
            } else {
                dst.put_slice(&[entry.flags(), id[1], id[2], id[3]]);
            }
            dst.put_u32(entry.value);
        }
        Ok(())
    }
}
