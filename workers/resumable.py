"""md5 + sha1 + sha256 whose running state can leave the process and come back.

A file too large for one task is read by a chain of tasks of bounded bytes; each
hands the next one the hash state (a few hundred bytes), never content. hashlib
objects cannot be serialised, so this calls OpenSSL's own MD5/SHA1/SHA256
functions (the same code hashlib runs) through ctypes: their contexts are plain
structs with no pointers, so their bytes *are* the state.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

CTX_BYTES = 256  # larger than MD5_CTX (92), SHA_CTX (96) and SHA256_CTX (112)
ALGORITHMS = (("md5", "MD5", 16), ("sha1", "SHA1", 20), ("sha256", "SHA256", 32))


@functools.lru_cache(maxsize=1)
def _libcrypto() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("crypto")
    if name is None:
        return None
    try:
        lib = ctypes.CDLL(name)
        for _, fn, _ in ALGORITHMS:
            for suffix in ("_Init", "_Update", "_Final"):
                getattr(lib, fn + suffix)
    except (OSError, AttributeError):
        return None
    return lib


def available() -> bool:
    """Whether resumable hashing works here (OpenSSL's libcrypto with its MD5/SHA APIs)."""
    return _libcrypto() is not None


class ResumableHashes:
    """md5, sha1 and sha256 fed together; ``state()`` and ``from_state()`` carry them between tasks."""

    def __init__(self, state: bytes | None = None) -> None:
        lib = _libcrypto()
        if lib is None:
            raise RuntimeError("OpenSSL libcrypto with MD5/SHA1/SHA256 functions not found")
        self._lib = lib
        if state is None:
            self._ctx = [ctypes.create_string_buffer(CTX_BYTES) for _ in ALGORITHMS]
            for ctx, (_, fn, _) in zip(self._ctx, ALGORITHMS):
                getattr(lib, fn + "_Init")(ctx)
        else:
            if len(state) != CTX_BYTES * len(ALGORITHMS):
                raise ValueError(f"hash state must be {CTX_BYTES * len(ALGORITHMS)} bytes, not {len(state)}")
            self._ctx = [ctypes.create_string_buffer(state[i * CTX_BYTES:(i + 1) * CTX_BYTES], CTX_BYTES)
                         for i in range(len(ALGORITHMS))]

    def update(self, data: bytes) -> None:
        n = ctypes.c_size_t(len(data))
        for ctx, (_, fn, _) in zip(self._ctx, ALGORITHMS):
            getattr(self._lib, fn + "_Update")(ctx, data, n)

    def state(self) -> bytes:
        return b"".join(ctx.raw for ctx in self._ctx)

    def hexdigests(self) -> dict[str, str]:
        """The three digests (finalising copies, so the state stays usable)."""
        out = {}
        for ctx, (name, fn, size) in zip(self._ctx, ALGORITHMS):
            copy = ctypes.create_string_buffer(ctx.raw, CTX_BYTES)
            digest = ctypes.create_string_buffer(size)
            getattr(self._lib, fn + "_Final")(digest, copy)
            out[name] = digest.raw.hex()
        return out
