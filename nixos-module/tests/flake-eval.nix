# Evaluates ../../flake.nix's outputs with stub inputs (./stub.nix standing
# in for nixpkgs) and returns their shape for check.sh:
#   nix-instantiate --eval --strict --json nixos-module/tests/flake-eval.nix
let
  stub = import ./stub.nix;
  flake = import ../../flake.nix;
  root = ../..;
  nixpkgs = {
    inherit (stub) lib;
    legacyPackages = stub.lib.genAttrs [ "x86_64-linux" "aarch64-linux" "x86_64-darwin" "aarch64-darwin" ]
      (system: stub.pkgs // { stdenv.hostPlatform.system = system; });
  };
  self = flake.outputs { inherit self nixpkgs; } // { outPath = toString root; shortRev = "0000000"; };
  package = self.packages.x86_64-linux.centra;
  vm = self.checks.x86_64-linux.vm;
  # The flake's module wrapper, applied like the module system would.
  wrapper = self.nixosModules.centra { pkgs = nixpkgs.legacyPackages.x86_64-linux; inherit (stub) lib; };
  keeps = path: package.src.filter (toString path) "directory";
in
{
  inherit (flake) description;
  inputs = builtins.attrNames flake.inputs;
  packages = builtins.mapAttrs (_: builtins.attrNames) self.packages;
  packageName = package.name;
  vendorHash = package.vendorHash;
  version = package.version;
  checks = builtins.mapAttrs (_: builtins.attrNames) self.checks;
  nixosModules = builtins.attrNames self.nixosModules;
  moduleImports = map toString wrapper.imports;
  modulePackage = wrapper.services.centra.package.content.name;
  overlay = (self.overlays.default nixpkgs.legacyPackages.x86_64-linux { }).centra.name;
  vmTest = {
    inherit (vm) name;
    nodes = builtins.attrNames vm.nodes;
    testScript = vm.testScript;
  };
  # package.nix's source filter: Go sources in, Nix files and bin/ out.
  source = {
    config = keeps (root + "/config");
    internal = keeps (root + "/internal");
    nixosModule = keeps (root + "/nixos-module");
    bin = keeps (root + "/bin");
    flake = keeps (root + "/flake.nix");
  };
}
