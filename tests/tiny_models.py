"""Tiny real models for end-to-end tests, made by the project's own trainers
(a few steps, so near-random weights): a 1-block denoiser (den.h5), a
verifier classifier (verifier.h5), an evaluator (evaluator.h5) and the
evaluator's test-set reference (reference.h5), all in the working directory.
Shared by test_search.py and test_slurm.py."""
import subprocess


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
