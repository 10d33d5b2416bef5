"""`kadmium keygen`, signed `put --key` / `get --public-key`, `node --strict-local-limits`,
and the one-shot commands running client-only (run as subprocesses, like a user would)."""

import os
import re
import signal
import stat
import subprocess
import sys
import tempfile
import unittest

from test_cli import kadmium

PY = sys.executable


class KeygenTest(unittest.TestCase):
    def test_writes_hex_secret_0600_and_refuses_overwrite(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "me.key")
            run = kadmium("keygen", path)
            self.assertEqual(run.returncode, 0, run.stderr)
            public = run.stdout.strip()
            self.assertRegex(public, r"^[0-9a-f]{64}$")
            with open(path) as f:
                secret = f.read().strip()
            self.assertRegex(secret, r"^[0-9a-f]{64}$")
            self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
            again = kadmium("keygen", path)
            self.assertEqual(again.returncode, 2)
            self.assertEqual(again.stderr.strip().count("\n"), 0, again.stderr)
            self.assertIn("argument FILE", again.stderr)
            self.assertIn("--force", again.stderr)
            with open(path) as f:
                self.assertEqual(f.read().strip(), secret)  # untouched
            forced = kadmium("keygen", "--force", path)
            self.assertEqual(forced.returncode, 0, forced.stderr)
            self.assertNotEqual(forced.stdout.strip(), public)
            self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
            with open(path) as f:
                self.assertNotEqual(f.read().strip(), secret)
            self.assertEqual(sorted(os.listdir(d)), ["me.key"])  # no temporary left

    def test_a_signed_put_under_a_second_is_a_usage_error(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            key = os.path.join(d, "me.key")
            self.assertEqual(kadmium("keygen", key).returncode, 0)
            run = kadmium("put", "--bootstrap", "127.0.0.1:9", "--key", key, "--ttl", "0.5", "v")
            self.assertEqual(run.returncode, 2, run.stderr)
            self.assertEqual(run.stderr.strip().count("\n"), 0, run.stderr)
            self.assertIn("argument --ttl: a signed value lives at least 1 s, got 0.5", run.stderr)

    def test_force_replaces_only_a_file(self) -> None:
        # A FIFO or a directory at FILE is refused and left as it is (as root,
        # `keygen --force /dev/null` used to delete the device and write a file there).
        with tempfile.TemporaryDirectory() as d:
            fifo = os.path.join(d, "fifo")
            os.mkfifo(fifo)
            sub = os.path.join(d, "dir")
            os.mkdir(sub)
            for path in (fifo, sub):
                with self.subTest(path=path):
                    run = kadmium("keygen", "--force", path)
                    self.assertEqual(run.returncode, 2, run.stderr)
                    self.assertEqual(run.stderr.strip().count("\n"), 0, run.stderr)
                    self.assertIn(f"argument FILE: {path} is not a regular file", run.stderr)
            self.assertTrue(stat.S_ISFIFO(os.lstat(fifo).st_mode))
            self.assertTrue(stat.S_ISDIR(os.lstat(sub).st_mode))


class SignedCommandsTest(unittest.TestCase):
    def test_put_update_get_signed_through_a_strict_node(self) -> None:
        node = subprocess.Popen(
            [PY, "-m", "kadmium", "node", "-a", "127.0.0.1", "-p", "0", "--no-api",
             "--strict-local-limits", "--status-interval", "0.2"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert node.stdout is not None
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", node.stdout.readline())
            assert m
            addr = f"127.0.0.1:{m.group(1)}"
            with tempfile.TemporaryDirectory() as d:
                key = os.path.join(d, "me.key")
                public = kadmium("keygen", key).stdout.strip()
                put = kadmium("put", "--bootstrap", addr, "--key", key, "--salt", "chat", "1.2.3.4:5")
                self.assertEqual(put.returncode, 0, put.stderr)
                self.assertIn(f"stored seq 1 under public key {public}", put.stdout)
                put = kadmium("put", "--bootstrap", addr, "--key", key, "--salt", "chat", "5.6.7.8:9")
                self.assertIn("stored seq 2", put.stdout, put.stderr)
                got = kadmium("get", "--bootstrap", addr, "--public-key", public, "--salt", "chat")
                self.assertEqual((got.returncode, got.stdout), (0, "5.6.7.8:9\n"), got.stderr)
                other = kadmium("get", "--bootstrap", addr, "--public-key", public)
                self.assertEqual(other.returncode, 1)
                self.assertIn("not found", other.stderr)
            # The one-shot commands were client-only: the node's status line
            # counts no contact although six of them talked to it.
            status = ""
            while "contacts=" not in status:
                status = node.stdout.readline()
            status = node.stdout.readline()
            self.assertIn("contacts=0 ", status)
            node.send_signal(signal.SIGINT)
            node.communicate(timeout=10)
        finally:
            if node.poll() is None:
                node.kill()
                node.communicate()

    def test_node_data_dir_from_flag_and_from_ini(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            ini = os.path.join(d, "config.ini")
            with open(ini, "w") as f:
                f.write("[dht]\np2p_address = 127.0.0.1:0\ndata_dir = from-ini\n")
            for extra, made in ((["--data-dir", os.path.join(d, "from-flag")], "from-flag"),
                                (["-c", ini], "from-ini")):
                node = subprocess.Popen(
                    [PY, "-m", "kadmium", "node", "-a", "127.0.0.1", "-p", "0", "--no-api",
                     "--status-interval", "0.2", *extra],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                try:
                    assert node.stdout is not None
                    self.assertIn("listening on", node.stdout.readline())
                    self.assertTrue(os.listdir(os.path.join(d, made)), made)
                    # A status line: the SIGINT handler is installed by now.
                    while "contacts=" not in node.stdout.readline():
                        pass
                    node.send_signal(signal.SIGINT)
                    _, err = node.communicate(timeout=10)
                    self.assertEqual(node.returncode, 0, err)
                finally:
                    if node.poll() is None:
                        node.kill()
                        node.communicate()

    def test_bad_signed_arguments_are_one_line_naming_them(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            bad_key = os.path.join(d, "bad.key")
            with open(bad_key, "w") as f:
                f.write("not hex\n")
            missing = os.path.join(d, "missing.key")
            b = "127.0.0.1:9"
            cases = [
                (["put", "--bootstrap", b, "--key", bad_key, "v"], "argument --key: "),
                (["put", "--bootstrap", b, "--key", missing, "v"], "argument --key: cannot read"),
                (["put", "--bootstrap", b, "--key", bad_key, "k", "v"], "argument VALUE"),
                (["put", "--bootstrap", b, "--salt", "s", "k", "v"], "argument --salt"),
                (["get", "--bootstrap", b, "--public-key", "abcd"], "argument --public-key: expected 64 hex"),
                (["get", "--bootstrap", b, "--public-key", "00" * 32, "k"], "argument KEY"),
                (["get", "--bootstrap", b], "KEY (or --public-key)"),
            ]
            for argv, message in cases:
                with self.subTest(argv=argv):
                    run = kadmium(*argv, timeout=30)
                    self.assertEqual(run.returncode, 2, run.stderr)
                    self.assertIn(message, run.stderr)
                    self.assertNotIn("Traceback", run.stderr)


if __name__ == "__main__":
    unittest.main()
