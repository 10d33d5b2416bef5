//! A node learns its public address from the observed-address trailers of
//! its peers' answers (`wire::trailers`, `public_address.rs`): once two peer
//! IPs agree, never from a single lying peer, and not from a reply to the
//! wrong address. Run with `--nocapture` for the figures:
//! `cargo test -p dht-core --release --test public_address -- --nocapture`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dht_core::rpc::Transmit;
use dht_core::sim::Simulation;
use dht_core::wire::{self, Response};
use dht_core::{Config, Node, NodeId, Protocol};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Ping `to` from `p` and return the request's message id.
fn ping(p: &mut Protocol, now: Instant, to: SocketAddr) -> wire::MsgId {
    p.ping(now, to);
    let sent: Vec<Transmit> = std::iter::from_fn(|| p.poll_transmit())
        .filter(|t| t.dest == to)
        .collect();
    assert_eq!(sent.len(), 1);
    let packet = wire::split_packet(&sent[0].payload).unwrap();
    assert!(wire::is_kadmium_id(&packet.id), "kadmium marks its own ids");
    packet.id
}

/// A ping answer from a node with id `id` that saw us at `observed`
/// (`None`: a Python peer, no trailer).
fn pong(msg_id: &wire::MsgId, id: NodeId, observed: Option<SocketAddr>) -> Vec<u8> {
    let mut reply = wire::encode_response(msg_id, &Response::Ping(id));
    if let Some(observed) = observed {
        wire::append_observed(&mut reply, &observed);
    }
    reply
}

#[test]
fn two_agreeing_peers_set_the_address_and_one_liar_cannot() {
    let now = Instant::now();
    let mut p = Protocol::new(Config::default().with_rng_seed(3), now).unwrap();
    let me = addr("203.0.113.9:4000");
    let lie = addr("198.51.100.66:6666");
    let (honest_b, honest_c) = (addr("192.0.2.1:4000"), addr("192.0.2.2:4000"));
    let id = |b: u8| NodeId([b; 20]);

    // The liar answers first, from many ports of its one IP.
    let mut liar_replies = 0;
    for port in 1..=500u16 {
        let from = SocketAddr::new(addr("198.51.100.66:1").ip(), port);
        let msg = ping(&mut p, now, from);
        p.handle_datagram(now, from, &pong(&msg, id(66), Some(lie)));
        liar_replies += 1;
    }
    assert_eq!(p.stats().public_address, None, "one IP, one vote");

    // One honest peer: still no two IPs agree.
    let msg = ping(&mut p, now, honest_b);
    p.handle_datagram(now, honest_b, &pong(&msg, id(1), Some(me)));
    assert_eq!(p.stats().public_address, None);

    // A reply with a trailer from an address the ping did not go to is
    // dropped (rpc ids are matched with the address): no vote.
    let msg = ping(&mut p, now, honest_c);
    let dropped = p.stats().datagrams_dropped;
    let spoofer = addr("192.0.2.200:4000");
    p.handle_datagram(now, spoofer, &pong(&msg, id(2), Some(me)));
    assert_eq!(p.stats().datagrams_dropped, dropped + 1);
    assert_eq!(p.stats().public_address, None);

    // A Python peer's answer (no trailer) is a normal answer and no vote.
    let python = addr("192.0.2.3:8468");
    let msg_py = ping(&mut p, now, python);
    let responses = p.stats().responses_received;
    p.handle_datagram(now, python, &pong(&msg_py, id(3), None));
    assert_eq!(p.stats().responses_received, responses + 1);
    assert_eq!(p.stats().public_address, None);

    // The second honest IP agrees: the address is known.
    p.handle_datagram(now, honest_c, &pong(&msg, id(2), Some(me)));
    assert_eq!(p.stats().public_address, Some(me));
    println!(
        "public address: {} liar replies from 1 IP vs 2 honest IPs -> {:?} (liar's {lie} ignored)",
        liar_replies,
        p.stats().public_address
    );
}

#[test]
fn every_node_of_a_simulated_network_learns_its_address() {
    let nodes = 200;
    let mut sim = Simulation::new(9, (Duration::from_millis(5), Duration::from_millis(40)));
    for _ in 0..nodes {
        sim.add_node(Config::default()).unwrap();
    }
    assert_eq!(sim.join_network(20, Duration::from_secs(60)), 0);
    // Node 0 only answered during the joins (a full bucket's head is not
    // pinged while fresh: `Config::contact_fresh_for`); its hourly bucket
    // refresh asks others, at the first maintenance tick past the hour.
    let config = Config::default();
    sim.run_for(config.refresh_interval + 2 * config.maintenance_interval);
    let (mut right, mut wrong, mut unknown) = (0, 0, 0);
    for i in 0..nodes {
        match sim.protocol(i).stats().public_address {
            Some(a) if a == sim.addr(i) => right += 1,
            Some(_) => wrong += 1,
            None => {
                unknown += 1;
                let s = sim.protocol(i).stats();
                eprintln!(
                    "node {i}: rpcs_sent {} responses {} contacts {}",
                    s.rpcs_sent, s.responses_received, s.contacts
                );
            }
        }
    }
    println!("simulated {nodes} nodes: {right} learned their address, {wrong} a wrong one, {unknown} none");
    assert_eq!((right, wrong, unknown), (nodes, 0, 0));
}

/// Over real UDP on loopback: peers on 127.0.0.2 and 127.0.0.3 tell a node
/// on 127.0.0.1 where its datagrams come from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_on_loopback_learn_their_address_from_two_peer_ips() {
    let config = |ip: &str| {
        Config::default()
            .with_bind(addr(&format!("{ip}:0")))
            .with_rpc_timeout(Duration::from_secs(2))
    };
    let b = Node::bind(config("127.0.0.2")).await.unwrap();
    let c = Node::bind(config("127.0.0.3")).await.unwrap();
    let a = Node::bind(config("127.0.0.1")).await.unwrap();
    assert_eq!(a.public_address(), None);
    a.bootstrap(&[b.local_addr()]).await.unwrap();
    assert_eq!(a.public_address(), None, "one peer IP is not enough");
    a.bootstrap(&[c.local_addr()]).await.unwrap();
    assert_eq!(a.public_address(), Some(a.local_addr()));
    for n in [a, b, c] {
        n.shutdown_and_wait().await;
    }
}
