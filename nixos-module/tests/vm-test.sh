#!/usr/bin/env bash
# Runs the three-VM NixOS test (vm-test.nix: a cluster forms, put on one node,
# get on the others, a node restarts) where it can run. It needs
#   - nix-build on PATH and a working Nix store (/nix/store),
#   - a readable and writable /dev/kvm,
#   - nixpkgs: $CENTRA_NIXPKGS (a checkout or unpacked tarball) or <nixpkgs>
#     in NIX_PATH,
# and network access for the Go modules (package.nix's vendorHash) unless
# they are cached. Elsewhere it prints "SKIP: <reason>" and exits 0. When
# nixpkgs is there but KVM is not, it still evaluates the test (the module
# through nixpkgs' real module system, for three nodes) before skipping the
# run. With flakes: nix build .#checks.x86_64-linux.vm
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
skip() { echo "SKIP: $*"; exit 0; }

command -v nix-build >/dev/null || skip "nix-build is not on PATH (install Nix to run the NixOS VM test)"

nixpkgs=${CENTRA_NIXPKGS:-}
if [ -z "$nixpkgs" ]; then
  # --store dummy://: finding <nixpkgs> must not create /nix.
  nixpkgs=$(HOME=${HOME:-/tmp} nix-instantiate --store dummy:// --option build-users-group '' \
    --eval --expr 'toString <nixpkgs>' 2>/dev/null | tr -d '"') || nixpkgs=
fi
[ -n "$nixpkgs" ] || skip "no nixpkgs: set CENTRA_NIXPKGS=/path/to/nixpkgs or put nixpkgs=... in NIX_PATH"
[ -d "$nixpkgs/nixos" ] || skip "$nixpkgs is not a nixpkgs checkout (no nixos/ directory)"
[ -d /nix/store ] || skip "no Nix store at /nix/store (Nix is installed but cannot build here)"

echo "== evaluating the VM test with $nixpkgs"
drv=$(nix-instantiate "$here/vm-test.nix" -I nixpkgs="$nixpkgs" --arg pkgs "import $nixpkgs { }")
echo "   $drv"

if [ ! -e /dev/kvm ]; then skip "/dev/kvm does not exist (no hardware virtualisation); the test evaluated but did not run"; fi
if [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then skip "/dev/kvm is not readable and writable by $(id -un); the test evaluated but did not run"; fi

echo "== running the VM test (three VMs; takes a few minutes)"
nix-build "$drv" --no-out-link -L
