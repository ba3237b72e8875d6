#!/usr/bin/env bash
# Regenerate requirements/constraints.txt, the lock that scripts/bootstrap.sh installs from.
#
# The procedure (docs/dependencies.md):
#   1. bash scripts/update_constraints.sh          # add what setup.py gained, keep other pins
#      (--upgrade: newest versions of everything; --upgrade-package NAME: of one package)
#   2. rm -rf .venv && bash scripts/test.sh        # the whole suite on exactly those versions
#   3. git add requirements/constraints.txt && git commit   # only when step 2 is green
#
# The lock is universal (uv pip compile --universal): one file with environment markers for
# Python 3.10 to 3.12 (and later), Linux, macOS and Windows, so a Humble user on Python 3.10 and a
# Kilted user on 3.12 both install versions that were resolved together.  uv itself is pinned and
# installed into .cache/uv-venv, away from the project's .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
UV_VERSION="0.13.9"
TOOLS=.cache/uv-venv
if [ ! -x "$TOOLS/bin/uv" ] || [ "$("$TOOLS/bin/uv" --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  python="$(command -v python3.11 || command -v python3.12 || command -v python3)"
  "$python" -m venv "$TOOLS"
  "$TOOLS/bin/python" -m pip install -q "uv==$UV_VERSION"
fi
# --python-version 3.10: the oldest Python the lock serves (Humble's); --universal adds markers
# wherever versions differ between Pythons or platforms.  The header keeps this command line.
"$TOOLS/bin/uv" pip compile setup.py requirements/constraints.in --all-extras --universal \
  --python-version 3.10 --no-annotate --quiet --custom-compile-command "bash scripts/update_constraints.sh" \
  -o requirements/constraints.txt "$@"
echo "update_constraints: wrote requirements/constraints.txt; now run the whole suite from an empty .venv (rm -rf .venv && bash scripts/test.sh) before committing it"
