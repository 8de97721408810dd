#!/usr/bin/python3
"""End-to-end test of `noisesearch curves` on tiny real models.

Five tiny searches (the `none` baseline at 6 and 12 NFEs, random search with
class_logit at 2 and 4 candidates, random search with the is_oracle verifier),
`noisesearch eval` on them, then `noisesearch curves`. Checks:
  - curves.csv: the columns in order, one row per log sorted by line (baseline
    first) and total NFEs; algorithm / verifier / oracle = the root
    attributes, the cost columns = numpy means of /searches, the metrics =
    /evaluation exactly (the CSV holds round-trip decimals);
  - curves.h5 /curves: one dataset per column, equal to the CSV;
  - curves.gp: one datablock per line with its points sorted by NFEs, the
    baseline titled 'more denoising steps only', the oracle line '(oracle)';
    six PNGs that are valid PNG files (signature, chunk CRCs, IHDR, IDAT
    inflating to the image size, IEND) and not blank;
  - a log without /evaluation: refused without --evaluator/--reference
    (exit 2, one line naming it, nothing written); with them evaluated by
    eval's code path: the same /evaluation as `noisesearch eval` wrote for
    the same log, bitwise, and only that log evaluated;
  - stale or mixed evaluations, a non-run-log, a missing file, a missing
    gnuplot: exit 2 with one line, nothing written; a failing gnuplot: exit 1,
    the table written, no PNG and no temporary file left; --no-plots.
usage: test_curves.py NOISESEARCH WORKDIR
"""
import csv
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib

import h5py
import numpy as np

import tiny_models

NS, WORK = sys.argv[1], sys.argv[2]
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", BLIS_NUM_THREADS="1")
COLUMNS = ["file", "algorithm", "verifier", "oracle", "searches", "search_nfe", "final_nfe", "total_nfe",
           "verifier_nfe", "verifier_seconds", "wall_seconds", "model", "denoiser_gflops", "total_gflops", "fid", "kid_mean", "kid_std", "is_mean", "is_std",
           "precision", "recall", "accuracy"]
METRICS = ["fid", "kid_mean", "kid_std", "is_mean", "is_std", "precision", "recall", "accuracy"]
PLOTS = ["fid", "kid", "is", "precision", "recall", "accuracy"]
failures = 0


def check(ok, name, detail=""):
    global failures
    print(f"  {name:62s} {'ok' if ok else 'FAIL'} {detail}")
    failures += not ok


def run(*args):
    p = subprocess.run([NS, *args], env=ENV, cwd=WORK, capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def must(*args):
    rc, out, err = run(*args)
    if rc != 0:
        print(f"command failed ({rc}): noisesearch {' '.join(args)}\n{err[-3000:]}")
        sys.exit(1)
    return out, err


CONFIG = """run:
  seed: 3
  classes: [1, 4, 9]
  samples_per_class: 4
  out: {out}
  threads: 1
model:
  weights: {model}
sampler:
  kind: heun
  search_nfe: 6
  final_nfe: {final}
verifier:
  name: {verifier}
  classifier: verifier.h5
  evaluator: evaluator.h5
  reference: reference.h5
search:
  algorithm: {algorithm}
  random:
    candidates: {candidates}
"""

RUNS = {  # name: algorithm, verifier, final NFEs, candidates
    "none6": ("none", "class_logit", 6, 1),
    "none12": ("none", "class_logit", 12, 1),
    "rand2": ("random", "class_logit", 10, 2),
    "rand4": ("random", "class_logit", 10, 4),
    "oracle2": ("random", "is_oracle", 10, 2),
}


def w(name):
    return os.path.join(WORK, name)


def evaluation(path):
    with h5py.File(w(path), "r") as f:
        return dict(f["evaluation"].attrs) if "evaluation" in f else None


def expected_row(name):
    """What curves must report for a log, from the log itself."""
    with h5py.File(w(name), "r") as f:
        s = f["searches"]
        n = len(s["search"])
        row = dict(file=name, algorithm=f.attrs["algorithm"], verifier=f.attrs["verifier"],
                   oracle=int(f.attrs["oracle"]), searches=n)
        for k in ("search_nfe", "final_nfe", "verifier_nfe", "verifier_seconds", "wall_seconds"):
            row[k] = float(np.mean(s[k][...].astype(np.float64)))
        row["total_nfe"] = row["search_nfe"] + row["final_nfe"]
        row["model"] = f.attrs["model_path"]
        row["denoiser_gflops"] = float(f.attrs["denoiser_flops"]) / 1e9
        row["total_gflops"] = (row["total_nfe"] + row["verifier_nfe"]) * row["denoiser_gflops"]
        e = dict(f["evaluation"].attrs)
    row.update({k: float(e[k]) for k in METRICS})
    return row


def close(a, b):
    return a == b or abs(a - b) <= 1e-12 * max(abs(a), abs(b))


def png_valid(path):
    """Signature, chunk CRCs, IHDR first, IDAT inflating to the image's size, IEND last; the image not blank."""
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return False, "no PNG signature"
    pos, chunks, idat = 8, [], b""
    while pos < len(data):
        if pos + 8 > len(data):
            return False, "truncated chunk"
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        crc = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0]
        if zlib.crc32(kind + body) != crc:
            return False, f"bad CRC in {kind}"
        chunks.append(kind)
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
        if kind == b"IDAT":
            idat += body
        pos += 12 + length
    if not chunks or chunks[0] != b"IHDR" or chunks[-1] != b"IEND":
        return False, f"chunks {chunks[:3]}...{chunks[-1:]}"
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color]
    raw = zlib.decompress(idat)
    if len(raw) != height * (1 + (width * channels * depth + 7) // 8):
        return False, f"IDAT inflates to {len(raw)} bytes for {width}x{height}"
    if len(set(raw)) < 8:
        return False, "blank image"
    return True, f"{width}x{height}"


def datablocks(gp):
    """{name: [rows of floats]} of a gnuplot script's datablocks."""
    blocks, name = {}, None
    for line in gp.splitlines():
        if line.endswith("<< EOD"):
            name = line.split()[0]
            blocks[name] = []
        elif line == "EOD":
            name = None
        elif name and not line.startswith("#"):
            blocks[name].append([float(x) for x in line.split()])
    return blocks


def line_styles(gp):
    """{title: style} of the first plot of a gnuplot script (every plot styles its lines alike)."""
    first = gp[gp.index("\nplot"):]
    first = first[:first.index("\nset output")]
    return {t: style.strip() for t, style in re.findall(r"title '((?:[^']|'')*)'([^,\\\n]*)", first)}


def one_line_error(name, rc, err, needle, code=2, absent=None):
    lines = err.strip().splitlines()
    ok = rc == code and len(lines) == 1 and needle in lines[0]
    if absent:
        ok = ok and not os.path.exists(w(absent))
    check(ok, name, lines[-1] if lines else "(no message)")


def main():
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    tiny_models.make_models(NS, WORK, ENV)
    print("searches and eval")
    for name, (algorithm, verifier, final, candidates) in RUNS.items():
        with open(w(name + ".yaml"), "w") as f:
            f.write(CONFIG.format(out=name + ".h5", model="den.h5", algorithm=algorithm, verifier=verifier,
                                  final=final, candidates=candidates))
        must("search", name + ".yaml")
    shutil.copy(w("rand4.h5"), w("late.h5"))  # a log evaluated later, by curves
    logs = [n + ".h5" for n in RUNS]
    must("eval", *logs, "--evaluator", "evaluator.h5", "--reference", "reference.h5", "--threads", "1")
    given = ["rand4.h5", "none12.h5", "oracle2.h5", "none6.h5", "rand2.h5"]  # not in the output's order

    print("curves of evaluated logs")
    out, err = must("curves", *given, "--out", "out")
    with open(w("out/curves.csv"), newline="") as f:
        table = list(csv.reader(f))
    check(table[0] == COLUMNS, "CSV header: the columns in order", ",".join(table[0][:5]) + ",...")
    rows = [dict(zip(table[0], r)) for r in table[1:]]
    order = [r["file"] for r in rows]
    want_order = ["none6.h5", "none12.h5", "rand2.h5", "rand4.h5", "oracle2.h5"]
    check(order == want_order, "rows: baseline first, then by line and total NFEs", " ".join(order))
    bad = []
    for r in rows:
        e = expected_row(r["file"])
        for k in COLUMNS:
            got = r[k]
            if k in ("file", "algorithm", "verifier", "model"):
                ok = got == e[k]
            elif k in ("oracle", "searches"):
                ok = int(got) == e[k]
            elif k in METRICS:
                ok = float(got) == e[k]  # round-trip decimals: exact
            else:
                ok = close(float(got), e[k])
            if not ok:
                bad.append(f"{r['file']}:{k}={got} (want {e[k]})")
    check(not bad, "every cell = the log's attributes, /searches means, /evaluation", "; ".join(bad[:3]))
    check(rows[2]["search_nfe"] == "12" and rows[3]["search_nfe"] == "24" and rows[0]["search_nfe"] == "0"
          and rows[1]["total_nfe"] == "12" and rows[3]["total_nfe"] == "34" and rows[4]["oracle"] == "1",
          "NFEs: random 2 and 4 candidates x 6, baseline 0 + 6 / 12",
          " ".join(r["total_nfe"] for r in rows))
    check(len(out.strip().splitlines()) == 6 and "oracle" in out.strip().splitlines()[-1], "stdout: header + 5 rows")

    with h5py.File(w("out/curves.h5"), "r") as f:
        g = f["curves"]
        same = list(g.keys()) == sorted(COLUMNS) and f.attrs["format"] == "noisesearch-curves"
        for k in COLUMNS:
            v = g[k][...]
            if k in ("file", "algorithm", "verifier", "model"):
                same = same and [x.decode() for x in v] == [r[k] for r in rows]
            else:
                same = same and all(float(x) == float(r[k]) for x, r in zip(v, rows))
            same = same and "units" in g[k].attrs and "description" in g[k].attrs
        same = same and g.attrs["evaluator_sha256"] == evaluation("rand2.h5")["evaluator_sha256"]
    check(same, "curves.h5 /curves: one dataset per column = the CSV")

    gp = open(w("out/curves.gp")).read()
    blocks = datablocks(gp)
    xs = {k: [r[0] for r in v] for k, v in blocks.items()}
    check(xs == {"$line0": [6, 12], "$line1": [22, 34], "$line2": [22]}, "gnuplot data: 3 lines, sorted by NFEs",
          str(xs))
    fid_ok = [r[1] for r in blocks["$line1"]] == [float(rows[2]["fid"]), float(rows[3]["fid"])]
    check(fid_ok, "gnuplot data = the CSV (random, class_logit FIDs)")
    check(gp.count("title 'more denoising steps only'") == 6 and gp.count("title 'random, class_logit'") == 6
          and gp.count("title 'random, is_oracle (oracle)'") == 6, "legend: baseline, search and oracle lines")
    check("set logscale x" in gp, "log x axis")
    styles = line_styles(gp)
    check(len(styles) == 3 and len(set(styles.values())) == 3 and "'black' dt 2" in styles["more denoising steps only"]
          and " dt 3 " in styles["random, is_oracle (oracle)"], "every line its own style: baseline black dashed, "
          "oracle dotted", str(styles))
    for p in PLOTS:
        ok, detail = png_valid(w(f"out/{p}.png"))
        check(ok, f"{p}.png is a valid, non-blank PNG", detail)
    leftovers = [n for n in os.listdir(w("out")) if ".tmp." in n]
    check(not leftovers, "no temporary files left", str(leftovers))

    print("a log without /evaluation")
    rc, _, err = run("curves", *given, "late.h5", "--out", "out2")
    one_line_error("refused without --evaluator (exit 2, names it)", rc, err, "late.h5: no /evaluation", absent="out2")
    out, err = must("curves", *given, "late.h5", "--out", "out3", "--evaluator", "evaluator.h5", "--reference",
                    "reference.h5", "--threads", "1")
    a, b = evaluation("late.h5"), evaluation("rand4.h5")
    same = all(a[k] == b[k] for k in METRICS + ["count", "kid_feature_scale", "evaluator_sha256", "reference_sha256"])
    check(same, "evaluated by curves = eval's /evaluation of the same log", f"FID {a['fid']:.6f}")
    check("evaluating 1 of 6 logs (late.h5: no /evaluation)" in err and "late.h5: evaluator features 12/12" in err,
          "only that log evaluated, with a progress line")
    with open(w("out3/curves.csv")) as f:
        n3 = len(f.read().strip().splitlines())
    check(n3 == 7, "its row in the table", f"{n3 - 1} rows")

    print("stale and mixed evaluations")
    shutil.copy(w("rand2.h5"), w("stale.h5"))
    with h5py.File(w("stale.h5"), "a") as f:
        f["evaluation"].attrs["count"] = 7
    rc, _, err = run("curves", "stale.h5", "none6.h5", "--out", "bad")
    one_line_error("a log whose /evaluation counts other samples", rc, err, "stale.h5: /evaluation describes 7",
                   absent="bad")
    shutil.copy(w("rand2.h5"), w("oldkid.h5"))
    with h5py.File(w("oldkid.h5"), "a") as f:
        del f["evaluation"].attrs["kid_feature_scale"]
    rc, _, err = run("curves", "none6.h5", "oldkid.h5", "--out", "bad")
    one_line_error("an /evaluation with the unscaled KID", rc, err, "predates KID's feature scaling", absent="bad")
    shutil.copy(w("rand2.h5"), w("other.h5"))
    with h5py.File(w("other.h5"), "a") as f:
        f["evaluation"].attrs["evaluator_sha256"] = "0" * 64
    rc, _, err = run("curves", "none6.h5", "other.h5", "--out", "bad")
    one_line_error("logs evaluated with different evaluators", rc, err, "one plot needs one evaluator", absent="bad")
    must("curves", "none6.h5", "other.h5", "stale.h5", "--out", "out4", "--evaluator", "evaluator.h5",
         "--reference", "reference.h5", "--threads", "1")
    check(evaluation("other.h5")["evaluator_sha256"] == evaluation("none6.h5")["evaluator_sha256"]
          and evaluation("stale.h5")["count"] == 12, "--evaluator re-evaluates stale and foreign rows")

    print("errors")
    with h5py.File(w("samples.h5"), "w") as f:
        f["samples"] = np.zeros((12, 1, 28, 28), np.float32)
        f["labels"] = np.zeros(12, np.int32)
    rc, _, err = run("curves", "none6.h5", "samples.h5", "--out", "bad")
    one_line_error("a sample file (not a run log)", rc, err, "samples.h5: not a run log", absent="bad")
    rc, _, err = run("curves", "none6.h5", "absent.h5", "--out", "bad")
    one_line_error("a missing file", rc, err, "absent.h5", absent="bad")
    rc, _, err = run("curves", "none6.h5", "--out", "bad", "--gnuplot", "/nonexistent/gnuplot")
    one_line_error("gnuplot missing", rc, err, "/nonexistent/gnuplot not found", absent="bad")
    rc, _, err = run("curves", "none6.h5", "--out", "bad", "--evaluator", "evaluator.h5")
    one_line_error("--evaluator without --reference", rc, err, "go together", absent="bad")
    rc, _, err = run("curves", "none6.h5", "rand2.h5", "--out", "fails", "--gnuplot", "/bin/false")
    left = sorted(os.listdir(w("fails"))) if os.path.isdir(w("fails")) else []
    one_line_error("a failing gnuplot: exit 1", rc, err, "/bin/false failed", code=1)
    check(left == ["curves.csv", "curves.gp", "curves.h5"], "  ... the table written, no PNG, no temporary file",
          str(left))
    must("curves", "none6.h5", "rand2.h5", "--out", "table", "--no-plots")
    check(sorted(os.listdir(w("table"))) == ["curves.csv", "curves.h5"], "--no-plots: the table only")

    print("two denoisers at equal compute (--x flops)")
    must("train", "--out", "small.h5", "--checkpoint", "small.ckpt.h5", "--patch", "7", "--depth", "1", "--width",
         "16", "--heads", "1", "--batch", "8", "--steps", "2", "--warmup", "1", "--eval-samples", "0", "--threads",
         "1", "--log-every", "100", "--overwrite")
    for name, algorithm, final, candidates in (("snone6", "none", 6, 1), ("srand4", "random", 6, 4)):
        with open(w(name + ".yaml"), "w") as f:
            f.write(CONFIG.format(out=name + ".h5", model="small.h5", algorithm=algorithm, verifier="class_logit",
                                  final=final, candidates=candidates))
        must("search", name + ".yaml")
    must("eval", "snone6.h5", "srand4.h5", "--evaluator", "evaluator.h5", "--reference", "reference.h5",
         "--threads", "1")
    out, _ = must("curves", "none6.h5", "none12.h5", "rand2.h5", "snone6.h5", "srand4.h5", "--out", "flops",
                  "--x", "flops")
    with open(w("flops/curves.csv"), newline="") as f:
        table = list(csv.reader(f))
    rows = [dict(zip(table[0], r)) for r in table[1:]]
    small, big = expected_row("snone6.h5"), expected_row("none6.h5")
    check(small["denoiser_gflops"] < big["denoiser_gflops"] / 2, "the small denoiser's forward costs less",
          f"{small['denoiser_gflops']:.6f} vs {big['denoiser_gflops']:.6f} GFLOP")
    gp = open(w("flops/curves.gp")).read()
    blocks = datablocks(gp)
    want = {}
    for r in rows:  # one line per denoiser x algorithm here; x = total_gflops
        want.setdefault((r["model"], r["algorithm"]), []).append(float(r["total_gflops"]))
    got = sorted(sorted(r[0] for r in v) for v in blocks.values())
    check(got == sorted(sorted(v) for v in want.values()) and len(blocks) == 4,
          "gnuplot data: a baseline per denoiser, x = total GFLOPs", str(got))
    check(gp.count("title 'small.h5: more denoising steps only'") == 6 and
          gp.count("title 'den.h5: more denoising steps only'") == 6 and
          gp.count("title 'small.h5: random, class_logit'") == 6 and "set xlabel 'total GFLOPs" in gp,
          "legend names each line's denoiser; x label in GFLOPs")
    styles = line_styles(gp)
    check(len(styles) == 4 and len(set(styles.values())) == 4, "four lines, four styles (a point type per "
          "denoiser's baseline)", str(styles))
    check("GFLOP/sample" in out.splitlines()[0], "stdout: a GFLOP/sample column")
    shutil.copy(w("none6.h5"), w("old.h5"))  # as a log written before the attribute existed
    with h5py.File(w("old.h5"), "a") as f:
        del f.attrs["denoiser_flops"]
    rc, _, err = run("curves", "old.h5", "--out", "bad", "--x", "flops")
    one_line_error("--x flops on a log without denoiser_flops", rc, err, "old.h5: no root attribute denoiser_flops",
                   absent="bad")
    must("curves", "old.h5", "--out", "oldnfe")
    rc, _, err = run("curves", "none6.h5", "--out", "bad", "--x", "gflops")
    one_line_error("--x gflops refused", rc, err, "expected nfe or flops", absent="bad")

    print("PASSED" if failures == 0 else f"FAILED: {failures} check(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
