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
  svc = out.systemd.services.centra;
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
    inherit (svc) description aliases wantedBy wants after serviceConfig;
  };
  inherit (cfg) role dataDir;
  user = out.users.users.centra;
  groups = builtins.attrNames out.users.groups;
  tmpfiles = out.systemd.tmpfiles.rules or [ ];
  firewallPorts = out.networking.firewall.allowedTCPPorts or [ ];
  systemPackages = map (p: p.name) out.environment.systemPackages;
})
