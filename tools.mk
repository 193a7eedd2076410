# Protobuf code generation, included by the Makefile.
#
#   make tools           install buf and the protoc plugins into bin/tools
#   make generate        regenerate gen/ from proto/ (buf.gen.yaml)
#   make checkgenerate   fail if gen/ is not what make generate produces
#   make lint-proto      buf lint (STANDARD, see buf.yaml)
#   make breaking-proto  buf breaking against BUF_BREAKING_AGAINST
#
# buf runs fully offline: the module has no BSR dependencies and the plugins
# are local binaries.

# The plugins follow go.mod, so generated code always matches the runtime
# libraries it compiles against.
BUF_VERSION := v1.75.0
PROTOC_GEN_GO_VERSION := $(shell go list -m -f '{{.Version}}' google.golang.org/protobuf)
PROTOC_GEN_CONNECT_GO_VERSION := $(shell go list -m -f '{{.Version}}' connectrpc.com/connect)
PROTOC_GEN_GO_VTPROTO_VERSION := $(shell go list -m -f '{{.Version}}' github.com/planetscale/vtprotobuf)

TOOLS_BIN := $(CURDIR)/bin/tools
BUF := $(TOOLS_BIN)/buf
BUF_BREAKING_AGAINST ?= .git\#branch=main

# One stamp per tool and version, so changing a version reinstalls the tool.
TOOL_STAMPS := \
	$(TOOLS_BIN)/.stamp-buf-$(BUF_VERSION) \
	$(TOOLS_BIN)/.stamp-protoc-gen-go-$(PROTOC_GEN_GO_VERSION) \
	$(TOOLS_BIN)/.stamp-protoc-gen-connect-go-$(PROTOC_GEN_CONNECT_GO_VERSION) \
	$(TOOLS_BIN)/.stamp-protoc-gen-go-vtproto-$(PROTOC_GEN_GO_VTPROTO_VERSION)

.PHONY: tools generate checkgenerate lint-proto breaking-proto

tools: $(TOOL_STAMPS)

$(TOOLS_BIN)/.stamp-buf-$(BUF_VERSION):
	GOBIN=$(TOOLS_BIN) go install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
	touch $@

$(TOOLS_BIN)/.stamp-protoc-gen-go-$(PROTOC_GEN_GO_VERSION):
	GOBIN=$(TOOLS_BIN) go install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	touch $@

$(TOOLS_BIN)/.stamp-protoc-gen-connect-go-$(PROTOC_GEN_CONNECT_GO_VERSION):
	GOBIN=$(TOOLS_BIN) go install connectrpc.com/connect/cmd/protoc-gen-connect-go@$(PROTOC_GEN_CONNECT_GO_VERSION)
	touch $@

$(TOOLS_BIN)/.stamp-protoc-gen-go-vtproto-$(PROTOC_GEN_GO_VTPROTO_VERSION):
	GOBIN=$(TOOLS_BIN) go install github.com/planetscale/vtprotobuf/cmd/protoc-gen-go-vtproto@$(PROTOC_GEN_GO_VTPROTO_VERSION)
	touch $@

generate: tools
	PATH="$(TOOLS_BIN):$$PATH" $(BUF) generate

# Fails listing every file that make generate changed, deleted or created.
checkgenerate: generate
	@stale="$$(git diff --name-only -- gen proto; git ls-files --others --exclude-standard -- gen proto)"; \
	if [ -n "$$stale" ]; then \
		printf 'generated code is stale; run make generate and commit:\n%s\n' "$$stale" >&2; \
		exit 1; \
	fi

lint-proto: tools
	$(BUF) lint

breaking-proto: tools
	$(BUF) breaking --against '$(BUF_BREAKING_AGAINST)'
