//! Attacks on one node by a hostile peer, each printing its figure (issue 9).
//!
//! Most run a bare [`Protocol`] (or the simulator) in virtual time, so they
//! are deterministic: the attacker injects raw datagrams with
//! `handle_datagram` and reads what the victim sent back with
//! `poll_transmit`. Sources are public addresses (documentation and other
//! global ranges) so the per-IP limits apply; victims also set
//! `strict_local_limits`, which matters when the simulator's 10.x addresses
//! are involved. Run with `--nocapture` to see the figures:
//! `cargo test -p dht-core --release --test attacks -- --nocapture`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use dht_core::rpc::Transmit;
use dht_core::wire::{self, Request, Response};
use dht_core::{Config, Contact, NodeId, Protocol, PutOptions, Value};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A public IPv4 address numbered `n` (inside 1.0.0.0/8 .. 126.0.0.0/8,
/// never private, loopback or multicast).
fn public_ip(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0100_0000u32 + n))
}

/// A kadmium message id asking for every trailer: the largest answers (a
/// STORE's lists the victim's closest contacts to the key).
fn msg_id(rng: &mut StdRng) -> wire::MsgId {
    let flags = wire::FLAG_RESPONDER_ID | wire::FLAG_CLOSER_NODES;
    wire::kadmium_id_flagged(0, flags, rng.random())
}

fn request(rng: &mut StdRng, req: &Request) -> Vec<u8> {
    wire::encode_request(&msg_id(rng), req)
}

fn drain(p: &mut Protocol) -> Vec<Transmit> {
    std::iter::from_fn(|| p.poll_transmit()).collect()
}

fn victim_config(seed: u64) -> Config {
    Config::default()
        .with_strict_local_limits(true)
        .with_rng_seed(seed)
}

/// If `t` is a PING request, the reply an honest node with `id` would send.
fn answer_ping(t: &Transmit, id: NodeId) -> Option<Vec<u8>> {
    let packet = wire::split_packet(&t.payload).ok()?;
    if packet.kind != wire::REQUEST {
        return None;
    }
    match wire::decode_request(packet.body).ok()? {
        Request::Ping { .. } => Some(wire::encode_response(&packet.id, &Response::Ping(id))),
        _ => None,
    }
}

/// Drive the victim's timers up to `until`.
fn run_timers(p: &mut Protocol, until: Instant) {
    while let Some(t) = p.poll_timeout() {
        if t > until {
            break;
        }
        p.handle_timeout(t);
    }
}

// ------------------------------------------------------------ 1. reflection

// Measured 2026-11-21 (seed 1, 200 spoofed requests per kind, 10,001 values
// held, strict limits): ping 1.53x, find_node 3.96x, find_value (8,000 B
// value) 3.88x, new-id ping 0.89x, overall 2.86x. find_node and find_value
// break the 3x rule: `Protocol::handle_request` (protocol/mod.rs) cuts the
// contact list to the whole 3x budget and then also sends a verification
// ping to the same unverified address, whose bytes are not counted; and the
// address, never answering, is pinged again and again afterwards (in the
// 30 s after the requests: find_value 49,715 B late vs 10,800 B at once,
// about 5 pings of 50 B per spoofed address; find_node 7,445 B late).
#[test]
fn reflection_to_a_spoofed_address_is_at_most_three_times() {
    let mut rng = StdRng::seed_from_u64(1);
    let start = Instant::now();
    let mut p = Protocol::new(victim_config(11), start).unwrap();
    let own = p.id();
    // 10,000 values, plus an 8 KB one the attacker asks for by key.
    for i in 0..10_000u32 {
        let key = NodeId::digest(format!("held-{i}").as_bytes());
        let value = Value::from(vec![i as u8; 100]);
        p.store_local(start, key, value, PutOptions::default())
            .unwrap();
    }
    let big_key = NodeId::digest(b"big");
    p.store_local(
        start,
        big_key,
        Value::from(vec![7u8; 8000]),
        PutOptions::default(),
    )
    .unwrap();
    // Honest, verified contacts so FIND_NODE has something to return.
    let honest: Vec<Contact> = (0..200u32)
        .map(|i| {
            Contact::new(
                NodeId::random(&mut rng),
                SocketAddr::new(public_ip(1_000_000 + i * 256), 4000),
            )
        })
        .collect();
    let imported = p.import_contacts(start, &honest);
    drain(&mut p);

    type MakeRequest = Box<dyn Fn(&mut StdRng) -> Request>;
    let kinds: Vec<(&str, MakeRequest)> = vec![
        (
            "ping",
            Box::new(|r: &mut StdRng| Request::Ping {
                sender: NodeId::random(r),
            }),
        ),
        (
            "find_node",
            Box::new(|r: &mut StdRng| Request::FindNode {
                sender: NodeId::random(r),
                target: NodeId::random(r),
            }),
        ),
        (
            "store(1 B) asking nodes",
            Box::new(|r: &mut StdRng| Request::Store {
                sender: NodeId::random(r),
                key: NodeId::random(r),
                value: Value::from(vec![1u8]),
            }),
        ),
        (
            "find_value(8,000 B)",
            Box::new(move |r: &mut StdRng| Request::FindValue {
                sender: NodeId::random(r),
                key: big_key,
            }),
        ),
        (
            "new-id ping near own id",
            Box::new(move |r: &mut StdRng| Request::Ping {
                sender: own.random_with_prefix(150, r),
            }),
        ),
    ];
    let (mut total_in, mut total_out) = (0usize, 0usize);
    let mut now = start;
    let mut over = Vec::new();
    println!("reflection: victim holds 10,001 values, {imported} contacts");
    for (k, (name, make)) in kinds.iter().enumerate() {
        let (mut bytes_in, mut bytes_out) = (0usize, 0usize);
        for i in 0..200u32 {
            // A different spoofed victim per request: each address is new.
            let spoofed = SocketAddr::new(public_ip(50_000_000 + (k as u32) * 1000 + i), 6881);
            let req = make(&mut rng);
            let bytes = request(&mut rng, &req);
            now += Duration::from_millis(5);
            p.handle_datagram(now, spoofed, &bytes);
            bytes_in += bytes.len();
            run_timers(&mut p, now);
            bytes_out += drain(&mut p)
                .iter()
                .filter(|t| t.dest == spoofed)
                .map(|t| t.payload.len())
                .sum::<usize>();
        }
        // Let anything held for verification time out, and count it too.
        now += Duration::from_secs(30);
        run_timers(&mut p, now);
        let late: usize = drain(&mut p)
            .iter()
            .filter(|t| {
                t.dest.ip() >= public_ip(50_000_000 + (k as u32) * 1000)
                    && t.dest.ip() < public_ip(50_000_000 + (k as u32 + 1) * 1000)
            })
            .map(|t| t.payload.len())
            .sum();
        bytes_out += late;
        let ratio = bytes_out as f64 / bytes_in as f64;
        println!(
            "reflection: {name:<24} in {bytes_in:>7} B, out {bytes_out:>7} B, ratio {ratio:.2}x"
        );
        if ratio > 3.0 {
            over.push(format!("{name}: {ratio:.2}x"));
        }
        total_in += bytes_in;
        total_out += bytes_out;
    }
    let ratio = total_out as f64 / total_in as f64;
    println!("reflection: overall in {total_in} B, out {total_out} B, ratio {ratio:.2}x");
    assert!(over.is_empty(), "over 3x: {over:?}");
    assert!(ratio <= 3.0);
}

// ------------------------------------------------------------ 9. every request answered

#[test]
fn a_refused_store_is_answered_false_not_silence() {
    let mut rng = StdRng::seed_from_u64(9);
    let start = Instant::now();
    let config = victim_config(99).with_max_value_size(1000);
    let mut p = Protocol::new(config, start).unwrap();
    let from = SocketAddr::new(public_ip(77), 5000);
    let sender = NodeId::random(&mut rng);
    let value = |value: Value| Ok(value);
    let rejected = |raw: &[u8]| Err(raw.to_vec());
    // A TTL of 0 in a kadmium id means "none given" (the default TTL), so
    // the refusals we can provoke are size, and the value types a Python
    // `kademlia` peer's `set_digest` sends (None, a list, and values that
    // are msgpack but not a kadmium Value: `umsgpack` packs a `datetime` as
    // extension -1): those must get an answer, `true` or `false`, never
    // silence; the ones kadmium cannot hold are never stored.
    let mut deep = vec![0x91; 40];
    deep.push(0xc0);
    // Each case: a name, the value (or the raw msgpack of one kadmium
    // cannot hold) and the answer expected, if only one is right.
    type Case = (&'static str, Result<Value, Vec<u8>>, Option<bool>);
    let cases: Vec<Case> = vec![
        (
            "too large",
            value(Value::from(vec![1u8; 4000])),
            Some(false),
        ),
        ("nil", value(Value::Nil), None),
        (
            "list",
            value(Value::from(vec![Value::from(1i64), Value::from("x")])),
            None,
        ),
        // umsgpack.packb(datetime(2026, 1, 1, tzinfo=timezone.utc))
        (
            "datetime (ext -1)",
            rejected(&[0xd6, 0xff, 0x69, 0x55, 0xb9, 0x00]),
            Some(false),
        ),
        (
            "ext 5 in a map",
            rejected(&[0x81, 0xa1, b'k', 0xc7, 0x03, 0x05, b'a', b'b', b'c']),
            Some(false),
        ),
        ("str, not utf-8", rejected(&[0xa2, 0xff, 0xfe]), Some(false)),
        ("nested 40 deep", rejected(&deep), Some(false)),
    ];
    let mut undecodable = 0;
    for (name, value, expected) in cases {
        let id = wire::kadmium_id(3600, rng.random());
        let key = NodeId::random(&mut rng);
        let request = match value {
            Ok(value) => Request::Store { sender, key, value },
            Err(raw) => {
                undecodable += 1;
                Request::StoreRejected {
                    sender,
                    key,
                    value: wire::RejectedValue { reason: "", raw },
                }
            }
        };
        let bytes = wire::encode_request(&id, &request);
        let before = p.stats();
        p.handle_datagram(start, from, &bytes);
        let replies: Vec<Response> = drain(&mut p)
            .iter()
            .filter(|t| t.dest == from)
            .filter_map(|t| {
                let packet = wire::split_packet(&t.payload).ok()?;
                (packet.kind == wire::RESPONSE && packet.id == id).then_some(())?;
                wire::decode_response(wire::RpcKind::Store, packet.body).ok()
            })
            .collect();
        let after = p.stats();
        println!("refused store ({name}): replies {replies:?}");
        assert_eq!(replies.len(), 1, "{name}: exactly one answer");
        assert_eq!(after.datagrams_dropped, before.datagrams_dropped, "{name}");
        assert_eq!(after.requests_received, before.requests_received + 1);
        if let Some(ok) = expected {
            assert_eq!(replies[0], Response::Store(ok), "{name}");
            assert_eq!(p.local_value(&key, start), None, "{name}: not stored");
            assert_eq!(after.values_stored, before.values_stored, "{name}");
        }
    }
    let stats = p.stats();
    println!(
        "undecodable stores: {} answered false and counted, {} values held",
        stats.stores_undecodable, stats.values_stored
    );
    assert_eq!(stats.stores_undecodable, undecodable);
}

/// Deliver `bytes` from `from`, and answer every ping the victim sends to an
/// address in `answering` with that address's id. Returns what else it sent.
fn inject(
    p: &mut Protocol,
    now: Instant,
    from: SocketAddr,
    bytes: &[u8],
    answering: &HashMap<SocketAddr, NodeId>,
) -> Vec<Transmit> {
    p.handle_datagram(now, from, bytes);
    let mut rest = Vec::new();
    let mut queue = drain(p);
    while !queue.is_empty() {
        for t in std::mem::take(&mut queue) {
            match answering.get(&t.dest).and_then(|id| answer_ping(&t, *id)) {
                Some(reply) => {
                    p.handle_datagram(now, t.dest, &reply);
                    queue.extend(drain(p));
                }
                None => rest.push(t),
            }
        }
    }
    rest
}

// ------------------------------------------------------------ 4. id takeover

#[test]
fn a_known_id_from_a_new_address_does_not_move_the_contact() {
    let mut rng = StdRng::seed_from_u64(4);
    let start = Instant::now();
    let mut p = Protocol::new(victim_config(44), start).unwrap();
    let honest_addr = SocketAddr::new(public_ip(10_000), 4000);
    let attacker_addr = SocketAddr::new(public_ip(20_000), 4000);
    let honest_id = NodeId::random(&mut rng);
    // The attacker answers at its address with the honest id; the honest
    // node keeps answering at its own.
    let mut answering = HashMap::new();
    answering.insert(honest_addr, honest_id);
    answering.insert(attacker_addr, honest_id);
    let ping = request(&mut rng, &Request::Ping { sender: honest_id });
    inject(&mut p, start, honest_addr, &ping, &answering);
    let before = p.routing().get(&honest_id).map(|e| e.contact.addr);
    assert_eq!(before, Some(honest_addr), "the honest contact is known");

    let mut now = start;
    for _ in 0..20 {
        now += Duration::from_millis(500);
        for req in [
            Request::Ping { sender: honest_id },
            Request::FindNode {
                sender: honest_id,
                target: NodeId::random(&mut rng),
            },
        ] {
            let bytes = request(&mut rng, &req);
            inject(&mut p, now, attacker_addr, &bytes, &answering);
        }
        run_timers(&mut p, now);
        // The honest node answers every probe at its real address.
        let pending = drain(&mut p);
        for t in &pending {
            if let Some(reply) = answering.get(&t.dest).and_then(|id| answer_ping(t, *id)) {
                p.handle_datagram(now, t.dest, &reply);
            }
        }
    }
    let after = p.routing().get(&honest_id).map(|e| e.contact.addr);
    println!(
        "id takeover: contact at {before:?} before, {after:?} after 40 claims from {attacker_addr}"
    );
    assert_eq!(after, Some(honest_addr), "the contact was not moved");

    // A forged FIND_VALUE answer from the attacker's address, with the id
    // of the victim's real request to the honest contact, is not accepted.
    let key = NodeId::digest(b"takeover-key");
    let op = p.get(now, key);
    let sent = drain(&mut p);
    let mut forged = 0;
    for t in sent.iter().filter(|t| t.dest == honest_addr) {
        let packet = wire::split_packet(&t.payload).unwrap();
        if packet.kind != wire::REQUEST {
            continue;
        }
        let reply = wire::encode_response(
            &packet.id,
            &Response::Value {
                value: Value::from("forged"),
                ttl_secs: None,
            },
        );
        p.handle_datagram(now, attacker_addr, &reply);
        forged += 1;
    }
    now += Duration::from_secs(60);
    run_timers(&mut p, now);
    let outcome = std::iter::from_fn(|| p.poll_event())
        .find(|e| e.op == op)
        .map(|e| e.outcome);
    let cached = p.local_value(&key, now);
    println!("id takeover: {forged} forged find_value answers from the attacker; get -> {outcome:?}, cached {cached:?}");
    assert!(forged > 0, "the get asked the honest contact");
    assert!(
        !matches!(outcome, Some(dht_core::Outcome::Get(Ok(Some(_))))),
        "forged value accepted"
    );
    assert_eq!(cached, None);
}

// ------------------------------------------------------------ 2. crafted ids

#[test]
fn a_hundred_thousand_crafted_ids_leave_the_table_bounded() {
    let mut rng = StdRng::seed_from_u64(2);
    let start = Instant::now();
    let mut p = Protocol::new(victim_config(22), start).unwrap();
    let own = p.id();
    let mut now = start;
    let attempts = 100_000u32;
    for i in 0..attempts {
        // Half near our id (sharing 20..160 bits), half random; each from its
        // own address (many /24s), and the attacker answers the probes.
        let id = if i % 2 == 0 {
            own.random_with_prefix(20 + (i as usize % 140), &mut rng)
        } else {
            NodeId::random(&mut rng)
        };
        let from = SocketAddr::new(public_ip(i * 7 + 3), 4000);
        let answering = HashMap::from([(from, id)]);
        now += Duration::from_micros(500); // 2,000 pings/s, under the global rate limit
        let bytes = request(&mut rng, &Request::Ping { sender: id });
        inject(&mut p, now, from, &bytes, &answering);
        if i % 1000 == 0 {
            run_timers(&mut p, now);
            drain(&mut p);
        }
    }
    let (contacts, buckets) = (p.routing().len(), p.routing().bucket_count());
    println!("crafted ids: {attempts} ids -> {contacts} contacts in {buckets} buckets");
    // 161 buckets of k = 20, the three furthest 4k, 2k and 2k.
    assert!(
        contacts <= (158 + 8) * 20 && buckets <= 161,
        "table bounded"
    );

    // FIND_NODE cost, from a verified asker. A wall-clock figure: printed,
    // and asserted only against 10x the 50 µs so a busy CI machine
    // cannot fail it.
    let asker = SocketAddr::new(public_ip(9_000_000), 4000);
    let asker_id = NodeId::random(&mut rng);
    let answering = HashMap::from([(asker, asker_id)]);
    let bytes = request(&mut rng, &Request::Ping { sender: asker_id });
    inject(&mut p, now, asker, &bytes, &answering);
    let rounds = 2_000u32;
    let requests: Vec<Vec<u8>> = (0..rounds)
        .map(|_| {
            let target = NodeId::random(&mut rng);
            request(
                &mut rng,
                &Request::FindNode {
                    sender: asker_id,
                    target,
                },
            )
        })
        .collect();
    let per_request = find_node_cost(&mut p, now, asker, &requests);
    // The same requests at a victim with an honest table of 200 contacts.
    let mut small = Protocol::new(victim_config(23), start).unwrap();
    let honest: Vec<Contact> = (0..200u32)
        .map(|i| {
            Contact::new(
                NodeId::random(&mut rng),
                SocketAddr::new(public_ip(3_000_000 + i * 256), 4000),
            )
        })
        .collect();
    small.import_contacts(start, &honest);
    inject(&mut small, start, asker, &bytes, &answering);
    let baseline = find_node_cost(&mut small, start, asker, &requests);
    println!(
        "crafted ids: FIND_NODE answered in {per_request:?} (median of 20 batches of 100); {baseline:?} with {} honest contacts",
        small.routing().len()
    );
    assert!(per_request < Duration::from_micros(500));
}

/// Median wall time of `handle_datagram` for one of `requests` (batches of 100).
fn find_node_cost(
    p: &mut Protocol,
    now: Instant,
    from: SocketAddr,
    requests: &[Vec<u8>],
) -> Duration {
    let mut batches: Vec<Duration> = requests
        .chunks(100)
        .enumerate()
        .map(|(b, chunk)| {
            let started = Instant::now();
            for bytes in chunk {
                p.handle_datagram(now + Duration::from_millis(b as u64), from, bytes);
                while p.poll_transmit().is_some() {}
            }
            started.elapsed() / chunk.len() as u32
        })
        .collect();
    batches.sort();
    batches[batches.len() / 2]
}

// ------------------------------------------------------------ 7. fresh ids at a full node

/// Wall time spent in the victim over one simulated minute of 25 new ids per
/// second, as a share of the minute. With `answer`, the attacker also
/// answers the victim's pings (its addresses become verified, so the key
/// hand-over to the new contacts runs).
/// This thread's CPU time: unlike the wall clock, other processes on a
/// shared machine (CI, parallel builds) do not inflate it.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call's duration.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn fresh_ids_cpu_share(answer: bool) -> (f64, u64, usize) {
    let mut rng = StdRng::seed_from_u64(7);
    let start = Instant::now();
    let mut p = Protocol::new(victim_config(77), start).unwrap();
    let own = p.id();
    for i in 0..100_000u32 {
        let key = NodeId::digest(&i.to_be_bytes());
        p.store_local(
            start,
            key,
            Value::from(vec![i as u8; 20]),
            PutOptions::default(),
        )
        .unwrap();
    }
    drain(&mut p);
    let mut busy = Duration::ZERO;
    let mut now = start;
    let mut sent_bytes = 0usize;
    for i in 0..60 * 25u32 {
        now += Duration::from_millis(40);
        // Ids close to ours, so the victim's hand-over would give them keys.
        let id = own.random_with_prefix(8 + (i as usize % 8), &mut rng);
        let from = SocketAddr::new(public_ip(5_000_000 + i * 256), 4000);
        let answering = if answer {
            HashMap::from([(from, id)])
        } else {
            HashMap::new()
        };
        let bytes = request(&mut rng, &Request::Ping { sender: id });
        let started = thread_cpu();
        let rest = inject(&mut p, now, from, &bytes, &answering);
        run_timers(&mut p, now);
        busy += thread_cpu().saturating_sub(started);
        sent_bytes += rest.iter().map(|t| t.payload.len()).sum::<usize>();
        sent_bytes += drain(&mut p).iter().map(|t| t.payload.len()).sum::<usize>();
    }
    let share = busy.as_secs_f64() / 60.0 * 100.0;
    (share, sent_bytes as u64, p.routing().len())
}

// Measured before the fix in `Protocol::after_input` (no repair walk for a
// contact that never answered at its address): 11.2% of a core, every
// throwaway id evicted after its missed pings started a walk of all 100,000
// keys with a `closest()` each. After it: 0.014%.
#[test]
fn twenty_five_fresh_ids_per_second_cost_under_ten_percent_of_a_core() {
    // CPU time of the victim's thread per minute of virtual time; the bound
    // is the issue's, several hundred times what we measure.
    let (share, sent, contacts) = fresh_ids_cpu_share(false);
    println!(
        "fresh ids (unverified addresses): {share:.3}% of a core over a simulated minute, {sent} B sent, {contacts} contacts"
    );
    assert!(share < 10.0);
}

// Measured before hand-over walks were rate-limited per node: 16.4% of a
// core: each verified newcomer started a walk of all 100,000 keys with a
// `RoutingTable::closest()` per key. Walks are now budgeted in keys read
// (hand-over: 400,000 at once, 5,000/s after; repair: 500,000, 10,000/s),
// and a key in a bucket of contacts closer than us skips `closest()`.
// Measured in the thread's CPU time, so a busy machine does not inflate it
// (the wall clock did: 33% under load): 5.4-5.5%.
#[test]
fn twenty_five_fresh_verified_ids_per_second_cost_under_ten_percent_of_a_core() {
    let (share, sent, contacts) = fresh_ids_cpu_share(true);
    println!(
        "fresh ids (attacker answers pings): {share:.3}% of a core over a simulated minute, {sent} B sent, {contacts} contacts"
    );
    assert!(share < 10.0, "{share:.1}% of a core");
}

// ------------------------------------------------------------ 6. storage quota

/// Send a STORE of `value` under `key` from `from` with a TTL, answering the
/// victim's pings; returns the victim's answer.
#[allow(clippy::too_many_arguments)] // a test helper: one STORE, spelled out
fn store(
    p: &mut Protocol,
    now: Instant,
    from: SocketAddr,
    sender: NodeId,
    key: NodeId,
    value: Value,
    ttl_secs: u32,
    rng: &mut StdRng,
) -> Option<bool> {
    let id = wire::kadmium_id(ttl_secs, rng.random());
    let bytes = wire::encode_request(&id, &Request::Store { sender, key, value });
    let answering = HashMap::from([(from, sender)]);
    inject(p, now, from, &bytes, &answering)
        .iter()
        .find_map(|t| {
            let packet = wire::split_packet(&t.payload).ok()?;
            (t.dest == from && packet.kind == wire::RESPONSE && packet.id == id).then_some(())?;
            match wire::decode_response(wire::RpcKind::Store, packet.body).ok()? {
                Response::Store(ok) => Some(ok),
                _ => None,
            }
        })
}

// Measured: from one address, 9,000 STOREs of 8,000 B (near the largest
// value a datagram carries, 8,137 B) with a 7-day TTL: the victim accepted
// 8,388 of them (67,104,000 B, its whole 64 MiB); an honest STORE afterwards
// was still answered `true` and the node's own `store_local` still
// succeeded. Per-source quotas (issue 9, item 4) are not implemented yet.
#[test]
fn one_source_cannot_take_the_store() {
    let mut rng = StdRng::seed_from_u64(6);
    let start = Instant::now();
    let mut p = Protocol::new(victim_config(66), start).unwrap();
    let attacker = SocketAddr::new(public_ip(40_000), 4000);
    let attacker_id = NodeId::random(&mut rng);
    let week = 7 * 24 * 3600;
    let mut now = start;
    let mut accepted = 0;
    let attempts = 9_000u32;
    for i in 0..attempts {
        now += Duration::from_millis(2); // 500/s, under the per-IP rate limit
        let key = NodeId::digest(format!("flood-{i}").as_bytes());
        if store(
            &mut p,
            now,
            attacker,
            attacker_id,
            key,
            Value::from(vec![i as u8; 8000]),
            week,
            &mut rng,
        ) == Some(true)
        {
            accepted += 1;
        }
        if i % 500 == 0 {
            run_timers(&mut p, now);
            drain(&mut p);
        }
    }
    let stats = p.stats();
    println!(
        "storage: {accepted}/{attempts} STOREs of 8,000 B from one address accepted; store holds {} values, {} B",
        stats.values_stored, stats.stored_bytes
    );
    let honest = SocketAddr::new(public_ip(60_000), 4000);
    let honest_ok = store(
        &mut p,
        now,
        honest,
        NodeId::random(&mut rng),
        NodeId::digest(b"honest"),
        Value::from("hello"),
        3600,
        &mut rng,
    );
    let own_ok = p.store_local(
        now,
        NodeId::digest(b"own"),
        Value::from(vec![1u8; 1000]),
        PutOptions::default(),
    );
    println!(
        "storage: afterwards an honest STORE -> {honest_ok:?}, the node's own value -> {own_ok:?}"
    );
    assert!(
        accepted as u64 * 8000 <= (64 << 20) / 10,
        "one source took more than a tenth of the store"
    );
    assert_eq!(honest_ok, Some(true));
    assert!(own_ok.is_ok());
}

// ------------------------------------------------------------ 5. unusable contacts

/// Virtual time a get takes when its only peer, a hostile responder, answers
/// every FIND_VALUE at once with `junk` as the contact list.
fn get_latency_with(junk: &[Contact]) -> (Duration, usize) {
    let mut rng = StdRng::seed_from_u64(5);
    let start = Instant::now();
    let mut p = Protocol::new(victim_config(55), start).unwrap();
    let hostile = Contact::new(
        NodeId::random(&mut rng),
        SocketAddr::new(public_ip(70_000), 4000),
    );
    p.import_contacts(start, &[hostile]);
    let op = p.get(start, NodeId::digest(b"unusable"));
    let mut now = start;
    let mut queried = 0;
    loop {
        for t in drain(&mut p) {
            let Ok(packet) = wire::split_packet(&t.payload) else {
                continue;
            };
            if packet.kind != wire::REQUEST {
                continue;
            }
            queried += 1;
            if t.dest == hostile.addr {
                let reply = match wire::decode_request(packet.body) {
                    Ok(Request::Ping { .. }) => Response::Ping(hostile.id),
                    _ => Response::Nodes(junk.to_vec()),
                };
                p.handle_datagram(
                    now,
                    hostile.addr,
                    &wire::encode_response(&packet.id, &reply),
                );
            }
        }
        if let Some(e) = std::iter::from_fn(|| p.poll_event()).find(|e| e.op == op) {
            assert!(
                matches!(e.outcome, dht_core::Outcome::Get(Ok(None))),
                "{:?}",
                e.outcome
            );
            return (now - start, queried);
        }
        let Some(t) = p.poll_timeout() else {
            panic!("get never finished")
        };
        assert!(t - start < Duration::from_secs(120), "get never finished");
        now = now.max(t);
        p.handle_timeout(now);
    }
}

fn junk_contacts(addrs: &[SocketAddr]) -> Vec<Contact> {
    let mut rng = StdRng::seed_from_u64(50);
    (0..256)
        .map(|i| Contact::new(NodeId::random(&mut rng), addrs[i % addrs.len()]))
        .collect()
}

fn compare_gets(what: &str, junk: &[Contact]) -> (Duration, Duration, usize, usize) {
    let (clean, clean_queries) = get_latency_with(&[]);
    let (dirty, dirty_queries) = get_latency_with(junk);
    println!(
        "unusable contacts ({what}): get took {clean:?} ({clean_queries} requests) with an empty reply, {dirty:?} ({dirty_queries} requests) with 256 of them"
    );
    (clean, dirty, clean_queries, dirty_queries)
}

#[test]
fn unusable_contacts_cost_a_get_nothing() {
    let addrs: Vec<SocketAddr> = vec![
        "0.0.0.0:4000".parse().unwrap(),
        "255.255.255.255:4000".parse().unwrap(),
        "8.8.8.8:0".parse().unwrap(),
        "224.0.0.1:4000".parse().unwrap(),
        "239.255.255.250:1900".parse().unwrap(),
    ];
    let (clean, dirty, clean_queries, dirty_queries) = compare_gets(
        "wildcard, broadcast, port 0, multicast",
        &junk_contacts(&addrs),
    );
    assert!(dirty <= clean + Duration::from_millis(1));
    assert_eq!(
        dirty_queries, clean_queries,
        "no request went to an unusable address"
    );
}

// Measured: a victim bound to 0.0.0.0 (IPv4 only) queried 79 of 256 IPv6
// contacts (one address, distinct ids) and the get took 2.9 s instead of 0 s:
// `Contact::is_usable` has no notion of the socket's family, and nothing
// filters contacts of the other family before querying them.
#[test]
fn contacts_of_the_other_family_cost_a_get_nothing() {
    let addrs: Vec<SocketAddr> = vec!["[2001:db8::1]:4000".parse().unwrap()];
    let (clean, dirty, clean_queries, dirty_queries) =
        compare_gets("IPv6 at an IPv4-only node", &junk_contacts(&addrs));
    assert!(dirty <= clean + Duration::from_millis(1));
    assert_eq!(dirty_queries, clean_queries);
}

// ------------------------------------------------------------ 3. one IP, many ids

#[test]
fn one_ip_holds_at_most_a_tenth_of_the_table() {
    use dht_core::sim::Simulation;
    use dht_core::Outcome;
    let mut sim = Simulation::new(3, (Duration::from_millis(5), Duration::from_millis(40)));
    let victim = sim.add_node(victim_config(33)).unwrap();
    for _ in 0..200 {
        sim.add_node(Config::default()).unwrap();
    }
    assert_eq!(sim.join_network(20, Duration::from_secs(60)), 0);
    let by_addr: HashMap<SocketAddr, usize> = (0..sim.len()).map(|i| (sim.addr(i), i)).collect();
    let victim_addr = sim.addr(victim);
    let attacker_ip: IpAddr = "10.250.0.1".parse().unwrap();
    let mut rng = StdRng::seed_from_u64(30);
    let own = sim.protocol(victim).id();
    for i in 0..2_000u16 {
        let id = if i % 2 == 0 {
            own.random_with_prefix(1 + (i as usize % 30), &mut rng)
        } else {
            NodeId::random(&mut rng)
        };
        let from = SocketAddr::new(attacker_ip, 10_000 + i);
        let bytes = request(&mut rng, &Request::Ping { sender: id });
        let answering = HashMap::from([(from, id)]);
        // The attacker answers the victim's probes; anything else the victim
        // sends meanwhile is delivered at once to the honest node it is for.
        let rest = sim.command(victim, |p, now| inject(p, now, from, &bytes, &answering));
        for t in rest {
            if let Some(&to) = by_addr.get(&t.dest) {
                sim.command(to, |p, now| p.handle_datagram(now, victim_addr, &t.payload));
            }
        }
        if i % 100 == 99 {
            sim.run_for(Duration::from_secs(1));
        }
    }
    sim.run_for(Duration::from_secs(30));
    let table = sim.protocol(victim).routing();
    let (held, total) = (table.contacts_of_ip(&attacker_ip), table.len());
    let share = held as f64 / total as f64 * 100.0;
    println!("one IP, 2,000 ids: the attacker holds {held} of {total} contacts in the victim's table ({share:.1}%)");
    assert!(share <= 10.0);

    // Honest puts and gets still succeed, some through the victim.
    let mut ok = 0;
    let rounds = 20;
    for i in 0..rounds {
        let key = NodeId::digest(format!("honest-{i}").as_bytes());
        let putter = if i % 2 == 0 { victim } else { 1 + i };
        let op = sim
            .command(putter, |p, now| {
                p.put(now, key, Value::from(i as i64), PutOptions::default())
            })
            .unwrap();
        let put = sim.run_until_done(putter, op, Duration::from_secs(30));
        let getter = 100 + i;
        let op = sim.command(getter, |p, now| p.get(now, key));
        let got = sim.run_until_done(getter, op, Duration::from_secs(30));
        if matches!(put, Some(Outcome::Put(Ok(_))))
            && matches!(got, Some(Outcome::Get(Ok(Some(_)))))
        {
            ok += 1;
        }
    }
    println!("one IP, 2,000 ids: {ok}/{rounds} honest put+get pairs succeeded");
    assert_eq!(ok, rounds);
}

// ------------------------------------------------------------ 8. flood

#[test]
fn honest_gets_succeed_under_a_four_million_datagram_flood() {
    use dht_core::sim::Simulation;
    use dht_core::Outcome;
    let mut sim = Simulation::new(8, (Duration::from_millis(1), Duration::from_millis(5)));
    let victim = sim.add_node(victim_config(88)).unwrap();
    // client_only: the victim does not hand its keys over to the client, so
    // every get crosses the flooded victim.
    let client = sim
        .add_node(Config::default().with_client_only(true))
        .unwrap();
    let keys: Vec<NodeId> = (0..50)
        .map(|i: u32| NodeId::digest(&i.to_be_bytes()))
        .collect();
    for (i, key) in keys.iter().enumerate() {
        sim.command(victim, |p, now| {
            p.store_local(now, *key, Value::from(i as i64), PutOptions::default())
        })
        .unwrap();
    }
    let seed = sim.addr(victim);
    let op = sim.command(client, |p, now| p.bootstrap(now, &[seed]));
    sim.run_until_done(client, op, Duration::from_secs(10));

    let mut rng = StdRng::seed_from_u64(80);
    let flooder = SocketAddr::new("10.250.0.9".parse().unwrap(), 6666);
    let flood_per_ms = 400;
    let millis = 10_000u32; // 4,000,000 datagrams in 10 virtual seconds
    let (a, b, c, d) = (
        NodeId::random(&mut rng),
        NodeId::random(&mut rng),
        NodeId::random(&mut rng),
        NodeId::random(&mut rng),
    );
    let templates: Vec<Vec<u8>> = vec![
        vec![0u8; 30],
        vec![0x07; 60],
        request(&mut rng, &Request::Ping { sender: a }),
        request(
            &mut rng,
            &Request::FindValue {
                sender: b,
                key: keys[0],
            },
        ),
        request(
            &mut rng,
            &Request::FindNode {
                sender: c,
                target: d,
            },
        ),
    ];
    let mut pending: Vec<(dht_core::OpId, Instant)> = Vec::new();
    let mut latencies = Vec::new();
    let mut failures = 0;
    let mut sent = 0u64;
    let started = Instant::now();
    for ms in 0..millis {
        sim.command(victim, |p, now| {
            for j in 0..flood_per_ms {
                p.handle_datagram(now, flooder, &templates[j % templates.len()]);
            }
        });
        sent += flood_per_ms as u64;
        if ms % 50 == 0 {
            let key = keys[(ms / 50) as usize % keys.len()];
            let op = sim.command(client, |p, now| p.get(now, key));
            pending.push((op, sim.now()));
        }
        sim.run_for(Duration::from_millis(1));
        pending.retain(|(op, at)| match sim.take_outcome(client, *op) {
            Some(Outcome::Get(Ok(Some(_)))) => {
                latencies.push(sim.now() - *at);
                false
            }
            Some(_) => {
                failures += 1;
                false
            }
            None => true,
        });
    }
    sim.run_for(Duration::from_secs(15));
    for (op, _) in &pending {
        match sim.take_outcome(client, *op) {
            Some(Outcome::Get(Ok(Some(_)))) => latencies.push(Duration::from_secs(15)),
            _ => failures += 1,
        }
    }
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100 - 1];
    let stats = sim.protocol(victim).stats();
    println!(
        "flood: {sent} datagrams from one IP in 10 virtual s ({:?} of CPU); {} honest gets succeeded, {failures} failed, virtual p99 {p99:?}; victim dropped {}",
        started.elapsed(),
        latencies.len(),
        stats.datagrams_dropped
    );
    assert_eq!(failures, 0);
}
