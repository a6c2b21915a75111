#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# cluster.sh: start and stop a sharded winnow on Slurm (docs/scale.md, "Slurm").
#   deploy/slurm/cluster.sh start N [SBATCH_ARG...]  submit N shards (one array task each) whose
#                                                    task 0 also runs the router once all N
#                                                    shards are up; prints the job id
#   deploy/slurm/cluster.sh url [TIMEOUT_S]          wait for the router, print its URL
#   deploy/slurm/cluster.sh stop                     scancel the cluster's job
# SBATCH_ARGs go to sbatch (e.g. --partition=cpu --exclusive --time=2-0). With
# WINNOW_SLURM_ROUTER_JOB=1 the router is its own job instead (router.sbatch, submitted with
# --dependency=after:SHARDS; WINNOW_SLURM_ROUTER_SBATCH_ARGS are its sbatch arguments).
# Every WINNOW_SLURM_* variable of shard.sbatch and router.sbatch is passed on (sbatch exports
# the environment); WINNOW_SLURM_DIR is required.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dir=${WINNOW_SLURM_DIR:?set WINNOW_SLURM_DIR to a directory every node shares}
cmd=${1:?usage: cluster.sh start N [SBATCH_ARG...] | url [TIMEOUT] | stop}
shift

case $cmd in
start)
	n=${1:?usage: cluster.sh start N}
	shift
	mkdir -p "$dir/shards" "$dir/logs"
	rm -f "$dir"/shards/*.url "$dir/router.url" "$dir/shards.json"
	export WINNOW_SLURM_SHARDS=$n
	if [ "${WINNOW_SLURM_ROUTER_JOB:-0}" = 1 ]; then unset WINNOW_SLURM_SCRIPTS
	else export WINNOW_SLURM_SCRIPTS=$here; fi
	jid=$(sbatch --parsable --array=0-$((n - 1)) -o "$dir/logs/shard-%a.log" "$@" "$here/shard.sbatch")
	jid=${jid%%;*}
	echo "$jid" > "$dir/jobs"
	if [ "${WINNOW_SLURM_ROUTER_JOB:-0}" = 1 ]; then
		# shellcheck disable=SC2206
		rargs=(${WINNOW_SLURM_ROUTER_SBATCH_ARGS:-})
		rj=$(sbatch --parsable --dependency=after:"$jid" -o "$dir/logs/router.log" "${rargs[@]}" "$here/router.sbatch")
		echo "${rj%%;*}" >> "$dir/jobs"
	fi
	cat "$dir/jobs"
	;;
url)
	t=${1:-600}
	for ((i = 0; i < t * 2; i++)); do
		[ -s "$dir/router.url" ] && { cat "$dir/router.url"; exit 0; }
		sleep 0.5
	done
	echo "cluster.sh: no router registered in $dir/router.url after $t s" >&2
	exit 1
	;;
stop)
	[ -f "$dir/jobs" ] || { echo "cluster.sh: no $dir/jobs" >&2; exit 1; }
	# shellcheck disable=SC2046
	scancel $(cat "$dir/jobs")
	rm -f "$dir/jobs"
	;;
*) echo "cluster.sh: unknown command $cmd" >&2; exit 2 ;;
esac
