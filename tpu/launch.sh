#!/usr/bin/env bash
# Run a jaxir training job on a Cloud TPU VM (single host or pod slice, all workers at once).
#
#   TPU_NAME=jaxir-v4 ZONE=us-central2-b ACCELERATOR=v4-8 tpu/launch.sh all -- \
#       --recipe colbert --mode tpu-msmarco --data.examples examples.64.json \
#       --data.collection collection.tsv --data.queries queries.train.tsv
#
# Sub-commands (run in this order by `all`):
#   create   gcloud compute tpus tpu-vm create (skipped when the VM exists)
#   push     pack the git-tracked tree and copy it to every worker
#   setup    venv + jax[tpu] + `pip install -e .` on every worker
#   train    the same `jaxir train ARGS...` on every worker (JAX finds its peers itself)
#   fetch    copy checkpoints + logs back to $LOCAL_OUT
#   delete   delete the TPU VM (never part of `all`)
# Settings come from the environment; see tpu/README.md for pod configurations.
set -euo pipefail

TPU_NAME="${TPU_NAME:?set TPU_NAME}"
ZONE="${ZONE:?set ZONE, e.g. us-central2-b (v4) or us-west4-a (v5e)}"
ACCELERATOR="${ACCELERATOR:-v4-8}"
RUNTIME="${RUNTIME:-tpu-ubuntu2204-base}"
PROJECT="${PROJECT:-}"
SPOT="${SPOT:-0}"
REMOTE_DIR="${REMOTE_DIR:-jaxir}"
# `jaxir train --out` on the workers, relative to REMOTE_DIR (logs: worker 0 only).
REMOTE_OUT="${REMOTE_OUT:-runs}"
# `--fit.checkpoint_dir`: must be gs://... on multi-host slices (every host writes its shards).
CKPT_DIR="${CKPT_DIR:-}"
LOCAL_OUT="${LOCAL_OUT:-tpu_runs/${TPU_NAME}}"
JAX_SPEC="${JAX_SPEC:-jax[tpu]>=0.10.2,<0.11}"

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

gcloud_tpu() {
  local extra=()
  if [[ -n "${PROJECT}" ]]; then
    extra+=(--project "${PROJECT}")
  fi
  gcloud compute tpus tpu-vm "$@" --zone "${ZONE}" "${extra[@]}"
}

on_all_workers() {
  gcloud_tpu ssh "${TPU_NAME}" --worker=all --command "$1"
}

cmd_create() {
  if gcloud_tpu describe "${TPU_NAME}" >/dev/null 2>&1; then
    echo "TPU VM ${TPU_NAME} exists; not creating it"
    return
  fi
  local flags=(--accelerator-type "${ACCELERATOR}" --version "${RUNTIME}")
  if [[ "${SPOT}" == "1" ]]; then
    flags+=(--spot)
  fi
  gcloud_tpu create "${TPU_NAME}" "${flags[@]}"
}

cmd_push() {
  local archive
  archive="$(mktemp -d)/jaxir.tar.gz"
  git -C "${REPO_ROOT}" ls-files -z | tar -C "${REPO_ROOT}" --null -T - -czf "${archive}"
  gcloud_tpu scp "${archive}" "${TPU_NAME}:jaxir.tar.gz" --worker=all
  on_all_workers "mkdir -p ${REMOTE_DIR} && tar -xzf jaxir.tar.gz -C ${REMOTE_DIR}"
}

cmd_setup() {
  # CPU torch only (the test extra pins it); jax comes with its TPU runtime.
  on_all_workers "set -e; cd ${REMOTE_DIR}; python3 -m venv .venv; . .venv/bin/activate; \
pip install -q -U pip; \
pip install -q torch --index-url https://download.pytorch.org/whl/cpu; \
pip install -q '${JAX_SPEC}'; pip install -q -e .; \
python -c 'import jax; print(jax.process_index(), jax.device_count())'"
}

num_workers() {
  gcloud_tpu describe "${TPU_NAME}" --format='value(networkEndpoints[].ipAddress)' |
    tr ';' '\n' | grep -c .
}

cmd_train() {
  local args=""
  if [[ -n "${CKPT_DIR}" ]]; then
    args=" --fit.checkpoint_dir $(printf '%q' "${CKPT_DIR}")"
  elif (($(num_workers) > 1)); then
    echo "multi-host slice: set CKPT_DIR=gs://bucket/run so all hosts share checkpoints" >&2
    exit 2
  fi
  if (($# > 0)); then
    args+="$(printf ' %q' "$@")"
  fi
  # JAXIR_DISTRIBUTED=auto: jaxir calls jax.distributed.initialize() with cluster auto-detection.
  on_all_workers "set -e; cd ${REMOTE_DIR}; . .venv/bin/activate; \
JAXIR_DISTRIBUTED=auto jaxir train --out ${REMOTE_OUT}${args}"
}

cmd_fetch() {
  mkdir -p "${LOCAL_OUT}"
  # Worker 0 (process 0) writes metrics.jsonl and loss.png (and, on one host, the checkpoints).
  gcloud_tpu scp --recurse "${TPU_NAME}:${REMOTE_DIR}/${REMOTE_OUT}" "${LOCAL_OUT}/" --worker=0
  if [[ "${CKPT_DIR}" == gs://* ]]; then
    gcloud storage cp -r "${CKPT_DIR}" "${LOCAL_OUT}/"
  fi
}

cmd_delete() {
  gcloud_tpu delete "${TPU_NAME}" --quiet
}

main() {
  local sub="${1:-}"
  shift || true
  if [[ "${1:-}" == "--" ]]; then
    shift
  fi
  case "${sub}" in
    create | push | setup | fetch | delete) "cmd_${sub}" ;;
    train) cmd_train "$@" ;;
    all)
      cmd_create
      cmd_push
      cmd_setup
      cmd_train "$@"
      cmd_fetch
      ;;
    *)
      sed -n '2,15p' "${BASH_SOURCE[0]}"
      exit 2
      ;;
  esac
}

main "$@"
