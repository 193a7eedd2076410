# Evaluates ../default.nix with the stub lib (./stub.nix) for one case of
# ./cases.nix and returns, as JSON-able data, what check.sh asserts:
#   nix-instantiate --eval --strict --json nixos-module/tests/eval.nix --argstr case store
{ case }:
let
  stub = import ./stub.nix;
  c = (import ./cases.nix).${case};
  r = stub.evalModule { module = ../default.nix; inherit (c) config; };
  cfg = r.config.services.centra;
  out = r.output;
  # The unit is named after the node's main component (journalctl -u).
  unitName = if cfg.role == "store" then "flaredb" else "chainfire";
  svc = out.systemd.services.${unitName};
  logViews = builtins.removeAttrs out.systemd.services [ unitName ];
  configFile = cfg.configFile;
  # configFile is the checked copy (a runCommand) unless checkConfig = false.
  generated = configFile.generated or configFile;
in
{
  inherit (r) failedAssertions warnings;
  enabled = out ? systemd;
}
// (if r.failedAssertions != [ ] || !(out ? systemd) then { } else {
  toml = generated.text;
  configFile = "${configFile}";
  checkedAtBuild = configFile ? checkInput;
  buildCheckScript = configFile.buildCommand or "";
  buildCheckToml = configFile.checkInput.text or "";
  buildCheckInputs = map (p: p.name) (configFile.nativeBuildInputs or [ ]);
  unit = {
    inherit (svc) description aliases partOf wantedBy wants after serviceConfig;
    name = unitName;
  };
  logViews = builtins.mapAttrs (_: v: { inherit (v) bindsTo wantedBy; inherit (v.serviceConfig) ExecStart; }) logViews;
  inherit (cfg) role dataDir;
  user = out.users.users.centra;
  groups = builtins.attrNames out.users.groups;
  tmpfiles = out.systemd.tmpfiles.rules or [ ];
  firewallPorts = out.networking.firewall.allowedTCPPorts or [ ];
  systemPackages = map (p: p.name) out.environment.systemPackages;
})
