# The module configurations check.sh evaluates (through ./eval.nix), with
# what each must produce. Per case:
#   config           the NixOS definitions (services.centra.*)
#   role             for a valid case: the node.role the TOML must carry;
#                    `centra config check` must accept the TOML
#   configCheckError for a valid module config whose TOML centra must
#                    reject: a string the error must contain
#   assertion        a module assertion that must fail (message substring)
#   error            an evaluation error (message substring)
#   warning          a warning the module must emit
#   firewallPorts    the TCP ports openFirewall must open ([] when off)
#   execStartContains a string ExecStart must contain
#   credentials      how many LoadCredential entries (TLS files) the unit has
let
  # The scale-out runbook's chainfire.toml, pasted as Nix ([network.tls]
  # left out: tls.* options or a pasted [tls] are covered below).
  runbookChainfire = {
    node = { id = 4; name = "chainfire-node-4"; role = "control_plane"; };
    cluster = { id = 1; bootstrap = false; initial_members = [ ]; };
    network = { api_addr = "0.0.0.0:2379"; raft_addr = "0.0.0.0:2380"; gossip_addr = "0.0.0.0:2381"; };
    storage.data_dir = "/var/lib/chainfire";
    raft.role = "voter";
  };
  # The troubleshooting runbook's tuning keys.
  runbookTuning = {
    storage = {
      write_buffer_size = 134217728;
      block_cache_size = 536870912;
      use_direct_io_for_flush_and_compaction = true;
    };
    raft.tick_interval_ms = 200;
  };
  # The scale-out runbook's flaredb.toml, pasted as Nix.
  runbookFlaredb = {
    store_id = 4;
    addr = "0.0.0.0:2379";
    data_dir = "/var/lib/flaredb";
    pd_addr = "10.0.0.1:2379";
    log_level = "info";
    tls = {
      cert_file = "/etc/centra-cloud/certs/flaredb-node-4.crt";
      key_file = "/etc/centra-cloud/certs/flaredb-node-4.key";
      ca_file = "/etc/centra-cloud/certs/ca.crt";
      require_client_cert = true;
    };
    peers = { };
    namespace_modes.default = "eventual";
  };
  tlsOptions = {
    certFile = "/etc/centra/certs/node-1.crt";
    keyFile = "/etc/centra/certs/node-1.key";
    caFile = "/etc/centra/certs/ca.crt";
  };
  centra = c: { services.centra = { enable = true; } // c; };
  readme = id: {
    role = "control_plane";
    firewallPorts = [ 2379 2380 2381 ];
    credentials = 3;
    config = import ../example.nix id;
  };

  # The services.centra definitions of a node of ./vm-test.nix, with the
  # addresses the NixOS test driver assigns (192.168.1.N).
  vmNode = name:
    let
      stub = import ./stub.nix;
      test = import ./vm-test.nix { inherit (stub) pkgs; };
      ip = n: "192.168.1.${stub.lib.removePrefix "node" n}";
      node = test.nodes.${name} {
        config.networking.primaryIPAddress = ip name;
        nodes = stub.lib.genAttrs (builtins.attrNames test.nodes) (n: { networking.primaryIPAddress = ip n; });
      };
    in
    { services.centra = stub.normalize node.services.centra; };
in
{
  control_plane = {
    role = "control_plane";
    firewallPorts = [ 2379 2380 2381 ];
    execStartContains = ''"--node-name" "node 4 (50%% $$HOME)"'';
    config = centra {
      role = "control_plane";
      settings = runbookChainfire // {
        storage = runbookChainfire.storage // runbookTuning.storage;
        raft = runbookChainfire.raft // runbookTuning.raft;
      };
      openFirewall = true;
      extraArgs = [ "--node-name" "node 4 (50% $HOME)" ];
    };
  };
  # README's three-node example (../example.nix).
  readme_node1 = readme 1;
  readme_node2 = readme 2;
  readme_node3 = readme 3;
  store = {
    role = "store";
    firewallPorts = [ ];
    config = centra { role = "store"; settings = runbookFlaredb; };
  };
  both = {
    role = "control_plane,store";
    firewallPorts = [ 12379 12380 2381 ];
    credentials = 3;
    config = centra {
      role = "both";
      dataDir = "/srv/centra";
      logLevel = "debug";
      openFirewall = true;
      tls = tlsOptions;
      checkConfig = false;
      settings = {
        node.id = 1;
        network = { api_addr = "0.0.0.0:12379"; raft_addr = "10.0.0.5:12380"; };
        namespace_modes.metrics = "strong";
      };
    };
  };
  vm_test_node1 = {
    role = "control_plane";
    config = vmNode "node1";
  };
  vm_test_node3 = {
    role = "control_plane";
    config = vmNode "node3";
  };
  disabled = {
    config = { services.centra.enable = false; };
  };

  key_in_store = {
    role = "control_plane";
    warning = "world-readable Nix store";
    credentials = 3;
    config = centra { tls = tlsOptions // { keyFile = "${builtins.storeDir}/00000000000000000000000000000000-node.key"; }; };
  };
  settings_rejected_by_centra = {
    configCheckError = "raft.election_ticks";
    config = centra { settings.raft = { heartbeat_ticks = 5; election_ticks = 6; }; };
  };

  tls_half_configured = {
    assertion = "TLS is half-configured";
    config = centra { tls.certFile = "/etc/centra/certs/node-1.crt"; };
  };
  client_cert_without_tls = {
    assertion = "requireClientCert needs";
    config = centra { tls.requireClientCert = true; };
  };
  tls_twice = {
    assertion = "TLS is set both through";
    config = centra { tls = tlsOptions; settings.network.tls.cert_file = "/etc/x.crt"; };
  };
  store_without_pd = {
    assertion = "needs settings.pd_addr";
    config = centra { role = "store"; };
  };
  role_conflict = {
    assertion = "disagrees with services.centra.role";
    config = centra { role = "store"; settings = { node.role = "control_plane"; pd_addr = [ "10.0.0.1:2379" ]; }; };
  };
  data_dir_conflict = {
    assertion = "disagrees with services.centra.dataDir";
    config = centra { dataDir = "/var/lib/a"; settings.storage.data_dir = "/var/lib/b"; };
  };
  log_level_conflict = {
    assertion = "disagrees with services.centra.logLevel";
    config = centra { logLevel = "warn"; settings.log_level = "debug"; };
  };
  bad_type = {
    error = "services.centra.openFirewall' is not of type `boolean'";
    config = centra { openFirewall = "yes"; };
  };
  bad_role = {
    error = "services.centra.role' is not of type `one of";
    config = centra { role = "leader"; };
  };
  bad_settings_value = {
    error = "services.centra.settings' is not of type `TOML value'";
    config = centra { settings.node.name = null; };
  };
  unknown_option = {
    error = "services.centra.port' does not exist";
    config = centra { port = 2379; };
  };
  read_only_config_file = {
    error = "services.centra.configFile' is read-only";
    config = centra { configFile = "/etc/centra.toml"; };
  };
}
