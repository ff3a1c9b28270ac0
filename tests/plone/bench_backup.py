"""Benchmark: mutu's ZODB backup and restore (zodb_backup.py) against the plain tools on the
same data: `repozo -B -F` plus `cp -a` of the blob directory, then `repozo -R` plus `cp -a`.

A FileStorage with BLOB_MB of blobs (default 1024, in 4 MiB files) and some objects is written
into a temporary directory; each side backs it up into a repository of its own and restores it
into a new directory, three rounds, the median kept. Prints the seconds and MB/s of each and the
ratios mutu / plain (1.0: as fast; above: slower). Run with tests/plone/bench.sh.
"""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "crates" / "model" / "scripts" / "zodb_backup.py"
BLOB_MB = int(os.environ.get("BLOB_MB", "1024"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
REPOZO = str(Path(sys.executable).parent / "repozo")


def make_data(data: Path):
    import transaction
    from BTrees.OOBTree import OOBTree
    from ZODB.blob import Blob
    from ZODB.DB import DB
    from ZODB.FileStorage import FileStorage

    (data / "filestorage").mkdir(parents=True)
    db = DB(FileStorage(str(data / "filestorage" / "Data.fs"), blob_dir=str(data / "blobstorage")))
    conn = db.open()
    root = conn.root()
    root["blobs"] = OOBTree()
    root["items"] = OOBTree()
    chunk = os.urandom(4 << 20)
    for i in range(BLOB_MB // 4):
        blob = Blob()
        with blob.open("w") as f:
            f.write(chunk[i % 7:] + chunk[:i % 7])
        root["blobs"][f"b{i}"] = blob
        for n in range(50):
            root["items"][f"i{i}-{n}"] = {"title": f"item {i} {n}", "text": "x" * 500}
        if i % 16 == 15:
            transaction.commit()
    transaction.commit()
    conn.close()
    db.close()


def timed(*commands):
    start = time.monotonic()
    for c in commands:
        subprocess.run(c, check=True, capture_output=True)
    return time.monotonic() - start


def main():
    root = Path(tempfile.mkdtemp(prefix="mutu-bench-backup-"))
    try:
        data = root / "data"
        print(f"writing {BLOB_MB} MB of blobs into {data} ...", flush=True)
        make_data(data)
        size = sum(p.stat().st_size for p in data.rglob("*") if p.is_file()) / 1e6
        results = {k: [] for k in ("mutu backup", "plain backup", "mutu restore", "plain restore")}
        for r in range(ROUNDS):
            mutu_repo, plain_repo = root / f"mutu-{r}", root / f"plain-{r}"
            (plain_repo / "filestorage").mkdir(parents=True)
            results["mutu backup"].append(timed(
                [sys.executable, str(SCRIPT), "backup", "--data", str(data), "--repo",
                 str(mutu_repo), "--id", "b1"]))
            results["plain backup"].append(timed(
                [REPOZO, "-B", "-F", "-r", str(plain_repo / "filestorage"), "-f",
                 str(data / "filestorage" / "Data.fs")],
                ["cp", "-a", str(data / "blobstorage"), str(plain_repo / "blobstorage")]))
            mutu_out, plain_out = root / f"mutu-out-{r}", root / f"plain-out-{r}"
            mutu_out.mkdir()
            (plain_out / "filestorage").mkdir(parents=True)
            results["mutu restore"].append(timed(
                [sys.executable, str(SCRIPT), "restore", "--data", str(mutu_out), "--repo",
                 str(mutu_repo), "--id", "b1"]))
            results["plain restore"].append(timed(
                [REPOZO, "-R", "-r", str(plain_repo / "filestorage"), "-o",
                 str(plain_out / "filestorage" / "Data.fs")],
                ["cp", "-a", str(plain_repo / "blobstorage"), str(plain_out / "blobstorage")]))
            for d in (mutu_repo, plain_repo, mutu_out, plain_out):
                shutil.rmtree(d)
        median = {k: statistics.median(v) for k, v in results.items()}
        print(f"data: {size:.0f} MB ({BLOB_MB} MB of blobs), {ROUNDS} rounds, medians:")
        for k, v in median.items():
            print(f"  {k:14s} {v:7.2f} s  {size / v:7.1f} MB/s")
        print(f"ratio backup  mutu/plain: {median['mutu backup'] / median['plain backup']:.2f}")
        print(f"ratio restore mutu/plain: {median['mutu restore'] / median['plain restore']:.2f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
