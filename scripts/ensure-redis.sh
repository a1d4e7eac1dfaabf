#!/usr/bin/env bash
# Make sure redis-server is installed: apt-get it when missing (as root or with sudo),
# otherwise say what to install.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1 || [ -x /usr/sbin/redis-server ] || [ -x /usr/bin/redis-server ]; then
  exit 0
fi
if command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else SUDO="none"; fi
  if [ "$SUDO" != "none" ]; then
    echo "llmbus: installing redis-server with apt-get ..."
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
    # Debian's package starts a system service; llmbus starts its own on a free port.
    exit 0
  fi
fi
echo "llmbus: redis-server is not installed. Install Redis 6 or newer (Debian/Ubuntu: 'sudo apt-get install redis-server', macOS: 'brew install redis') and run again." >&2
exit 1
