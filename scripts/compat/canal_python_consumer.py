#!/usr/bin/env python3
"""Consumes row changes from a Canal-compatible server with the unmodified `canal-python` client.

Used by canal-server/tests/compat_python.rs as a third-party client run as a real process; also
handy by hand against any Canal server (`pip install -r scripts/compat/requirements.txt`).

Connects, authenticates (canal-python sends the password verbatim, so the server must have no
password configured), subscribes, and loops get_without_ack/ack (or the library's get()) until
--rows row changes arrived and then drains until the server has nothing more, or fails when
--deadline passes. --no-ack leaves every batch un-acked, like a consumer that dies before acking.
Prints one JSON line per row change on stdout:

  {"schema": .., "table": .., "type": "INSERT|UPDATE|DELETE",
   "before": {column: value or null}, "after": {column: value or null}, "updated": [column, ..]}

`before`/`after` are {} where Canal sends no image (INSERT has no before, DELETE no after);
`updated` lists the after-image columns Canal flags as updated. Everything the library prints
goes to stderr. Exits 0 on success, 1 on timeout, 2 on any other error (message on stderr).
"""

import argparse
import contextlib
import json
import signal
import sys
import time
import traceback

from canal.client import Client
from canal.protocol import EntryProtocol_pb2

DML = {
    EntryProtocol_pb2.EventType.INSERT: "INSERT",
    EntryProtocol_pb2.EventType.UPDATE: "UPDATE",
    EntryProtocol_pb2.EventType.DELETE: "DELETE",
}


class Deadline(Exception):
    pass


def image(columns):
    return {c.name: (None if c.isNull else c.value) for c in columns}


def row_changes(entry):
    """The row changes of one Entry as dicts, or [] for anything that is not INSERT/UPDATE/DELETE."""
    if entry.entryType != EntryProtocol_pb2.EntryType.ROWDATA:
        return []
    rc = EntryProtocol_pb2.RowChange()
    rc.MergeFromString(entry.storeValue)
    if rc.isDdl or rc.eventType not in DML:
        return []
    if entry.header.eventType != rc.eventType:
        raise RuntimeError(
            "header eventType %s differs from RowChange eventType %s in %s.%s"
            % (entry.header.eventType, rc.eventType, entry.header.schemaName, entry.header.tableName)
        )
    out = []
    for row in rc.rowDatas:
        out.append(
            {
                "schema": entry.header.schemaName,
                "table": entry.header.tableName,
                "type": DML[rc.eventType],
                "before": image(row.beforeColumns),
                "after": image(row.afterColumns),
                "updated": [c.name for c in row.afterColumns if c.updated],
            }
        )
    return out


def consume(args, progress):
    client = Client()
    # The library reports progress with print(); keep stdout for our JSON lines.
    with contextlib.redirect_stdout(sys.stderr):
        try:
            client.connect(host=args.host, port=args.port)
        except OSError as e:  # the library prints the connect error, then fails reading
            raise ConnectionError("cannot connect to %s:%d: %s" % (args.host, args.port, e)) from e
        client.check_valid(username=args.username.encode(), password=args.password.encode())
        client.subscribe(
            client_id=args.client_id.encode(),
            destination=args.destination.encode(),
            filter=args.filter.encode(),
        )
    got = 0
    batches = 0
    while True:
        if args.api == "get":
            # The library's own loop: non-blocking GET (timeout -1, unit -1) and ack in one call.
            message = client.get(args.batch_size)
        else:
            message = client.get_without_ack(
                batch_size=args.batch_size, timeout=args.get_timeout_ms, unit=2
            )
        if not message["id"]:
            if got >= args.rows:
                break  # drained: everything up to the end of the last transaction is acked
            if args.api == "get":
                time.sleep(0.05)
            continue
        batches += 1
        for entry in message["entries"]:
            for change in row_changes(entry):
                got += 1
                progress["rows"] = got
                print(json.dumps(change, sort_keys=True), flush=True)
        if args.api == "get_without_ack" and not args.no_ack:
            client.ack(message["id"])
    client.disconnect()
    print("canal_python_consumer: %d row changes in %d batches" % (got, batches), file=sys.stderr)
    if got != args.rows:
        raise RuntimeError("expected %d row changes, received %d" % (args.rows, got))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=11111)
    p.add_argument("--username", default="")
    p.add_argument("--password", default="")
    p.add_argument("--destination", default="example")
    p.add_argument("--client-id", default="1001")
    p.add_argument("--filter", default=".*\\..*", help="Sub filter (canal-python's default)")
    p.add_argument("--rows", type=int, required=True, help="row changes to wait for")
    p.add_argument(
        "--api",
        choices=["get_without_ack", "get"],
        default="get_without_ack",
        help="get_without_ack + ack with a GET timeout, or the library's get() (non-blocking, acks)",
    )
    p.add_argument(
        "--no-ack",
        action="store_true",
        help="never ack (get_without_ack only): a consumer that dies before acking",
    )
    p.add_argument("--batch-size", type=int, default=100, help="GET fetch_size")
    p.add_argument(
        "--get-timeout-ms", type=int, default=200, help="GET timeout in ms (get_without_ack only)"
    )
    p.add_argument("--deadline", type=float, default=30.0, help="seconds before giving up")
    args = p.parse_args()

    def on_alarm(signum, frame):
        raise Deadline()

    signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, args.deadline)
    started = time.monotonic()
    progress = {"rows": 0}
    try:
        consume(args, progress)
    except Deadline:
        print(
            "canal_python_consumer: timed out after %.1f s with %d of %d row changes"
            % (time.monotonic() - started, progress["rows"], args.rows),
            file=sys.stderr,
        )
        return 1
    except Exception as e:  # the library raises bare Exception for protocol errors
        traceback.print_exc()
        print("canal_python_consumer: error: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        return 2
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
