#!/usr/bin/env python3
"""How often sending on a UDP socket wakes a thread parked in `epoll_wait` on it (Linux).

    python bench/epollout_wakeups.py [--sends 1000]

One thread waits in `epoll_wait` on a UDP socket registered edge-triggered, as tokio's
reactor registers its sockets; the main thread sends `--sends` datagrams from that socket
to another one, a fraction of a millisecond apart, so the waiter is asleep at each send.
It prints how many times the waiter woke, once with the socket registered for reading and
writing (what `tokio::net::UdpSocket` asks for) and once for reading alone (what a kadmium
node's socket asks for, `dht-core/src/udp.rs`). The kernel signals room to send each time
it frees a sent datagram, so with writability in the mask every send is a wake-up: a
context switch on another core for nothing, in every node that sends while a runtime
worker sleeps.
"""
import argparse
import json
import select
import socket
import threading
import time


def wakeups(mask, sends):
    """Wake-ups of a thread in epoll_wait(mask) on a socket that sends `sends` datagrams."""
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.bind(("127.0.0.1", 0))
    sender.setblocking(False)
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    poller = select.epoll()
    poller.register(sender.fileno(), mask)
    poller.poll(0)  # the registration's own first event
    woke, done = [0], threading.Event()

    def wait():
        while not done.is_set():
            if poller.poll(0.1):
                woke[0] += 1

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.05)
    woke[0] = 0
    for _ in range(sends):
        sender.sendto(b"x" * 100, sink.getsockname())
        sink.recv(200)
        time.sleep(0.0002)  # the waiter goes back to sleep
    count = woke[0]
    done.set()
    waiter.join()
    for s in (sender, sink, poller):
        s.close()
    return count


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sends", type=int, default=1000)
    args = parser.parse_args()
    edge = select.EPOLLET
    print(json.dumps({
        "sends": args.sends,
        "wakeups_read_and_write_interest": wakeups(select.EPOLLIN | select.EPOLLOUT | edge,
                                                   args.sends),
        "wakeups_read_interest": wakeups(select.EPOLLIN | edge, args.sends),
    }))


if __name__ == "__main__":
    main()
