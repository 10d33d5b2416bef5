"""kadmium.DHT: a blocking, dict-like node for scripts (no asyncio needed).

    python examples/python/dht_example.py
"""

from __future__ import annotations

from kadmium import DHT


def main() -> None:
    with DHT("127.0.0.1", 0) as seed:
        host, port = seed.address
        with DHT("127.0.0.1", 0, seeds=[(host, port)]) as alice, \
                DHT("127.0.0.1", 0, seeds=[(host, port)]) as bob:
            alice["answer"] = 42
            print("bob reads:", bob["answer"])
            print("with a default:", bob.get("unknown", default="n/a"))
            alice["sample"] = {"tags": ["any", "JSON"], "n": None}
            print("JSON-like values:", bob["sample"])
            try:
                bob["unknown"]
            except KeyError as e:
                print("missing key raises KeyError:", e)
            print("stored for 60 s:", alice.set("temporary", "soon gone", ttl=60))
            print("alice's peers:", [(p["host"], p["port"]) for p in alice.peers()])
            print("alice's id:", hex(alice.identity()))


if __name__ == "__main__":
    main()
