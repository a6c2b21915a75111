#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# minislurm.sh: a throw-away single-node Slurm (slurmctld + slurmd + munged) living entirely in
# DIR, for `make test-slurm`. Needs slurm-wlm and munge (scripts/slurm-deps.sh) and root (or a
# user that may run slurmd). Nothing outside DIR is written; the daemons listen on loopback.
#   tests/slurm/minislurm.sh up DIR [CTLD_PORT]   start; prints `export SLURM_CONF=DIR/slurm.conf`
#   tests/slurm/minislurm.sh down DIR             stop the daemons started by `up` (by their pids)
# The node `localhost` has CPUs=2 (its real size) and the partition oversubscribes them
# (OverSubscribe=FORCE:16), so a 3-shard array, a router and the pipeline's jobs run at once.
set -euo pipefail
cmd=${1:?usage: minislurm.sh up|down DIR [PORT]}
dir=${2:?usage: minislurm.sh up|down DIR [PORT]}
port=${3:-18410}

stop_pid() { # pidfile
	[ -f "$1" ] || return 0
	local pid; pid=$(cat "$1")
	kill "$pid" 2>/dev/null || return 0
	for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
	kill -9 "$pid" 2>/dev/null || true
}

if [ "$cmd" = down ]; then
	stop_pid "$dir/slurmd.pid"
	stop_pid "$dir/slurmctld.pid"
	stop_pid "$dir/munged.pid"
	exit 0
fi
[ "$cmd" = up ] || { echo "minislurm.sh: unknown command $cmd" >&2; exit 2; }

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
mkdir -p "$dir/state" "$dir/spool" "$dir/munge"
chmod 700 "$dir/munge"
user=$(id -un)

# munge: a fresh key and a private socket
dd if=/dev/urandom of="$dir/munge/munge.key" bs=1 count=1024 status=none
chmod 400 "$dir/munge/munge.key"
force=(); [ "$(id -u)" = 0 ] && force=(--force)
/usr/sbin/munged "${force[@]}" --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.sock" \
	--pid-file="$dir/munged.pid" --log-file="$dir/munged.log" --seed-file="$dir/munge/seed"
for _ in $(seq 50); do [ -S "$dir/munge/munge.sock" ] && break; sleep 0.1; done

mem=$(awk '/MemTotal/ {print int($2 / 1024 / 2)}' /proc/meminfo)
cat > "$dir/slurm.conf" <<CONF
ClusterName=winnowtest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=$user
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.sock
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
DependencyParameters=kill_invalid_depend
ReturnToService=2
MpiDefault=none
SlurmctldTimeout=30
SlurmdTimeout=30
MinJobAge=600
KillWait=5
NodeName=localhost NodeAddr=127.0.0.1 CPUs=2 RealMemory=$mem State=UNKNOWN
PartitionName=main Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:16
CONF
export SLURM_CONF=$dir/slurm.conf
/usr/sbin/slurmctld -f "$dir/slurm.conf" -i
/usr/sbin/slurmd -f "$dir/slurm.conf" -N localhost
for _ in $(seq 100); do
	state=$(sinfo -h -N -o %t 2>/dev/null || true)
	case $state in idle*|mix*|alloc*) break ;; esac
	sleep 0.2
done
case $state in
	idle*|mix*|alloc*) ;;
	*) echo "minislurm.sh: node not up (state '$state'); logs in $dir" >&2; tail -n 20 "$dir/slurmctld.log" "$dir/slurmd.log" >&2; exit 1 ;;
esac
echo "export SLURM_CONF=$dir/slurm.conf"
