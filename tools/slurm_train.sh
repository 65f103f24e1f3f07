#!/usr/bin/env bash
# Distributed training under Slurm, one task per GPU, across machines:
#   bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [tools/train.py args...]
# GPUS (total, default 8), GPUS_PER_NODE (default 8), CPUS_PER_TASK (default 5)
# and SRUN_ARGS (extra srun options) are read from the environment.
# Preemption and time limits: Slurm sends SIGTERM STOP_AHEAD seconds (default 300)
# before the time limit (srun --signal), and on preemption; training then writes a
# checkpoint after the current iteration or search trial and exits with code 75.
# RESTARTS (default 0) reruns srun with --resume that many times after such a stop.
set -e

if [ $# -lt 4 ]; then
    echo "usage: $0 PARTITION JOB_NAME CONFIG WORK_DIR [tools/train.py arguments...]" >&2
    exit 1
fi

PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}

STOP_AHEAD=${STOP_AHEAD:-300}
RESTARTS=${RESTARTS:-0}
STOPPED=75  # bipa.engine.stop_signal.STOPPED_EXIT_CODE

resume=()
for attempt in $(seq 0 "${RESTARTS}"); do
    set +e
    PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
    srun -p "${PARTITION}" \
        --job-name="${JOB_NAME}" \
        --gres=gpu:"${GPUS_PER_NODE}" \
        --ntasks="${GPUS}" \
        --ntasks-per-node="${GPUS_PER_NODE}" \
        --cpus-per-task="${CPUS_PER_TASK}" \
        --kill-on-bad-exit=1 \
        --signal=TERM@"${STOP_AHEAD}" \
        ${SRUN_ARGS} \
        python -u "$(dirname "$0")/train.py" "${CONFIG}" --work-dir="${WORK_DIR}" \
        --launcher slurm "${@:5}" "${resume[@]}"
    code=$?
    set -e
    if [ "${code}" -ne "${STOPPED}" ] || [ "${attempt}" -ge "${RESTARTS}" ]; then
        exit "${code}"
    fi
    echo "training stopped with a checkpoint (exit ${STOPPED}); resuming ($((attempt + 1))/${RESTARTS})" >&2
    resume=(--resume)
done
