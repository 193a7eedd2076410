# The centra binary, built with buildGoModule from this repository.
#
# vendorHash is the NAR hash (SRI) of `go mod vendor`'s output, so it changes
# whenever go.mod or go.sum changes. To update it, either
#   - with a Nix store: set `vendorHash = lib.fakeHash;`, run
#     `nix build .#centra` and copy the hash after "got:" from the error; or
#   - offline, without a store (Debian's nix-bin is enough):
#       go mod vendor -o /tmp/centra-vendor
#       nix --extra-experimental-features nix-command --store dummy:// \
#         hash path /tmp/centra-vendor
#     (nixos-module/tests/check.sh prints this value and fails when it
#     differs from vendorHash below).
# The current value was computed the second way with Go 1.26.
{ lib
, buildGoModule
  # go.mod needs Go >= 1.26; use it where nixpkgs still defaults to an
  # older Go. callPackage passes it only if pkgs has it.
, buildGo126Module ? buildGoModule
, version ? "0.1.0-dev"
}:

buildGo126Module {
  pname = "centra";
  inherit version;

  # The Go sources only: editing the Nix files, bin/ or CI scripts does not
  # rebuild the package.
  src = lib.cleanSourceWith {
    name = "centra-source";
    src = lib.cleanSource ../.;
    filter = path: _type:
      !(builtins.elem (baseNameOf path) [ "bin" "centra-data" "nixos-module" "flake.nix" "flake.lock" ".ci" ]
        && dirOf (toString path) == toString ../.);
  };

  vendorHash = "sha256-cgLmOqTLccFkn9lBK40Du+XV3EMFF6r75OW+qLTrGX8=";

  subPackages = [ "." ];
  ldflags = [ "-s" "-w" "-X github.com/centra-cloud/centra/internal/cli.Version=${version}" ];

  # The unit, integration and e2e tests start raft clusters and real
  # processes on local ports; CI runs them (`make test`), not the sandbox.
  doCheck = false;

  # The runbooks' command names: the binary dispatches on argv[0].
  postInstall = ''
    for name in chainfire-server chainfire-client flaredb-server flaredb-client rocksdb_ldb; do
      ln -s centra "$out/bin/$name"
    done
  '';

  meta = {
    description = "Chainfire (etcd-compatible replicated KV), PD and FlareDB in one Go binary";
    homepage = "https://github.com/centra-cloud/centra";
    license = lib.licenses.asl20;
    mainProgram = "centra";
    platforms = lib.platforms.linux ++ lib.platforms.darwin;
  };
}
