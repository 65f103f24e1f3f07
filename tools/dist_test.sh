#!/usr/bin/env bash
# Distributed testing with torchrun, as tools/dist_train.sh starts training:
#   bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args...]
# Several machines: set NNODES, NODE_RANK, MASTER_ADDR and PORT on each.
set -e

if [ $# -lt 3 ]; then
    echo "usage: $0 CONFIG CHECKPOINT GPUS [tools/test.py arguments...]" >&2
    exit 1
fi

DIST_SCRIPT=test.py exec bash "$(dirname "$0")/dist_train.sh" "$1" "$3" "$2" "${@:4}"
