# NixOS VM test: three centra nodes (services.centra, role control_plane)
# bootstrap one cluster; a key written on one node is read on the others,
# also after a node restarts. Needs KVM; run it with ./vm-test.sh or
# `nix build .#checks.x86_64-linux.vm`.
{ pkgs ? import <nixpkgs> { }
, module ? ../default.nix
, package ? null # null: the module's default (../package.nix)
}:

let
  inherit (pkgs) lib;
  names = [ "node1" "node2" "node3" ];
  idOf = name: lib.toInt (lib.removePrefix "node" name);
in
pkgs.testers.runNixOSTest {
  name = "centra-cluster";

  nodes = lib.genAttrs names (name: { config, nodes, ... }: {
    imports = [ module ];
    services.centra = {
      enable = true;
      package = lib.mkIf (package != null) package;
      openFirewall = true;
      # As README's NixOS example: the runbook's chainfire.toml as Nix.
      settings = {
        node = { id = idOf name; inherit name; };
        cluster = {
          id = 1;
          bootstrap = true;
          initial_members = map (n: "${toString (idOf n)}=${nodes.${n}.networking.primaryIPAddress}:2380") names;
        };
        network = {
          api_addr = "0.0.0.0:2379";
          raft_addr = "${config.networking.primaryIPAddress}:2380";
          gossip_addr = "0.0.0.0:2381";
        };
        raft.role = "voter";
      };
    };
    environment.systemPackages = [ pkgs.curl ];
    virtualisation.memorySize = 1024;
  });

  testScript = ''
    nodes = [node1, node2, node3]
    start_all()

    with subtest("the three nodes form a cluster"):
        # Type=notify: the unit is active only after centra sent READY=1,
        # which needs a quorum.
        for n in nodes:
            n.wait_for_unit("chainfire.service")
        for n in nodes:
            n.wait_until_succeeds("curl -sf http://127.0.0.1:2379/readyz", timeout=120)

    with subtest("a key put on node1 is read on node2 and node3"):
        node1.succeed("centra kv put greeting hello")
        for n in [node2, node3]:
            got = n.succeed("centra kv get greeting").strip()
            assert got == "hello", f"{n.name} read {got!r}, want 'hello'"
        # and across the network, through node1's API
        got = node3.succeed("centra kv get greeting --endpoint node1:2379").strip()
        assert got == "hello", f"remote read {got!r}, want 'hello'"

    with subtest("the unit runs hardened as the centra user"):
        props = node1.succeed(
            "systemctl show chainfire.service -p Type -p User -p NoNewPrivileges -p ProtectSystem -p PrivateDevices"
        )
        for want in ["Type=notify", "User=centra", "NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateDevices=yes"]:
            assert want in props, f"{want} missing in:\n{props}"
        node1.succeed("test \"$(stat -c %U:%a /var/lib/centra)\" = centra:700")

    with subtest("the runbooks' journalctl -u names show their component's lines"):
        # centra runs in chainfire.service (alias centra.service); its text
        # lines (JOURNAL_STREAM is set) carry the runbook's components.
        node1.wait_until_succeeds("journalctl -u chainfire --no-pager | grep -q 'INFO chainfire_raft: Leader elected, term='", timeout=60)
        node1.wait_for_unit("placement-driver.service")
        node1.succeed("journalctl -u centra --no-pager | grep -q 'Leader elected'")

    with subtest("a restarted node rejoins with its data"):
        # the runbooks' spelling
        node2.succeed("systemctl restart chainfire")
        node2.wait_for_unit("chainfire.service")
        node2.wait_until_succeeds("curl -sf http://127.0.0.1:2379/readyz", timeout=120)
        got = node2.succeed("centra kv get greeting").strip()
        assert got == "hello", f"node2 read {got!r} after restart, want 'hello'"
  '';
}
