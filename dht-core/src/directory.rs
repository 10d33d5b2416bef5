//! A directory of the contacts of a whole network, by number: what lets a
//! simulation keep each node's id and address once, not once in every
//! routing table that holds it.
//!
//! In a simulation of 10⁶ nodes, each keeps a few hundred contacts, and
//! every contact is another simulated node: the same 26 bytes of id and
//! address copied into hundreds of tables. A table given a directory stores
//! a contact the directory lists as its number (see `stored_contact`); any
//! other contact (an id the directory does not list at that address, as an
//! attacker's would be) it stores in full, as a table without a directory
//! stores every contact. So a directory changes where a table keeps its
//! contacts, never which contacts it keeps.

use std::fmt::Debug;
use std::net::SocketAddr;

use crate::contact::Contact;

/// A numbering of contacts. Implementations must be consistent: the
/// contact listed as `n` is the one `number_of` maps to `n`, and never
/// changes.
pub trait ContactDirectory: Send + Sync + Debug {
    /// The number of `contact`, if the directory lists it (that id at that
    /// address). Numbers are below 2³¹; any other is treated as unlisted.
    fn number_of(&self, contact: &Contact) -> Option<u32>;

    /// The contact listed as `number` (a number `number_of` gave).
    fn contact(&self, number: u32) -> Contact;

    /// Its address alone: a table checks it for every datagram from a
    /// contact it holds, so a directory that can should answer it without
    /// working out the id.
    fn addr(&self, number: u32) -> SocketAddr {
        self.contact(number).addr
    }
}

/// A node's place in a directory: the directory, and the number it lists
/// the node as (so the node's id is the listed contact's, unless its
/// configuration names another).
#[derive(Clone, Debug)]
pub struct Listing {
    pub directory: std::sync::Arc<dyn ContactDirectory>,
    pub number: u32,
}
