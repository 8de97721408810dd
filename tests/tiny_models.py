"""Tiny real models for end-to-end tests, made by the project's own trainers
(a few steps, so near-random weights): a 1-block denoiser (den.h5), a
verifier classifier (verifier.h5), an evaluator (evaluator.h5) and the
evaluator's test-set reference (reference.h5), all in the working directory.
Shared by test_search.py, test_slurm.py and test_study.py."""
import subprocess

# A search config over those models (format with per_class).
CONFIG = """run:
  seed: 7
  classes: all
  samples_per_class: {per_class}
  batch: 4
  threads: 1
  flush_every: 0.2
  progress_every: 0.2
model:
  weights: den.h5
sampler:
  kind: heun
  search_nfe: 10
  final_nfe: 20
verifier:
  name: class_logit
  classifier: verifier.h5
  evaluator: evaluator.h5
  reference: reference.h5
search:
  algorithm: random
  random:
    candidates: 8
  zero_order:
    neighbours: 2
    iterations: 2
log:
  png: false
"""


def make_models(ns, work, env):
    def run(args):
        p = subprocess.run([ns] + args, env=env, cwd=work, capture_output=True, text=True)
        if p.returncode != 0:
            print(" ".join([ns] + args), "->", p.returncode)
            print(p.stderr[-3000:])
            raise SystemExit(1)

    common = ["--threads", "1", "--log-every", "100"]
    run(["train", "--out", "den.h5", "--checkpoint", "den.ckpt.h5", "--patch", "4", "--depth", "1", "--width", "32",
         "--heads", "2", "--batch", "8", "--steps", "3", "--warmup", "1", "--eval-samples", "0", "--overwrite"] + common)
    for role, seed in (("verifier", "0"), ("evaluator", "1")):
        run(["train-classifier", "--role", role, "--out", f"{role}.h5", "--checkpoint", f"{role}.ckpt.h5", "--patch",
             "7", "--depth", "1", "--width", "32", "--heads", "2", "--batch", "16", "--steps", "20", "--warmup", "2",
             "--init-seed", seed, "--data-seed", seed, "--overwrite"] + common)
    run(["reference", "--evaluator", "evaluator.h5", "--out", "reference.h5", "--overwrite"])
