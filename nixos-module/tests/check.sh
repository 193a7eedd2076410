#!/usr/bin/env bash
# Offline CI check of the NixOS module, with Debian's nix-bin and no nixpkgs:
#   1. `nix-instantiate --parse` on every .nix file of the repository;
#   2. the module (../default.nix) evaluated with a stub lib (stub.nix) for
#      every case of cases.nix. Valid cases (role control_plane, store and
#      both, README's example, the VM test's nodes) must pass the module's
#      assertions and give a unit with Type=notify, ExecStart
#      `centra serve --config <generated toml>`, Restart=on-failure, the
#      centra user, a writable data dir, LimitNOFILE and the hardening keys.
#      Invalid cases must fail with the expected assertion or type error;
#   3. the TOML of every valid case passes `centra config check` (the file
#      the service reads, TLS paths pointed at dummy certificates, and the
#      TLS-less copy the Nix build checks) and centra reads the case's
#      node.role from it; a case with bad settings must be rejected;
#   4. flake.nix's outputs evaluate with stub inputs;
#   5. package.nix's vendorHash matches go.mod/go.sum (needs go).
# Nix runs with --store dummy:// and a scratch HOME, so it writes nothing to
# /nix. nix-bin and jq are installed with apt when missing.
#
# Usage: nixos-module/tests/check.sh /path/to/centra
set -euo pipefail

die() { echo "check.sh: $*" >&2; exit 2; }
[ $# -eq 1 ] || die "usage: $0 /path/to/centra"
[ -x "$1" ] || die "$1 is not an executable centra binary"
centra=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

missing=()
command -v nix-instantiate >/dev/null || missing+=(nix-bin)
command -v jq >/dev/null || missing+=(jq)
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]} with apt"
  apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export HOME=$tmp/home XDG_CACHE_HOME=$tmp/cache NIX_PATH=
mkdir -p "$HOME"
nixopts=(--store dummy:// --option build-users-group '')
nixi() { nix-instantiate "${nixopts[@]}" "$@"; }

checks=0 failures=0
ok() { checks=$((checks + 1)); echo "  ok   $*"; }
bad() { checks=$((checks + 1)); failures=$((failures + 1)); echo "  FAIL $*"; }
# expect DESCRIPTION JSONFILE JQFILTER [jq args...]: the filter must be true.
expect() {
  local what=$1 file=$2 filter=$3
  shift 3
  if jq -e "$@" "$filter" "$file" >/dev/null 2>&1; then ok "$what"; else bad "$what"; fi
}

echo "== nix-instantiate --parse on every .nix file ($(nix-instantiate --version))"
mapfile -t nixfiles < <(cd "$repo" && find . \( -name .git -o -name vendor -o -name node_modules \) -prune -o -name '*.nix' -print | sed 's#^\./##' | sort)
[ ${#nixfiles[@]} -gt 0 ] || bad "no .nix files found under $repo"
for f in "${nixfiles[@]}"; do
  if err=$(nixi --parse "$repo/$f" 2>&1 >/dev/null); then ok "parse $f"; else bad "parse $f: $err"; fi
done

# Dummy TLS files for the config check (it only checks that they exist).
"$centra" certs init --dir "$tmp/certs" --node node=127.0.0.1 >/dev/null
# config_check NAME TOMLFILE: runs `centra config check` on the file, with
# TLS paths pointed at the dummy certificates; output in $tmp/NAME.out/.err.
config_check() {
  sed -E \
    -e "s#^cert_file = \".+\"#cert_file = \"$tmp/certs/node.crt\"#" \
    -e "s#^key_file = \".+\"#key_file = \"$tmp/certs/node.key\"#" \
    -e "s#^ca_file = \".+\"#ca_file = \"$tmp/certs/ca.crt\"#" \
    "$2" >"$tmp/$1.local.toml"
  env -i "$centra" config check --config "$tmp/$1.local.toml" >"$tmp/$1.out" 2>"$tmp/$1.err"
}

# Settings every valid unit must have (compared with jq's ==).
hardening='{
  "NoNewPrivileges": true, "ProtectSystem": "strict", "ProtectHome": true,
  "PrivateTmp": true, "PrivateDevices": true, "ProtectKernelTunables": true,
  "ProtectKernelModules": true, "ProtectKernelLogs": true,
  "ProtectControlGroups": true, "ProtectClock": true, "ProtectHostname": true,
  "RestrictNamespaces": true, "RestrictRealtime": true, "RestrictSUIDSGID": true,
  "LockPersonality": true, "MemoryDenyWriteExecute": true,
  "SystemCallArchitectures": "native",
  "SystemCallFilter": ["@system-service", "~@privileged"],
  "RestrictAddressFamilies": ["AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK"],
  "CapabilityBoundingSet": "", "AmbientCapabilities": "", "UMask": "0077"
}'

nixi --eval --strict --json -E "builtins.mapAttrs (_: c: removeAttrs c [ \"config\" ]) (import $here/cases.nix)" >"$tmp/cases.json"
# meta FILTER: jq FILTER applied to the current case's entry in cases.nix.
meta() { jq -c --arg c "$case" ".[\$c]$1" "$tmp/cases.json"; }
for case in $(jq -r 'keys[]' "$tmp/cases.json"); do
  j=$tmp/$case.json
  if nixi --eval --strict --json "$here/eval.nix" --argstr case "$case" >"$j" 2>"$tmp/$case.eval.err"; then evaluated=1; else evaluated=0; fi

  if [ "$(meta '| has("error")')" = true ]; then
    want=$(meta '.error' | jq -r .)
    echo "== case $case: evaluation must fail with: $want"
    if [ $evaluated = 0 ] && grep -qF -- "$want" "$tmp/$case.eval.err"; then ok "evaluation fails: $want"
    else bad "evaluation did not fail with '$want': $(tail -c 400 "$tmp/$case.eval.err")"; fi
    continue
  fi
  if [ $evaluated = 0 ]; then
    echo "== case $case"
    bad "evaluation failed: $(tail -c 1500 "$tmp/$case.eval.err")"
    continue
  fi
  if [ "$(meta '| has("assertion")')" = true ]; then
    want=$(meta '.assertion' | jq -r .)
    echo "== case $case: an assertion must fail with: $want"
    expect "assertion fails: $want" "$j" '.failedAssertions | any(contains($m))' --arg m "$want"
    continue
  fi

  echo "== case $case: valid"
  expect "no failed assertions" "$j" '.failedAssertions == []'
  if [ "$(meta '| has("warning")')" = true ]; then
    expect "warning: $(meta '.warning' | jq -r .)" "$j" '.warnings | any(contains($m))' --arg m "$(meta '.warning' | jq -r .)"
  else
    expect "no warnings" "$j" '.warnings == []'
  fi
  if [ "$(jq .enabled "$j")" = false ]; then
    ok "enable = false defines no unit"
    continue
  fi

  expect "Type=notify, NotifyAccess=main" "$j" '.unit.serviceConfig | .Type == "notify" and .NotifyAccess == "main"'
  expect "ExecStart = <package>/bin/centra serve --config <generated toml>" "$j" \
    '.configFile as $f | .unit.serviceConfig.ExecStart | startswith("/nix/store/") and contains("/bin/centra serve --config " + $f)'
  expect "Restart=on-failure" "$j" '.unit.serviceConfig.Restart == "on-failure"'
  expect "User=centra Group=centra, a system user" "$j" \
    '.unit.serviceConfig.User == "centra" and .unit.serviceConfig.Group == "centra" and .user.isSystemUser == true and .user.group == "centra" and (.groups | index("centra") != null)'
  expect "unit $(jq -r .unit.name "$j").service (alias centra.service), log views $(jq -c '.logViews | keys' "$j") (role $(jq -r .role "$j"))" "$j" \
    '.unit.aliases == ["centra.service"] and
     .unit.name == {control_plane: "chainfire", store: "flaredb", both: "chainfire"}[.role] and
     (.logViews | keys) == {control_plane: ["placement-driver"], store: [], both: ["flaredb", "placement-driver"]}[.role] and
     (.unit.partOf | map(rtrimstr(".service")) | sort) == (.logViews | keys) and
     ([.logViews[] | (.bindsTo == [$u]) and (.wantedBy == [$u]) and (.ExecStart | contains("--unit=" + $u) and contains("--follow"))] | all)' --arg u "$(jq -r .unit.name "$j").service"
  expect "LimitNOFILE >= 65536" "$j" '.unit.serviceConfig.LimitNOFILE >= 65536'
  expect "wantedBy multi-user.target, after network-online.target" "$j" \
    '.unit | (.wantedBy | index("multi-user.target") != null) and (.after | index("network-online.target") != null) and (.wants | index("network-online.target") != null)'
  expect "data dir $(jq -r .dataDir "$j") writable (StateDirectory or tmpfiles, ReadWritePaths)" "$j" \
    '.dataDir as $d | .unit.serviceConfig as $s | ($s.ReadWritePaths | index($d) != null) and $s.StateDirectoryMode == "0700" and
     (if ($d | startswith("/var/lib/")) then $s.StateDirectory == ($d | ltrimstr("/var/lib/")) and .tmpfiles == []
      else ($s | has("StateDirectory") | not) and (.tmpfiles | any(contains("\u0027" + $d + "\u0027 0700 centra centra"))) end)'
  diff=$(jq -r --argjson want "$hardening" '.unit.serviceConfig as $s | $want | to_entries[] | select($s[.key] != .value) | "\(.key): want \(.value | tojson), got \($s[.key] | tojson)"' "$j")
  if [ -z "$diff" ]; then ok "hardening: $(jq -r 'keys | join(" ")' <<<"$hardening")"; else bad "hardening: $diff"; fi
  expect "centra in environment.systemPackages" "$j" '.systemPackages | any(startswith("centra-"))'
  if [ "$(meta '| has("firewallPorts")')" = true ]; then
    expect "openFirewall ports $(meta '.firewallPorts')" "$j" '.firewallPorts == $p' --argjson p "$(meta '.firewallPorts')"
  fi
  if [ "$(meta '| has("execStartContains")')" = true ]; then
    expect "ExecStart contains $(meta '.execStartContains' | jq -r .)" "$j" '.unit.serviceConfig.ExecStart | contains($m)' --arg m "$(meta '.execStartContains' | jq -r .)"
  fi
  creds=$(meta '.credentials // 0')
  expect "LoadCredential: $creds TLS files, pointed at by [network.tls]" "$j" \
    '(.unit.serviceConfig.LoadCredential // []) as $l | ($l | length) == $n and ($n == 0 or (.toml | contains("/run/credentials/" + $u + "/tls-key")))' --argjson n "$creds" --arg u "$(jq -r .unit.name "$j").service"

  jq -r .toml "$j" >"$tmp/$case.toml"
  if [ "$(meta '| has("configCheckError")')" = true ]; then
    want=$(meta '.configCheckError' | jq -r .)
    if ! config_check "$case" "$tmp/$case.toml" && grep -qF -- "$want" "$tmp/$case.err"; then ok "centra config check rejects the TOML, naming $want"
    else bad "centra config check did not reject the TOML with '$want': $(cat "$tmp/$case.err")"; fi
    continue
  fi
  if config_check "$case" "$tmp/$case.toml"; then ok "centra config check accepts the generated TOML"
  else bad "centra config check rejects the generated TOML: $(cat "$tmp/$case.err")"$'\n'"$(cat "$tmp/$case.toml")"; fi
  role=$(awk '/^\[/ { section = $0 } section == "[node]" && /^role = / { print $3; exit }' "$tmp/$case.out" | tr -d '"')
  want=$(meta '.role' | jq -r .)
  if [ "$role" = "$want" ]; then ok "centra reads node.role = $role"; else bad "centra reads node.role = '$role', want '$want'"; fi
  if [ "$(jq .checkedAtBuild "$j")" = true ]; then
    expect "the build runs centra config check (checkConfig)" "$j" \
      '(.buildCheckScript | contains("centra config check --config")) and (.buildCheckInputs == .systemPackages)'
    jq -r .buildCheckToml "$j" >"$tmp/$case.build.toml"
    # As in the Nix build: no TLS files exist there, and nothing is rewritten.
    if env -i "$centra" config check --config "$tmp/$case.build.toml" >/dev/null 2>"$tmp/$case.build.err"; then ok "the build-time check's TOML passes centra config check"
    else bad "the build-time check's TOML fails: $(cat "$tmp/$case.build.err")"; fi
  fi
done

echo "== flake.nix outputs (stub nixpkgs)"
if nixi --eval --strict --json "$here/flake-eval.nix" >"$tmp/flake.json" 2>"$tmp/flake.err"; then
  f=$tmp/flake.json
  expect "inputs: nixpkgs" "$f" '.inputs == ["nixpkgs"]'
  expect "packages.<system>.centra for x86_64-linux and aarch64-linux" "$f" '.packages["x86_64-linux"] == ["centra", "default"] and .packages["aarch64-linux"] == ["centra", "default"]'
  expect "nixosModules.centra imports nixos-module and uses the flake's package" "$f" \
    '(.nixosModules | index("centra") != null) and (.moduleImports[0] | endswith("/nixos-module")) and .modulePackage == .packageName'
  expect "overlays.default provides centra" "$f" '.overlay == .packageName'
  expect "checks.<system>.vm is a three-node runNixOSTest" "$f" '.checks["x86_64-linux"] == ["centra", "vm"] and .vmTest.nodes == ["node1", "node2", "node3"]'
  expect "package source: Go code in, nixos-module/ flake.nix bin/ out" "$f" '.source == {bin: false, config: true, flake: false, internal: true, nixosModule: false}'
  if command -v python3 >/dev/null; then
    if jq -r .vmTest.testScript "$f" | python3 -c 'import ast, sys; ast.parse(sys.stdin.read())' 2>"$tmp/py.err"; then ok "the VM test's testScript is valid Python"
    else bad "the VM test's testScript: $(cat "$tmp/py.err")"; fi
  fi
else
  bad "flake outputs do not evaluate: $(tail -c 1500 "$tmp/flake.err")"
fi

echo "== package.nix vendorHash"
if command -v go >/dev/null; then
  want=$(jq -r .vendorHash "$tmp/flake.json" 2>/dev/null || true)
  if (cd "$repo" && go mod vendor -o "$tmp/vendor") 2>"$tmp/vendor.err"; then
    got=$(nix "${nixopts[@]}" --extra-experimental-features nix-command hash path "$tmp/vendor")
    if [ "$got" = "$want" ]; then ok "vendorHash $want matches go.mod/go.sum"
    else bad "vendorHash is $want, but go.mod/go.sum vendor to $got: set vendorHash = \"$got\"; in nixos-module/package.nix"; fi
  else
    bad "go mod vendor failed: $(cat "$tmp/vendor.err")"
  fi
else
  echo "  skip vendorHash: go is not on PATH"
fi

echo "== $checks checks, $failures failed"
[ "$failures" -eq 0 ]
