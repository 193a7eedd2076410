{
  description = "centra: Chainfire (etcd-compatible replicated KV), PD and FlareDB in one Go binary";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;
      linux = [ "x86_64-linux" "aarch64-linux" ];
      systems = linux ++ [ "x86_64-darwin" "aarch64-darwin" ];
      forSystems = systems: f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
      # The binary reports the commit it was built from.
      version = "0.1.0-${self.shortRev or self.dirtyShortRev or "dev"}";
    in
    {
      # nix build .#centra
      packages = forSystems systems (pkgs: rec {
        centra = pkgs.callPackage ./nixos-module/package.nix { inherit version; };
        default = centra;
      });

      overlays.default = final: _prev: {
        centra = final.callPackage ./nixos-module/package.nix { inherit version; };
      };

      # imports = [ centra.nixosModules.centra ]; services.centra = { ... };
      # (README.md, "NixOS"; options in nixos-module/default.nix)
      nixosModules = rec {
        centra = { pkgs, lib, ... }: {
          imports = [ ./nixos-module ];
          services.centra.package = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.centra;
        };
        default = centra;
      };

      # nix flake check: the package builds and three VMs form a cluster
      # (needs KVM).
      checks = forSystems linux (pkgs: {
        centra = self.packages.${pkgs.stdenv.hostPlatform.system}.centra;
        vm = import ./nixos-module/tests/vm-test.nix {
          inherit pkgs;
          module = self.nixosModules.centra;
        };
      });
    };
}
