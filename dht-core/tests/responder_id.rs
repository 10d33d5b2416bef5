//! A lookup's answers name their responder (the responder-id trailer,
//! `wire::trailers`), so a contact a lookup was told of by a third party
//! enters the routing table on its answer, without a verification ping of
//! its own. An answer naming someone else, or nobody (a Python peer, an
//! older kadmium), still gets the ping, and only the ping's answer admits it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use dht_core::rpc::Transmit;
use dht_core::wire::{self, Request, Response, FLAG_RESPONDER_ID};
use dht_core::{Config, Contact, NodeId, Protocol};

/// Port 4000 of a public address numbered `n`.
fn peer_addr(n: u32) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x0200_0000u32 + n)), 4000)
}

/// The requests the node sent, decoded, with their ids and destinations.
fn sent_requests(p: &mut Protocol) -> Vec<(SocketAddr, wire::MsgId, Request)> {
    std::iter::from_fn(|| p.poll_transmit())
        .filter_map(|Transmit { dest, payload }| {
            let packet = wire::split_packet(&payload).ok()?;
            (packet.kind == wire::REQUEST)
                .then(|| Some((dest, packet.id, wire::decode_request(packet.body).ok()?)))?
        })
        .collect()
}

#[test]
fn a_named_answer_spares_the_verification_ping_and_a_wrong_or_missing_name_does_not() {
    let now = Instant::now();
    let config = Config::default()
        .with_strict_local_limits(true)
        .with_rng_seed(5);
    let mut p = Protocol::new(config, now).unwrap();
    let me = peer_addr(0);
    let seed = Contact::new(NodeId::digest(b"seed"), peer_addr(1));

    // The seed asks us something, naming itself: it enters the table, and
    // our answer (to a request with the flag) names us.
    let ask = wire::kadmium_id_flagged(0, FLAG_RESPONDER_ID, [1; 11]);
    let find = Request::FindNode {
        sender: seed.id,
        target: NodeId::digest(b"anything"),
    };
    p.handle_datagram(now, seed.addr, &wire::encode_request(&ask, &find));
    let answer = p.poll_transmit().expect("an answer");
    let body = wire::split_packet(&answer.payload).unwrap().body;
    let (_, trailers) = wire::decode_response_with_trailers(wire::RpcKind::FindNode, body).unwrap();
    assert_eq!(trailers.responder, Some(p.id()), "our answer names us");
    assert!(p.routing().get(&seed.id).is_some());

    // A get asks the seed, which tells of three others.
    let named = Contact::new(NodeId::digest(b"named"), peer_addr(2));
    let liar = Contact::new(NodeId::digest(b"liar"), peer_addr(3));
    let silent = Contact::new(NodeId::digest(b"silent"), peer_addr(4));
    p.get(now, NodeId::digest(b"key"));
    let asked = sent_requests(&mut p);
    let (_, id, _) = asked
        .iter()
        .find(|(to, _, _)| *to == seed.addr)
        .expect("the seed was asked");
    assert_ne!(wire::flags_from_id(id) & FLAG_RESPONDER_ID, 0);
    let told = Response::Nodes(vec![named, liar, silent]);
    p.handle_datagram(now, seed.addr, &wire::encode_reply(id, &told, me, &seed.id));

    // Each of the three is asked (with the flag) and answers: one naming
    // itself, one naming another id, one naming nobody.
    let someone_else = NodeId::digest(b"someone else");
    for (to, id, request) in sent_requests(&mut p) {
        assert!(matches!(request, Request::FindValue { .. }), "{request:?}");
        assert_ne!(wire::flags_from_id(&id) & FLAG_RESPONDER_ID, 0);
        let empty = Response::Nodes(Vec::new());
        let reply = if to == named.addr {
            wire::encode_reply(&id, &empty, me, &named.id)
        } else if to == liar.addr {
            wire::encode_reply(&id, &empty, me, &someone_else)
        } else {
            assert_eq!(to, silent.addr);
            wire::encode_response(&id, &empty)
        };
        p.handle_datagram(now, to, &reply);
    }

    let pinged: Vec<SocketAddr> = sent_requests(&mut p)
        .into_iter()
        .filter(|(_, _, r)| matches!(r, Request::Ping { .. }))
        .map(|(to, _, _)| to)
        .collect();
    println!("verification pings after three answers: {pinged:?}");
    assert!(
        !pinged.contains(&named.addr),
        "the named answer needs no ping"
    );
    assert!(pinged.contains(&liar.addr) && pinged.contains(&silent.addr));
    let held = |p: &Protocol, id: &NodeId| p.routing().get(id).map(|e| e.contact.addr);
    assert_eq!(held(&p, &named.id), Some(named.addr));
    assert_eq!(held(&p, &liar.id), None, "a wrong name admits nobody");
    assert_eq!(held(&p, &someone_else), None);
    assert_eq!(
        held(&p, &silent.id),
        None,
        "not before its ping is answered"
    );
}
