#!/usr/bin/env bash
# The voice tests speak their commands with Debian's espeak-ng (real synthesised speech, made at
# test time).  Install it when it is missing and we may (root with apt-get); otherwise say how.
set -euo pipefail
if command -v espeak-ng >/dev/null; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  apt-get install -y -qq espeak-ng >/dev/null 2>&1 || {
    apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq espeak-ng >/dev/null
  }
else
  echo "ensure_espeak: install espeak-ng (sudo apt-get install espeak-ng) for the voice tests" >&2
  exit 1
fi
