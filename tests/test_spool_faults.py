"""The spool whatever the disk does, and dead letters (issue 29, lines 4 and 8): a full disk
(a real 1 MB tmpfs), a read-only folder, a file damaged mid-way and a garbage file leave
the spool working and every loss counted; a refused event becomes a dead letter after a few
tries and the events after it go on; ``maskgate spool`` lists and replays them."""
from __future__ import annotations

import contextlib
import os
import random
import subprocess
from pathlib import Path

from maskgate.publish import Spool
from maskgate.publish.spool import SPOOL_FILE, SpooledEvent


def _event(i: int, pad: int = 0):
    return lambda event_id, seq: {"event": "passage", "i": i, "id": event_id, "seq": seq, "pad": "x" * pad}


@contextlib.contextmanager
def tmpfs(path: Path, size: str):
    """A real tmpfs of ``size`` at ``path`` (root only; the test skips with the reason elsewhere)."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        from tests.strict_skips import missing

        why = f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode}): run as root"
        missing("a tmpfs to fill (mount needs root)", why)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_full_disk_leaves_events_unspooled_counted_and_writing_resumes_with_space(tmp_path):
    said: list[str] = []
    with tmpfs(tmp_path / "small", "1m") as disk:
        spool = Spool(disk / "spool", log=said.append)
        spool.register("t")
        filler = disk / "filler"
        stored, failed = [], 0
        with open(filler, "wb") as handle:  # the disk fills up beside the spool, as a camera's log would
            with contextlib.suppress(OSError):
                handle.write(b"\0" * (1 << 20))
        for i in range(300):
            event = spool.append("events", _event(i, pad=2000))
            if event is None:
                failed += 1
            else:
                stored.append(event.seq)
        stats = spool.stats()
        assert failed > 0 and stats.unspooled == failed and stats.problem and "disk is full" in stats.problem
        assert sum("disk is full" in line for line in said) == 1, said  # said once, not per event
        filler.unlink()  # space again
        again = spool.append("events", _event(999))
        assert again is not None and again.seq > max(stored, default=0)
        assert spool.stats().problem is None and any("writing again" in line for line in said), said
        assert [e.seq for e in spool.pending("t", limit=10_000)][-1] == again.seq
        spool.close()


def test_a_damaged_spool_is_set_aside_and_a_new_one_numbers_on(tmp_path):
    spool = Spool(tmp_path)
    spool.register("t")
    for i in range(400):
        spool.append("events", _event(i, pad=500))
    last = spool.append("events", _event(400)).seq
    spool.close()
    path = tmp_path / SPOOL_FILE
    data = bytearray(path.read_bytes())
    page = 4096
    rng = random.Random(7)
    for index in range(3, min(23, len(data) // page - 1)):  # 20 pages scrambled mid-file, the header left
        data[index * page:(index + 1) * page] = bytes(rng.getrandbits(8) for _ in range(page))
    path.write_bytes(bytes(data))
    said: list[str] = []
    spool = Spool(tmp_path, log=said.append)
    spool.register("t")
    for _ in range(3):  # whichever statement meets the damage first, the spool goes on
        spool.pending("t")
        event = spool.append("events", _event(401))
    assert event is not None
    stats = spool.stats()
    aside = list(tmp_path.glob("spool.damaged-*.sqlite3"))
    assert len(aside) == 1 and stats.set_aside == (str(aside[0]),), (said, stats)
    assert event.seq > last, (event.seq, last)  # numbering above anything the damaged file held
    assert any("set aside" in line for line in said)


def test_garbage_in_place_of_the_spool_is_set_aside_at_start(tmp_path):
    (tmp_path / SPOOL_FILE).write_bytes(b"not a database, " * 100)
    said: list[str] = []
    spool = Spool(tmp_path, log=said.append)
    assert spool.append("events", _event(0)) is not None and spool.stats().durable
    assert list(tmp_path.glob("spool.damaged-*.sqlite3")) and any("set aside" in line for line in said)


def test_a_folder_that_takes_no_file_gives_a_spool_in_memory_said_so(tmp_path):
    if os.geteuid() == 0:  # root writes anywhere: a file where the folder should be makes it unusable
        (tmp_path / "spool").write_text("a file, not a folder")
        folder = tmp_path / "spool"
    else:
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o500)
    said: list[str] = []
    spool = Spool(folder, log=said.append)
    spool.register("t")
    assert spool.append("events", _event(0)) is not None
    stats = spool.stats()
    assert not stats.durable and "in memory only" in stats.problem and len(said) == 1


# -- dead letters ------------------------------------------------------------------------------------

def _spool_with(tmp_path, n: int) -> Spool:
    spool = Spool(tmp_path)
    spool.register("hook")
    for i in range(n):
        spool.append("events", _event(i))
    return spool


def test_a_dead_letter_moves_the_cursor_on_and_is_kept_for_replay(tmp_path):
    spool = _spool_with(tmp_path, 3)
    first = spool.pending("hook")[0]
    spool.dead_letter("hook", first, reason="HTTP 422 Unprocessable Entity", tries=5)
    assert [e.seq for e in spool.pending("hook")] == [2, 3] and spool.stats().depth == 2
    (dead,) = spool.dead()
    assert (dead.seq, dead.tries, dead.state, dead.reason) == (1, 5, "dead", "HTTP 422 Unprocessable Entity")
    assert spool.replays("hook") == []
    assert spool.replay(dead.id) == 1
    (queued,) = spool.replays("hook")
    assert queued == SpooledEvent(first.seq, first.id, first.channel, first.body)
    spool.replayed("hook", queued.seq, refused="HTTP 422 again")
    assert spool.dead()[0].state == "dead" and spool.dead()[0].tries == 6
    spool.replay("all")
    spool.replayed("hook", queued.seq)
    assert spool.dead() == []


def test_maskgate_spool_lists_and_replays(tmp_path, capsys):
    from maskgate.cli import main

    spool = _spool_with(tmp_path, 4)
    event = spool.pending("hook")[1]
    spool.dead_letter("hook", spool.pending("hook")[0], reason="HTTP 400 Bad Request", tries=5)
    spool.close()
    assert main(["spool", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "3 event(s) waiting" in out and "hook: 3 pending (seq 2-4)" in out and "dead letters: 1" in out
    assert "refused 5 time(s): HTTP 400 Bad Request" in out
    assert main(["spool", str(tmp_path), "--replay", event.id]) == 2  # not a dead letter
    assert main(["spool", str(tmp_path), "--replay", "all"]) == 0
    assert "queued 1 dead letter" in capsys.readouterr().out
    assert len(Spool(tmp_path).replays("hook")) == 1
    assert main(["spool", str(tmp_path / "nowhere")]) == 2


def test_the_spool_command_never_changes_a_damaged_spool(tmp_path, capsys):
    from maskgate.cli import main

    (tmp_path / SPOOL_FILE).write_bytes(b"garbage " * 1000)
    before = (tmp_path / SPOOL_FILE).read_bytes()
    assert main(["spool", str(tmp_path)]) == 2
    assert "cannot be read" in capsys.readouterr().err
    assert (tmp_path / SPOOL_FILE).read_bytes() == before and not list(tmp_path.glob("*.damaged-*"))


def test_a_spool_that_started_in_memory_goes_back_to_disk_with_its_events(tmp_path, monkeypatch):
    import maskgate.publish.spool as spool_module

    monkeypatch.setattr(spool_module, "RETRY_DISK_S", 0.0)
    said: list[str] = []
    with tmpfs(tmp_path / "small", "256k") as disk:
        Spool(disk / "spool").close()  # an earlier run's spool, one event still waiting in it
        earlier = Spool(disk / "spool")
        earlier.register("t")
        old = earlier.append("events", _event(-1))
        earlier.close()
        filler = disk / "filler"
        with open(filler, "wb") as handle:
            with contextlib.suppress(OSError):
                handle.write(b"\0" * (1 << 20))
        spool = Spool(disk / "spool", log=said.append)
        spool.register("t")
        first = [spool.append("events", _event(i)) for i in range(3)]  # the disk still refuses: memory
        assert all(first) and not spool.stats().durable and "in memory only" in spool.stats().problem
        filler.unlink()
        later = spool.append("events", _event(3))
        stats = spool.stats()
        assert stats.durable and stats.problem is None and any("on disk again (3 event(s)" in s for s in said), said
        seqs = [e.seq for e in spool.pending("t", limit=100)]
        assert seqs == [old.seq, *(e.seq for e in first), later.seq] and seqs == sorted(seqs)
        spool.close()
        reopened = Spool(disk / "spool")
        reopened.register("t")
        assert [e.seq for e in reopened.pending("t", limit=100)] == seqs  # on disk, for the next run too

