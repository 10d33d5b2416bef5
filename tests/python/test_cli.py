"""The `kadmium` command: node, put, get, demo (run as subprocesses, like a user would)."""

import argparse
import os
import re
import signal
import subprocess
import sys
import time
import unittest
from typing import List

from kadmium.cli import build_parser, parse_address
from kadmium.cli_records import convert_value

PY = sys.executable


def kadmium(*args: str, timeout: float = 60) -> "subprocess.CompletedProcess[str]":
    return subprocess.run([PY, "-m", "kadmium", *args], capture_output=True, text=True,
                          timeout=timeout)


class ParsingTest(unittest.TestCase):
    def test_parse_address(self) -> None:
        self.assertEqual(parse_address("127.0.0.1:4000"), ("127.0.0.1", 4000))
        self.assertEqual(parse_address("[::1]:4000"), ("::1", 4000))
        self.assertEqual(parse_address("localhost:1"), ("localhost", 1))
        for bad in ("4000", "host:", ":4000", "host:port", "host:70000"):
            with self.assertRaises(argparse.ArgumentTypeError):
                parse_address(bad)

    def test_parser(self) -> None:
        args = build_parser().parse_args(
            ["node", "-a", "127.0.0.1", "-p", "4000", "--bootstrap", "1.2.3.4:5",
             "--bootstrap", "h:6"])
        self.assertEqual((args.host, args.port), ("127.0.0.1", 4000))
        self.assertEqual(args.bootstrap, [("1.2.3.4", 5), ("h", 6)])
        args = build_parser().parse_args(["put", "--bootstrap", "h:1", "k", "v", "--type", "int"])
        self.assertEqual((args.key, args.value, args.type), ("k", "v", "int"))

    def test_bool_values_are_yes_or_no_words(self) -> None:
        for word, value in (("1", True), ("True", True), ("yes", True), ("on", True),
                            ("0", False), ("false", False), ("No", False), ("off", False)):
            self.assertIs(convert_value("bool", word), value, word)
        for bad in ("ture", "", "2", "y"):
            with self.assertRaisesRegex(argparse.ArgumentTypeError, "not a valid bool"):
                convert_value("bool", bad)


class CommandsTest(unittest.TestCase):
    def test_node_put_get_and_ctrl_c(self) -> None:
        node = subprocess.Popen(
            [PY, "-m", "kadmium", "node", "-a", "127.0.0.1", "-p", "0", "--status-interval", "0.2",
             "--no-api"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert node.stdout is not None
            first = node.stdout.readline()
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", first)
            assert m, first
            addr = f"127.0.0.1:{m.group(1)}"
            put = kadmium("put", "--bootstrap", addr, "greeting", "hello")
            self.assertEqual(put.returncode, 0, put.stderr)
            self.assertIn("stored", put.stdout)
            put = kadmium("put", "--bootstrap", addr, "n", "42", "--type", "int")
            self.assertEqual(put.returncode, 0, put.stderr)
            got = kadmium("get", "--bootstrap", addr, "greeting")
            self.assertEqual((got.returncode, got.stdout), (0, "hello\n"), got.stderr)
            got = kadmium("get", "--bootstrap", addr, "n")
            self.assertEqual(got.stdout, "42\n")
            missing = kadmium("get", "--bootstrap", addr, "missing")
            self.assertEqual(missing.returncode, 1)
            self.assertIn("not found", missing.stderr)
            put = kadmium("put", "--bootstrap", addr, "long", "x", "--ttl", "1e20")
            self.assertEqual(put.returncode, 0, put.stderr)  # capped at 7 days, not refused
            status = node.stdout.readline()
            while "contacts=" not in status:
                status = node.stdout.readline()
            self.assertRegex(status, r"contacts=\d+ values=\d+ .*rx=[\d.]+/s")
            node.send_signal(signal.SIGINT)
            out, err = node.communicate(timeout=10)
            self.assertEqual(node.returncode, 0, err)
            self.assertTrue(out.rstrip().endswith("stopped"), out)
            self.assertNotIn("Traceback", err)
        finally:
            if node.poll() is None:
                node.kill()
                node.communicate()

    def test_unreachable_bootstrap(self) -> None:
        got = kadmium("get", "--bootstrap", "127.0.0.1:9", "k")
        self.assertEqual(got.returncode, 1)
        self.assertIn("no bootstrap node answered", got.stderr)

    def test_demo(self) -> None:
        demo = kadmium("demo", "--nodes", "8", "--ops", "30", "--concurrency", "4")
        self.assertEqual(demo.returncode, 0, demo.stdout + demo.stderr)
        lines: List[str] = demo.stdout.splitlines()
        put = next(line for line in lines if line.startswith("put "))
        get = next(line for line in lines if line.startswith("get "))
        self.assertIn("30/30", put)
        self.assertIn("100.0%", get)
        self.assertIn("bootstrapping", demo.stderr)

    def test_bad_arguments_are_one_line_naming_them(self) -> None:
        cases = [
            (["put", "--bootstrap", "127.0.0.1:9", "--type", "int", "k", "notanint"],
             "argument value: not a valid int: 'notanint'"),
            (["node", "-p", "70000"], "argument -p/--port: expected a port from 0 to 65535"),
            (["demo", "--concurrency", "0"], "argument --concurrency: expected a positive integer"),
            (["demo", "--nodes", "1"], "argument --nodes: expected an integer of at least 2"),
            (["get", "--bootstrap", "127.0.0.1:9", "--public-key", "00" * 32, "--salt", "s" * 65],
             "argument --salt: at most 64 bytes in UTF-8, got 65"),
            (["get", "--bootstrap", "127.0.0.1:9", "k\udcff"], "argument KEY: not valid UTF-8"),
            (["put", "--bootstrap", "127.0.0.1:9", "k", "v\udcff"],
             "argument VALUE: not valid UTF-8"),
            (["put", "--bootstrap", "127.0.0.1:9", "--ttl", "1e-12", "k", "v"],
             "argument --ttl: expected a positive number of seconds (at least 1e-9)"),
            # A VALUE after an option, as in `put KEY --type int VALUE`, is the VALUE
            # (it was "kadmium: error: unrecognized arguments"); a word too many is
            # named by the subcommand.
            (["put", "--bootstrap", "127.0.0.1:9", "k", "--type", "int", "notanint"],
             "argument value: not a valid int: 'notanint'"),
            (["put", "--bootstrap", "127.0.0.1:9", "k", "--type", "int", "-x5"],
             "kadmium put: error: unrecognized arguments: -x5"),
            (["get", "--bootstrap", "127.0.0.1:9", "k", "extra"],
             "kadmium get: error: unrecognized arguments: extra"),
            (["node", "--data-dir", ""],
             "argument --data-dir: expected a directory, got an empty path"),
            (["node", "--status-interval", "0"], "argument --status-interval: expected a positive"),
            (["node", "--ksize", "0"], "argument --ksize: expected an integer from 1 to 1000"),
            (["node", "--ksize", "5000"], "argument --ksize: expected an integer from 1 to 1000"),
            (["node", "--alpha", "1000"], "argument --alpha: expected an integer from 1 to 100"),
            (["node", "--max-value-size", "70000"],
             "argument --max-value-size: expected a byte count from 1 to 65400"),
            (["put", "--bootstrap", "127.0.0.1:9", "--type", "bool", "k", "ture"],
             "argument value: not a valid bool: 'ture'"),
            (["put", "--bootstrap", "127.0.0.1:9"], "the following arguments are required"),
            (["nosuchcommand"], "argument COMMAND: invalid choice"),
            (["get", "--bootstrap", "127.0.0.1:9", "--timeout", "-1", "k"], "argument --timeout"),
            (["put", "--bootstrap", "127.0.0.1:9", "--ttl", "0", "k", "v"], "argument --ttl"),
            (["put", "--bootstrap", "127.0.0.1:9", "--ttl", "nan", "k", "v"], "argument --ttl"),
            # Checked before anything starts (they were errors of the running node, exit 1,
            # naming no flag):
            (["node", "-a", "999.1.1.1", "--no-api"],
             "argument -a/--host: cannot resolve host '999.1.1.1'"),
            (["node", "-a", "127.0.0.1", "--api", "nohost.invalid:51190"],
             "argument --api: cannot resolve host 'nohost.invalid'"),
            (["node", "-a", "127.0.0.1", "-p", "65000"],
             "argument -p/--port: no default API address for P2P port 65000"),
            (["node", "--no-api", "--testing-clock-offset", "nan"],
             "argument --testing-clock-offset"),
            (["put", "--bootstrap", "127.0.0.1:9", "--interface", "999.9.9.9", "k", "v"],
             "argument --interface: cannot resolve host '999.9.9.9'"),
            (["put", "--bootstrap", "127.0.0.1:9", "--type", "int", "k", "9" * 23],
             "argument value: not a valid int"),
            (["demo", "--nodes", "2", "--ops", "1", "--value-size", "9000"],
             "argument --value-size: expected a byte count from 0 to 8137"),
        ]
        for argv, message in cases:
            with self.subTest(argv=argv):
                run = kadmium(*argv, timeout=30)  # a hang fails here
                self.assertEqual(run.returncode, 2, run.stderr)
                self.assertIn(message, run.stderr)
                self.assertEqual(len(run.stderr.strip().splitlines()), 1, run.stderr)
                self.assertNotIn("Traceback", run.stderr)

    def test_runtime_errors_are_one_line(self) -> None:
        # A port already in use: the bind error, named, no traceback.
        import socket
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as held:
            held.bind(("127.0.0.1", 0))
            port = held.getsockname()[1]
            run = kadmium("node", "-a", "127.0.0.1", "-p", str(port), "--no-api", timeout=30)
        self.assertEqual(run.returncode, 1, run.stderr)
        self.assertTrue(run.stderr.startswith(f"kadmium node: cannot listen on 127.0.0.1:{port}: "),
                        run.stderr)
        self.assertIn("Address already in use", run.stderr)
        self.assertEqual(len(run.stderr.strip().splitlines()), 1, run.stderr)
        # A bootstrap host that cannot be resolved: the error once, not a warning too.
        for argv in (["put", "--bootstrap", "nohost.invalid:5", "k", "v"],
                     ["get", "--bootstrap", "nohost.invalid:5", "k"]):
            with self.subTest(argv=argv):
                run = kadmium(*argv, timeout=30)
                self.assertEqual(run.returncode, 1, run.stderr)
                self.assertEqual(run.stderr.strip().splitlines(),
                                 [f"kadmium {argv[0]}: bad address: nohost.invalid:5"])

    def test_an_ipv6_node_shows_its_address_in_brackets(self) -> None:
        import socket
        try:
            with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
                probe.bind(("::1", 0))
        except OSError:
            self.skipTest("no IPv6 loopback here")
        node = subprocess.Popen([PY, "-m", "kadmium", "node", "-a", "::1", "-p", "0"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert node.stdout is not None
            self.assertRegex(node.stdout.readline(), r"listening on \[::1\]:\d+$")
            self.assertRegex(node.stdout.readline(),
                             r"VoidPhone DHT API listening on \[::1\]:\d+$")
        finally:
            node.send_signal(signal.SIGINT)
            node.communicate(timeout=30)

    def test_entry_point_and_version(self) -> None:
        out = kadmium("--version")
        self.assertEqual(out.returncode, 0)
        self.assertRegex(out.stdout, r"kadmium \d+\.\d+")
        script = os.path.join(os.path.dirname(PY), "kadmium")
        if os.path.exists(script):  # installed console script
            self.assertEqual(subprocess.run([script, "--help"], capture_output=True,
                                            timeout=30).returncode, 0)


if __name__ == "__main__":
    unittest.main()
