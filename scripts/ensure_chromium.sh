#!/usr/bin/env bash
# The web console's browser tests (tests/test_console.py) drive Debian's headless Chromium with
# its matching chromedriver through Selenium; nothing downloads a browser.  Install both when they
# are missing and we may (root with apt-get); otherwise say how.  fonts-wqy-microhei (3 MB) lets
# the page (and docs/console.png) show Chinese commands.
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  apt-get install -y -qq chromium chromium-driver fonts-wqy-microhei >/dev/null 2>&1 || {
    apt-get update -qq >/dev/null 2>&1 &&
      apt-get install -y -qq chromium chromium-driver fonts-wqy-microhei >/dev/null
  }
else
  echo "ensure_chromium: install chromium and chromium-driver (sudo apt-get install chromium" \
       "chromium-driver) for the console's browser tests" >&2
  exit 1
fi
