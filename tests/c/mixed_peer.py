"""Mixed network test: one upstream Python `kademlia` node and one C node
(examples/c/join_node, driven through its stdin/stdout) on loopback, with
values crossing both ways.

    python mixed_peer.py [--wrap "valgrind ..."] path/to/join_node

Exits 0 when every check passed; prints "mixed: N passed, M failed".
"""

import argparse
import asyncio
import shlex
import sys

import umsgpack
from kademlia.network import Server
from kademlia.utils import digest

DEADLINE_S = 120  # whole test, valgrind included


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, ok, what):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            print(f"mixed: FAILED {what}", file=sys.stderr)


async def ask(proc, line):
    """Send one command to join_node and return its one-line answer."""
    proc.stdin.write((line + "\n").encode())
    await proc.stdin.drain()
    answer = await proc.stdout.readline()
    if not answer:
        raise RuntimeError(f"join_node exited while answering {line!r}")
    return answer.decode().rstrip("\n")


async def run(join_node, wrap, checks):
    server = Server()
    await server.listen(0, interface="127.0.0.1")
    port = server.transport.get_extra_info("sockname")[1]
    proc = await asyncio.create_subprocess_exec(
        *wrap, join_node, "-t", "10000", f"127.0.0.1:{port}",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )
    try:
        ready = (await proc.stdout.readline()).decode().split()
        checks.check(len(ready) == 3 and ready[0] == "ready", f"join_node ready line: {ready}")
        if len(ready) != 3:
            return
        c_port, c_id = int(ready[1]), bytes.fromhex(ready[2])
        # The C node pinged us while bootstrapping, so we know it.
        router = server.protocol.router
        known = [(n.ip, n.port, n.id) for b in router.buckets for n in b.get_nodes()]
        checks.check(("127.0.0.1", c_port) in [(ip, p) for ip, p, _ in known], f"python knows C: {known}")
        checks.check(c_id in [i for _, _, i in known], "C node id as announced")

        # C -> Python: bytes put by C, read by Python.
        answer = await ask(proc, "put from-c hello from C")
        checks.check(answer.startswith("ok put "), f"C put: {answer}")
        got = await server.get("from-c")
        checks.check(got == b"hello from C", f"python get from-c: {got!r}")

        # Python -> C: values of every msgpack type Python can store.
        values = {
            "from-python": b"hello from python \x00\xff",
            "py-str": "text from python",
            "py-int": -42,
            "py-big": 2**63 + 5,
            "py-float": 1.25,
            "py-bool": True,
        }
        for key, value in values.items():
            ok = await server.set(key, value)
            checks.check(ok, f"python set {key}")
        expected = {
            "from-python": "ok get bytes " + values["from-python"].hex(),
            "py-str": "ok get str text from python",
            "py-int": "ok get int -42",
            "py-big": f"ok get uint {2**63 + 5}",
            "py-float": "ok get float 1.25",
            "py-bool": "ok get bool true",
        }
        # None, lists and dicts (set_digest packs anything): C reads their msgpack.
        containers = {"py-none": None, "py-list": [1, "two", [3.5]], "py-dict": {"a": [1, None]}}
        for key, value in containers.items():
            ok = await server.set_digest(digest(key), value)
            checks.check(ok, f"python set_digest {key}")
            expected[key] = "ok get msgpack " + umsgpack.packb(value).hex()
        for key, want in expected.items():
            answer = await ask(proc, f"get {key}")
            checks.check(answer == want, f"C get {key}: {answer!r}, want {want!r}")
        answer = await ask(proc, "get never-set")
        checks.check(answer == "notfound get never-set", f"C get never-set: {answer!r}")
        answer = await ask(proc, "contacts")
        checks.check(answer == "ok contacts 1", f"C contacts: {answer!r}")
    finally:
        if proc.returncode is None:
            proc.stdin.write(b"quit\n")
            await proc.stdin.drain()
            proc.stdin.close()
        code = await proc.wait()
        checks.check(code == 0, f"join_node exit status {code}")
        server.stop()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--wrap", default="", help="command to run join_node under (valgrind)")
    parser.add_argument("join_node")
    args = parser.parse_args()
    checks = Checks()
    try:
        asyncio.run(asyncio.wait_for(run(args.join_node, shlex.split(args.wrap), checks), DEADLINE_S))
    except Exception as e:  # report any crash of the test itself as a failure
        checks.check(False, f"mixed test aborted: {e!r}")
    print(f"mixed: {checks.passed} passed, {checks.failed} failed")
    sys.exit(0 if checks.failed == 0 and checks.passed > 0 else 1)


if __name__ == "__main__":
    main()
