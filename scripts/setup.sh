#!/usr/bin/env bash
# Installs everything Kaisar needs to build, run and test: Debian packages (apt-get) and
# npm packages (into ./node_modules from package-lock.json). Idempotent: does nothing when
# all is present. Uses sudo only when not root. Changes nothing else on the system.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(
  # toolchain
  build-essential cmake ninja-build ccache clang-16 libclang-rt-16-dev pkg-config git
  # libraries
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev libssl-dev libsecp256k1-dev
  libcrypto++-dev libsqlite3-dev libcli11-dev libspdlog-dev libfmt-dev libtomlplusplus-dev
  libgeoip-dev geoip-database libgtest-dev libgmock-dev libbenchmark-dev libopenblas-dev
  # runtime and test clients
  curl jq procps sqlite3 openssh-client openssl ca-certificates
  # containers (Podman's Docker-compatible API) and the browser for web/extension tests
  podman runc uidmap slirp4netns fuse-overlayfs catatonit chromium
  # the provider agent fences leases in with an nftables table
  nftables
)

# Node.js and npm: Debian's packages unless a Node.js with npm is already installed (for
# example NodeSource's nodejs, which bundles npm and conflicts with Debian's npm package).
if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
  DEBIAN_PACKAGES+=(nodejs npm)
fi

missing=()
for p in "${DEBIAN_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  echo "setup: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# npm packages (anvil, cast, solc) into ./node_modules, exactly as locked.
stamp=node_modules/.kaisar-lock-stamp
if [[ ! -f $stamp ]] || ! cmp -s package-lock.json "$stamp"; then
  echo "setup: installing npm packages from package-lock.json"
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json "$stamp"
fi

# The demo container image is built offline from Debian packages: download them (they are
# unpacked into the image's root filesystem at build time, never installed on this system).
debs=.cache/debs
mapfile -t demo_packages < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' images/demo/packages.txt)
need=()
for p in "${demo_packages[@]}"; do
  compgen -G "$debs/${p}_*.deb" >/dev/null || need+=("$p")
done
if ((${#need[@]})); then
  mkdir -p "$debs"
  echo "setup: downloading Debian packages for the demo image: ${need[*]}"
  download() { (cd "$debs" && apt-get download -qq "${need[@]}" 2>&1 | grep -v 'unsandboxed' || true); }
  download
  for p in "${need[@]}"; do
    if ! compgen -G "$debs/${p}_*.deb" >/dev/null; then
      # No package lists yet on this machine: fetch them once and try again.
      SUDO=""
      if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
      $SUDO apt-get update -qq
      download
      break
    fi
  done
  for p in "${need[@]}"; do
    compgen -G "$debs/${p}_*.deb" >/dev/null || { echo "setup: could not download $p" >&2; exit 1; }
  done
fi
