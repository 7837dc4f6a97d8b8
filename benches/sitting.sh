#!/usr/bin/env bash
# Every row of the performance table (benches/README.md, "One sitting") in
# one run, one after the other, so that the ratios compare like with like:
# this VM's speed drifts by ±20 % between sittings.
#
#   1. serve: sitepack vs nginx and static-web-server, wrk on npm-mix
#      (`serve_peers.sh`, small page and 1000-path mix, identity and br),
#      unpinned, then again with PIN=1 (servers on CPU 0, wrk on CPU 1);
#   2. resolve: `cargo bench --bench resolve`;
#   3. build: the shell peer vs sitepack default / max / fast on the std
#      docs (`build_compare.sh`, REPS runs each, interleaved);
#   4. incremental: one page changed, `build --reuse` REPS_REUSE times,
#      then a cold build of the same tree, and a `cmp` of the two.
#
# Usage: benches/sitting.sh [OUT]        (OUT: /tmp/sitting)
# Env:   REPS (3), REPS_REUSE (5), STEPS ("serve pin resolve build incremental")
# Needs: ../shared/bench/corpora.sh rustdoc npm-mix done; nginx with
# brotli_static and wrk (serve_peers.sh installs them); static-web-server on
# PATH or in /tmp/peers/sws/bin (see benches/README.md). Run nothing else
# meanwhile: about 50 minutes on 2 cores.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
OUT=${1:-/tmp/sitting}
REPS=${REPS:-3}
REPS_REUSE=${REPS_REUSE:-5}
STEPS=${STEPS:-serve pin resolve build incremental}
BIN=$ROOT/target/release/sitepack
BENCH=$ROOT/../shared/bench
CORPORA=/tmp/corpora
export PATH=/tmp/peers/sws/bin:$PATH
mkdir -p "$OUT"
cd "$ROOT"
cargo build --release --quiet
cargo bench --bench resolve --no-run --quiet 2>/dev/null

step() { echo "== $1 $(date -u +%T)" | tee -a "$OUT/progress" >&2; }
want() { [[ " $STEPS " == *" $1 "* ]]; }

{
  date -u; uname -r; echo "nproc $(nproc)"; grep -m1 'model name' /proc/cpuinfo
  free -g | sed -n 2p; rustc --version; echo "sitepack $(git rev-parse --short HEAD)"
  nginx -v 2>&1; static-web-server --version 2>/dev/null | head -1; wrk --version 2>&1 | head -1
} > "$OUT/machine.txt"

# Every file path answers 200, as it does from nginx's root.
if want serve || want pin; then
  "$BIN" build "$CORPORA/npm-mix" -o "$OUT/npm-none.pack" --html-handling none --quiet
  serve_cmd="$BIN serve $OUT/npm-none.pack --listen 127.0.0.1:18090"
fi
if want serve; then
  step serve
  SCENARIOS="small mix" SERVE_CMD=$serve_cmd \
    "$BENCH/serve_peers.sh" "$CORPORA/npm-mix" nginx sws ours > "$OUT/serve.txt" 2> "$OUT/serve.err"
fi
if want pin; then
  step pin
  PIN=1 SCENARIOS="small mix" SERVE_CMD=$serve_cmd \
    "$BENCH/serve_peers.sh" "$CORPORA/npm-mix" nginx ours > "$OUT/serve-pin.txt" 2> "$OUT/serve-pin.err"
fi
if want resolve; then
  step resolve
  cargo bench --bench resolve > "$OUT/resolve.txt" 2>&1
fi
if want build; then
  step build
  REPS=$REPS PEER_REPS=$REPS OUT=$OUT/build \
    "$HERE/build_compare.sh" "$CORPORA/rustdoc" default max fast > "$OUT/build.txt" 2> "$OUT/build.err"
fi
if want incremental; then
  step incremental
  WORK=$OUT/incremental REPS=$REPS_REUSE \
    "$HERE/incremental.sh" "$OUT/build/input" "$OUT/build/default.pack" default > "$OUT/incremental.txt" 2>&1
  /usr/bin/time -f 'cold: %e s wall, %U+%S s CPU' \
    "$BIN" build "$OUT/incremental/tree" -o "$OUT/incremental/cold.pack" --quiet >> "$OUT/incremental.txt" 2>&1
  if cmp "$OUT/incremental/cold.pack" "$OUT/incremental/new.pack" >> "$OUT/incremental.txt" 2>&1; then
    echo "cold == reuse: identical bytes" >> "$OUT/incremental.txt"
  fi
  rm -f "$OUT/incremental/cold.pack"
fi
step done
for f in serve serve-pin resolve build incremental; do
  [ -s "$OUT/$f.txt" ] && { echo "### $f"; cat "$OUT/$f.txt"; echo; }
done
