#!/bin/sh
# Memory per VMA, as issue 8 measures it: the peak RSS of `mmprep run` on a scenario that
# makes 2 * HALF VMAs, minus that of a run with the same number of lines that makes none
# (its mprotect lines ask for the protection each page already has). docs/performance.md.
#
# usage: scripts/mem-per-vma.sh [HALF]     (default 500000: a million VMAs)
# needs: a built target/release/mmprep (cargo build --release -p mmprep-cli), GNU time.
set -eu
half=${1:-500000}
mmprep=${MMPREP:-target/release/mmprep}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$mmprep" bench --stream perf --vmas "$half" --ops 0 --emit > "$dir/many.scn"
sed 's/^mprotect \(.*\) r--$/mprotect \1 rw-/' "$dir/many.scn" > "$dir/none.scn"
limit=$((4 * half + 100))
peak() { /usr/bin/time -f %M "$mmprep" run --set max_map_count="$limit" "$1" 2>&1 >/dev/null | tail -n 1; }
many=$(peak "$dir/many.scn")
none=$(peak "$dir/none.scn")
vmas=$((2 * half))
echo "VMAs $vmas: peak RSS $many KB, without them $none KB, $(( (many - none) * 1024 / vmas )) B per VMA"
