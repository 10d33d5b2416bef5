//! The VoidPhone DHT API wire format: four message types, a 4-byte header,
//! and an incremental frame decoder for a TCP byte stream.
//!
//! Every message starts with `size:u16` (total length *including* the
//! header) and `type:u16`, both big-endian:
//!
//! | type | name    | size              | body after the header                                   |
//! |------|---------|-------------------|---------------------------------------------------------|
//! | 650  | PUT     | 40 + len(value)   | `ttl:u16`, `replication:u8`, `reserved:u8`, `key[32]`, `value` |
//! | 651  | GET     | 36                | `key[32]`                                               |
//! | 652  | SUCCESS | 36 + len(value)   | `key[32]`, `value`                                      |
//! | 653  | FAILURE | 36                | `key[32]`                                               |
//!
//! The decoder validates a message as soon as its header has arrived, so a
//! peer announcing a bogus message is rejected without waiting for (or
//! buffering) a body that will never be used.

use std::fmt;

/// `DHT PUT`, client → DHT.
pub const MSG_DHT_PUT: u16 = 650;
/// `DHT GET`, client → DHT.
pub const MSG_DHT_GET: u16 = 651;
/// `DHT SUCCESS`, DHT → client.
pub const MSG_DHT_SUCCESS: u16 = 652;
/// `DHT FAILURE`, DHT → client.
pub const MSG_DHT_FAILURE: u16 = 653;

/// Length of the `size` + `type` header.
pub const HEADER_LEN: usize = 4;
/// API keys are exactly 32 opaque bytes.
pub const KEY_LEN: usize = 32;
/// Largest message the 16-bit size field can describe.
pub const MAX_MESSAGE_LEN: usize = u16::MAX as usize;
/// Size of a PUT without its value (header, ttl, replication, reserved, key).
pub const PUT_FIXED_LEN: usize = HEADER_LEN + 4 + KEY_LEN;
/// Size of a GET, of a FAILURE, and of a SUCCESS without its value.
pub const KEY_MESSAGE_LEN: usize = HEADER_LEN + KEY_LEN;
/// Largest value a PUT can carry (65 495 bytes).
pub const MAX_PUT_VALUE_LEN: usize = MAX_MESSAGE_LEN - PUT_FIXED_LEN;
/// Largest value a SUCCESS can carry (65 499 bytes).
pub const MAX_SUCCESS_VALUE_LEN: usize = MAX_MESSAGE_LEN - KEY_MESSAGE_LEN;

/// A 32-byte VoidPhone key.
pub type ApiKey = [u8; KEY_LEN];

/// One decoded message of any of the four types.
#[derive(Clone, PartialEq, Eq)]
pub enum Message {
    Put(Put),
    Get { key: ApiKey },
    Success { key: ApiKey, value: Vec<u8> },
    Failure { key: ApiKey },
}

/// The body of a `DHT PUT`.
#[derive(Clone, PartialEq, Eq)]
pub struct Put {
    /// Seconds to keep the value; 0 is read as "the node's default".
    pub ttl: u16,
    /// Number of copies wanted; 0 is read as "the node's default".
    pub replication: u8,
    pub key: ApiKey,
    /// Never empty (the decoder rejects empty PUTs).
    pub value: Vec<u8>,
}

/// Why a byte stream is not a valid sequence of API messages. Each of these
/// makes the server close the connection.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("unknown message type {msg_type} (size {size})")]
    UnknownType { msg_type: u16, size: u16 },
    #[error("message size {size} is smaller than the {HEADER_LEN}-byte header (type {msg_type})")]
    SizeBelowHeader { msg_type: u16, size: u16 },
    #[error("{name} message of size {size} is shorter than its minimum of {min} bytes")]
    TooShort {
        name: &'static str,
        size: u16,
        min: usize,
    },
    #[error("{name} message has size {size}, expected exactly {expected}")]
    WrongSize {
        name: &'static str,
        size: u16,
        expected: usize,
    },
    #[error("PUT with an empty value (empty values are not allowed)")]
    EmptyPut,
    #[error("{name} (type {msg_type}) is sent by the DHT, not by clients")]
    UnexpectedDirection { name: &'static str, msg_type: u16 },
    /// A PUT has no reply, so closing the connection is the only way to say
    /// the value will not be stored.
    #[error("PUT value of {size} bytes is over the node's limit of {max} bytes")]
    ValueOverLimit { size: usize, max: usize },
}

/// Why a message cannot be encoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("value of {len} bytes does not fit one message (maximum {max})")]
    ValueTooLarge { len: usize, max: usize },
    #[error("empty values are not allowed in a PUT")]
    EmptyValue,
}

/// The name of a message type, for logs and errors.
pub fn type_name(msg_type: u16) -> &'static str {
    match msg_type {
        MSG_DHT_PUT => "DHT PUT",
        MSG_DHT_GET => "DHT GET",
        MSG_DHT_SUCCESS => "DHT SUCCESS",
        MSG_DHT_FAILURE => "DHT FAILURE",
        _ => "unknown",
    }
}

/// Check a header on its own: is this a message we could ever accept?
/// `max_put_value`: the largest PUT value the receiver stores.
fn validate_header(size: u16, msg_type: u16, max_put_value: usize) -> Result<(), ProtocolError> {
    let name = type_name(msg_type);
    let (min, exact) = match msg_type {
        MSG_DHT_PUT => (PUT_FIXED_LEN, false),
        MSG_DHT_GET | MSG_DHT_FAILURE => (KEY_MESSAGE_LEN, true),
        MSG_DHT_SUCCESS => (KEY_MESSAGE_LEN, false),
        _ => return Err(ProtocolError::UnknownType { msg_type, size }),
    };
    let len = usize::from(size);
    if len < HEADER_LEN {
        return Err(ProtocolError::SizeBelowHeader { msg_type, size });
    }
    if exact && len != min {
        return Err(ProtocolError::WrongSize {
            name,
            size,
            expected: min,
        });
    }
    if len < min {
        return Err(ProtocolError::TooShort { name, size, min });
    }
    if msg_type == MSG_DHT_PUT && len == PUT_FIXED_LEN {
        return Err(ProtocolError::EmptyPut);
    }
    if msg_type == MSG_DHT_PUT && len - PUT_FIXED_LEN > max_put_value {
        return Err(ProtocolError::ValueOverLimit {
            size: len - PUT_FIXED_LEN,
            max: max_put_value,
        });
    }
    Ok(())
}

fn key_at(frame: &[u8], at: usize) -> ApiKey {
    let mut key = [0u8; KEY_LEN];
    key.copy_from_slice(&frame[at..at + KEY_LEN]);
    key
}

/// Decode one complete, header-validated frame.
fn decode_frame(msg_type: u16, frame: &[u8]) -> Message {
    match msg_type {
        MSG_DHT_PUT => Message::Put(Put {
            ttl: u16::from_be_bytes([frame[4], frame[5]]),
            replication: frame[6],
            // frame[7] is `reserved`: written as 0, ignored on read.
            key: key_at(frame, 8),
            value: frame[PUT_FIXED_LEN..].to_vec(),
        }),
        MSG_DHT_GET => Message::Get {
            key: key_at(frame, HEADER_LEN),
        },
        MSG_DHT_SUCCESS => Message::Success {
            key: key_at(frame, HEADER_LEN),
            value: frame[KEY_MESSAGE_LEN..].to_vec(),
        },
        _ => Message::Failure {
            key: key_at(frame, HEADER_LEN),
        },
    }
}

/// Incremental decoder: feed it whatever `read` returned, then take out
/// complete messages. Handles messages split over many reads and many
/// messages in one read.
///
/// Once it has returned an error the stream is out of sync for good; the
/// caller is expected to drop the connection (later calls repeat the error).
pub struct FrameDecoder {
    buf: Vec<u8>,
    /// Bytes of `buf` already consumed; compacted lazily so that many small
    /// messages in one read cost linear, not quadratic, copying.
    start: usize,
    failed: Option<ProtocolError>,
    /// A PUT announcing a longer value is refused from its header.
    max_put_value: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::with_max_put_value(MAX_PUT_VALUE_LEN)
    }
}

impl FrameDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// A decoder that refuses, as soon as its header is in, a PUT whose
    /// value would be longer than `max` bytes (the node's value limit): the
    /// body of a value that will not be stored is neither awaited nor
    /// buffered ([`ProtocolError::ValueOverLimit`]).
    pub fn with_max_put_value(max: usize) -> Self {
        FrameDecoder {
            buf: Vec::new(),
            start: 0,
            failed: None,
            max_put_value: max,
        }
    }

    /// Append bytes received from the stream.
    pub fn extend(&mut self, data: &[u8]) {
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Bytes received but not yet returned as messages.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next complete message, `Ok(None)` if more bytes are needed.
    /// The header is validated as soon as its 4 bytes are present.
    pub fn next_message(&mut self) -> Result<Option<Message>, ProtocolError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let pending = &self.buf[self.start..];
        if pending.len() < HEADER_LEN {
            return Ok(None);
        }
        let size = u16::from_be_bytes([pending[0], pending[1]]);
        let msg_type = u16::from_be_bytes([pending[2], pending[3]]);
        if let Err(err) = validate_header(size, msg_type, self.max_put_value) {
            self.failed = Some(err.clone());
            return Err(err);
        }
        let len = usize::from(size);
        if pending.len() < len {
            return Ok(None);
        }
        let message = decode_frame(msg_type, &pending[..len]);
        self.start += len;
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        Ok(Some(message))
    }
}

/// Decode exactly one message from a complete buffer (tests, tools).
pub fn decode(bytes: &[u8]) -> Result<Option<(Message, usize)>, ProtocolError> {
    let mut decoder = FrameDecoder::new();
    decoder.extend(bytes);
    let before = decoder.buffered();
    Ok(decoder
        .next_message()?
        .map(|m| (m, before - decoder.buffered())))
}

fn header(out: &mut Vec<u8>, len: usize, msg_type: u16) {
    // Callers check `len <= MAX_MESSAGE_LEN` first.
    let size = u16::try_from(len).unwrap_or(u16::MAX);
    out.extend_from_slice(&size.to_be_bytes());
    out.extend_from_slice(&msg_type.to_be_bytes());
}

/// Encode a `DHT PUT` (`reserved` written as 0).
pub fn encode_put(
    ttl: u16,
    replication: u8,
    key: &ApiKey,
    value: &[u8],
) -> Result<Vec<u8>, EncodeError> {
    if value.is_empty() {
        return Err(EncodeError::EmptyValue);
    }
    if value.len() > MAX_PUT_VALUE_LEN {
        return Err(EncodeError::ValueTooLarge {
            len: value.len(),
            max: MAX_PUT_VALUE_LEN,
        });
    }
    let len = PUT_FIXED_LEN + value.len();
    let mut out = Vec::with_capacity(len);
    header(&mut out, len, MSG_DHT_PUT);
    out.extend_from_slice(&ttl.to_be_bytes());
    out.push(replication);
    out.push(0);
    out.extend_from_slice(key);
    out.extend_from_slice(value);
    Ok(out)
}

/// Encode a `DHT GET`.
pub fn encode_get(key: &ApiKey) -> Vec<u8> {
    key_message(MSG_DHT_GET, key)
}

/// Encode a `DHT SUCCESS`. An empty value is representable here (a value
/// stored through another interface may be empty), so it is allowed.
pub fn encode_success(key: &ApiKey, value: &[u8]) -> Result<Vec<u8>, EncodeError> {
    if value.len() > MAX_SUCCESS_VALUE_LEN {
        return Err(EncodeError::ValueTooLarge {
            len: value.len(),
            max: MAX_SUCCESS_VALUE_LEN,
        });
    }
    let len = KEY_MESSAGE_LEN + value.len();
    let mut out = Vec::with_capacity(len);
    header(&mut out, len, MSG_DHT_SUCCESS);
    out.extend_from_slice(key);
    out.extend_from_slice(value);
    Ok(out)
}

/// Encode a `DHT FAILURE`.
pub fn encode_failure(key: &ApiKey) -> Vec<u8> {
    key_message(MSG_DHT_FAILURE, key)
}

fn key_message(msg_type: u16, key: &ApiKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(KEY_MESSAGE_LEN);
    header(&mut out, KEY_MESSAGE_LEN, msg_type);
    out.extend_from_slice(key);
    out
}

impl Message {
    /// The wire type of this message.
    pub fn msg_type(&self) -> u16 {
        match self {
            Message::Put(_) => MSG_DHT_PUT,
            Message::Get { .. } => MSG_DHT_GET,
            Message::Success { .. } => MSG_DHT_SUCCESS,
            Message::Failure { .. } => MSG_DHT_FAILURE,
        }
    }

    /// The 32-byte key every message carries.
    pub fn key(&self) -> &ApiKey {
        match self {
            Message::Put(put) => &put.key,
            Message::Get { key } | Message::Success { key, .. } | Message::Failure { key } => key,
        }
    }

    /// Encode to wire bytes.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        match self {
            Message::Put(p) => encode_put(p.ttl, p.replication, &p.key, &p.value),
            Message::Get { key } => Ok(encode_get(key)),
            Message::Success { key, value } => encode_success(key, value),
            Message::Failure { key } => Ok(encode_failure(key)),
        }
    }
}

/// Short hex prefix of a key for logs.
pub struct KeyDisplay<'a>(pub &'a ApiKey);

impl fmt::Display for KeyDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        f.write_str("…")
    }
}

// Values can be 64 KiB; logs show their length, not their bytes.
impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Message::Put(p) => p.fmt(f),
            Message::Get { key } => write!(f, "Get {{ key: {} }}", KeyDisplay(key)),
            Message::Success { key, value } => {
                write!(
                    f,
                    "Success {{ key: {}, value: {} bytes }}",
                    KeyDisplay(key),
                    value.len()
                )
            }
            Message::Failure { key } => write!(f, "Failure {{ key: {} }}", KeyDisplay(key)),
        }
    }
}

impl fmt::Debug for Put {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Put {{ ttl: {}, replication: {}, key: {}, value: {} bytes }}",
            self.ttl,
            self.replication,
            KeyDisplay(&self.key),
            self.value.len()
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn key(b: u8) -> ApiKey {
        [b; KEY_LEN]
    }

    fn raw(size: u16, msg_type: u16, body: &[u8]) -> Vec<u8> {
        let mut v = size.to_be_bytes().to_vec();
        v.extend_from_slice(&msg_type.to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn course_client_example_put_is_byte_exact() {
        // From the course client: key "lolz"*8, value b"bernd", ttl 1, replication 1.
        let k: ApiKey = b"lolzlolzlolzlolzlolzlolzlolzlolz".to_owned();
        let bytes = encode_put(1, 1, &k, b"bernd").unwrap();
        let mut expected = vec![0x00, 0x2d, 0x02, 0x8a, 0x00, 0x01, 0x01, 0x00];
        expected.extend_from_slice(&k);
        expected.extend_from_slice(b"bernd");
        assert_eq!(bytes, expected);
        assert_eq!(bytes.len(), 45);
        let (msg, used) = decode(&bytes).unwrap().unwrap();
        assert_eq!(used, 45);
        assert_eq!(
            msg,
            Message::Put(Put {
                ttl: 1,
                replication: 1,
                key: k,
                value: b"bernd".to_vec()
            })
        );
    }

    #[test]
    fn round_trip_every_type() {
        let msgs = [
            Message::Put(Put {
                ttl: 300,
                replication: 4,
                key: key(1),
                value: vec![9; 1000],
            }),
            Message::Get { key: key(2) },
            Message::Success {
                key: key(3),
                value: b"v".to_vec(),
            },
            Message::Success {
                key: key(3),
                value: Vec::new(),
            },
            Message::Failure { key: key(4) },
        ];
        for m in msgs {
            let bytes = m.encode().unwrap();
            assert_eq!(
                usize::from(u16::from_be_bytes([bytes[0], bytes[1]])),
                bytes.len()
            );
            assert_eq!(u16::from_be_bytes([bytes[2], bytes[3]]), m.msg_type());
            let (back, used) = decode(&bytes).unwrap().unwrap();
            assert_eq!(used, bytes.len());
            assert_eq!(back, m);
        }
        assert_eq!(encode_get(&key(0)).len(), 36);
        assert_eq!(encode_failure(&key(0)).len(), 36);
    }

    #[test]
    fn reserved_byte_is_ignored() {
        let mut bytes = encode_put(5, 0, &key(7), b"x").unwrap();
        bytes[7] = 0xff;
        let (msg, _) = decode(&bytes).unwrap().unwrap();
        assert_eq!(
            msg,
            Message::Put(Put {
                ttl: 5,
                replication: 0,
                key: key(7),
                value: b"x".to_vec()
            })
        );
    }

    #[test]
    fn split_byte_by_byte_and_coalesced() {
        let mut stream = Vec::new();
        stream.extend(encode_put(1, 2, &key(1), b"hello").unwrap());
        stream.extend(encode_get(&key(1)));
        stream.extend(encode_success(&key(2), &[7; 300]).unwrap());
        stream.extend(encode_failure(&key(3)));

        // One byte at a time.
        let mut d = FrameDecoder::new();
        let mut got = Vec::new();
        for b in &stream {
            d.extend(std::slice::from_ref(b));
            while let Some(m) = d.next_message().unwrap() {
                got.push(m);
            }
        }
        assert_eq!(got.len(), 4);
        assert_eq!(d.buffered(), 0);

        // All at once.
        let mut d = FrameDecoder::new();
        d.extend(&stream);
        let mut all = Vec::new();
        while let Some(m) = d.next_message().unwrap() {
            all.push(m);
        }
        assert_eq!(all, got);

        // Uneven chunks straddling message boundaries.
        for chunk in [3, 7, 37, 41, 100] {
            let mut d = FrameDecoder::new();
            let mut out = Vec::new();
            for part in stream.chunks(chunk) {
                d.extend(part);
                while let Some(m) = d.next_message().unwrap() {
                    out.push(m);
                }
            }
            assert_eq!(out, got, "chunk size {chunk}");
        }
    }

    #[test]
    fn partial_header_and_body_wait_for_more() {
        let bytes = encode_get(&key(5));
        let mut d = FrameDecoder::new();
        d.extend(&bytes[..3]);
        assert_eq!(d.next_message().unwrap(), None);
        d.extend(&bytes[3..20]);
        assert_eq!(d.next_message().unwrap(), None);
        d.extend(&bytes[20..]);
        assert_eq!(
            d.next_message().unwrap(),
            Some(Message::Get { key: key(5) })
        );
        assert_eq!(d.next_message().unwrap(), None);
    }

    #[test]
    fn rejects_unknown_type_from_header_alone() {
        let mut d = FrameDecoder::new();
        d.extend(&raw(36, 654, &[]));
        assert_eq!(
            d.next_message(),
            Err(ProtocolError::UnknownType {
                msg_type: 654,
                size: 36
            })
        );
        // The decoder stays failed.
        d.extend(&encode_get(&key(1)));
        assert!(d.next_message().is_err());
        assert!(matches!(
            decode(&raw(4, 500, &[])),
            Err(ProtocolError::UnknownType { msg_type: 500, .. })
        ));
    }

    #[test]
    fn rejects_sizes_below_minimum() {
        for size in 0..4 {
            assert_eq!(
                decode(&raw(size, MSG_DHT_PUT, &[0; 64])),
                Err(ProtocolError::SizeBelowHeader {
                    msg_type: MSG_DHT_PUT,
                    size
                })
            );
        }
        assert_eq!(
            decode(&raw(39, MSG_DHT_PUT, &[0; 64])),
            Err(ProtocolError::TooShort {
                name: "DHT PUT",
                size: 39,
                min: 40
            })
        );
        assert_eq!(
            decode(&raw(20, MSG_DHT_SUCCESS, &[0; 64])),
            Err(ProtocolError::TooShort {
                name: "DHT SUCCESS",
                size: 20,
                min: 36
            })
        );
    }

    #[test]
    fn rejects_get_and_failure_of_wrong_size() {
        for size in [4, 35, 37, 100, 65535] {
            assert_eq!(
                decode(&raw(size, MSG_DHT_GET, &[0; 40])),
                Err(ProtocolError::WrongSize {
                    name: "DHT GET",
                    size,
                    expected: 36
                })
            );
        }
        assert_eq!(
            decode(&raw(37, MSG_DHT_FAILURE, &[0; 40])),
            Err(ProtocolError::WrongSize {
                name: "DHT FAILURE",
                size: 37,
                expected: 36
            })
        );
    }

    #[test]
    fn rejects_empty_put() {
        let mut body = vec![0, 1, 1, 0];
        body.extend_from_slice(&key(1));
        assert_eq!(
            decode(&raw(40, MSG_DHT_PUT, &body)),
            Err(ProtocolError::EmptyPut)
        );
        assert_eq!(encode_put(1, 1, &key(1), b""), Err(EncodeError::EmptyValue));
    }

    #[test]
    fn rejects_a_put_over_the_value_limit_from_its_header_alone() {
        let mut d = FrameDecoder::with_max_put_value(100);
        d.extend(&raw(141, MSG_DHT_PUT, &[]));
        assert_eq!(
            d.next_message(),
            Err(ProtocolError::ValueOverLimit {
                size: 101,
                max: 100
            })
        );
        let mut d = FrameDecoder::with_max_put_value(100);
        let at_limit = encode_put(1, 1, &key(1), &[7; 100]).unwrap();
        d.extend(&at_limit[..HEADER_LEN]);
        assert_eq!(
            d.next_message(),
            Ok(None),
            "at the limit: wait for the body"
        );
        d.extend(&at_limit[HEADER_LEN..]);
        assert!(matches!(d.next_message(), Ok(Some(Message::Put(_)))));
    }

    #[test]
    fn error_messages_name_the_reason() {
        let e = decode(&raw(37, MSG_DHT_GET, &[0; 40])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "DHT GET message has size 37, expected exactly 36"
        );
        let e = decode(&raw(36, 999, &[])).unwrap_err();
        assert_eq!(e.to_string(), "unknown message type 999 (size 36)");
        assert_eq!(
            ProtocolError::EmptyPut.to_string(),
            "PUT with an empty value (empty values are not allowed)"
        );
    }

    #[test]
    fn maximum_sizes() {
        let v = vec![1u8; MAX_PUT_VALUE_LEN];
        let bytes = encode_put(1, 1, &key(1), &v).unwrap();
        assert_eq!(bytes.len(), MAX_MESSAGE_LEN);
        assert_eq!(decode(&bytes).unwrap().unwrap().1, MAX_MESSAGE_LEN);
        assert!(matches!(
            encode_put(1, 1, &key(1), &[0; MAX_PUT_VALUE_LEN + 1]),
            Err(EncodeError::ValueTooLarge { .. })
        ));
        assert_eq!(
            encode_success(&key(1), &[0; MAX_SUCCESS_VALUE_LEN])
                .unwrap()
                .len(),
            65535
        );
        assert!(encode_success(&key(1), &[0; MAX_SUCCESS_VALUE_LEN + 1]).is_err());
    }

    #[test]
    fn compaction_keeps_stream_intact() {
        let mut d = FrameDecoder::new();
        let mut expected = Vec::new();
        let mut got = Vec::new();
        for i in 0..500u32 {
            let k = key((i % 251) as u8);
            let value = vec![(i % 256) as u8; (i % 90 + 1) as usize];
            let bytes = encode_success(&k, &value).unwrap();
            expected.push(Message::Success { key: k, value });
            // Feed each message in two halves so a partial frame is always pending.
            let (a, b) = bytes.split_at(bytes.len() / 2);
            d.extend(a);
            while let Some(m) = d.next_message().unwrap() {
                got.push(m);
            }
            d.extend(b);
        }
        while let Some(m) = d.next_message().unwrap() {
            got.push(m);
        }
        assert_eq!(got, expected);
    }
}
