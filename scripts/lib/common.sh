# Shared by the scripts: find the repository, install what is missing.
# Sourced, not run.

# Resolved once, when sourced: a relative BASH_SOURCE would not survive a `cd`.
PASSNUM_REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
repo_root() { echo "$PASSNUM_REPO_ROOT"; }

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Installs Debian packages that are missing: with apt-get when root, otherwise
# prints the one command to run.
ensure_debian_packages() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    die "missing Debian packages; run: sudo apt-get install -y ${missing[*]}"
  fi
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # A fresh machine has no package lists yet; refresh them once per hour at most.
  if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -60 2>/dev/null | head -1)" ]; then
    apt-get update -qq
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# What building and serving needs: a Rust toolchain and PostgreSQL's server binaries.
ensure_run_prerequisites() {
  command -v cargo >/dev/null || die "cargo is missing: install Rust (https://rustup.rs), then run this again"
  ensure_debian_packages postgresql libpq-dev ca-certificates
}

# What the test suite needs on top: real tools the tests call.
ensure_test_prerequisites() {
  ensure_run_prerequisites
  ensure_debian_packages zbar-tools poppler-utils
  # Go's reference code for the transparency log's formats (sumdb/note and
  # sumdb/tlog), built offline in GOPATH mode by tests/api/log.rs.
  ensure_debian_packages golang-go golang-golang-x-mod-dev
  ensure_python_module cryptography python3-cryptography
  ensure_python_module aiosmtpd python3-aiosmtpd
  ensure_browser_test_prerequisites
  local component
  for component in clippy rustfmt; do
    rustup component list --installed 2>/dev/null | grep -q "^$component" || rustup component add "$component"
  done
}

# What the browser tests need: Debian's Chromium, and node with npm (a node
# that brings its own npm, as NodeSource's does, is kept as it is).
ensure_browser_test_prerequisites() {
  ensure_debian_packages chromium
  command -v node >/dev/null || ensure_debian_packages nodejs
  command -v npm >/dev/null || ensure_debian_packages npm
}

# A Python module for the independent verifiers: from PyPI for the python3 on
# PATH, or Debian's package when that python is the system's own.
ensure_python_module() {
  local module=$1 debian_package=$2
  command -v python3 >/dev/null || ensure_debian_packages python3
  python3 -c "import $module" 2>/dev/null && return 0
  say "installing the Python module $module"
  python3 -m pip install --quiet "$module" 2>/dev/null || ensure_debian_packages "$debian_package"
  python3 -c "import $module" || die "python3 cannot import $module"
}

# The Factur-X validators in a virtual environment of their own, installed
# from PyPI at the pinned versions when the environment lacks them (the
# requirements file's digest is kept beside it); prints its python.
ensure_facturx_validators() {
  local venv requirements wanted
  venv="$(target_dir)/facturx-venv"
  requirements="$(repo_root)/tests/independent/facturx-requirements.txt"
  wanted="$(sha256sum "$requirements" | cut -d' ' -f1)"
  if [ "$(cat "$venv/.requirements" 2>/dev/null)" != "$wanted" ]; then
    say "installing the Factur-X validators (factur-x, saxonche, pikepdf)"
    command -v python3 >/dev/null || ensure_debian_packages python3
    python3 -m venv "$venv" 2>/dev/null || { ensure_debian_packages python3-venv; python3 -m venv "$venv"; }
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" >&2
    echo "$wanted" >"$venv/.requirements"
  fi
  echo "$venv/bin/python"
}

# A TCP port free on the loopback now (the kernel picks it).
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# The directory cargo builds into.
target_dir() { echo "${CARGO_TARGET_DIR:-$(repo_root)/target}"; }
