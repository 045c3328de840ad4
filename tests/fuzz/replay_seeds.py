#!/usr/bin/env python3
"""Writes the seeds of fuzz_replay that hold records (corpus/replay/records-*),
named producers' positions too (records-producer).

Each seed is an input of fuzz_replay.c's layout 2 (or 3: the first frame in
an older segment), the frames it builds with good CRCs: the first byte is
the layout (bit 2: dynamic mode), then per frame a byte of its length - 1
and its payload.  Tick frames are a receive time (i64) and msgpack
MarketEvent maps; records are lib/oprec.h's payloads (i64 TKS_OPREC_MARK,
u8 kind, body), little-endian.  Run from anywhere; rewrites the files.
"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "replay")
MARK = -(2**63)
EVICT, SEAL_BEGIN, SEAL_COMMIT, SEAL_ABORT, PRODUCER = 1, 2, 3, 4, 5
T0 = 1767225600 * 10**9  # 2026-01-01, ns


def mp_str(s):
    b = s.encode()
    assert len(b) < 32
    return bytes([0xA0 | len(b)]) + b


def tick(sym, ts, price=150.0, volume=100, extra=None):
    """A tick frame's payload: receive time ts, one MarketEvent map."""
    fields = [("ticker", mp_str(sym)), ("ts", b"\xd3" + struct.pack(">q", ts)),
              ("price", b"\xcb" + struct.pack(">d", price)),
              ("volume", b"\xd3" + struct.pack(">q", volume))]
    if extra:
        fields.append((extra, mp_str("X")))  # undeclared: dynamic in dynamic mode
    body = bytes([0x80 | len(fields)]) + b"".join(mp_str(k) + v for k, v in fields)
    return struct.pack("<q", ts) + body


def evict(rep, sym, ticks):
    s = sym.encode()
    return struct.pack("<qBBB", MARK, EVICT, rep, len(s)) + s + struct.pack("<Q", ticks)


def seal_begin(seal, cut):
    return struct.pack("<qBQq", MARK, SEAL_BEGIN, seal, cut)


def seal_end(kind, seal):
    return struct.pack("<qBQ", MARK, kind, seal)


def producer(name, position, ticks=()):
    """A producer record: its name and position, then (optionally) the
    receive time and the ticks of the read it ends (tick() payloads)."""
    n = name.encode()
    out = struct.pack("<qBB", MARK, PRODUCER, len(n)) + n + struct.pack("<Q", position)
    if ticks:
        out += ticks[0][:8] + b"".join(t[8:] for t in ticks)
    return out


def seed(name, first_byte, payloads):
    out = bytearray([first_byte])
    for p in payloads:
        assert 1 <= len(p) <= 256, (name, len(p))
        out.append(len(p) - 1)
        out += p
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(out)


S = 10**9
seed("records-evict", 2, [
    tick("AAPL", T0 + 1 * S), tick("AAPL", T0 + 2 * S), tick("MSFT", T0 + 2 * S),
    tick("AAPL", T0 + 3 * S),
    evict(0, "AAPL", 2),   # the two oldest AAPL
    evict(0, "MSFT", 5),   # more than it holds: all of it
    evict(1, "AAPL", 1),   # a rep it has nothing in
    evict(0, "ZZZ", 1),    # a symbol never seen: nothing
    tick("AAPL", T0 + 4 * S),
])
seed("records-seal", 2, [
    tick("AAPL", T0 + 1 * S), tick("MSFT", T0 + 2 * S), tick("AAPL", T0 + 3 * S),
    seal_begin(1, T0 + 3 * S),  # ticks before 3 s
    tick("AAPL", T0 + 5 * S),
    seal_end(SEAL_COMMIT, 1),   # trims them: AAPL 1 s, MSFT 2 s
    seal_begin(2, T0 + 9 * S),
    seal_end(SEAL_ABORT, 2),    # forgotten: memory keeps everything
    seal_end(SEAL_COMMIT, 2),   # the begin is gone: nothing
    seal_end(SEAL_COMMIT, 7),   # never begun: nothing
    seal_begin(2**64 - 1, 2**63 - 1), seal_end(SEAL_COMMIT, 2**64 - 1),  # trims all
    tick("MSFT", T0 + 6 * S),
])
seed("records-dynamic", 6, [
    tick("AAPL", T0 + 1 * S), tick("AAPL", T0 + 2 * S, extra="venue"),
    tick("AAPL", T0 + 3 * S, extra="venue"), tick("MSFT", T0 + 3 * S, extra="side"),
    evict(2, "AAPL", 1),        # the oldest AAPL (dynamic mode: every tick is dynamic)
    evict(0, "AAPL", 1),        # no slotted series: nothing
    seal_begin(3, T0 + 3 * S), seal_end(SEAL_COMMIT, 3),  # AAPL 2 s; the ties at 3 s stay
])
seed("records-bad", 2, [
    tick("AAPL", T0 + 1 * S),
    struct.pack("<qB", MARK, 9) + bytes(8),  # an unknown kind
    evict(0, "AAPL", 1)[:-1],                # a byte short
    seal_end(SEAL_COMMIT, 1) + b"\x00",      # a byte over
    struct.pack("<qBBB", MARK, EVICT, 3, 1) + b"A" + bytes(8),  # rep out of range
    struct.pack("<qBBB", MARK, EVICT, 0, 0) + bytes(8),         # an empty symbol
    struct.pack("<q", MARK),                 # the mark alone
    tick("AAPL", T0 + 2 * S),
])
seed("records-two-segments", 3, [
    seal_begin(4, T0 + 2 * S),  # alone in the older segment
    tick("AAPL", T0 + 1 * S), tick("AAPL", T0 + 2 * S), seal_end(SEAL_COMMIT, 4),
])
seed("records-producer", 2, [
    tick("AAPL", T0 + 1 * S),
    producer("feed-a", 2, [tick("AAPL", T0 + 2 * S), tick("MSFT", T0 + 2 * S)]),  # with its read
    producer("feed-b", 7),                      # a position restated (a new segment's start)
    producer("feed-a", 3, [tick("AAPL", T0 + 3 * S)]),
    producer("f" * 64, 1),                      # the longest name
    producer("feed-b", 2**64 - 1),              # the largest position
    struct.pack("<qBB", MARK, PRODUCER, 0) + struct.pack("<Q", 1),  # an empty name
    struct.pack("<qBB", MARK, PRODUCER, 65) + b"g" * 65 + struct.pack("<Q", 1),  # one too long
    producer("feed-c", 4) + b"\x01\x02\x03",     # a cut receive time
    producer("feed-c", 4)[:-1],                 # a byte short of the position
    tick("AAPL", T0 + 4 * S),
])
