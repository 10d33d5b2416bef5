"""Rust events reach Python logging under "kademlia.kadmium", so the "kademlia" logger
that upstream scripts configure controls kadmium's messages too."""

import asyncio
import logging
import os
import socket
import subprocess
import sys
import textwrap
import unittest
from typing import List

import kadmium
from support import LOCAL, AsyncCase


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: List[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def send_garbage_until_dropped(server: kadmium.Server, count: int = 1) -> None:
    """Send malformed datagrams and wait until the node counted them dropped. The
    drop is logged in the same step that counts it, so once the counter moved the
    record has been handed to logging."""
    before = server.stats()["datagrams_dropped"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _ in range(count):
            s.sendto(b"\x00" + b"\x11" * 20 + b"\xc1not msgpack", (LOCAL, server.node.port))
    for _ in range(500):
        if server.stats()["datagrams_dropped"] >= before + count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the node never counted the datagrams as dropped")


class LoggingBridgeTest(AsyncCase):
    async def asyncSetUp(self) -> None:
        self.handler = Collect()
        self.logger = logging.getLogger("kademlia")
        self.saved_level = self.logger.level
        self.logger.addHandler(self.handler)

    async def asyncTearDown(self) -> None:
        self.logger.removeHandler(self.handler)
        self.logger.setLevel(self.saved_level)
        await super().asyncTearDown()

    def dropped(self) -> List[logging.LogRecord]:
        return [r for r in self.handler.records if "dropped datagram" in r.getMessage()]

    async def test_the_kademlia_logger_sees_and_silences_rust_events(self) -> None:
        server = kadmium.Server()
        self.track(server)
        await server.listen(0, LOCAL)
        self.logger.setLevel(logging.DEBUG)
        await send_garbage_until_dropped(server)
        records = self.dropped()
        self.assertEqual(len(records), 1)
        self.assertEqual(records[0].name, "kademlia.kadmium.dht_core.protocol")
        self.assertEqual(records[0].levelno, logging.DEBUG)
        self.assertEqual(kadmium.LOGGER, "kademlia.kadmium")
        # setLevel takes effect at once, on the parent or on kadmium's own logger.
        self.logger.setLevel(logging.WARNING)
        await send_garbage_until_dropped(server)
        self.logger.setLevel(logging.DEBUG)
        logging.getLogger("kademlia.kadmium").setLevel(logging.ERROR)
        try:
            await send_garbage_until_dropped(server)
        finally:
            logging.getLogger("kademlia.kadmium").setLevel(logging.NOTSET)
        self.assertEqual(len(self.dropped()), 1)
        # Python-side messages use the same tree.
        await server.set("k", "v")  # no neighbours: a warning from kademlia.kadmium.network
        self.assertIn("kademlia.kadmium.network", {r.name for r in self.handler.records})


def run_script(script: str) -> "subprocess.CompletedProcess[str]":
    """Run ``script`` in a child interpreter without the log variables of ours."""
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if k not in ("RUST_LOG", "KADMIUM_LOG")},
    )


class ScriptTest(unittest.TestCase):
    def test_a_script_configuring_kademlia_logging_sees_kadmium(self) -> None:
        # What upstream's examples do: a handler and DEBUG on "kademlia".
        script = textwrap.dedent(
            """
            import asyncio, logging, socket, sys
            handler = logging.StreamHandler(sys.stdout)
            handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
            log = logging.getLogger("kademlia")
            log.addHandler(handler)
            log.setLevel(logging.DEBUG)
            from kadmium import Server

            async def main():
                server = Server()
                await server.listen(0, "127.0.0.1")
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.sendto(b"garbage" * 5, ("127.0.0.1", server.node.port))
                while server.stats()["datagrams_dropped"] == 0:
                    await asyncio.sleep(0.01)
                server.stop()

            asyncio.run(main())
            """
        )
        out = run_script(script)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("kademlia.kadmium.dht_core.protocol DEBUG dropped datagram", out.stdout)
        self.assertIn("kademlia.kadmium.network INFO Node", out.stdout)

    def test_a_handler_may_call_the_node(self) -> None:
        # The node logs "dropped datagram" while it holds its lock; those records
        # reach the handlers after the lock is released, so a handler may call the
        # node, as upstream's may. Five garbage datagrams from five sockets: each
        # record calls three node methods, and the records arrive in the order the
        # datagrams were sent. Puts and gets on a small network run meanwhile. In a
        # child process: a hang fails the test instead of wedging it.
        script = textwrap.dedent(
            """
            import asyncio, logging, re, socket
            from kadmium import Server

            class Looking(logging.Handler):
                servers = []
                dropped_from = []
                def emit(self, record):
                    for server in self.servers:
                        server.stats()
                        server.bootstrappable_neighbors()
                        server.public_address
                    if record.name.startswith("kademlia.kadmium.dht_core"):
                        m = re.search(r"from=127.0.0.1:(\\d+)", record.getMessage())
                        if m and "dropped datagram" in record.getMessage():
                            self.dropped_from.append(int(m.group(1)))

            async def main():
                servers = [Server() for _ in range(4)]
                handler = Looking()
                log = logging.getLogger("kademlia")
                log.addHandler(handler)
                log.setLevel(logging.DEBUG)
                for s in servers:
                    await s.listen(0, "127.0.0.1")
                handler.servers = servers
                for s in servers[1:]:
                    await s.bootstrap([("127.0.0.1", servers[0].node.port)])
                for i in range(20):
                    assert await servers[i % 4].set(f"k{i}", i)
                    assert await servers[(i + 1) % 4].get(f"k{i}") == i
                socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(5)]
                for sock in socks:
                    sock.bind(("127.0.0.1", 0))
                    sock.sendto(b"garbage", ("127.0.0.1", servers[0].node.port))
                while servers[0].stats()["datagrams_dropped"] < 5:
                    await asyncio.sleep(0.01)
                await asyncio.sleep(0.05)
                sent = [sock.getsockname()[1] for sock in socks]
                print("in order:", handler.dropped_from == sent, handler.dropped_from, sent,
                      flush=True)
                for sock in socks:
                    sock.close()
                for s in servers:
                    s.stop()

            asyncio.run(main())
            """
        )
        out = run_script(script)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("in order: True", out.stdout)

    def test_a_handler_whose_node_call_logs_does_not_feed_itself(self) -> None:
        # A storage object whose get fails makes the node warn (under its lock);
        # a handler that reads the node on every warning makes the node warn
        # again. Delivered, that record would call the handler again, forever
        # (a hung thread, a growing queue): records made while a handler runs on
        # the same thread are dropped instead.
        script = textwrap.dedent(
            """
            import logging
            from kadmium import DHT

            class Broken(dict):
                def get(self, key, default=None):
                    raise OSError("disk gone")

            class Checker(logging.Handler):
                dht = None
                calls = 0
                def emit(self, record):
                    if record.levelno >= logging.WARNING and self.dht is not None:
                        Checker.calls += 1
                        if Checker.calls > 1000:
                            raise SystemExit("the handler feeds itself")
                        _ = "mykey" in self.dht

            log = logging.getLogger("kademlia")
            handler = Checker()
            log.addHandler(handler)
            log.setLevel(logging.INFO)
            with DHT("127.0.0.1", 0, storage=Broken()) as dht:
                handler.dht = dht
                dht["mykey"] = 1
                print("in:", "mykey" in dht, "handler calls:", Checker.calls, flush=True)
            """
        )
        out = run_script(script)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("in: False handler calls: 1", out.stdout)

    def test_a_handler_that_raises_does_not_fail_the_call_that_logged(self) -> None:
        # DHT() logs (at debug) on the caller's thread while it binds. A handler
        # raising there left its exception set: DHT() raised SystemError and the
        # node it had bound kept the port. As with Python's own logging, the
        # call goes on; the handler's exception goes to sys.unraisablehook.
        script = textwrap.dedent(
            """
            import logging, socket, sys
            from kadmium import DHT

            class Raising(logging.Handler):
                def emit(self, record):
                    raise RuntimeError("handler broke on " + record.name)

            unraisable = []
            sys.unraisablehook = lambda u: unraisable.append(u.exc_value)
            log = logging.getLogger("kademlia")
            log.addHandler(Raising())
            log.setLevel(logging.DEBUG)
            with DHT("127.0.0.1", 0) as dht:
                dht["key"] = "value"
                print("value:", dht["key"])
                port = dht.address[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(("127.0.0.1", port))  # free again once closed
            print("unraisable:", type(unraisable[0]).__name__ if unraisable else None)
            """
        )
        out = run_script(script)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("value: value", out.stdout)
        self.assertIn("unraisable: RuntimeError", out.stdout)
        # Ctrl-C arriving while a handler runs is not swallowed so: it is raised
        # again, as a signal is, at Python's next check.
        script = textwrap.dedent(
            """
            import logging
            from kadmium import DHT

            class Interrupted(logging.Handler):
                # One Ctrl-C, during the first record (later ones, such as the
                # node that DHT() bound stopping as it goes, are let through).
                pressed = False

                def emit(self, record):
                    if not Interrupted.pressed:
                        Interrupted.pressed = True
                        raise KeyboardInterrupt

            log = logging.getLogger("kademlia")
            log.addHandler(Interrupted())
            log.setLevel(logging.DEBUG)
            try:
                dht = DHT("127.0.0.1", 0)
                for _ in range(1000):
                    pass
                print("not interrupted")
            except KeyboardInterrupt:
                print("interrupted")
            """
        )
        out = run_script(script)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.strip(), "interrupted", out.stderr)

    def test_a_node_stopped_inside_a_handler_never_hangs(self) -> None:
        # The collector can drop a node anywhere, also in a handler holding its lock,
        # and a handler may stop a node itself (close() waits for the socket). A record
        # the runtime logs meanwhile waits for that lock: on one CPU (one runtime
        # thread) both hung for good. Now a drop does not wait, the node reports itself
        # closed before its "node stopped" record, and close() waits at most 5 s (all
        # of it here, on one CPU, where that one thread is the one held up).
        script = textwrap.dedent(
            """
            import logging, os, time
            os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
            from kadmium import DHT

            held = {"dropped": DHT("127.0.0.1", 0)}
            closed = DHT("127.0.0.1", 0)

            class Stopper(logging.Handler):
                def emit(self, record):
                    # Records of Python code (not those kadmium hands over, whose
                    # handlers may not wait for the runtime anyway).
                    if record.name == "kademlia.app.drop" and "dropped" in held:
                        del held["dropped"]  # its last reference
                    if record.name == "kademlia.app.close":
                        closed.close()

            log = logging.getLogger("kademlia")
            log.addHandler(Stopper())
            log.setLevel(logging.DEBUG)
            start = time.monotonic()
            logging.getLogger("kademlia.app.drop").debug("the node goes now")
            print("dropped in a handler:", "dropped" not in held)
            logging.getLogger("kademlia.app.close").debug("the node stops now")
            print("closed in a handler:", closed.closed)
            print("seconds:", round(time.monotonic() - start, 1))
            """
        )
        out = run_script(script)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("dropped in a handler: True", out.stdout)
        self.assertIn("closed in a handler: True", out.stdout)
        print(out.stdout.strip().splitlines()[-1])  # the time both took

    def test_a_handler_on_a_runtime_thread_cannot_block_on_the_runtime(self) -> None:
        # "dropped datagram" is logged on one of the runtime's threads; a blocking
        # call there would wait for the runtime on its own thread (tokio panics).
        # It raises RuntimeError instead, and reads of the node still work.
        script = textwrap.dedent(
            """
            import logging, socket, time
            from kadmium import DHT

            class Blocking(logging.Handler):
                dht = None
                def emit(self, record):
                    if "dropped datagram" not in record.getMessage():
                        return
                    try:
                        self.dht.get("k")
                        print("blocking call returned", flush=True)
                    except RuntimeError as e:
                        print("refused:", e, flush=True)
                    print("stats:", self.dht.stats()["datagrams_dropped"], flush=True)

            handler = Blocking()
            log = logging.getLogger("kademlia")
            log.addHandler(handler)
            log.setLevel(logging.DEBUG)
            with DHT("127.0.0.1", 0) as dht:
                handler.dht = dht
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                    sock.sendto(b"garbage", dht.address)
                for _ in range(500):
                    if dht.stats()["datagrams_dropped"]:
                        break
                    time.sleep(0.01)
                time.sleep(0.1)
            """
        )
        out = run_script(script)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("refused: a blocking kadmium call cannot be made from inside kadmium's "
                      "runtime", out.stdout)
        self.assertIn("stats: 1", out.stdout)
        self.assertNotIn("panicked", out.stderr)

    def test_kadmium_log_env_for_cli_users(self) -> None:
        env = dict(os.environ, KADMIUM_LOG="debug")
        out = subprocess.run(
            [sys.executable, "-m", "kadmium", "get", "--bootstrap", "127.0.0.1:9", "--timeout", "1", "k"],
            capture_output=True, text=True, timeout=60, env=env,
        )
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("kademlia.kadmium.", out.stderr)
        quiet = subprocess.run(
            [sys.executable, "-m", "kadmium", "get", "--bootstrap", "127.0.0.1:9", "--timeout", "1", "k"],
            capture_output=True, text=True, timeout=60,
            env={k: v for k, v in os.environ.items() if k not in ("RUST_LOG", "KADMIUM_LOG")},
        )
        self.assertNotIn("kademlia.kadmium.", quiet.stderr)


if __name__ == "__main__":
    unittest.main()
