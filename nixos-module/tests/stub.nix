# A small stand-in for nixpkgs' lib, pkgs, NixOS utils and module system:
# just enough to evaluate ../default.nix (and ../package.nix, ../../flake.nix)
# offline with Debian's nix-bin, which ships without nixpkgs.
#
# evalModule is a one-pass evaluator: option values are the definitions given
# or the defaults, type-checked like nixpkgs does (including "option does not
# exist" and read-only options); the module's `config` is returned with
# mkIf/mkMerge/mkDefault resolved and definitions merged (lists concatenate,
# attribute sets merge, equal values agree, different values conflict). It
# does not do priorities, submodules or options declared elsewhere.
# ./real-lib.nix runs the same module through nixpkgs' own lib.evalModules
# when a nixpkgs checkout is available.
let
  inherit (builtins)
    all attrNames concatStringsSep elem filter foldl' hashString head isAttrs
    isBool isFloat isFunction isInt isList isPath isString length listToAttrs
    mapAttrs match replaceStrings substring tail toJSON typeOf;

  concatMapStrings = f: list: concatStringsSep "" (map f list);
  isStringLike = x: isString x || isPath x || (isAttrs x && (x ? outPath || x ? __toString));

  types = rec {
    mk = name: check: { _type = "option-type"; inherit name check; };
    bool = mk "boolean" isBool;
    str = mk "string" isString;
    int = mk "signed integer" isInt;
    port = mk "16 bit unsigned integer; between 0 and 65535 (both inclusive)"
      (x: isInt x && x >= 0 && x <= 65535);
    path = mk "absolute path" (x: isStringLike x && substring 0 1 (toString x) == "/");
    package = mk "package" (x: isAttrs x && x ? outPath);
    enum = values: mk "one of ${concatStringsSep ", " (map toJSON values)}" (x: elem x values);
    nullOr = t: mk "null or ${t.name}" (x: x == null || t.check x);
    listOf = t: mk "list of ${t.name}" (x: isList x && all t.check x);
    attrsOf = t: mk "attribute set of ${t.name}" (x: isAttrs x && all t.check (builtins.attrValues x));
    anything = mk "anything" (_: true);
  };

  lib = rec {
    inherit types;
    mkOption = attrs: attrs // { _type = "option"; };
    mkEnableOption = name: mkOption {
      type = types.bool;
      default = false;
      example = true;
      description = "Whether to enable ${name}.";
    };
    mkIf = condition: content: { _type = "if"; inherit condition content; };
    mkMerge = contents: { _type = "merge"; inherit contents; };
    mkOverride = priority: content: { _type = "override"; inherit priority content; };
    mkDefault = mkOverride 1000;
    mkForce = mkOverride 50;
    literalExpression = text: { _type = "literalExpression"; inherit text; };
    literalMD = text: { _type = "literalMD"; inherit text; };

    optional = cond: x: if cond then [ x ] else [ ];
    optionals = cond: xs: if cond then xs else [ ];
    optionalString = cond: s: if cond then s else "";
    optionalAttrs = cond: as: if cond then as else { };
    findFirst = pred: default: list:
      let found = filter pred list; in if found == [ ] then default else head found;
    genAttrs = names: f: listToAttrs (map (n: nameValuePair n (f n)) names);
    nameValuePair = name: value: { inherit name value; };
    filterAttrs = pred: set:
      listToAttrs (map (n: nameValuePair n set.${n}) (filter (n: pred n set.${n}) (attrNames set)));
    recursiveUpdate = lhs: rhs:
      lhs // mapAttrs
        (n: v: if isAttrs v && isAttrs (lhs.${n} or null) then recursiveUpdate lhs.${n} v else v)
        rhs;
    concatMapStringsSep = sep: f: list: concatStringsSep sep (map f list);
    inherit concatMapStrings replaceStrings;
    hasPrefix = prefix: s: substring 0 (builtins.stringLength prefix) s == prefix;
    removePrefix = prefix: s:
      let n = builtins.stringLength prefix; in
      if hasPrefix prefix s then substring n (builtins.stringLength s - n) s else s;
    toInt = s:
      if match "0|[1-9][0-9]*" s != null then builtins.fromJSON s
      else throw "toInt: ${toJSON s} is not a decimal integer";
    cleanSource = src: src;
    # Keeps the filter so that tests can call it.
    cleanSourceWith = { src, filter ? (_: _: true), name ? "source" }:
      { inherit src filter name; outPath = toString src; };
    fakeHash = "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    licenses.asl20 = { spdxId = "Apache-2.0"; };
    platforms = { linux = [ "x86_64-linux" "aarch64-linux" ]; darwin = [ "x86_64-darwin" "aarch64-darwin" ]; };
  };

  # nixos/lib/utils.nix: every argument JSON-quoted, % and $ doubled.
  utils.escapeSystemdExecArgs = lib.concatMapStringsSep " "
    (arg: replaceStrings [ "%" "$" ] [ "%%" "$$" ] (toJSON (toString arg)));

  # --- TOML, as pkgs.formats.toml renders it (remarshal's json2toml) ---
  tomlKey = k: if match "[A-Za-z0-9_-]+" k != null then k else toJSON k;
  isTable = v: isAttrs v && !(v ? outPath);
  tomlValue = v:
    if isBool v then (if v then "true" else "false")
    else if isInt v || isFloat v then toString v
    else if isString v || isPath v then toJSON v
    else if isList v then "[" + concatStringsSep ", " (map tomlValue v) + "]"
    else if isAttrs v && v ? outPath then toJSON "${v}"
    else throw "TOML cannot represent the ${typeOf v} ${toJSON v}";
  toTOML =
    let
      table = prefix: attrs:
        let
          names = attrNames attrs;
          scalars = filter (n: !isTable attrs.${n}) names;
          tables = filter (n: isTable attrs.${n}) names;
          header = if prefix != "" && (scalars != [ ] || tables == [ ]) then "[${prefix}]\n" else "";
          sub = n: (if prefix == "" then "" else "${prefix}.") + tomlKey n;
        in
        header
        + concatMapStrings (n: "${tomlKey n} = ${tomlValue attrs.${n}}\n") scalars
        + concatMapStrings (n: "\n" + table (sub n) attrs.${n}) tables;
    in
    table "";
  isTOML = v:
    isBool v || isInt v || isFloat v || isString v || isPath v
    || (isList v && all isTOML v) || (isAttrs v && all isTOML (builtins.attrValues v));

  # --- pkgs ---
  storePath = name: seed:
    "${builtins.storeDir}/${substring 0 32 (hashString "sha256" "${name}:${seed}")}-${name}";
  fakeDrv = name: seed: { type = "derivation"; inherit name; outPath = storePath name seed; };

  pkgs = rec {
    inherit lib;
    stdenv.hostPlatform.system = "x86_64-linux";
    formats.toml = { }: {
      type = types.mk "TOML value" (x: isAttrs x && isTOML x);
      generate = name: value: fakeDrv name (toJSON value) // { inherit value; text = toTOML value; };
    };
    runCommand = name: env: buildCommand: env // fakeDrv name (toJSON buildCommand) // { inherit buildCommand; };
    callPackage = f: args:
      let fn = if isFunction f then f else import f; in
      fn (builtins.intersectAttrs (builtins.functionArgs fn) pkgs // args);
    buildGoModule = attrs: attrs // fakeDrv "${attrs.pname}-${attrs.version}" (toJSON attrs.vendorHash);
    curl = fakeDrv "curl" "";
    systemd = fakeDrv "systemd" "";
    testers.runNixOSTest = test: test // fakeDrv "vm-test-run-${test.name}" "";
  };

  # --- module evaluation ---
  skip = { _type = "stub-skip"; };
  isSkip = v: isAttrs v && (v._type or null) == "stub-skip";

  # Resolves mkIf, mkMerge and mkOverride; drops attributes under a false mkIf.
  normalize = x:
    if isTable x then
      let t = x._type or null; in
      if t == "if" then (if x.condition then normalize x.content else skip)
      else if t == "override" then normalize x.content
      else if t == "merge" then foldl' merge { } (filter (v: !isSkip v) (map normalize x.contents))
      else lib.filterAttrs (_: v: !isSkip v) (mapAttrs (_: normalize) x)
    else x;
  merge = a: b: a // mapAttrs (n: v: if a ? ${n} then mergeValues n a.${n} v else v) b;
  mergeValues = name: a: b:
    if isList a && isList b then a ++ b
    else if isTable a && isTable b then merge a b
    else if a == b then a
    else throw "stub: conflicting definitions of `${name}': ${toJSON a} and ${toJSON b}";

  # Option values from `defs` (plain attribute sets) or the defaults.
  resolve = path: options: defs:
    let
      unknown = filter (n: !(options ? ${n})) (attrNames defs);
      resolveOption = name: opt:
        let
          full = concatStringsSep "." (path ++ [ name ]);
          value =
            if defs ? ${name} then
              (if opt.readOnly or false then throw "The option `${full}' is read-only, but it is set." else defs.${name})
            else if opt ? default then opt.default
            else throw "The option `${full}' is used but not defined.";
        in
        if opt.type.check value then value
        else throw "A definition for option `${full}' is not of type `${opt.type.name}'. Definition value: ${toJSON value}";
    in
    if unknown != [ ] then throw "The option `${concatStringsSep "." (path ++ [ (head unknown) ])}' does not exist."
    else mapAttrs
      (n: o: if (o._type or null) == "option" then resolveOption n o else resolve (path ++ [ n ]) o (defs.${n} or { }))
      options;

  # evalModule { module = ../default.nix; config = { services.centra = ...; }; }
  # returns { config = option values; output = the module's resolved config;
  # failedAssertions = [ messages ]; warnings = [ messages ]; }.
  evalModule = { module, config }:
    let
      fn = if isFunction module then module else import module;
      m = fn { inherit lib pkgs utils; config = values; options = m.options; };
      values = resolve [ ] m.options config;
      output = normalize m.config;
    in
    {
      config = values;
      inherit output;
      failedAssertions = map (a: a.message) (filter (a: !a.assertion) (output.assertions or [ ]));
      warnings = output.warnings or [ ];
    };
in
{
  inherit lib pkgs utils evalModule normalize toTOML;
}
