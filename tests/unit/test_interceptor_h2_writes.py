"""The write batch shared by the HTTP/2 connections: frames queued while a read is handled leave
in one write per connection when the outermost batch ends, and at once outside a batch."""

from __future__ import annotations

from wakeway.interceptor.upstream_h2 import WriteBatch


class Conn:
    def __init__(self, batch: WriteBatch, then: Conn | None = None) -> None:
        self.queued = False
        self.writes = 0
        self.batch = batch
        self.then = then  # flushed from inside this one's write (as pause_writing may)

    def write_out(self) -> None:
        self.writes += 1
        if self.then is not None:
            self.batch.begin()
            self.batch.flush(self.then)
            self.then = None
            self.batch.end()


def test_outside_a_batch_each_flush_writes() -> None:
    batch = WriteBatch()
    conn = Conn(batch)
    batch.flush(conn)
    batch.flush(conn)
    assert conn.writes == 2


def test_a_batch_writes_each_connection_once_at_the_outermost_end() -> None:
    batch = WriteBatch()
    a, b = Conn(batch), Conn(batch)
    batch.begin()
    batch.flush(a)
    batch.begin()  # nested: a stream's batch inside a connection's read
    batch.flush(b)
    batch.flush(a)
    batch.end()
    assert (a.writes, b.writes) == (0, 0)
    batch.flush(b)
    batch.end()
    assert (a.writes, b.writes) == (1, 1)
    assert not a.queued
    assert not b.queued
    assert not batch.dirty


def test_a_connection_flushed_while_the_batch_writes_is_written_too() -> None:
    batch = WriteBatch()
    b = Conn(batch)
    a = Conn(batch, then=b)
    batch.begin()
    batch.flush(a)
    batch.end()
    assert (a.writes, b.writes) == (1, 1)
    batch.flush(a)  # and the batch is over: at once
    assert a.writes == 2
