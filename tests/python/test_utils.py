"""kadmium.utils matches kademlia.utils: digest for every input, and the helpers."""

import hashlib
import os
import random
import unittest

from kademlia import utils as upstream

from kadmium import digest, utils


class Weird:
    def __str__(self) -> str:
        return "weird ✓"


class RenamedStr(str):
    def __str__(self) -> str:
        return "renamed"


class Tagged(bytes):
    def __str__(self) -> str:
        return "tagged"


class OwnEncoding(str):
    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return b"own encoding"


class GivesOwnEncoding:
    def __str__(self) -> str:
        return OwnEncoding("text")


class Unprintable:
    def __str__(self) -> str:
        raise LookupError("no text for this one")


class DigestTest(unittest.TestCase):
    def test_known_values(self) -> None:
        self.assertEqual(digest(1), hashlib.sha1(b"1").digest())
        self.assertEqual(digest("another"), hashlib.sha1(b"another").digest())
        self.assertEqual(digest(1), digest("1"))
        self.assertEqual(digest("1"), digest(b"1"))
        self.assertEqual(digest(True), hashlib.sha1(b"True").digest())
        self.assertEqual(len(digest("x")), 20)

    def test_equal_to_upstream_for_many_inputs(self) -> None:
        rng = random.Random(7)
        inputs = [
            0, 1, -1, 2**255, -(2**100), 3.5, float("nan"), float("-inf"), 1e300,
            True, False, None, "", "key", "ünïcødé ✓", "\x00", "a" * 10_000,
            b"", b"\x00", b"\xff" * 64, bytearray(b"ab"), memoryview(b"cd"),
            (1, 2), [1, "a"], {"k": 1}, frozenset(), Weird(), object,
            RenamedStr("original"), Tagged(b"raw"), "\U0001f600 outside the BMP",
            GivesOwnEncoding(), OwnEncoding("its own"),
        ]
        inputs += [os.urandom(rng.randrange(0, 300)) for _ in range(300)]
        inputs += [rng.getrandbits(rng.randrange(1, 300)) for _ in range(300)]
        inputs += ["".join(chr(rng.randrange(32, 0x2FFF)) for _ in range(rng.randrange(40)))
                   for _ in range(300)]
        inputs += [rng.random() * 10 ** rng.randrange(-20, 20) for _ in range(100)]
        for x in inputs:
            with self.subTest(x=repr(x)[:60]):
                self.assertEqual(digest(x), upstream.digest(x))

    def test_errors_and_keyword_as_upstream(self) -> None:
        self.assertEqual(digest(string="k"), upstream.digest(string="k"))
        for bad, error in (("lone \ud800 surrogate", UnicodeEncodeError),
                           (Unprintable(), LookupError)):
            with self.subTest(bad=type(bad).__name__):
                with self.assertRaises(error):
                    upstream.digest(bad)
                with self.assertRaises(error):
                    digest(bad)

    def test_helpers(self) -> None:
        for args in (["prefix", "prefixasdf", "prefix", "prefixxxx"], ["p", "prefixasdf"],
                     ["one", "two"], ["hi"], [b"abc", b"abd"]):
            self.assertEqual(utils.shared_prefix(args), upstream.shared_prefix(args))
        for b in (b"", b"\x00", b"\x05\xff", os.urandom(20)):
            self.assertEqual(utils.bytes_to_bit_string(b), upstream.bytes_to_bit_string(b))


class GatherDictTest(unittest.IsolatedAsyncioTestCase):
    async def test_gather_dict(self) -> None:
        async def twice(x: int) -> int:
            return 2 * x

        self.assertEqual(await utils.gather_dict({"a": twice(1), "b": twice(2)}),
                         {"a": 2, "b": 4})


if __name__ == "__main__":
    unittest.main()
