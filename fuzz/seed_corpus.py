#!/usr/bin/env python3
"""Seeds the fuzz corpora from the real binlog fixtures (not committed; see README "Fuzzing").

    python3 fuzz/seed_corpus.py [FIXTURES_DIR]      # default: ../shared/fixtures/binlog

Writes fuzz/corpus/{binlog_decode,binlog_rows,canal_frame,row_change_read}/. Existing files are kept, so
seeding again after a run only adds.

- binlog_decode: every fixture file up to 64 KiB whole, and every fixture cut into slices of
  consecutive events (magic + the FORMAT_DESCRIPTION in force + at most ~16 KiB of events), so
  the large files' deep events are reachable within a small -max_len.
- binlog_rows: each TABLE_MAP with the rows events that follow it, in binlog_rows's layout.
- canal_frame: a few hand-encoded Canal packets of every type.
- row_change_read: hand-encoded RowChanges: rows with NULLs, updates, fields out of order and
  repeated, unknown fields of every wire type, a DDL.
"""
import hashlib
import os
import struct
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "shared", "fixtures", "binlog")
CORPUS = os.path.join(HERE, "corpus")
MAGIC = b"\xfebin"
WHOLE_MAX = 64 * 1024
SLICE_MAX = 16 * 1024

FDE, TABLE_MAP = 15, 19
# binlog_rows's selector table (fuzz_targets/binlog_rows.rs EVENT_TYPES).
ROWS_TYPES = [30, 31, 32, 39, 23, 24, 25, 20, 21, 22, 19]


def write(target, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def events(data):
    """(offset, type, bytes) of each whole event after the magic."""
    out, o = [], 4
    while o + 19 <= len(data):
        size = struct.unpack_from("<I", data, o + 9)[0]
        if size < 19 or o + size > len(data):
            break
        out.append((o, data[o + 4], data[o:o + size]))
        o += size
    return out


def has_crc(ev):
    return len(ev) > 23 and zlib.crc32(ev[:-4]) & 0xFFFFFFFF == struct.unpack("<I", ev[-4:])[0]


def format_selector(fde):
    version = fde[21:71].split(b"\0")[0].decode("latin1")
    crc = has_crc(fde)
    if "MariaDB" in version:
        return 2 if crc else None
    if crc:
        return 0
    if version.startswith(("5.0", "5.1", "5.5")):
        return 3
    return 1


def binlog_decode(path, data):
    if len(data) <= WHOLE_MAX:
        write("binlog_decode", data)
    evs = events(data)
    fde, chunk, size = None, [], 0
    for _, ty, ev in evs:
        if ty == FDE:
            fde = ev
            continue
        if fde is None:
            continue
        chunk.append(ev)
        size += len(ev)
        if size >= SLICE_MAX:
            write("binlog_decode", MAGIC + fde + b"".join(chunk))
            chunk, size = [], 0
    if chunk and fde is not None:
        write("binlog_decode", MAGIC + fde + b"".join(chunk))


def binlog_rows(path, data):
    fde, sel, crc, group = None, None, False, None

    def flush():
        if group and sel is not None and len(group[1]) > 0:
            out = bytes([sel]) + struct.pack("<H", len(group[0])) + group[0]
            for ty, body in group[1]:
                out += bytes([ROWS_TYPES.index(ty)]) + struct.pack("<H", len(body)) + body
            write("binlog_rows", out)

    for _, ty, ev in events(data):
        body = ev[19:-4] if crc else ev[19:]
        if ty == FDE:
            flush()
            group = None
            fde, sel, crc = ev, format_selector(ev), has_crc(ev)
            continue
        if len(body) > 0xFFFF:
            continue
        if ty == TABLE_MAP:
            flush()
            group = (body, [])
        elif ty in ROWS_TYPES and group is not None and len(group[1]) < 8:
            group[1].append((ty, body))
    flush()


# --- canal_frame: minimal protobuf writer -------------------------------------------------


def varint(n):
    n &= (1 << 64) - 1
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def fv(num, value):
    return varint(num << 3) + varint(value)


def fb(num, value):
    if isinstance(value, str):
        value = value.encode()
    return varint(num << 3 | 2) + varint(len(value)) + value


def frame(payload):
    return struct.pack(">i", len(payload)) + payload


def packet(ty, body=b"", version=None):
    p = b""
    if version is not None:
        p += fv(2, version)
    p += fv(3, ty)
    if body:
        p += fb(5, body)
    return p


def canal_frame():
    pair = fb(1, "k") + fb(2, "v")
    column = fv(1, 0) + fv(2, 4) + fb(3, "id") + fv(4, 1) + fv(5, 1) + fv(6, 0) + fb(8, "42") + fb(10, "int(11)")
    row = fb(1, column) + fb(2, column)
    row_change = fv(1, 7) + fv(2, 1) + fv(10, 0) + fb(11, "insert into t values (42)") + fb(12, row) + fb(13, pair)
    header = (fv(1, 1) + fb(2, "mysql-bin.000001") + fv(3, 4) + fv(4, 1) + fb(5, "UTF-8") + fv(6, 1700000000000)
              + fv(7, 2) + fb(8, "shop") + fb(9, "t") + fv(10, 100) + fv(11, 1) + fb(12, pair) + fb(13, "0-1-5"))
    entries = [
        fb(1, header) + fv(2, 2) + fb(3, row_change),
        fb(1, header) + fv(2, 1) + fb(3, fv(4, 7) + fb(3, pair)),
        fb(1, header) + fv(2, 3) + fb(3, fb(2, "123")),
    ]
    messages = fv(1, 5) + b"".join(fb(2, e) for e in entries)
    cursor = ('{"@type":"com.alibaba.otter.canal.protocol.position.LogPosition","identity":{"slaveId":-1,'
              '"sourceAddress":{"address":"127.0.0.1","port":3306}},"postion":{"gtid":"","included":false,'
              '"journalName":"mysql-bin.000001","position":4,"serverId":1,"timestamp":1700000000000}}')
    packets = [
        packet(1, fb(2, b"\x01\x02\x03\x04\x05\x06\x07\x08"), 1),
        packet(2, fb(1, "canal") + fb(2, "6bb4837eb74329105ee4568dda7dc67ed2ca2ad9") + fv(3, 30000) + fv(4, 30000)
               + fb(5, "example") + fb(6, "1001") + fb(7, r"shop\..*,other.t") + fv(8, 0)),
        packet(3, b"", 1),
        packet(3, fv(1, 400) + fb(2, "something failed"), 1),
        packet(4, fb(1, "example") + fb(2, "1001") + fb(7, r"shop\..*")),
        packet(5, fb(1, "example") + fb(2, "1001")),
        packet(6, fb(1, "example") + fb(2, "1001") + fv(3, 100) + fv(4, 1000) + fv(5, 2) + fv(6, 0)),
        packet(7, messages, 1),
        packet(7, fv(1, -1), 1),
        packet(8, fb(1, "example") + fb(2, "1001") + fv(3, 5)),
        packet(9),
        packet(10, fb(1, "mysql-bin.000001") + fv(2, 4) + fv(3, 0)),
        packet(11, fv(1, 1) + fv(2, 2)),
        packet(12, fb(1, "example") + fb(2, "1001") + fv(3, 0)),
        packet(2, fb(5, cursor) + fb(6, "1001")),
    ]
    for p in packets:
        for control in (0, 1, 4 * 7):
            write("canal_frame", bytes([control]) + frame(p))
    # A whole session in one stream, and a few framing edge cases.
    write("canal_frame", b"\x00" + b"".join(frame(p) for p in packets))
    write("canal_frame", b"\x02" + frame(b"") + struct.pack(">i", -1))
    write("canal_frame", b"\x03" + struct.pack(">i", 0x7FFFFFFF))


def row_change_read():
    def column(i, name, value, key=0, null=0, updated=0, mysql="int(11)"):
        c = fv(1, i) + fv(2, 4) + fb(3, name) + fv(4, key) + fv(5, updated) + fv(6, null)
        return c + (b"" if null else fb(8, value)) + fv(9, len(value)) + fb(10, mysql)
    cols = [column(0, "id", "42", key=1), column(1, "email", "ünï \"q\""), column(2, "note", "", null=1)]
    insert = b"".join(fb(2, c) for c in cols)
    update = b"".join(fb(1, c) for c in cols) + b"".join(fb(2, c) for c in cols[:1]) + fb(3, fb(1, "k") + fb(2, "v"))
    # The same fields written last-first, a repeated scalar (the last wins), unknown fields.
    odd = fb(8, "7") + fv(2, 12) + fb(3, "x") + fb(3, "y") + fv(4, 1) + fv(99, 5) + (varint(98 << 3 | 1) + b"12345678") \
        + (varint(97 << 3 | 5) + b"1234") + fb(96, b"\x00\x01")
    rows = [fb(12, fb(2, insert)), fb(12, update), fb(12, fb(2, odd) + fb(1, odd))]
    write("row_change_read", fv(2, 1) + fv(10, 0) + rows[0] + rows[0])
    write("row_change_read", fv(1, 7) + fv(2, 2) + rows[1] + fb(13, fb(1, "k") + fb(2, "v")) + fb(14, "shop"))
    write("row_change_read", rows[2] + fv(2, 3))
    write("row_change_read", fv(2, 5) + fv(10, 1) + fb(11, "ALTER TABLE t ADD c INT") + fb(14, "shop"))
    write("row_change_read", b"")


def main():
    if not os.path.isdir(FIXTURES):
        sys.exit(f"no fixtures at {FIXTURES}")
    n = 0
    for root, _, files in os.walk(FIXTURES):
        for name in sorted(files):
            if name.endswith(".md"):
                continue
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                data = f.read()
            binlog_decode(path, data)
            binlog_rows(path, data)
            n += 1
    canal_frame()
    row_change_read()
    for t in ("binlog_decode", "binlog_rows", "canal_frame", "row_change_read"):
        d = os.path.join(CORPUS, t)
        print(f"{t}: {len(os.listdir(d))} seeds in {d}")
    print(f"from {n} fixture files in {FIXTURES}")


if __name__ == "__main__":
    main()
