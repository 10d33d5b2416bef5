"""examples/python/chat_presence.py runs and every lookup sees what it should."""

import os
import subprocess
import sys
import unittest

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "python", "chat_presence.py")


class ChatPresenceExampleTest(unittest.TestCase):
    def test_runs_and_all_steps_ok(self) -> None:
        run = subprocess.run([sys.executable, EXAMPLE, "--nodes", "6"], capture_output=True,
                             text=True, timeout=120)
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        lines = run.stdout.splitlines()
        self.assertEqual(len(lines), 4, run.stdout)
        self.assertTrue(all(line.endswith(" ok") for line in lines), run.stdout)
        self.assertIn("'198.51.100.4:7000'", lines[2])


if __name__ == "__main__":
    unittest.main()
