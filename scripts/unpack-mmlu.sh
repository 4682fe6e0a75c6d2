#!/usr/bin/env bash
# Unpacks the vendored MMLU (data/mmlu/mmlu.tar.xz) into .data/mmlu/ once, checks every file against
# SHA256SUMS, and prints the folder. Safe to run concurrently: it unpacks into a temporary folder and
# renames it into place. With MMLU_DIR set, it only checks that folder and prints it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -n "${MMLU_DIR:-}" ]; then
  [ -d "$MMLU_DIR/data/test" ] || { echo "unpack-mmlu: MMLU_DIR=$MMLU_DIR has no data/test folder" >&2; exit 1; }
  echo "$MMLU_DIR"
  exit 0
fi
ARCHIVE="$ROOT/data/mmlu/mmlu.tar.xz"
DEST="$ROOT/.data/mmlu"
if [ -f "$DEST/.verified" ]; then
  echo "$DEST"
  exit 0
fi
[ -f "$ARCHIVE" ] || { echo "unpack-mmlu: $ARCHIVE is missing (a partial clone?)" >&2; exit 1; }
mkdir -p "$ROOT/.data"
tmp="$(mktemp -d "$ROOT/.data/.mmlu-unpack.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
tar -xJf "$ARCHIVE" -C "$tmp"
if ! (cd "$tmp" && sha256sum --quiet -c SHA256SUMS) >"$tmp.sha.log" 2>&1; then
  echo "unpack-mmlu: $ARCHIVE does not match its SHA256SUMS: $(head -1 "$tmp.sha.log")" >&2
  rm -f "$tmp.sha.log"
  exit 1
fi
rm -f "$tmp.sha.log"
cp "$ROOT/data/mmlu/LICENSE" "$tmp/LICENSE"
touch "$tmp/.verified"
# Another process may have won the race; its copy is identical, so keep whichever is in place.
mv -T "$tmp" "$DEST" 2>/dev/null || true
[ -f "$DEST/.verified" ] || { echo "unpack-mmlu: could not place $DEST" >&2; exit 1; }
echo "$DEST"
