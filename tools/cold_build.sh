#!/bin/bash
# Cold build figures, as docs/benchmarks.md reports them: a fresh clone of this repository
# at REV, an empty target directory, `cargo build --release ARGS`, timed by /usr/bin/time
# (wall, CPU, the largest process's peak RSS) with the machine's used memory sampled every
# second (`free -m`). Nothing else should build meanwhile.
#
#   tools/cold_build.sh REV LABEL [cargo build args...]
#   tools/cold_build.sh HEAD full -p fleetform --timings
#   tools/cold_build.sh HEAD local -p fleetform --no-default-features --timings
#
# The clone stays in /tmp/cold-LABEL (with target/cargo-timings/ when --timings is given).
set -u
rev=$1; label=$2; shift 2
repo=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
dir=/tmp/cold-$label
rm -rf "$dir"
git clone -q "$repo" "$dir" && cd "$dir" && git checkout -q "$rev" || exit 1
unset CARGO_TARGET_DIR
base=$(free -m | awk '/Mem:/{print $3}')
( while true; do free -m | awk '/Mem:/{print $3}'; sleep 1; done ) > "/tmp/mem-$label.log" &
sampler=$!
/usr/bin/time -f "wall %e s, user %U s, sys %S s, largest process %M KB" \
  cargo build --release "$@" > "/tmp/build-$label.log" 2>&1
rc=$?
kill $sampler
peak=$(sort -n "/tmp/mem-$label.log" | tail -1)
echo "$label at $(git rev-parse --short HEAD): rc=$rc $(tail -1 "/tmp/build-$label.log"); machine memory used: ${base} MB before, ${peak} MB at peak (+$((peak - base)) MB)"
