#!/usr/bin/env bash
# Runs a command and prints its peak anonymous memory (heap, stacks: what the
# process allocated), sampled from /proc every 20 ms. /usr/bin/time's max RSS
# also counts the pages of mapped files (build maps the bundle it wrote to
# verify it), which are page cache, not memory the build holds.
#
# Usage: benches/peak_anon.sh COMMAND [ARG...]
set -euo pipefail
"$@" &
pid=$!
peak=0
while kill -0 "$pid" 2>/dev/null; do
  kb=$(awk '/^RssAnon:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
  [ -n "$kb" ] && [ "$kb" -gt "$peak" ] && peak=$kb
  sleep 0.02
done
wait "$pid"; rc=$?
echo "peak RssAnon: $((peak / 1024)) MiB" >&2
exit $rc
