#!/usr/bin/env bash
# The build side of the peer table (benches/README.md): on one corpus, the
# shell peer (../shared/bench/build_peers.sh: xargs -P2 brotli -q 11, then
# gzip -9, over html/js/css/svg/json) and `sitepack build` at each
# --compression level, REPS times, interleaved, all in one run.
#
# Usage: benches/build_compare.sh DIST [LEVEL...]     (levels: default max fast)
# Env:   REPS (3), PEER_REPS (1; 0 skips the peer), BIN (target/release/sitepack),
#        OUT (/tmp/build-compare/<name>), ALL=1 to build every file of DIST
#
# Both sides get the same input: by default a hardlinked copy of DIST with
# only the five extensions the peer compresses (sitepack would otherwise also
# compress fonts, .mjs, .txt… that the peer leaves alone), OUT/input.
#
# One TSV line per run in OUT/results.tsv, and a table of medians at the end:
# wall s, CPU s (user+sys), parallel efficiency CPU/(nproc x wall), peak
# anonymous memory (benches/peak_anon.sh), brotli bytes stored (each content
# once) and summed per file (how the peer counts: duplicates included),
# brotli bytes over the peer's, gzip and zstd bytes stored.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
DIST=${1:?usage: build_compare.sh DIST [LEVEL...]}; shift
DIST=${DIST%/}
NAME=$(basename "$DIST")
LEVELS=${*:-default max fast}
REPS=${REPS:-3}
PEER_REPS=${PEER_REPS:-1}
BIN=${BIN:-$ROOT/target/release/sitepack}
OUT=${OUT:-/tmp/build-compare/$NAME}
CORES=$(nproc)
mkdir -p "$OUT"
: > "$OUT/results.tsv"
if [ "${ALL:-0}" != 1 ]; then
  rm -rf "$OUT/input"
  python3 - "$DIST" "$OUT/input" <<'PY'
import os, sys
src, dst = sys.argv[1], sys.argv[2]
for d, _, files in os.walk(src):
    for f in files:
        if f.endswith((".html", ".js", ".css", ".svg", ".json")):
            rel = os.path.relpath(os.path.join(d, f), src)
            os.makedirs(os.path.dirname(os.path.join(dst, rel)), exist_ok=True)
            os.link(os.path.join(src, rel), os.path.join(dst, rel))
PY
  DIST="$OUT/input"
fi

peer_run() {
  FORCE=1 bash "$ROOT/../shared/bench/build_peers.sh" "$DIST" "$OUT/peer" > "$OUT/peer.log" 2>&1
  # build_peers.sh keeps its table rows: "| label | files | MB | elapsed | CPU | ...".
  local wall cpu br gz
  read -r wall cpu < <(awk -F'|' '{w += $5; c += $6} END {print w, c}' "$OUT/peer.timing")
  sum() { find "$1" -type f -name "$2" -printf '%s\n' | awk '{s += $1} END {print s + 0}'; }
  br=$(( $(sum "$OUT/peer" '*.br') - $(sum "$DIST" '*.br') ))
  gz=$(( $(sum "$OUT/peer" '*.gz') - $(sum "$DIST" '*.gz') ))
  printf 'peer\t%s\t%s\t-\t%s\t%s\t%s\t-\n' "$wall" "$cpu" "$br" "$br" "$gz" >> "$OUT/results.tsv"
}

ours_run() {
  local level=$1 pack="$OUT/$1.pack" t
  rm -f "$pack"
  t=$( { /usr/bin/time -f '%e %U %S' "$HERE/peak_anon.sh" "$BIN" build "$DIST" -o "$pack" \
          --compression "$level" --quiet --json > "$OUT/$level.json"; } 2>&1 | tr '\n' ' ')
  # t: "peak RssAnon: N MiB <elapsed> <user> <sys>"
  local anon wall cpu
  anon=$(echo "$t" | awk '{print $3}')
  wall=$(echo "$t" | awk '{print $5}')
  cpu=$(echo "$t" | awk '{print $6 + $7}')
  "$BIN" inspect "$pack" --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
enc = d["encodings"]
per_file = sum(a["encoded_sizes"].get("br", 0) for a in d["assets"])
g = lambda e: enc.get(e, {}).get("bytes", 0)
print("\t".join(str(x) for x in (g("br"), per_file, g("gzip"), g("zstd"))))' > "$OUT/$level.sizes"
  local br per gz zs
  read -r br per gz zs < "$OUT/$level.sizes"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$level" "$wall" "$cpu" "$anon" "$br" "$per" "$gz" "$zs" >> "$OUT/results.tsv"
}

for rep in $(seq 1 "$REPS"); do
  if [ "$rep" -le "$PEER_REPS" ]; then echo "[build_compare] $NAME peer, run $rep" >&2; peer_run; fi
  for level in $LEVELS; do echo "[build_compare] $NAME $level, run $rep" >&2; ours_run "$level"; done
done

python3 - "$OUT/results.tsv" "$CORES" "$NAME" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
cores, name = int(sys.argv[2]), sys.argv[3]
by = {}
for r in rows:
    by.setdefault(r[0], []).append(r)
med = lambda xs: statistics.median(float(x) for x in xs)
peer = by.get("peer")
peer_wall = med(r[1] for r in peer) if peer else None
peer_br = med(r[5] for r in peer) if peer else None
print(f"| {name} | runs | wall s | CPU s | efficiency | peak anon MiB | br stored | br stored / peer | br per file | br per file / peer | wall / peer | gzip stored | zstd stored |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for k, rs in by.items():
    wall, cpu = med(r[1] for r in rs), med(r[2] for r in rs)
    eff = f"{100 * cpu / (cores * wall):.0f} %"
    anon = rs[0][3] if rs[0][3] == "-" else f"{med(r[3] for r in rs):.0f}"
    per = med(r[5] for r in rs)
    ratio = f"{per / peer_br:.3f}" if peer_br else "-"
    stored = med(r[4] for r in rs)
    sratio = f"{stored / peer_br:.3f}" if peer_br else "-"
    wr = f"{wall / peer_wall:.2f}" if peer_wall else "-"
    zs = rs[0][7] if rs[0][7] == "-" else f"{med(r[7] for r in rs):,.0f}"
    print(f"| {k} | {len(rs)} | {wall:.1f} | {cpu:.1f} | {eff} | {anon} | {stored:,.0f} | {sratio} | {per:,.0f} | {ratio} | {wr} | {med(r[6] for r in rs):,.0f} | {zs} |")
PY
