#!/usr/bin/env bash
# A one-node Slurm in a temporary directory, for the slurm tests and for
# trying slurm/*.sbatch on one machine:
#
#   tests/slurm/cluster.sh COMMAND [ARG ...]     e.g.  tests/slurm/cluster.sh bash
#
# starts munged (a generated key), slurmctld and slurmd (node 'localhost',
# NS_SLURM_CPUS CPUs, default 2) in the foreground as children of this
# script, waits until the node is idle, runs COMMAND with SLURM_CONF set,
# then cancels every job, stops every daemon and removes the directory;
# exits with COMMAND's status. The stop runs on every exit of this script
# (trap), and a detached watchdog runs it if this script is killed outright
# (SIGKILL, e.g. a ctest timeout), so no daemon outlives it. Needs root
# (SlurmUser=root), as on the CI machine. NS_SLURM_KEEP=1 keeps the directory
# (daemon logs) for a look after the run. Recipe:
# ../../../shared/docs/environment.md, "Slurm on one machine".
set -uo pipefail

log() { echo "slurm-cluster: $*" >&2; }

# Every process this cluster started, found by its exact pid or by the
# cluster's own SLURM_CONF path in its initial environment (job steps and
# slurmstepd are reparented away from us, but inherit that variable).
cluster_pids() {
    local dir=$1 conf="SLURM_CONF=$1/slurm.conf" f pid e
    for f in "$dir"/pids/*; do [ -f "$f" ] && cat "$f"; done
    local -a env
    for f in /proc/[0-9]*/environ; do  # builtins only: no child of ours lands in the list
        pid=${f#/proc/}; pid=${pid%/environ}
        [ "$pid" = "$$" ] && continue
        { mapfile -d '' -t env <"$f"; } 2>/dev/null || continue
        for e in "${env[@]}"; do [ "$e" = "$conf" ] && { echo "$pid"; break; }; done
    done
}

# Running, not a zombie (an orphan's zombie lingers until init reaps it).
alive() {
    local stat
    { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
    stat=${stat##*) }
    [ "${stat%% *}" != Z ]
}

# Wait up to $1 tenths of a second for the pids in $2.. to exit.
wait_gone() {
    local n=$1; shift
    local p left i
    for ((i = 0; i < n; i++)); do
        left=0
        for p in "$@"; do alive "$p" && left=1; done
        [ $left = 0 ] && return 0
        sleep 0.1
    done
    return 1
}

# Idempotent: cancel the jobs, stop slurmd and slurmctld, kill what is left
# of the jobs, stop munged, remove the directory.
stop_cluster() {
    local dir=$1 status=${2:-0} i
    [ -f "$dir/slurm.conf" ] || { rm -rf "$dir"; return; }
    export SLURM_CONF="$dir/slurm.conf"
    if [ -f "$dir/pids/slurmctld" ] && alive "$(cat "$dir/pids/slurmctld")"; then
        local jobs
        jobs=$(timeout 10 squeue -h -o %A 2>/dev/null | tr '\n' ' ')
        if [ -n "${jobs// /}" ]; then
            timeout 10 scancel $jobs 2>/dev/null
            for ((i = 0; i < 150; i++)); do  # KillWait is 5 s
                [ -z "$(timeout 10 squeue -h -o %A 2>/dev/null)" ] && break
                sleep 0.1
            done
        fi
    fi
    local d p
    for d in slurmd slurmctld; do
        [ -f "$dir/pids/$d" ] || continue
        p=$(cat "$dir/pids/$d")
        kill -TERM "$p" 2>/dev/null
        wait_gone 100 "$p" || kill -KILL "$p" 2>/dev/null
    done
    local rest
    rest=$(cluster_pids "$dir" | grep -vxF "$(cat "$dir/pids/munged" 2>/dev/null)" | sort -u)
    if [ -n "$rest" ]; then
        kill -TERM $rest 2>/dev/null
        wait_gone 30 $rest || kill -KILL $rest 2>/dev/null
    fi
    if [ -f "$dir/pids/munged" ]; then
        p=$(cat "$dir/pids/munged")
        kill -TERM "$p" 2>/dev/null
        wait_gone 50 "$p" || kill -KILL "$p" 2>/dev/null
    fi
    if [ "$status" != 0 ]; then
        for f in "$dir"/log/*.log; do
            [ -f "$f" ] && { log "last lines of $f:"; tail -n 15 "$f" >&2; }
        done
    fi
    if [ "${NS_SLURM_KEEP:-0}" = 1 ]; then log "kept $dir"; else rm -rf "$dir"; fi
}

# --watchdog PID DIR: wait for PID to end; if DIR is still there, the
# cluster was not stopped (its script was killed): stop it.
if [ "${1:-}" = --watchdog ]; then
    while alive "$2"; do sleep 1; done
    [ -d "$3" ] && stop_cluster "$3" 1
    exit 0
fi

if [ $# -eq 0 ]; then
    echo "usage: $0 COMMAND [ARG ...]   (runs COMMAND with SLURM_CONF pointing at a one-node Slurm)" >&2
    exit 2
fi
for c in munged munge unmunge slurmctld slurmd sinfo squeue scancel scontrol sbatch srun; do
    command -v "$c" >/dev/null || PATH=$PATH:/usr/sbin command -v "$c" >/dev/null || {
        log "'$c' not found: install slurm-wlm and munge (./setup.sh deps)"; exit 1; }
done
PATH=$PATH:/usr/sbin
[ "$(id -u)" -eq 0 ] || { log "needs root (the one-node Slurm runs with SlurmUser=root)"; exit 1; }

DIR=$(mktemp -d /tmp/ns-slurm.XXXXXX) || exit 1
mkdir -p "$DIR"/{munge,state,spool,log,pids}
chmod 755 "$DIR" "$DIR/munge"  # munged refuses a socket directory others can write
status=1
child=
on_exit() {
    [ -n "$child" ] && alive "$child" && { kill -TERM "$child" 2>/dev/null; wait "$child" 2>/dev/null; }
    stop_cluster "$DIR" "$status"
}
trap on_exit EXIT
trap 'status=130; exit 130' INT
trap 'status=143; exit 143' TERM
# Detached (double fork + setsid) so that killing this script's process tree spares it.
( setsid "$BASH" "$0" --watchdog $$ "$DIR" </dev/null >/dev/null 2>&1 & )

# munge, with a fresh key and its own socket.
head -c 1024 /dev/urandom >"$DIR/munge/munge.key"
chmod 400 "$DIR/munge/munge.key"
SOCK=$DIR/munge/munge.socket
munged --foreground --force --key-file "$DIR/munge/munge.key" --socket "$SOCK" \
    --pid-file "$DIR/munge/munged.pid" --log-file "$DIR/log/munged.log" --seed-file "$DIR/munge/munge.seed" \
    >/dev/null 2>&1 &
echo $! >"$DIR/pids/munged"
for ((i = 0; i < 100; i++)); do
    munge -n -S "$SOCK" 2>/dev/null | unmunge -S "$SOCK" >/dev/null 2>&1 && break
    alive "$(cat "$DIR/pids/munged")" || { log "munged exited"; exit 1; }
    sleep 0.1
done
((i < 100)) || { log "munged did not answer in 10 s"; exit 1; }

# Two free TCP ports, so a system Slurm or a second test run does not clash.
read -r CTLD_PORT SLURMD_PORT < <(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*(x.getsockname()[1] for x in s))')

cat >"$DIR/slurm.conf" <<EOF
ClusterName=nstest
SlurmctldHost=localhost
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$SOCK,cred_expire=5
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=pmix
MailProg=/bin/true
ReturnToService=2
SlurmdParameters=config_overrides
KillWait=5
SchedulerParameters=sched_interval=1,bf_interval=1
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
NodeName=localhost CPUs=${NS_SLURM_CPUS:-2} State=UNKNOWN
PartitionName=test Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF=$DIR/slurm.conf

slurmctld -D -i >/dev/null 2>&1 &
echo $! >"$DIR/pids/slurmctld"
slurmd -D -N localhost >/dev/null 2>&1 &
echo $! >"$DIR/pids/slurmd"
for ((i = 0; i < 300; i++)); do
    [ "$(sinfo -h -n localhost -o %T 2>/dev/null)" = idle ] && break
    for d in slurmctld slurmd; do
        alive "$(cat "$DIR/pids/$d")" || { log "$d exited while starting"; exit 1; }
    done
    sleep 0.1
done
((i < 300)) || { log "node not idle in 30 s: $(sinfo -h -o '%T %E' 2>&1)"; exit 1; }
log "node idle after $((i * 100)) ms; SLURM_CONF=$SLURM_CONF"

# Run COMMAND in the background so the INT/TERM traps fire at once.
"$@" &
child=$!
wait "$child"
status=$?
child=
exit "$status"
