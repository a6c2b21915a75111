#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# pipeline.sh: submit the batch curation pipeline as dependent Slurm jobs (docs/scale.md):
#   create -> ingest (an array, one task per slice) -> score -> select -> export (.npy)
# each with --dependency=afterok: on the one before, so a failed step stops the rest.
# Prints the job ids, one a line (the last is the export job).
#   deploy/slurm/pipeline.sh [SBATCH_ARG...]
# Environment (every variable is passed on to the jobs):
#   WINNOW_SLURM_DIR / WINNOW_URL     where the router is (router.url), or its URL
#   WINNOW_KEY                        API key of the router
#   WINNOW_SLURM_BIN                  directory holding `winnow` (default: on PATH)
#   WINNOW_PIPELINE_DATASET           dataset (default pool)
#   WINNOW_PIPELINE_SCHEMA            its schema, JSON or @FILE; empty: no create step
#   WINNOW_PIPELINE_SLICES            directory of *.ndjson slices, ingested in parallel
#   WINNOW_PIPELINE_INGEST_PARALLEL   most ingest tasks at once (default 4; %N of --array)
#   WINNOW_PIPELINE_FILTER            filter name (default score)
#   WINNOW_PIPELINE_FILTER_DEF        filter definition, JSON or @FILE
#   WINNOW_PIPELINE_SUBSET            subset name (default selected)
#   WINNOW_PIPELINE_STEPS             subset steps, JSON or @FILE
#   WINNOW_PIPELINE_OUTPUT            the exported DataComp uid .npy (a shared path)
#   WINNOW_PIPELINE_LOGS              directory of the jobs' logs (default $WINNOW_SLURM_DIR/logs or .)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
step=$here/pipeline-step.sbatch
logs=${WINNOW_PIPELINE_LOGS:-${WINNOW_SLURM_DIR:+$WINNOW_SLURM_DIR/logs}}
logs=${logs:-.}
mkdir -p "$logs"
n=$(find "${WINNOW_PIPELINE_SLICES:?set WINNOW_PIPELINE_SLICES}" -maxdepth 1 -name '*.ndjson' | wc -l)
[ "$n" -gt 0 ] || { echo "pipeline.sh: no *.ndjson in $WINNOW_PIPELINE_SLICES" >&2; exit 2; }
: "${WINNOW_PIPELINE_FILTER_DEF:?}" "${WINNOW_PIPELINE_STEPS:?}" "${WINNOW_PIPELINE_OUTPUT:?}"

submit() { local j; j=$(sbatch --parsable "$@"); echo "${j%%;*}"; }
dep=()
if [ -n "${WINNOW_PIPELINE_SCHEMA:-}" ]; then
	c=$(submit -o "$logs/pipeline-create.log" "${@}" "$step" create); echo "$c"
	dep=(--dependency=afterok:"$c")
fi
i=$(submit --array=0-$((n - 1))%"${WINNOW_PIPELINE_INGEST_PARALLEL:-4}" "${dep[@]}" \
	-o "$logs/pipeline-ingest-%a.log" "$@" "$step" ingest); echo "$i"
s=$(submit --dependency=afterok:"$i" -o "$logs/pipeline-score.log" "$@" "$step" score); echo "$s"
t=$(submit --dependency=afterok:"$s" -o "$logs/pipeline-select.log" "$@" "$step" select); echo "$t"
e=$(submit --dependency=afterok:"$t" -o "$logs/pipeline-export.log" "$@" "$step" export); echo "$e"
