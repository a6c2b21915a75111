#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# slurm-deps.sh: install what `make test-slurm` needs beyond scripts/deps.sh: Debian's Slurm
# (slurm-wlm: slurmctld, slurmd, sbatch...) and munge. Not part of the default dependencies;
# the daemons are not enabled or started here (tests/slurm/minislurm.sh runs its own).
set -euo pipefail
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
missing=()
for p in slurm-wlm munge curl; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "slurm-deps: installing ${missing[*]}"
	as_root apt-get update -qq
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
	echo "slurm-deps: slurm-wlm and munge present"
fi
