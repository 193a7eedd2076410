# services.centra: one centra node (Chainfire KV, PD, FlareDB) as a
# hardened systemd service.
#
# `settings` is the TOML config file as Nix: the runbooks' chainfire.toml or
# flaredb.toml content pasted as an attribute set (every key of
# `centra config check`). A few keys are owned by options because the unit
# needs them too: node.role (role), storage.data_dir or data_dir (dataDir),
# log_level (logLevel) and [network.tls] (tls.*). When `settings` sets one of
# them, the option defaults to that value, so pasted runbook files work
# unchanged; setting both to different values is an assertion error.
#
# See ./README.md for a three-node example, the checks and the VM test.
{ config, lib, pkgs, utils, ... }:

let
  inherit (lib) mkOption mkEnableOption mkIf mkMerge types literalExpression;

  cfg = config.services.centra;
  settingsFormat = pkgs.formats.toml { };

  # node.role for each value of the role option, and back.
  nodeRoles = {
    control_plane = "control_plane";
    store = "store";
    both = "control_plane,store";
  };
  roleOfNodeRole = s:
    let
      s' = lib.replaceStrings [ " " ] [ "" ] s;
    in
    if s' == "store,control_plane" then "both"
    else lib.findFirst (r: nodeRoles.${r} == s') s' (builtins.attrNames nodeRoles);

  # The unit running centra is named after the node's main component, so
  # that the runbooks' `journalctl -u chainfire` / `-u flaredb` find its
  # logs: journald records the unit a process runs in (_SYSTEMD_UNIT), and
  # `journalctl -u` does not follow aliases. centra.service is an alias.
  mainUnit = if cfg.role == "store" then "flaredb" else "chainfire";
  # The other names the runbooks use on this node are log views: small
  # units that follow the main unit's journal and re-emit its lines of one
  # component (text lines "LEVEL component: ..." or JSON ones), so they are
  # recorded under their own unit name. The main unit is PartOf them:
  # `systemctl restart placement-driver` restarts the process PD runs in.
  logViews = lib.optionalAttrs (cfg.role != "store")
    {
      placement-driver = ''(^|\s)pd: |"component":"pd"'';
    } // lib.optionalAttrs (cfg.role == "both") {
    flaredb = ''(^|\s)(flaredb_[a-z_]+|tsdb|promql): |"component":"(flaredb_|tsdb|promql)'';
  };
  logViewUnit = name: regex: {
    description = "centra: ${name} log lines of ${mainUnit}.service (journalctl -u ${name})";
    bindsTo = [ "${mainUnit}.service" ];
    wantedBy = [ "${mainUnit}.service" ];
    serviceConfig = {
      ExecStart = utils.escapeSystemdExecArgs [
        "${config.systemd.package or pkgs.systemd}/bin/journalctl"
        "--follow"
        "--lines=0"
        "--output=cat"
        "--unit=${mainUnit}.service"
        "--grep=${regex}"
      ];
      Restart = "always";
      RestartSec = "1s";
      DynamicUser = true;
      SupplementaryGroups = [ "systemd-journal" ];
      NoNewPrivileges = true;
      ProtectSystem = "strict";
      ProtectHome = true;
      PrivateTmp = true;
      PrivateNetwork = true;
      CapabilityBoundingSet = "";
    };
  };

  # systemd hands TLS files to the service through LoadCredential, so they
  # may stay readable by root only.
  credentialsDir = "/run/credentials/${mainUnit}.service";
  tlsFiles = [
    { option = "certFile"; credential = "tls-cert"; key = "cert_file"; }
    { option = "keyFile"; credential = "tls-key"; key = "key_file"; }
    { option = "caFile"; credential = "tls-ca"; key = "ca_file"; }
  ];
  tlsSet = builtins.filter (f: cfg.tls.${f.option} != null) tlsFiles;
  tlsOn = tlsSet != [ ];
  # A Nix path literal (./ca.crt) is copied to the store; a string is a path
  # on the target host.
  hostPath = p: if builtins.isPath p then "${p}" else toString p;

  # The settings with the option-owned keys filled in.
  ownedSettings = lib.recursiveUpdate
    {
      node.role = nodeRoles.${cfg.role};
      log_level = cfg.logLevel;
    }
    (if cfg.settings ? data_dir && !(cfg.settings ? storage.data_dir)
    then { data_dir = cfg.dataDir; }
    else { storage.data_dir = cfg.dataDir; });
  tlsSettings = lib.optionalAttrs tlsOn {
    network.tls = builtins.listToAttrs
      (map (f: lib.nameValuePair f.key "${credentialsDir}/${f.credential}") tlsSet)
    // { require_client_cert = cfg.tls.requireClientCert; };
  };
  finalSettings = lib.recursiveUpdate (lib.recursiveUpdate cfg.settings ownedSettings) tlsSettings;

  # What the build-time check reads: the TLS files exist only at run time,
  # so it checks everything but them.
  withoutTLS = s:
    builtins.removeAttrs s [ "tls" ]
    // lib.optionalAttrs (s ? network) { network = builtins.removeAttrs s.network [ "tls" ]; };

  generatedFile = settingsFormat.generate "centra.toml" finalSettings;
  checkedFile = pkgs.runCommand "centra.toml"
    {
      nativeBuildInputs = [ cfg.package ];
      preferLocalBuild = true;
      generated = generatedFile;
      checkInput = settingsFormat.generate "centra-check.toml" (withoutTLS finalSettings);
    } ''
    centra config check --config "$checkInput" >/dev/null
    cp "$generated" "$out"
  '';

  # Ports of the API, raft and gossip listeners, for openFirewall.
  portOf = addr: fallback:
    let
      m = builtins.match ".*:([0-9]+)" addr;
    in
    if m == null then fallback else lib.toInt (builtins.head m);
  network = finalSettings.network or { };
  firewallPorts = builtins.filter (p: p > 0) [
    (portOf (network.api_addr or finalSettings.addr or "") 2379)
    (portOf (network.raft_addr or "") 2380)
    (portOf (network.gossip_addr or "") 2381)
  ];

  inVarLib = lib.hasPrefix "/var/lib/" cfg.dataDir;

  # Keys set in `settings` that disagree with an option.
  conflict = option: value: key: present: actual: {
    assertion = !present || toString actual == toString value;
    message = "services.centra: settings.${key} = ${builtins.toJSON actual} disagrees with services.centra.${option} = ${builtins.toJSON value}; set only one of them.";
  };
  settingsDataDirs = builtins.filter (d: d.present) [
    { key = "storage.data_dir"; present = cfg.settings ? storage.data_dir; value = cfg.settings.storage.data_dir or null; }
    { key = "data_dir"; present = cfg.settings ? data_dir; value = cfg.settings.data_dir or null; }
  ];
  pdAddr = finalSettings.pd_addr or [ ];
in
{
  options.services.centra = {
    enable = mkEnableOption "centra, a Chainfire (etcd-compatible KV), PD and FlareDB node";

    package = mkOption {
      type = types.package;
      default = pkgs.callPackage ./package.nix { };
      defaultText = literalExpression "pkgs.callPackage ./package.nix { } # this repository's centra";
      description = "The centra package; its bin/centra runs the node.";
    };

    role = mkOption {
      type = types.enum (builtins.attrNames nodeRoles);
      default = if cfg.settings ? node.role then roleOfNodeRole cfg.settings.node.role else "control_plane";
      defaultText = literalExpression ''settings.node.role if set, else "control_plane"'';
      description = ''
        What this node runs, written to node.role: "control_plane" (a
        Chainfire + PD replica), "store" (FlareDB regions; needs
        settings.pd_addr) or "both" ("control_plane,store").
      '';
    };

    settings = mkOption {
      type = settingsFormat.type;
      default = { };
      example = literalExpression ''
        {
          node = { id = 1; name = "chainfire-node-1"; };
          cluster = {
            id = 1;
            bootstrap = true;
            initial_members = [ "1=10.0.0.1:2380" "2=10.0.0.2:2380" "3=10.0.0.3:2380" ];
          };
          network = { api_addr = "0.0.0.0:2379"; raft_addr = "10.0.0.1:2380"; gossip_addr = "0.0.0.0:2381"; };
          raft.role = "voter";
        }
      '';
      description = ''
        The centra config file (`centra serve --config`) as Nix, rendered to
        TOML. Its keys are those of the runbooks' chainfire.toml and
        flaredb.toml; `centra config check` lists them all. node.role,
        storage.data_dir (or data_dir), log_level and [network.tls] are
        filled in from role, dataDir, logLevel and tls.
      '';
    };

    dataDir = mkOption {
      type = types.path;
      default = cfg.settings.storage.data_dir or cfg.settings.data_dir or "/var/lib/centra";
      defaultText = literalExpression ''settings.storage.data_dir or settings.data_dir or "/var/lib/centra"'';
      description = ''
        Data directory (raft log and pebble state), owned by the centra user
        with mode 0700. Under /var/lib it is the unit's StateDirectory;
        elsewhere a tmpfiles rule creates it.
      '';
    };

    logLevel = mkOption {
      type = types.enum [ "debug" "info" "warn" "error" ];
      default = cfg.settings.log_level or "info";
      defaultText = literalExpression ''settings.log_level or "info"'';
      description = "Minimum log level (log_level). Logs are JSON lines in the journal.";
    };

    tls = {
      certFile = mkOption {
        type = types.nullOr types.path;
        default = null;
        example = "/etc/centra/certs/chainfire-node-1.crt";
        description = ''
          PEM certificate of this node, for the API and raft
          (network.tls.cert_file). Set certFile, keyFile and caFile together,
          or none of them for plain TCP. `centra certs init` writes them.
          The files reach the service through systemd's LoadCredential, so
          they may be readable by root only; restart the service after
          replacing them.
        '';
      };
      keyFile = mkOption {
        type = types.nullOr types.path;
        default = null;
        example = "/etc/centra/certs/chainfire-node-1.key";
        description = ''
          PEM private key of certFile (network.tls.key_file). Give a string
          path on the target host: a Nix path literal would be copied to the
          world-readable Nix store.
        '';
      };
      caFile = mkOption {
        type = types.nullOr types.path;
        default = null;
        example = "/etc/centra/certs/ca.crt";
        description = "PEM CA certificate that signs every node and client certificate (network.tls.ca_file).";
      };
      requireClientCert = mkOption {
        type = types.bool;
        default = false;
        description = "Refuse API clients without a certificate signed by caFile (network.tls.require_client_cert); raft always requires one.";
      };
    };

    openFirewall = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Open the TCP ports of the API, raft and gossip listeners (taken from
        settings.network.*_addr; 2379, 2380 and 2381 by default).
      '';
    };

    extraArgs = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "--raft-tick-interval-ms" "200" ];
      description = "Extra arguments of `centra serve`; flags override the config file.";
    };

    checkConfig = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Run `centra config check` on the generated file at build time (TLS
        file paths aside, which exist only at run time). Turn it off when
        the build platform cannot run the package.
      '';
    };

    configFile = mkOption {
      type = types.path;
      readOnly = true;
      default = if cfg.checkConfig then checkedFile else generatedFile;
      defaultText = literalExpression "the TOML file generated from settings";
      description = "The generated file passed to `centra serve --config` (read-only).";
    };
  };

  config = mkIf cfg.enable (mkMerge [
    {
      assertions = [
        {
          assertion = !tlsOn || builtins.length tlsSet == builtins.length tlsFiles;
          message = "services.centra.tls: TLS is half-configured; set certFile, keyFile and caFile together (missing: ${lib.concatMapStringsSep ", " (f: f.option) (builtins.filter (f: cfg.tls.${f.option} == null) tlsFiles)}), or none of them.";
        }
        {
          assertion = !cfg.tls.requireClientCert || tlsOn;
          message = "services.centra.tls.requireClientCert needs tls.certFile, tls.keyFile and tls.caFile.";
        }
        {
          assertion = !tlsOn || !(cfg.settings ? tls || cfg.settings ? network.tls);
          message = "services.centra: TLS is set both through services.centra.tls.* and settings ([network.tls] or [tls]); use one of them.";
        }
        {
          assertion = cfg.role != "store" || pdAddr != [ ] && pdAddr != "";
          message = ''services.centra: role = "store" needs settings.pd_addr, the PD endpoints (e.g. [ "10.0.0.1:2379" ]).'';
        }
        {
          assertion = !(cfg.settings ? node.role) || roleOfNodeRole cfg.settings.node.role == cfg.role;
          message = "services.centra: settings.node.role = ${builtins.toJSON (cfg.settings.node.role or null)} disagrees with services.centra.role = ${builtins.toJSON cfg.role}; set only one of them.";
        }
        (conflict "logLevel" cfg.logLevel "log_level" (cfg.settings ? log_level) (cfg.settings.log_level or null))
      ] ++ map (d: conflict "dataDir" cfg.dataDir d.key true d.value) settingsDataDirs;

      warnings = lib.optional
        (cfg.tls.keyFile != null && (builtins.isPath cfg.tls.keyFile || lib.hasPrefix builtins.storeDir (toString cfg.tls.keyFile)))
        "services.centra.tls.keyFile is in the world-readable Nix store; give a string path to a root-only file outside the store.";

      users.users.centra = {
        isSystemUser = true;
        group = "centra";
        description = "centra service user";
      };
      users.groups.centra = { };

      environment.systemPackages = [ cfg.package ];

      systemd.tmpfiles.rules = lib.optional (!inVarLib) "d '${cfg.dataDir}' 0700 centra centra - -";

      systemd.services = builtins.mapAttrs logViewUnit logViews // {
      ${mainUnit} = {
        description = "centra node (Chainfire KV, PD, FlareDB)";
        documentation = [ "https://github.com/centra-cloud/centra" ];
        aliases = [ "centra.service" ];
        partOf = map (v: "${v}.service") (builtins.attrNames logViews);
        wantedBy = [ "multi-user.target" ];
        wants = [ "network-online.target" ];
        after = [ "network-online.target" ];
        serviceConfig = {
          # centra sends READY=1 once it serves linearizable reads, i.e. once
          # the cluster has a quorum; until then the unit is "activating".
          Type = "notify";
          NotifyAccess = "main";
          ExecStart = "${cfg.package}/bin/centra serve --config ${cfg.configFile}"
            + lib.optionalString (cfg.extraArgs != [ ]) " ${utils.escapeSystemdExecArgs cfg.extraArgs}";
          Restart = "on-failure";
          RestartSec = "5s";
          # A first node waits for its peers to boot; killing it would not
          # make the quorum appear sooner.
          TimeoutStartSec = lib.mkDefault "infinity";
          TimeoutStopSec = lib.mkDefault "90s";
          User = "centra";
          Group = "centra";
          StateDirectory = mkIf inVarLib (lib.removePrefix "/var/lib/" cfg.dataDir);
          StateDirectoryMode = "0700";
          ReadWritePaths = [ cfg.dataDir ];
          LoadCredential = mkIf tlsOn (map (f: "${f.credential}:${hostPath cfg.tls.${f.option}}") tlsSet);
          LimitNOFILE = 65536;
          UMask = "0077";

          # Hardening: centra needs its data dir, TCP and a unix socket for
          # sd_notify, nothing else.
          NoNewPrivileges = true;
          ProtectSystem = "strict";
          ProtectHome = true;
          PrivateTmp = true;
          PrivateDevices = true;
          DevicePolicy = "closed";
          ProtectKernelTunables = true;
          ProtectKernelModules = true;
          ProtectKernelLogs = true;
          ProtectControlGroups = true;
          ProtectClock = true;
          ProtectHostname = true;
          ProtectProc = "invisible";
          RestrictAddressFamilies = [ "AF_INET" "AF_INET6" "AF_UNIX" "AF_NETLINK" ];
          RestrictNamespaces = true;
          RestrictRealtime = true;
          RestrictSUIDSGID = true;
          RemoveIPC = true;
          LockPersonality = true;
          MemoryDenyWriteExecute = true;
          KeyringMode = "private";
          SystemCallArchitectures = "native";
          SystemCallFilter = [ "@system-service" "~@privileged" ];
          SystemCallErrorNumber = "EPERM";
          CapabilityBoundingSet = "";
          AmbientCapabilities = "";
        };
      };
      };
    }
    (mkIf cfg.openFirewall {
      networking.firewall.allowedTCPPorts = firewallPorts;
    })
  ]);
}
