#!/usr/bin/env bash
# Runs a sweep inside the Docker image (see Dockerfile) on all GPUs of this machine.
#
#   launch/docker_sweep.sh DATA_DIR RUNS_DIR [flags of python -m launch.sweep ...]
#
# DATA_DIR is mounted read-only at /data (IDX folders, cifar-10-binary.tar.gz, or a tfds
# directory under DATA_DIR/tensorflow_datasets, which is TFDS_DATA_DIR in the image); RUNS_DIR
# at /runs, which is the sweep's --runs. Each local worker gets one GPU (--gpus=all) unless the
# flags say otherwise. Files are written as the calling user. Example:
#
#   launch/docker_sweep.sh /usr/share/datasets/fashion-mnist "$PWD/runs/critic_study" \
#     --sweep=critic_study --gin_param="dataset.name='fashion_mnist'" \
#     --gin_param="dataset.data_dir='/data'"
#
# Environment: IMAGE (default mi_repr_tf:latest), DOCKER (default docker),
# DOCKER_ARGS (extra `docker run` arguments, e.g. "--shm-size=8g" for Ray).
set -euo pipefail

if [ $# -lt 2 ]; then
  sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
DATA_DIR=$(cd "$1" && pwd)
mkdir -p "$2"
RUNS_DIR=$(cd "$2" && pwd)
shift 2

IMAGE=${IMAGE:-mi_repr_tf:latest}
DOCKER=${DOCKER:-docker}
GPU_FLAG=(--gpus=all)
for arg in "$@"; do
  case "$arg" in --gpus=*|--gpus) GPU_FLAG=() ;; esac
done

# shellcheck disable=SC2086
exec "$DOCKER" run --rm --init --gpus all \
  --user "$(id -u):$(id -g)" -e HOME=/tmp \
  -v "$DATA_DIR:/data:ro" -v "$RUNS_DIR:/runs" \
  ${DOCKER_ARGS:-} \
  "$IMAGE" --runs=/runs "${GPU_FLAG[@]}" "$@"
