#!/usr/bin/env bash
# Make sure chromium and chromedriver are installed (the console's browser tests drive
# them): apt-get them when missing (as root or with sudo), otherwise say what to install.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
if command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else SUDO="none"; fi
  if [ "$SUDO" != "none" ]; then
    echo "llmbus: installing chromium and chromium-driver with apt-get ..."
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
    exit 0
  fi
fi
echo "llmbus: chromium and chromedriver are not installed. Install them (Debian/Ubuntu: 'sudo apt-get install chromium chromium-driver') and run again." >&2
exit 1
