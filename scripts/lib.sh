# Shared by the scripts: running as root, and installing Debian packages, one way each.
# Source it after defining say and die (each script prints with its own prefix).

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else die "need root to run: $*"
    fi
}

# apt_install [APT OPTION...] PACKAGE...: from Debian's packages, reading the package lists once per script run.
# Another apt run on the machine holds the dpkg lock: wait for it rather than fail.
APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "$* missing and this is not a Debian-based machine; install it by hand"
    if [ "$APT_UPDATED" -eq 0 ]; then
        say "apt-get update"
        as_root apt-get -o DPkg::Lock::Timeout=600 update -qq
        APT_UPDATED=1
    fi
    say "installing $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "$@" >/dev/null
}
