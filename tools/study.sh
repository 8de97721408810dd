#!/bin/bash
# The scaling study on one machine without Slurm: every task of the grid of
# slurm/sweep.sbatch, one after another with mpirun, then the metrics and
# the curves of slurm/collect.sbatch. Run it from the repository root:
#   nohup bash tools/study.sh > study.log 2>&1 &
# Run it again after a kill, a reboot or a session's end: finished logs are
# left alone and a cut one continues (--resume), so the results are bitwise
# those of one uninterrupted run. Ctrl-C or kill (TERM) flushes the running
# search's log (it exits 3) and stops the study.
# The grid, the template and the outputs are sweep.sbatch's and
# collect.sbatch's variables (TEMPLATE, SWEEP_DIR, ALGORITHMS, VERIFIERS,
# ENSEMBLE, BUDGETS, BASELINE_NFES, OVERRIDES, CURVES_DIR, EVALUATOR, ...);
# RANKS is the number of MPI ranks per search (default: one worker per CPU
# plus rank 0, which only coordinates and sleeps between probes, so mpirun
# gets --oversubscribe), THREADS the BLIS threads per rank (default: the CPUs
# divided among the RANKS - 1 workers, so 1). One single-threaded worker per
# core ran the shipped denoiser 10-17% faster than one worker of 2 threads
# on 2 cores (docs/performance.md, "The search"); a worker short of a core
# idles it (2 ranks x 1 thread on 2 cores: 172 against 288 NFE/s).
# docs/results.md has the study's settings.
# Exit status: 0 done, 2 bad grid or config (nothing run), otherwise that
# of the first task or step that failed (3: interrupted, run again).
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
sweep=$here/slurm/sweep.sbatch
say() { echo "study.sh: $*" >&2; }

cpus=$(nproc)
export RANKS=${RANKS:-$((cpus + 1))}
workers=$((RANKS > 1 ? RANKS - 1 : 1))
export THREADS=${THREADS:-$((cpus / workers > 0 ? cpus / workers : 1))}
[ "$RANKS" -gt "$cpus" ] && export MPIRUN_ARGS=${MPIRUN_ARGS:---oversubscribe}  # mpirun counts rank 0's slot
export SEARCH_SCRIPT=${SEARCH_SCRIPT:-$here/slurm/search.sbatch}
export LAUNCHER=mpirun REQUEUE_ON_WARNING=0
# A single-machine run: no enclosing Slurm job may leak its ids into the tasks.
unset SLURM_JOB_ID SLURM_RESTART_COUNT SLURM_JOB_NODELIST SLURM_CPUS_PER_TASK

n=$(bash "$sweep" --count) || exit 2
bash "$sweep" --check || exit 2

# Each task runs in the background so that a signal is handled at once: it
# goes on to the task as TERM (background jobs of a script ignore INT), and
# the task's shell forwards it to its search, which flushes its log.
stop= child=
forward() { stop=1; [ -n "$child" ] && kill -s TERM "$child" 2>/dev/null; }
trap forward INT TERM
start=$(date +%s)
for ((i = 0; i < n; i++)); do
    if [ -n "$stop" ]; then say "stopped before task $((i + 1))/$n; run tools/study.sh again to continue"; exit 3; fi
    read -r _ out _ <<<"$(bash "$sweep" --list | sed -n "$((i + 1))p")"
    say "task $((i + 1))/$n: $out ($(($(date +%s) - start)) s so far)"
    SLURM_ARRAY_TASK_ID=$i SLURM_NTASKS=$RANKS bash "$sweep" &
    child=$!
    while kill -0 "$child" 2>/dev/null; do wait "$child"; done  # a trap interrupts wait: wait again
    wait "$child"
    rc=$?
    child=
    if [ -n "$stop" ] || [ "$rc" -ne 0 ]; then
        [ "$rc" -eq 0 ] && rc=3
        say "stopped at task $((i + 1))/$n ($out, exit $rc); run tools/study.sh again to continue"
        exit "$rc"
    fi
done
say "all $n tasks done in $(($(date +%s) - start)) s; collecting"
THREADS=$cpus bash "$here/slurm/collect.sbatch"
