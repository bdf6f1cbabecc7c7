#!/usr/bin/env bash
# Installs what the project needs on a Debian machine, and nothing that is already there.
# Idempotent: a second run installs nothing. Prints what it did.
set -euo pipefail

# Debian packages the builds, tests and quickstart use:
#   mariadb-server, mariadb-client  source database for the binlog (tests run it as a local process)
#   zookeeper, libslf4j-java        coordination for HA (run with java directly by the test harness)
#   default-jre-headless            the JVM ZooKeeper runs on
#   redis-server                    target of the cache-invalidation sink
#   python3-venv                    venvs for compatibility tests with third-party clients
#   openssl                         test certificates for the TLS tests (MySQL, the Canal port)
#   mydumper                        baseline of the snapshot benches (mydumper, myloader)
#   rabbitmq-server                 broker of the MQ mode tests (run as a local process by the harness)
PACKAGES=(mariadb-server mariadb-client zookeeper libslf4j-java default-jre-headless redis-server python3-venv openssl mydumper rabbitmq-server)
# The otter-manager console's browser tests (otter-manager/tests/browser.rs) drive these through WebDriver.
PACKAGES+=(chromium chromium-driver)

if [ ! -f /etc/debian_version ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "setup.sh: this is not a Debian machine (no /etc/debian_version or apt-get)." >&2
  echo "Install these packages (or your system's equivalents) by hand: ${PACKAGES[*]}" >&2
  echo "and a Rust toolchain (cargo, rustc >= 1.80)." >&2
  exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup.sh: all packages present (${PACKAGES[*]})"
else
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
      echo "setup.sh: need root (or sudo) to install: ${missing[*]}" >&2; exit 1
    fi
  fi
  echo "setup.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # Package scripts try to start services; there is no init system here and we run our own processes.
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/cdc-setup-apt.log 2>&1 || {
    echo "setup.sh: apt-get install failed; log:" >&2; tail -n 30 /tmp/cdc-setup-apt.log >&2; exit 1; }
  echo "setup.sh: installed ${missing[*]}"
fi

# The package may have started a system-wide server; tests run their own on free ports, so leave it.
if ! command -v cargo >/dev/null 2>&1; then
  echo "setup.sh: cargo not found: install a Rust toolchain (rustup) first" >&2
  exit 1
fi

# Kafka-protocol broker of the Kafka MQ tests (Debian has none): tansu from crates.io, with its
# SQLite storage engine (libsql), run as a local process by the harness (tests/src/kafka.rs).
# Built in its own target directory, removed afterwards. The full release profile took 57 minutes
# on two cores shared with other builds; the tests need a working broker, not a fast one, so it is
# built at opt-level 1 without LTO or debug info, which cuts most of the compile time.
TANSU_VERSION=0.6.0
if command -v tansu >/dev/null 2>&1 || [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/tansu" ]; then
  echo "setup.sh: tansu present"
else
  echo "setup.sh: installing tansu $TANSU_VERSION (cargo install, several minutes)"
  tansu_build=$(mktemp -d /tmp/tansu-build.XXXXXX)
  CARGO_TARGET_DIR="$tansu_build" CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_LTO=off \
    CARGO_PROFILE_RELEASE_CODEGEN_UNITS=256 CARGO_PROFILE_RELEASE_DEBUG=0 \
    cargo install --locked tansu --version "$TANSU_VERSION" \
    --features libsql >/tmp/cdc-setup-tansu.log 2>&1 || {
    echo "setup.sh: cargo install tansu failed; log:" >&2; tail -n 30 /tmp/cdc-setup-tansu.log >&2
    rm -rf "$tansu_build"; exit 1; }
  rm -rf "$tansu_build"
  echo "setup.sh: installed tansu $TANSU_VERSION"
fi
