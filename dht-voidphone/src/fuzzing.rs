//! The fuzz harness of the frame decoder, shared by the cargo-fuzz target in
//! `fuzz/` and the stable randomized test `tests/fuzz_smoke.rs`. Not part of
//! the API.
//!
//! The first input byte picks how the rest is cut into reads (1 to 256
//! bytes each), so messages split across reads are covered as much as
//! whole ones; the decoder fed piecewise must agree with one fed at once.

use crate::message::{FrameDecoder, Message, MAX_MESSAGE_LEN};

/// Decode `data` as an API byte stream; panics if an invariant breaks:
/// * piecewise and whole decoding give the same messages and the same error;
/// * every message encodes back to the bytes it came from (with the PUT's
///   ignored `reserved` byte written as 0);
/// * when the decoder asks for more bytes, it holds less than one message.
pub fn frames(data: &[u8]) {
    let Some((&cut, stream)) = data.split_first() else {
        return;
    };
    let whole = decode_all(stream, stream.len().max(1));
    let piecewise = decode_all(stream, usize::from(cut) + 1);
    assert_eq!(whole, piecewise, "piecewise decoding differs");

    let mut at = 0;
    for message in &whole.0 {
        let Ok(bytes) = message.encode() else {
            panic!("decoded {message:?} cannot be encoded");
        };
        let mut original = stream[at..at + bytes.len()].to_vec();
        if let Message::Put(_) = message {
            original[7] = 0;
        }
        assert_eq!(bytes, original, "{message:?} does not re-encode");
        at += bytes.len();
    }
}

/// Messages decoded, and the error that stopped decoding, if any.
type Decoded = (Vec<Message>, Option<crate::ProtocolError>);

fn decode_all(stream: &[u8], read_len: usize) -> Decoded {
    let mut decoder = FrameDecoder::new();
    let mut messages = Vec::new();
    for read in stream.chunks(read_len) {
        decoder.extend(read);
        loop {
            match decoder.next_message() {
                Ok(Some(message)) => messages.push(message),
                Ok(None) => break,
                Err(e) => return (messages, Some(e)),
            }
        }
        assert!(
            decoder.buffered() < MAX_MESSAGE_LEN,
            "{} bytes buffered waiting for one message",
            decoder.buffered()
        );
    }
    (messages, None)
}
