"""Cost of sealing and opening carriers (AES-256-GCM + zlib + orjson), per blob.

python bench/bench_seal.py
"""

from __future__ import annotations

import os
import random
import time

from cryptography.fernet import Fernet

from respgate.seal import Sealer


def per_op(fn, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


WORDS = ["the", "a", "launch", "is", "on", "Tuesday", "support", "file", "test", "ran", "passed", "failed", "fix", "main.py", "config", "key", "store", "replica", "tenant", "model", "summary", "decision", "user", "wants"]  # fmt: skip


def text(size: int) -> str:
    """English-like text of about `size` characters (compresses like prose, ~2-3x)."""
    rng = random.Random(size)
    words: list[str] = []
    while sum(len(w) + 1 for w in words) < size:
        words.append(rng.choice(WORDS) if rng.random() < 0.7 else f"{rng.getrandbits(24):x}")
    return " ".join(words)


def main() -> None:
    sealer = Sealer(os.urandom(32))
    fernet = Fernet(Fernet.generate_key())
    payloads = {
        "reasoning (signature + 2 KB thinking)": {
            "provider": "claude", "opaque": os.urandom(300).hex(), "summary": text(2000),
        },
        "compaction (20 KB summary)": {"summary": text(20000)},
    }  # fmt: skip
    for name, payload in payloads.items():
        blob = sealer.seal("reasoning", "tenant", payload)
        n = 2000
        seal = per_op(lambda p=payload: sealer.seal("reasoning", "tenant", p), n)
        opened = per_op(lambda b=blob: sealer.open("reasoning", "tenant", b), n)
        raw = str(payload).encode()
        token = fernet.encrypt(raw)
        f_seal = per_op(lambda r=raw: fernet.encrypt(r), n)
        f_open = per_op(lambda t=token: fernet.decrypt(t), n)
        print(f"{name}: seal {seal:.1f} us, open {opened:.1f} us, blob {len(blob)} chars "
              f"(Fernet, uncompressed: {f_seal:.1f} / {f_open:.1f} us, {len(token)} chars)")  # fmt: skip


if __name__ == "__main__":
    main()
