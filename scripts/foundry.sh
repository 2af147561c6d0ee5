# Sourced by scripts and tests that run Foundry's tools: defines `cast` and `anvil` as the
# native binaries. The npm wrapper in node_modules/.bin exits 0 even when the call fails and
# does not pass SIGKILL on, so a script that relies on cast's exit status must not use it.
foundry_native() { # foundry_native NAME -> path of the native binary, or fails
  local name=$1 root arch
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  case "$(uname -m)" in aarch64 | arm64) arch=linux-arm64 ;; *) arch=linux-amd64 ;; esac
  local native="$root/node_modules/@foundry-rs/$name-$arch/bin/$name"
  if [[ -x "$native" ]]; then
    echo "$native"
    return 0
  fi
  # A Foundry installed outside npm (foundryup) is native; a Node script is the wrapper.
  local found
  found="$(command -v "$name" 2>/dev/null)" || true
  if [[ -n "$found" ]] && ! head -c 64 "$found" | grep -q node; then
    echo "$found"
    return 0
  fi
  echo "foundry.sh: no native $name (run scripts/setup.sh, or install Foundry)" >&2
  return 1
}
FOUNDRY_CAST="$(foundry_native cast)" || return 1 2>/dev/null || exit 1
FOUNDRY_ANVIL="$(foundry_native anvil)" || return 1 2>/dev/null || exit 1
cast() { "$FOUNDRY_CAST" "$@"; }
anvil() { "$FOUNDRY_ANVIL" "$@"; }
