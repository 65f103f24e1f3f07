#!/usr/bin/env bash
# Distributed training with torchrun (torch.distributed.run):
#   bash tools/dist_train.sh CONFIG GPUS [train.py args...]
# Several machines: set NNODES, NODE_RANK, MASTER_ADDR and PORT on each.
# DIST_SCRIPT (default train.py) names the tool started (tools/dist_test.sh: test.py).
set -e

if [ $# -lt 2 ]; then
    echo "usage: $0 CONFIG GPUS [tools/train.py arguments...]" >&2
    exit 1
fi

CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}

# exec: torchrun stays in this script's process group, so a signal to the group
# (Ctrl-C, kill -9) reaches it; its workers, which torchrun starts in sessions of
# their own, are SIGKILLed by the kernel when it ends (bipa.utils.die_with_launcher).
BIPA_LAUNCHER_PID=$$ PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
exec python -m torch.distributed.run \
    --nnodes=$NNODES \
    --node_rank=$NODE_RANK \
    --master_addr=$MASTER_ADDR \
    --nproc_per_node=$GPUS \
    --master_port=$PORT \
    "$(dirname "$0")/${DIST_SCRIPT:-train.py}" \
    "$CONFIG" "${@:3}" \
    --launcher pytorch
