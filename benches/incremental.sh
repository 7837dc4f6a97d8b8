#!/usr/bin/env bash
# Incremental rebuild: one file of DIST changed, `build --reuse OLD` timed
# REPS times (the performance issue's "≤ 3 % of the cold build").
#
# Usage: benches/incremental.sh DIST OLD.pack [LEVEL]
# Env:   REPS (3), BIN (target/release/sitepack), WORK (/tmp/incremental)
#
# DIST is hardlinked into WORK/tree; the changed file is replaced by rename
# (a new inode), so DIST itself is never written. OLD must be a bundle of
# DIST made at LEVEL (default `default`), e.g. build_compare.sh's.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DIST=${1:?usage: incremental.sh DIST OLD.pack [LEVEL]}
OLD=${2:?usage: incremental.sh DIST OLD.pack [LEVEL]}
LEVEL=${3:-default}
REPS=${REPS:-3}
BIN=${BIN:-$HERE/../target/release/sitepack}
WORK=${WORK:-/tmp/incremental}
rm -rf "$WORK"; mkdir -p "$WORK"
cp -al "${DIST%/}" "$WORK/tree"
# A page of median size gets one more line: its blob and every variant
# change (VICTIM=path inside DIST picks another).
if [ -n "${VICTIM:-}" ]; then
  victim="$WORK/tree/${VICTIM#/}"
else
  n=$(find "$WORK/tree" -type f -name '*.html' | wc -l)
  victim=$(find "$WORK/tree" -type f -name '*.html' -printf '%s %p\n' | sort -n | sed -n "$(( (n + 1) / 2 ))p" | cut -d' ' -f2-)
fi
{ cat "$victim"; echo "<!-- changed -->"; } > "$WORK/changed" && mv "$WORK/changed" "$victim"
echo "changed: ${victim#"$WORK/tree"}" >&2
for i in $(seq 1 "$REPS"); do
  rm -f "$WORK/new.pack"
  /usr/bin/time -f "reuse run $i: %e s wall, %U+%S s CPU" \
    "$BIN" build "$WORK/tree" -o "$WORK/new.pack" --compression "$LEVEL" --reuse "$OLD" --quiet --json > "$WORK/report.json"
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["reused"]; print("  reused", r["blobs"], "blobs,", r["bytes_in"], "bytes")' "$WORK/report.json" >&2
done
