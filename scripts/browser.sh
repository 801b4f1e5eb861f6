#!/usr/bin/env bash
# Make the headless browser of the browser tests ready: Chromium and its WebDriver from Debian's
# packages (/usr/bin/chromium, /usr/bin/chromedriver). Safe to run again and again: a machine
# where both are installed only gets a check. Installing needs root (or sudo).
set -euo pipefail

say() { printf '\033[1m[browser]\033[0m %s\n' "$*"; }
die() { printf '\033[1;31m[browser] %s\033[0m\n' "$*" >&2; exit 1; }

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    exit 0
fi
apt_install --no-install-recommends chromium chromium-driver
[ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] || die "chromium or chromedriver still missing after install"
say "$(/usr/bin/chromium --version 2>/dev/null || echo chromium), $(/usr/bin/chromedriver --version 2>/dev/null | head -n 1)"
