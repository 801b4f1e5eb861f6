#!/usr/bin/env bash
# Make the headless browser of the browser tests ready: Chromium and its WebDriver from Debian's
# packages (/usr/bin/chromium, /usr/bin/chromedriver). Safe to run again and again: a machine
# where both are installed only gets a check. Installing needs root (or sudo).
set -euo pipefail

say() { printf '\033[1m[browser]\033[0m %s\n' "$*"; }
die() { printf '\033[1;31m[browser] %s\033[0m\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else die "need root to run: $*"
    fi
}

if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    exit 0
fi
command -v apt-get >/dev/null 2>&1 || die "chromium and chromium-driver are missing and this is not a Debian-based machine"
# Another apt run on the machine holds the dpkg lock: wait for it rather than fail.
say "apt-get update"
as_root apt-get -o DPkg::Lock::Timeout=600 update -qq
say "installing chromium chromium-driver"
as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    --no-install-recommends chromium chromium-driver >/dev/null
[ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] || die "chromium or chromedriver still missing after install"
say "$(/usr/bin/chromium --version 2>/dev/null || echo chromium), $(/usr/bin/chromedriver --version 2>/dev/null | head -n 1)"
