#!/usr/bin/env python3
"""Small copies of evaluated search run logs, for committing a study's results.

A run log holds every sample and noise (10 000 Fashion-MNIST samples are
31 MB), too much to keep in git, and a session's run directory does not
outlive it. Once `noisesearch eval` has written a log's /evaluation, the
curves need only the metrics and the cost columns, so this copies each log
without its tensor columns (docs/hdf5-layout.md: candidates/noise,
candidates/x1_hat, searches/sample, searches/fid_features,
trajectories/state) into DIR under the same name. Everything else (root
attributes, /evaluation, every other column with its attributes, shape
limits and chunks) is copied, the columns gzipped; the root attribute
`archived_without` lists what was left out.
`noisesearch curves DIR/*.h5 --out CURVES` then draws the same table and
plots as from the logs (tests/test_study.py compares them).

A log is refused, and nothing written for it, unless its status is
`complete` and its /evaluation counts exactly its complete searches (an
archive cannot be evaluated again). Each copy is written under a temporary
name and renamed, so DIR never holds a partial file.

usage: archive_logs.py DIR RUN.h5 [RUN2.h5 ...]
Exit status: 0 all copied; 2 a log refused (the others are still copied).
"""
import os
import sys

import h5py
import numpy as np

LEFT_OUT = ["candidates/noise", "candidates/x1_hat", "searches/sample", "searches/fid_features", "trajectories/state"]


def text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def why_not(f):
    """None when the log can be archived, else what is wrong."""
    if text(f.attrs.get("format", "")) != "noisesearch-run-log":
        return "not a noisesearch run log (root attribute format)"
    status = text(f.attrs.get("status", "")).rstrip("\0")
    if status != "complete":
        return f"status is '{status}', not 'complete': finish the run first"
    if "evaluation" not in f:
        return "no /evaluation: run noisesearch eval on it first"
    ids = f["searches/search"][...]
    complete = int(np.argmax(ids < 0)) if (ids < 0).any() else len(ids)
    count = int(f["evaluation"].attrs["count"])
    if count != complete:
        return f"/evaluation counts {count} samples but the log has {complete} complete searches: evaluate it again"
    return None


def copy_attrs(src, dst):
    for name in src.attrs:
        dst.attrs.create(name, src.attrs[name], dtype=src.attrs.get_id(name).dtype)


def copy_group(src, dst, path=""):
    copy_attrs(src, dst)
    for name, obj in src.items():
        full = f"{path}/{name}".lstrip("/")
        if full in LEFT_OUT:
            continue
        if isinstance(obj, h5py.Group):
            copy_group(obj, dst.create_group(name), full)
        else:  # the same column, gzipped: a log's chunks are mostly unwritten rows
            copy = dst.create_dataset(name, data=obj[...], maxshape=obj.maxshape, chunks=obj.chunks,
                                      fillvalue=obj.fillvalue, shuffle=obj.chunks is not None,
                                      compression="gzip" if obj.chunks is not None else None)
            copy_attrs(obj, copy)


def archive(log, out_dir):
    out = os.path.join(out_dir, os.path.basename(log))
    if os.path.abspath(out) == os.path.abspath(log):
        return f"{log}: the archive would overwrite the log itself; choose another DIR"
    with h5py.File(log, "r") as f:
        problem = why_not(f)
        if problem:
            return f"{log}: {problem}"
        tmp = out + ".partial"
        try:
            with h5py.File(tmp, "w") as g:
                copy_group(f, g)
                g.attrs["archived_without"] = " ".join(p for p in LEFT_OUT if p in f)
            os.replace(tmp, out)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
    print(f"archive_logs.py: {log} ({os.path.getsize(log) / 1e6:.1f} MB) -> {out} "
          f"({os.path.getsize(out) / 1e6:.2f} MB)", file=sys.stderr)
    return None


def main(argv):
    if len(argv) < 3 or argv[1] in ("-h", "--help"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    out_dir = argv[1]
    os.makedirs(out_dir, exist_ok=True)
    failed = 0
    for log in argv[2:]:
        try:
            problem = archive(log, out_dir)
        except (OSError, KeyError) as e:
            problem = f"{log}: cannot read it as a run log ({e})"
        if problem:
            print(f"archive_logs.py: {problem}; not archived", file=sys.stderr)
            failed = 1
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
