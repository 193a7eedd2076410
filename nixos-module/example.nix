# README's three-node example: the services.centra configuration of
# chainfire-node-<id> (id 1, 2 or 3, at 10.0.0.<id>), with settings pasted
# from the scale-out runbook's chainfire.toml. tests/check.sh evaluates it
# for the three nodes and runs `centra config check` on the result.
id:
{
  services.centra = {
    enable = true;
    openFirewall = true; # 2379 (API), 2380 (raft), 2381 (gossip)
    settings = {
      node = { inherit id; name = "chainfire-node-${toString id}"; role = "control_plane"; };
      cluster = {
        id = 1;
        bootstrap = true; # forming a new cluster; a node added later says false
        initial_members = [ "1=10.0.0.1:2380" "2=10.0.0.2:2380" "3=10.0.0.3:2380" ];
      };
      network = {
        api_addr = "0.0.0.0:2379";
        raft_addr = "10.0.0.${toString id}:2380";
        gossip_addr = "0.0.0.0:2381";
      };
      storage.data_dir = "/var/lib/chainfire";
      raft.role = "voter";
    };
    # Written by `centra certs init --dir certs --node chainfire-node-1=10.0.0.1
    # --node chainfire-node-2=10.0.0.2 --node chainfire-node-3=10.0.0.3` and
    # copied to each node; root-only files are fine (LoadCredential).
    tls = {
      certFile = "/etc/centra/certs/chainfire-node-${toString id}.crt";
      keyFile = "/etc/centra/certs/chainfire-node-${toString id}.key";
      caFile = "/etc/centra/certs/ca.crt";
      requireClientCert = true;
    };
  };
}
