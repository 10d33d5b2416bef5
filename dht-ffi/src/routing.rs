//! Routing-table export and import, for saving a node's contacts and
//! starting the next run from them.
//!
//! The text form has one contact per line: 40 hex digits of the node id, a
//! space, and the address as "ip:port" (`[ip]:port` for IPv6). Empty lines
//! and lines starting with '#' are ignored when parsing.

use std::ffi::c_char;
use std::net::SocketAddr;

use dht_core::{Contact, NodeId};

use crate::error::{kad_result, Failure};
use crate::key::{check_id_buffer, check_out_buffer, slice, write_id};
use crate::node::{kad_node, node_from_handle};

/// A list of contacts (node id + address): a snapshot of a routing table or
/// parsed from its text form. Owned by the caller; release with
/// kad_routing_table_free. Immutable.
pub struct kad_routing_table {
    contacts: Vec<Contact>,
    /// The text form followed by one NUL.
    text: Vec<u8>,
}

impl kad_routing_table {
    fn boxed(contacts: Vec<Contact>) -> *mut kad_routing_table {
        let mut text = String::new();
        for c in &contacts {
            text.push_str(&format!("{} {}\n", c.id.to_hex(), c.addr));
        }
        let mut text = text.into_bytes();
        text.push(0);
        Box::into_raw(Box::new(kad_routing_table { contacts, text }))
    }
}

fn parse(text: &[u8]) -> Result<Vec<Contact>, Failure> {
    let text = std::str::from_utf8(text).map_err(|e| {
        // Name the line, as for every other malformed line, and the byte.
        let at = e.valid_up_to();
        let before = &text[..at];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        Failure::new(
            kad_result::KAD_INVALID_ARGUMENT,
            format!(
                "routing table line {line}: not UTF-8 (byte {} of the line, {at} of the text)",
                at - line_start + 1
            ),
        )
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |why: &str| {
            Failure::new(
                kad_result::KAD_INVALID_ARGUMENT,
                format!("routing table line {}: {why}: {line:?}", i + 1),
            )
        };
        let mut parts = line.split_whitespace();
        let (Some(id), Some(addr), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("want `<40 hex digits> <ip:port>`"));
        };
        let id = NodeId::from_hex(id).ok_or_else(|| bad("bad node id"))?;
        let addr: SocketAddr = addr.parse().map_err(|_| bad("bad address"))?;
        out.push(Contact { id, addr });
    }
    Ok(out)
}

/// Snapshot the node's whole routing table into `*table_out` (a new object
/// the caller owns).
#[no_mangle]
pub unsafe extern "C" fn kad_node_export_routing_table(
    node: *const kad_node,
    table_out: *mut *mut kad_routing_table,
) -> kad_result {
    ffi_panic_boundary! {
        check_out!(table_out);
        let n = try_ffi!(node_from_handle(node));
        // SAFETY: out-parameter checked non-NULL above.
        unsafe { *table_out = kad_routing_table::boxed(n.contacts()) };
        kad_result::KAD_OK
    }
}

/// Add the contacts of `table` to the node's routing table (they are
/// checked by the node as usual). Contacts this node can never reach are
/// skipped: port 0, unspecified or multicast addresses, and addresses of
/// another IP family than the node's socket (IPv6 on a node bound to an
/// IPv4 address), as kad_node_ping refuses them. `*added_out` (may be NULL)
/// receives how many were new (skipped ones are not counted). Follow with
/// kad_node_bootstrap (addrs_len 0 is fine) to refresh them.
#[no_mangle]
pub unsafe extern "C" fn kad_node_import_routing_table(
    node: *mut kad_node,
    table: *const kad_routing_table,
    added_out: *mut usize,
) -> kad_result {
    ffi_panic_boundary! {
        let table = try_ref!(table);
        let n = try_ffi!(node_from_handle(node));
        // The node skips what it cannot reach (another IP family, port 0,
        // unspecified and multicast addresses).
        let added = n.import_contacts(&table.contacts);
        if !added_out.is_null() {
            // SAFETY: non-NULL out-parameter from the caller.
            unsafe { *added_out = added };
        }
        kad_result::KAD_OK
    }
}

/// Number of contacts in `table` (0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn kad_routing_table_len(table: *const kad_routing_table) -> usize {
    ffi_panic_boundary! {
        if table.is_null() {
            return 0;
        }
        // SAFETY: non-NULL table from the library, per the contract.
        unsafe { (*table).contacts.len() }
    }
}

/// Copy contact number `index` of `table`: its id into `id_out`
/// (`id_out_len` >= KAD_ID_LEN) and its address as a NUL-terminated
/// "ip:port" string into `addr_out` (`addr_out_len` bytes; 64 always
/// suffice). KAD_INVALID_ARGUMENT for `index` >= kad_routing_table_len,
/// KAD_BUFFER_TOO_SMALL for short buffers (nothing is written then).
#[no_mangle]
pub unsafe extern "C" fn kad_routing_table_contact(
    table: *const kad_routing_table,
    index: usize,
    id_out: *mut u8,
    id_out_len: usize,
    addr_out: *mut c_char,
    addr_out_len: usize,
) -> kad_result {
    ffi_panic_boundary! {
        let table = try_ref!(table);
        try_ffi!(check_id_buffer(id_out, id_out_len));
        try_ffi!(check_out_buffer(addr_out, addr_out_len, "argument `addr_out`"));
        let Some(c) = table.contacts.get(index) else {
            return Failure::new(
                kad_result::KAD_INVALID_ARGUMENT,
                format!("index {index} out of range (table has {})", table.contacts.len()),
            )
            .report();
        };
        let addr = c.addr.to_string();
        if addr.len() >= addr_out_len {
            return Failure::new(
                kad_result::KAD_BUFFER_TOO_SMALL,
                format!("address needs {} bytes, the buffer has {addr_out_len}", addr.len() + 1),
            )
            .report();
        }
        // SAFETY: both buffers checked above; addr.len() + 1 <= addr_out_len.
        unsafe {
            write_id(&c.id, id_out, id_out_len);
            std::ptr::copy_nonoverlapping(addr.as_ptr(), addr_out.cast::<u8>(), addr.len());
            *addr_out.add(addr.len()) = 0;
        }
        kad_result::KAD_OK
    }
}

/// Borrow the text form of `table` (see the format in kad_routing_table_parse).
/// `*data_out` points into `table`, stays valid until kad_routing_table_free,
/// and is followed by a NUL not counted in `*len_out`.
#[no_mangle]
pub unsafe extern "C" fn kad_routing_table_serialize(
    table: *const kad_routing_table,
    data_out: *mut *const u8,
    len_out: *mut usize,
) -> kad_result {
    ffi_panic_boundary! {
        let table = try_ref!(table);
        check_out!(data_out);
        check_out!(len_out);
        // SAFETY: out-parameters checked non-NULL above.
        unsafe {
            *data_out = table.text.as_ptr();
            *len_out = table.text.len() - 1;
        }
        kad_result::KAD_OK
    }
}

/// Parse the text form of a routing table (`len` bytes at `data`; NULL is
/// fine with `len` 0): one contact per line, "<40 hex digits> <ip:port>",
/// IPv6 as `[ip]:port`; empty lines and lines starting with '#' are ignored.
/// On success `*table_out` receives a new table the caller owns.
/// KAD_INVALID_ARGUMENT (the detail names the line) for malformed text,
/// also for text that is not UTF-8 (the detail names the line and byte).
#[no_mangle]
pub unsafe extern "C" fn kad_routing_table_parse(
    data: *const u8,
    len: usize,
    table_out: *mut *mut kad_routing_table,
) -> kad_result {
    ffi_panic_boundary! {
        check_out!(table_out);
        // SAFETY: the caller provides `len` readable bytes.
        let text = try_ffi!(unsafe { slice(data, len, "data") });
        let contacts = try_ffi!(parse(text));
        // SAFETY: out-parameter checked non-NULL above.
        unsafe { *table_out = kad_routing_table::boxed(contacts) };
        kad_result::KAD_OK
    }
}

/// Release a table. NULL is ignored; freeing twice is undefined behaviour.
#[no_mangle]
pub unsafe extern "C" fn kad_routing_table_free(table: *mut kad_routing_table) {
    ffi_panic_boundary! {
        if !table.is_null() {
            // SAFETY: from Box::into_raw in kad_routing_table::boxed; ownership ends here.
            drop(unsafe { Box::from_raw(table) });
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn text_form_round_trips() {
        let a = Contact {
            id: NodeId::digest(b"a"),
            addr: "127.0.0.1:4000".parse().unwrap(),
        };
        let b = Contact {
            id: NodeId::digest(b"b"),
            addr: "[::1]:5".parse().unwrap(),
        };
        let t = kad_routing_table::boxed(vec![a, b]);
        let table = unsafe { Box::from_raw(t) };
        let text = &table.text[..table.text.len() - 1];
        let back = parse(text).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!((back[0].id, back[0].addr), (a.id, a.addr));
        assert_eq!((back[1].id, back[1].addr), (b.id, b.addr));
    }

    #[test]
    fn malformed_lines_are_refused_with_their_number() {
        let e = parse(b"# saved\n\nzz 127.0.0.1:1\n").unwrap_err();
        assert_eq!(e.code, kad_result::KAD_INVALID_ARGUMENT);
        assert!(e.detail.contains("line 3"), "{}", e.detail);
        let id = NodeId::digest(b"x").to_hex();
        assert!(parse(format!("{id} nowhere\n").as_bytes()).is_err());
        assert!(parse(format!("{id}\n").as_bytes()).is_err());
        assert_eq!(
            parse(format!("{id} 10.0.0.1:9\n").as_bytes())
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn text_that_is_not_utf8_is_refused_with_its_line() {
        let id = NodeId::digest(b"x").to_hex();
        let mut text = format!("# saved\n{id} 10.0.0.1:9\n{id} 10.0.0.").into_bytes();
        text.push(0xff);
        text.extend_from_slice(b"2:9\n");
        let e = parse(&text).unwrap_err();
        assert_eq!(e.code, kad_result::KAD_INVALID_ARGUMENT);
        assert!(
            e.detail
                .starts_with("routing table line 3: not UTF-8 (byte 49 of the line"),
            "{}",
            e.detail
        );
    }
}
