"""The weekly pack, run for real: the command mutu's pack Job runs (`zeopack -d DAYS HOST:PORT`,
operators/backup/src/jobs.rs) against a real ZEO server (runzeo, from PyPI's ZEO) serving a
FileStorage with blobs. Old revisions go, current objects and blobs stay.
"""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pack_command(host: str, port: int, keep_days: int) -> list:
    """What the Job runs (jobs::pack_command), with the site's ZEO address."""
    return [str(BIN / "zeopack"), "-d", str(keep_days), f"{host}:{port}"]


@pytest.fixture
def zeo(tmp_path):
    """A ZEO server on a free loopback port over DATA/filestorage/Data.fs and DATA/blobstorage."""
    data = tmp_path / "data"
    (data / "filestorage").mkdir(parents=True)
    (data / "blobstorage").mkdir()
    port = free_port()
    conf = tmp_path / "zeo.conf"
    conf.write_text(
        f"<zeo>\n  address 127.0.0.1:{port}\n</zeo>\n"
        f"<filestorage 1>\n  path {data}/filestorage/Data.fs\n  blob-dir {data}/blobstorage\n"
        "</filestorage>\n"
    )
    log = (tmp_path / "zeo.log").open("w")
    proc = subprocess.Popen([str(BIN / "runzeo"), "-C", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, (tmp_path / "zeo.log").read_text()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "runzeo did not listen"
            time.sleep(0.1)
    try:
        yield port, data
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_zeopack_drops_old_revisions_and_keeps_current_objects_and_blobs(zeo, tmp_path):
    port, data = zeo
    import transaction
    import ZODB
    from BTrees.OOBTree import OOBTree
    from ZEO.ClientStorage import ClientStorage
    from ZODB.blob import Blob

    storage = ClientStorage(("127.0.0.1", port), blob_dir=str(tmp_path / "client-blobs"), shared_blob_dir=False)
    db = ZODB.DB(storage)
    conn = db.open()
    root = conn.root()
    root["items"] = OOBTree()
    root["blob"] = Blob(b"version 0")
    transaction.commit()
    # Many revisions of the same objects: what a pack removes.
    for rev in range(1, 30):
        for i in range(200):
            root["items"][f"item-{i}"] = f"{i} at revision {rev}"
        with root["blob"].open("w") as f:
            f.write(f"version {rev}".encode())
        transaction.commit()
    conn.close()
    fs = data / "filestorage" / "Data.fs"
    before = fs.stat().st_size
    blob_files = lambda: sorted(p for p in (data / "blobstorage").rglob("*.blob"))
    assert len(blob_files()) == 30

    done = subprocess.run(pack_command("127.0.0.1", port, 0), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr

    # zeopack waits for the pack; the file shrinks once the server has swapped it in.
    after = fs.stat().st_size
    assert after < before / 5, f"Data.fs {before} -> {after} bytes"
    assert len(blob_files()) == 1, "only the current blob revision is left"
    conn = db.open()
    root = conn.root()
    assert root["items"]["item-199"] == "199 at revision 29"
    with root["blob"].open() as f:
        assert f.read() == b"version 29"
    conn.close()
    db.close()


def test_zeopack_keeps_the_days_asked_for(zeo, tmp_path):
    port, data = zeo
    import transaction
    import ZODB
    from ZEO.ClientStorage import ClientStorage

    db = ZODB.DB(ClientStorage(("127.0.0.1", port)))
    conn = db.open()
    for rev in range(20):
        conn.root()["value"] = rev
        transaction.commit()
    conn.close()
    fs = data / "filestorage" / "Data.fs"
    before = fs.stat().st_size
    # Everything was written just now: keeping 3 days of history keeps it all.
    done = subprocess.run(pack_command("127.0.0.1", port, 3), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert fs.stat().st_size >= before * 0.9, "recent history is kept"
    db.close()

