"""The Istio and Envoy Gateway manifests in deploy/ are what those control planes accept, and the
Envoy configuration they produce is one Envoy accepts with our module loaded.

1. Every document of deploy/istio/*.yaml and deploy/envoy-gateway/*.yaml validates against the
   real CRD's `openAPIV3Schema` (../shared/mesh-reference, next to the repository; override with
   LLM_GATEWAY_MESH_REFERENCE). `x-kubernetes-*` extensions are read as plain JSON Schema:
   `x-kubernetes-preserve-unknown-fields` allows unknown members, `x-kubernetes-int-or-string`
   is an integer or a string, and an object schema that lists properties refuses any other
   (what `kubectl apply`'s strict field validation does). CEL rules
   (`x-kubernetes-validations`) are not evaluated. Kinds built into Kubernetes (Namespace,
   Secret, ConfigMap, Service, ServiceAccount, Deployment) have no CRD; a small schema below
   checks the fields we rely on.
2. The Envoy config each control plane would build from them (the module's filters from the
   WasmPlugin / TrafficExtension / EnvoyExtensionPolicy, the native filters placed by the
   EnvoyFilter / EnvoyPatchPolicy patches, header-matched routes and TLS clusters from the
   VirtualService+ServiceEntry+DestinationRule / HTTPRoute+Backend+BackendTLSPolicy, stats tags
   from the bootstrap patches) is rendered here and checked by `envoy --mode validate`, which
   loads the real .wasm and runs its on_configure with the manifest's plugin config and the
   environment variables the manifests pass.
3. The plugin configs in the manifests validate against schema/plugin-config.schema.json.
4. Fleet-wide budgets (optional/05-fleet-budgets.yaml): the module's config names an HTTP/2
   cluster to the Limitador Service that the rendered config holds, the Limitador limits use
   the descriptor entries the module sends, and the optional module object replaces the
   top-level one with quota.fleet added and nothing else changed.

No schema found is a failure, never a skip.
"""
from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

import harness

REPO_ROOT = harness.REPO_ROOT
DEPLOY = REPO_ROOT / "deploy"
REFERENCE = Path(os.environ.get("LLM_GATEWAY_MESH_REFERENCE") or REPO_ROOT.parent / "shared" / "mesh-reference")
PLUGIN_SCHEMA = REPO_ROOT / "schema" / "plugin-config.schema.json"
PROVIDER_KEYS = {"OPENAI_API_KEY": "sk-validate-openai", "ANTHROPIC_API_KEY": "sk-validate-anthropic"}

MODULE_FILTERS = ("llm-gateway.llm-gateway", "llm-gateway.llm-gateway-signer")
EG_WASM = "envoy.filters.http.wasm/envoyextensionpolicy/llm-gateway/llm-gateway/wasm/{}"
HCM = "envoy.filters.network.http_connection_manager"
HCM_TYPE = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
WASM_TYPE = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"
ROUTER = {"name": "envoy.filters.http.router",
          "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}


# ---------------------------------------------------------------- CRD schemas as JSON Schema


def kubernetes_to_jsonschema(node):
    """One OpenAPI v3 structural schema node as a JSON Schema node (see the module docstring)."""
    if isinstance(node, list):
        return [kubernetes_to_jsonschema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in ("properties", "patternProperties", "definitions"):
            out[key] = {k: kubernetes_to_jsonschema(v) for k, v in value.items()}
        elif key in ("items", "additionalProperties", "not", "allOf", "anyOf", "oneOf"):
            out[key] = kubernetes_to_jsonschema(value)
        elif key == "nullable" or key.startswith("x-kubernetes-"):
            continue
        else:
            out[key] = value
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out = {"anyOf": [{"type": "integer"}, {"type": "string"}], **{k: v for k, v in out.items() if k != "anyOf"}}
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if (node.get("type") == "object" and "properties" in node and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


def crd_files() -> list[Path]:
    files = sorted(REFERENCE.glob("istio/crd-all.gen.yaml")) + sorted(REFERENCE.glob("envoy-gateway/crds/*.yaml"))
    assert files, (
        f"no CRDs under {REFERENCE}: the mesh reference data (../shared/mesh-reference next to the "
        "repository, or LLM_GATEWAY_MESH_REFERENCE) is required"
    )
    return files


ROOT_MEMBERS = {
    "apiVersion": {"type": "string"},
    "kind": {"type": "string"},
    "metadata": {"type": "object", "required": ["name"], "properties": {
        "name": {"type": "string", "minLength": 1}, "namespace": {"type": "string"},
        "labels": {"type": "object"}, "annotations": {"type": "object"}}, "additionalProperties": False},
}


def load_crd_schemas() -> dict[tuple[str, str], dict]:
    """(apiVersion, kind) -> JSON Schema, for every served version of every reference CRD."""
    schemas = {}
    for path in crd_files():
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                if version.get("served"):
                    schema = kubernetes_to_jsonschema(version["schema"]["openAPIV3Schema"])
                    # Every object has these at its root; some CRDs (Istio's) list only spec.
                    schema.setdefault("properties", {}).update(ROOT_MEMBERS)
                    schemas[(f"{group}/{version['name']}", kind)] = schema
    return schemas


def _object(required, **properties):
    return {"type": "object", "required": list(required), "properties": properties}


_NAMED = _object(["name"], name={"type": "string", "minLength": 1}, namespace={"type": "string"},
                 labels={"type": "object"}, annotations={"type": "object"})
_ENV_FROM_SECRET = _object(
    ["name", "valueFrom"], name={"type": "string"},
    valueFrom=_object(["secretKeyRef"], secretKeyRef=_object(["name", "key"], name={"type": "string"},
                                                                   key={"type": "string"})))
_STRINGS = {"type": "array", "items": {"type": "string"}}
_CONTAINER = _object(
    ["name", "image"], name={"type": "string"}, image={"type": "string", "minLength": 1}, command=_STRINGS,
    args=_STRINGS, env={"type": "array", "items": _ENV_FROM_SECRET},
    ports={"type": "array", "items": _object(["containerPort"], name={"type": "string"},
                                             containerPort={"type": "integer"})},
    volumeMounts={"type": "array", "items": _object(["name", "mountPath"], name={"type": "string"},
                                                    mountPath={"type": "string"})})
# Built-in Kubernetes kinds (no CRD): the fields the manifests rely on, nothing more.
BUILTIN_SCHEMAS = {
    ("v1", "Namespace"): _object(["metadata"], metadata=_NAMED),
    ("v1", "ServiceAccount"): _object(["metadata"], metadata=_NAMED),
    ("v1", "Secret"): _object(["metadata", "stringData"], metadata=_NAMED, type={"type": "string"},
                              stringData={"type": "object", "additionalProperties": {"type": "string"}}),
    ("v1", "ConfigMap"): _object(["metadata", "data"], metadata=_NAMED,
                                 data={"type": "object", "additionalProperties": {"type": "string"}}),
    ("v1", "Service"): _object(["metadata", "spec"], metadata=_NAMED, spec=_object(
        ["selector", "ports"], selector={"type": "object"},
        ports={"type": "array", "items": _object(
            ["port"], name={"type": "string"}, port={"type": "integer"}, targetPort={"type": "integer"},
            appProtocol={"type": "string"})})),
    ("apps/v1", "Deployment"): _object(["metadata", "spec"], metadata=_NAMED, spec=_object(
        ["selector", "template"], template=_object(["metadata", "spec"], spec=_object(
            ["containers"], containers={"type": "array", "items": _CONTAINER},
            volumes={"type": "array", "items": _object(["name"], name={"type": "string"})})))),
}


# ---------------------------------------------------------------- the manifests


def manifest_files() -> list[Path]:
    """deploy/<mesh>/*.yaml and its subfolders (alternatives/, optional/)."""
    return sorted(DEPLOY.glob("istio/**/*.yaml")) + sorted(DEPLOY.glob("envoy-gateway/**/*.yaml"))


def mesh_of(path: Path) -> str:
    return path.relative_to(DEPLOY).parts[0]


def documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


ALL_DOCUMENTS = [(path, index, doc) for path in manifest_files() for index, doc in enumerate(documents(path))]


def doc_id(item) -> str:
    path, index, doc = item
    return f"{path.relative_to(DEPLOY)}#{index}:{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


@pytest.fixture(scope="module")
def crd_schemas():
    return load_crd_schemas()


def test_the_reference_crds_are_there(crd_schemas):
    for kind in ("WasmPlugin", "TrafficExtension", "EnvoyFilter", "VirtualService", "ServiceEntry",
                 "DestinationRule", "EnvoyExtensionPolicy", "EnvoyPatchPolicy", "EnvoyProxy", "HTTPRoute",
                 "Backend", "BackendTLSPolicy", "Gateway", "GatewayClass"):
        assert any(k == kind for _, k in crd_schemas), f"{kind} missing from {REFERENCE}"


def test_there_are_manifests_for_both_meshes():
    kinds = {doc["kind"] for _, _, doc in ALL_DOCUMENTS}
    assert {"WasmPlugin", "TrafficExtension", "EnvoyFilter", "VirtualService", "ServiceEntry",
            "DestinationRule"} <= kinds, kinds
    assert {"EnvoyExtensionPolicy", "EnvoyPatchPolicy", "EnvoyProxy", "HTTPRoute", "Backend",
            "BackendTLSPolicy"} <= kinds, kinds


def test_applying_a_whole_folder_installs_the_module_once():
    """`kubectl apply -f deploy/<mesh>/` (not recursive) takes the top-level files only: one
    module variant, no optional fleet-budget wiring that needs a service of its own."""
    top = [doc for path, _, doc in ALL_DOCUMENTS if path.parent == DEPLOY / mesh_of(path)]
    module_kinds = [d["kind"] for d in top if d["kind"] in ("WasmPlugin", "TrafficExtension", "EnvoyExtensionPolicy")]
    assert sorted(module_kinds) == ["EnvoyExtensionPolicy", "WasmPlugin", "WasmPlugin"], module_kinds
    assert not [d for d in top if re.search("ratelimit|limitador|redis|fleet", d["metadata"]["name"])]
    assert not [name for name, config in manifest_plugin_configs(top) if "fleet" in config.get("quota", {})]
    # Applying optional/ afterwards replaces the module objects (same kind, namespace and
    # name) instead of adding a second module.
    for mesh in ("istio", "envoy-gateway"):
        after = [d for d in kinds(mesh, "WasmPlugin", "optional") + kinds(mesh, "EnvoyExtensionPolicy", "optional")]
        before = [d for d in kinds(mesh, "WasmPlugin") + kinds(mesh, "EnvoyExtensionPolicy")]
        assert [object_key(d) for d in after] == [object_key(d) for d in before]


def schema_for(crd_schemas, doc) -> dict:
    key = (doc.get("apiVersion"), doc.get("kind"))
    schema = crd_schemas.get(key) or BUILTIN_SCHEMAS.get(key)
    assert schema is not None, f"no schema for {key}: neither a reference CRD nor a known built-in kind"
    return schema


def schema_errors(schema, doc) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


@pytest.mark.parametrize("item", ALL_DOCUMENTS, ids=doc_id)
def test_manifest_validates_against_its_crd(crd_schemas, item):
    _, _, doc = item
    assert not schema_errors(schema_for(crd_schemas, doc), doc)
    assert doc["metadata"].get("name")
    if doc["kind"] not in ("Namespace", "GatewayClass"):
        assert doc["metadata"].get("namespace") == "llm-gateway", "every namespaced object in llm-gateway"


@pytest.mark.parametrize("mutate, expected", [
    (lambda d: d["spec"].__setitem__("phse", "AUTHN"), "Additional properties"),
    (lambda d: d["spec"].__setitem__("failStrategy", "FAIL_SOMETIMES"), "is not one of"),
    (lambda d: d["spec"]["vmConfig"]["env"][0].__setitem__("valueFrom", "SECRET"), "is not one of"),
], ids=["unknown-field", "bad-enum", "bad-env-source"])
def test_the_schema_check_refuses_a_broken_wasmplugin(crd_schemas, mutate, expected):
    """The check is not vacuous: a typo or a wrong enum in a shipped manifest is caught."""
    doc = copy.deepcopy(next(d for _, _, d in ALL_DOCUMENTS if d["kind"] == "WasmPlugin"))
    mutate(doc)
    errors = schema_errors(schema_for(crd_schemas, doc), doc)
    assert any(expected in e for e in errors), errors


def test_the_schema_check_refuses_a_broken_patch_policy(crd_schemas):
    doc = copy.deepcopy(next(d for _, _, d in ALL_DOCUMENTS if d["kind"] == "EnvoyPatchPolicy"))
    doc["spec"]["jsonPatches"][0]["type"] = "type.googleapis.com/envoy.config.listener.v3.Listenr"
    assert any("is not one of" in e for e in schema_errors(schema_for(crd_schemas, doc), doc))


# ---------------------------------------------------------------- plugin configs in the manifests


def manifest_plugin_configs(docs=None) -> list[tuple[str, dict]]:
    """(label, plugin config) of every module object in `docs` (default: every manifest)."""
    items = ALL_DOCUMENTS if docs is None else [(DEPLOY / "-", index, doc) for index, doc in enumerate(docs)]
    found = []
    for item in items:
        _, _, doc = item
        spec = doc.get("spec", {})
        if doc["kind"] == "WasmPlugin":
            found.append((doc_id(item), spec["pluginConfig"]))
        elif doc["kind"] == "TrafficExtension":
            found.append((doc_id(item), spec["wasm"]["pluginConfig"]))
        elif doc["kind"] == "EnvoyExtensionPolicy":
            found.extend((f"{doc_id(item)}/wasm/{i}", w["config"]) for i, w in enumerate(spec["wasm"]))
    return found


@pytest.mark.parametrize("name, config", manifest_plugin_configs(), ids=[n for n, _ in manifest_plugin_configs()])
def test_manifest_plugin_config_matches_the_plugin_schema(name, config):
    schema = json.loads(PLUGIN_SCHEMA.read_text())
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(config))
    assert not errors, [e.message for e in errors]


# ---------------------------------------------------------------- rendering helpers


def merge(into: dict, add: dict) -> dict:
    """Protobuf merge semantics: messages merge member by member, lists append, scalars replace."""
    for key, value in add.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge(into[key], value)
        elif isinstance(value, list) and isinstance(into.get(key), list):
            into[key].extend(copy.deepcopy(value))
        else:
            into[key] = copy.deepcopy(value)
    return into


def wasm_filter(name: str, root_id: str, plugin_config: dict, env_keys: list[str], wasm_path: Path,
                failure_policy: str | None, disabled: bool = False) -> dict:
    """The module's HTTP filter as the control planes generate it, with the code as a local file
    (Istio's agent hands Envoy a local file; Envoy Gateway a remote URI of its cache)."""
    config = {
        "name": name,
        "root_id": root_id,
        "vm_config": {
            "vm_id": name,
            "runtime": "envoy.wasm.runtime.v8",
            "code": {"local": {"filename": str(wasm_path)}},
        },
        "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                          "value": json.dumps(plugin_config)},
    }
    if env_keys:
        config["vm_config"]["environment_variables"] = {"host_env_keys": env_keys}
    if failure_policy:
        config["failure_policy"] = failure_policy
    out = {"name": name, "typed_config": {"@type": WASM_TYPE, "config": config}}
    if disabled:
        out["disabled"] = True
    return out


def tls_cluster(name: str, host: str, port: int, sni: str) -> dict:
    return {
        "name": name,
        "type": "LOGICAL_DNS",
        "connect_timeout": "5s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {
            "address": {"socket_address": {"address": host, "port_value": port}}}}]}]},
        "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "sni": sni,
            "common_tls_context": {"validation_context": {
                "trusted_ca": {"filename": "/etc/ssl/certs/ca-certificates.crt"},
                "match_typed_subject_alt_names": [{"san_type": "DNS", "matcher": {"exact": sni}}]}}}},
    }


def bootstrap(listener: dict, clusters: list[dict]) -> dict:
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": harness.free_port()}}},
        "static_resources": {"listeners": [listener], "clusters": clusters},
    }


def hcm_of(listener: dict) -> dict:
    chain = listener.get("default_filter_chain") or listener["filter_chains"][0]
    hcm = chain["filters"][0]
    assert hcm["name"] == HCM
    return hcm["typed_config"]


def filter_names(listener: dict) -> list[str]:
    return [f["name"] for f in hcm_of(listener)["http_filters"]]


def validate(tmp_path: Path, config: dict, monkeypatch) -> None:
    for key, value in PROVIDER_KEYS.items():
        monkeypatch.setenv(key, value)
    path = tmp_path / "envoy.rendered.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    code, output = harness.validate_envoy_config(path)
    assert code == 0, f"envoy --mode validate refused {path}:\n{output[-4000:]}"


def object_key(doc: dict) -> tuple:
    return doc["kind"], doc["metadata"].get("namespace"), doc["metadata"]["name"]


def kinds(folder: str, kind: str, *subfolders: str) -> list[dict]:
    """The objects of `kind` that `kubectl apply -f deploy/<folder>/`, then each of its
    `subfolders`, leaves in the cluster: an object with the kind, namespace and name of an
    earlier one replaces it."""
    installed: dict[tuple, dict] = {}
    for path, _, doc in ALL_DOCUMENTS:
        if mesh_of(path) != folder:
            continue
        under = path.parent.relative_to(DEPLOY / folder).parts
        if not under or under[0] in subfolders:
            installed[object_key(doc)] = doc
    return [doc for doc in installed.values() if doc["kind"] == kind]


# ---------------------------------------------------------------- Istio


def istio_module_filters(variant: str, wasm_path: Path, *subfolders: str) -> dict[str, list[dict]]:
    """phase -> the module filters Istio would put there, from WasmPlugins or TrafficExtensions."""
    by_phase: dict[str, list[dict]] = {"AUTHN": [], "AUTHZ": [], "STATS": []}
    for doc in kinds("istio", variant, *subfolders):
        spec = doc["spec"]
        wasm = spec if variant == "WasmPlugin" else spec["wasm"]
        env = [e["name"] for e in wasm.get("vmConfig", {}).get("env", []) if e.get("valueFrom") == "HOST"]
        name = f"{doc['metadata']['namespace']}.{doc['metadata']['name']}"
        by_phase[spec["phase"]].append(wasm_filter(name, wasm["pluginName"], wasm["pluginConfig"], env,
                                                   wasm_path, wasm.get("failStrategy")))
    return by_phase


def apply_envoy_filter(patch: dict, boot: dict, listener: dict) -> None:
    """One EnvoyFilter configPatch the way Istio applies it; a patch whose anchor is missing
    (Istio would silently skip it) fails the test."""
    apply_to, operation = patch["applyTo"], patch["patch"]["operation"]
    value = patch["patch"]["value"]
    assert patch.get("match", {}).get("context", "GATEWAY") == "GATEWAY" or apply_to == "BOOTSTRAP"
    if apply_to == "BOOTSTRAP":
        assert operation == "MERGE"
        merge(boot, value)
    elif apply_to == "CLUSTER":
        assert operation == "ADD" and "match" in patch
        boot["static_resources"]["clusters"].append(copy.deepcopy(value))
    elif apply_to == "LISTENER":
        assert operation == "MERGE"
        merge(listener, value)
    elif apply_to == "NETWORK_FILTER":
        assert operation == "MERGE" and value["name"] == HCM
        merge(hcm_of(listener), {k: v for k, v in value["typed_config"].items() if k != "@type"})
    elif apply_to == "HTTP_FILTER":
        filters = hcm_of(listener)["http_filters"]
        anchor = patch["match"]["listener"]["filterChain"]["filter"].get("subFilter", {}).get("name")
        if operation == "INSERT_FIRST":
            filters.insert(0, copy.deepcopy(value))
        else:
            names = [f["name"] for f in filters]
            assert anchor in names, f"{operation} anchor {anchor!r} not in the filter chain {names}"
            at = names.index(anchor) + (1 if operation == "INSERT_AFTER" else 0)
            assert operation in ("INSERT_AFTER", "INSERT_BEFORE")
            filters.insert(at, copy.deepcopy(value))
    else:
        raise AssertionError(f"the renderer does not know applyTo {apply_to}")


def istio_routes_and_clusters() -> tuple[list[dict], list[dict]]:
    """VirtualService header matches -> routes to outbound|port||host clusters; ServiceEntry +
    DestinationRule -> DNS clusters originating TLS with the DestinationRule's SNI."""
    routes, clusters = [], []
    for vs in kinds("istio", "VirtualService"):
        for http in vs["spec"]["http"]:
            (match,) = http["match"]
            headers = [{"name": name, "string_match": {"exact": m["exact"]}} for name, m in match["headers"].items()]
            (destination,) = http["route"]
            cluster = f"outbound|{destination['destination']['port']['number']}||{destination['destination']['host']}"
            routes.append({"name": http["name"], "match": {"prefix": "/", "headers": headers},
                           "route": {"cluster": cluster, "timeout": http["timeout"]}})
    tls = {dr["spec"]["host"]: dr["spec"]["trafficPolicy"]["portLevelSettings"] for dr in kinds("istio", "DestinationRule")}
    for se in kinds("istio", "ServiceEntry"):
        for host in se["spec"]["hosts"]:
            for port in se["spec"]["ports"]:
                (setting,) = [s for s in tls[host] if s["port"]["number"] == port["number"]]
                assert setting["tls"]["mode"] == "SIMPLE"
                clusters.append(tls_cluster(f"outbound|{port['number']}||{host}", host, port["targetPort"],
                                            setting["tls"]["sni"]))
    return routes, clusters


# (module variant, subfolders applied after deploy/istio/): the two variants of step 2, and
# the WasmPlugin install with the optional fleet budgets.
ISTIO_INSTALLS = [("WasmPlugin", ()), ("TrafficExtension", ("alternatives",)), ("WasmPlugin", ("optional",))]


@pytest.mark.parametrize("variant, subfolders", ISTIO_INSTALLS,
                         ids=["WasmPlugin", "TrafficExtension", "WasmPlugin+fleet-budgets"])
def test_istio_gateway_renders_to_a_valid_envoy_config(variant, subfolders, wasm_path, tmp_path, monkeypatch):
    phases = istio_module_filters(variant, wasm_path, *subfolders)
    routes, clusters = istio_routes_and_clusters()
    # Istio's gateway chain, reduced to what matters here: the AUTHN-phase extensions, Istio's
    # own filters (not rendered), the STATS-phase extensions, the router.
    listener = {
        "name": "0.0.0.0_8080",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": harness.free_port()}},
        "filter_chains": [{"filters": [{"name": HCM, "typed_config": {
            "@type": HCM_TYPE,
            "stat_prefix": "outbound_0.0.0.0_8080",
            "route_config": {"name": "http.8080", "virtual_hosts": [{"name": "*:80", "domains": ["*"], "routes": routes}]},
            "http_filters": phases["AUTHN"] + phases["AUTHZ"] + phases["STATS"] + [copy.deepcopy(ROUTER)],
        }}]}],
    }
    boot = bootstrap(listener, clusters)
    for envoy_filter in kinds("istio", "EnvoyFilter", *subfolders):
        for patch in envoy_filter["spec"]["configPatches"]:
            apply_envoy_filter(patch, boot, listener)

    # Fleet budgets add no filter: the module calls Limitador itself.
    assert filter_names(listener) == [
        "envoy.filters.http.header_mutation", "envoy.filters.http.json_to_metadata", MODULE_FILTERS[0],
        "envoy.filters.http.buffer", MODULE_FILTERS[1], "envoy.filters.http.router"]
    check_fleet_cluster("istio", subfolders, listener, boot)
    assert listener["per_connection_buffer_limit_bytes"] > module_body_limit()
    assert {t["tag_name"] for t in boot["stats_config"]["stats_tags"]} >= {"gen_ai_token_type", "llm_consumer"}
    assert [r["match"]["headers"][0]["string_match"]["exact"] for r in routes] == ["openai", "anthropic"]
    validate(tmp_path, boot, monkeypatch)


def test_istio_env_keys_come_from_the_secret():
    """Each variable the module reads (vmConfig.env HOST) is set on the proxy from the Secret."""
    (deployment,) = kinds("istio", "Deployment")
    (proxy,) = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "istio-proxy"]
    from_secret = {e["name"] for e in proxy["env"] if e["valueFrom"]["secretKeyRef"]["name"] == "llm-provider-keys"}
    for doc in kinds("istio", "WasmPlugin", "optional") + kinds("istio", "TrafficExtension", "alternatives"):
        wasm = doc["spec"] if doc["kind"] == "WasmPlugin" else doc["spec"]["wasm"]
        wanted = {e["name"] for e in wasm.get("vmConfig", {}).get("env", [])}
        assert wanted <= from_secret
        assert provider_env_names(wasm["pluginConfig"]) <= wanted
    annotation = yaml.safe_load(deployment["spec"]["template"]["metadata"]["annotations"]["proxy.istio.io/config"])
    assert "wasmcustom" in annotation["proxyStatsMatcher"]["inclusionPrefixes"]


# ---------------------------------------------------------------- Envoy Gateway


def pointer(path: str) -> list:
    return [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]] if path else []


def json_patch(document, operation: dict):
    """RFC 6902 add / replace / remove / test, enough for our EnvoyPatchPolicies."""
    op, parts = operation["op"], pointer(operation.get("path", ""))
    if not parts:
        assert op == "add"
        return copy.deepcopy(operation["value"])
    parent = document
    for part in parts[:-1]:
        parent = parent[int(part)] if isinstance(parent, list) else parent[part]
    last = parts[-1]
    if op == "test":
        current = parent[int(last)] if isinstance(parent, list) else parent.get(last)
        assert current == operation["value"], f"JSON patch test {operation['path']}: {current!r} != {operation['value']!r}"
    elif op == "add" and isinstance(parent, list):
        parent.insert(len(parent) if last == "-" else int(last), copy.deepcopy(operation["value"]))
    elif op in ("add", "replace"):
        if op == "replace":
            assert (int(last) < len(parent)) if isinstance(parent, list) else last in parent
        parent[int(last) if isinstance(parent, list) else last] = copy.deepcopy(operation["value"])
    elif op == "remove":
        del parent[int(last) if isinstance(parent, list) else last]
    else:
        raise AssertionError(f"the renderer does not know JSON patch op {op}")
    return document


def eg_listener(wasm_path: Path, *subfolders: str) -> tuple[dict, list[dict]]:
    """The listener and clusters Envoy Gateway generates for 01/03/05 (shape of the reference
    envoy-gateway/xds-wasm/wasm.listeners.yaml and wasm.routes.yaml): the EnvoyExtensionPolicy's
    wasm filters disabled on the listener and enabled per route, the HTTPRoute's rules as
    header-matched routes to one cluster per rule, TLS to each Backend per BackendTLSPolicy."""
    (policy,) = kinds("envoy-gateway", "EnvoyExtensionPolicy", *subfolders)
    filters = []
    for index, wasm in enumerate(policy["spec"]["wasm"]):
        name = EG_WASM.format(index)
        filters.append(wasm_filter(name, wasm["rootID"], wasm["config"], wasm.get("env", {}).get("hostKeys", []),
                                   wasm_path, None, disabled=True))
    enable = {f["name"]: {"@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig", "config": {}}
              for f in filters}
    backends = {b["metadata"]["name"]: b["spec"]["endpoints"][0]["fqdn"] for b in kinds("envoy-gateway", "Backend")}
    tls = {t["spec"]["targetRefs"][0]["name"]: t["spec"]["validation"]["hostname"]
           for t in kinds("envoy-gateway", "BackendTLSPolicy")}
    routes, clusters = [], []
    (route,) = kinds("envoy-gateway", "HTTPRoute")
    for index, rule in enumerate(route["spec"]["rules"]):
        cluster = f"httproute/llm-gateway/{route['metadata']['name']}/rule/{index}"
        (match,) = rule["matches"]
        headers = [{"name": h["name"], "string_match": {"exact": h["value"]}} for h in match.get("headers", [])
                   if h["type"] == "Exact"]
        entry = {"name": f"{cluster}/match/0", "match": {"prefix": "/", "headers": headers},
                 "typed_per_filter_config": enable}
        if not rule.get("backendRefs"):
            # The catch-all: Envoy Gateway answers a rule without backends itself (500).
            routes.append({**entry, "direct_response": {"status": 500}})
            continue
        routes.append({**entry, "route": {"cluster": cluster, "timeout": rule["timeouts"]["request"]}})
        (backend_ref,) = rule["backendRefs"]
        fqdn = backends[backend_ref["name"]]
        clusters.append(tls_cluster(cluster, fqdn["hostname"], fqdn["port"], tls[backend_ref["name"]]))
    listener = {
        "name": "llm-gateway/llm-gateway/http",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": harness.free_port()}},
        "default_filter_chain": {"filters": [{"name": HCM, "typed_config": {
            "@type": HCM_TYPE,
            "stat_prefix": "http-10080",
            "route_config": {"name": "llm-gateway/llm-gateway/http", "virtual_hosts": [
                {"name": "llm-gateway/llm-gateway/http/*", "domains": ["*"], "routes": routes}]},
            "http_filters": filters + [copy.deepcopy(ROUTER)],
        }}]},
    }
    return listener, clusters


@pytest.mark.parametrize("subfolders", [(), ("optional",)], ids=["base", "fleet-budgets"])
def test_envoy_gateway_renders_to_a_valid_envoy_config(subfolders, wasm_path, tmp_path, monkeypatch):
    listener, clusters = eg_listener(wasm_path, *subfolders)
    policies = sorted(kinds("envoy-gateway", "EnvoyPatchPolicy", *subfolders), key=lambda p: p["spec"].get("priority", 0))
    for policy in policies:
        for patch in policy["spec"]["jsonPatches"]:
            if patch["type"].endswith("listener.v3.Listener"):
                assert patch["name"] == listener["name"]
                json_patch(listener, patch["operation"])
            elif patch["type"].endswith("cluster.v3.Cluster"):
                clusters.append(json_patch(None, patch["operation"]))
            else:
                raise AssertionError(f"the renderer does not know {patch['type']}")
    (proxy,) = kinds("envoy-gateway", "EnvoyProxy")
    boot = merge(bootstrap(listener, clusters), yaml.safe_load(proxy["spec"]["bootstrap"]["value"]))

    # header_mutation first, as on Istio; fleet budgets add no filter.
    assert filter_names(listener) == [
        "envoy.filters.http.header_mutation", "envoy.filters.http.json_to_metadata", EG_WASM.format(0),
        "envoy.filters.http.buffer", EG_WASM.format(1), "envoy.filters.http.router"]
    assert hcm_of(listener)["http_filters"][0]["typed_config"]["mutations"]["request_mutations"] == [
        {"remove": "x-llm-gateway-cluster"}]
    check_fleet_cluster("envoy-gateway", subfolders, listener, boot)
    http_filters = hcm_of(listener)["http_filters"]
    assert all(f["typed_config"]["config"]["failure_policy"] == "FAIL_RELOAD" for f in http_filters
               if f["name"].startswith("envoy.filters.http.wasm"))
    assert listener["per_connection_buffer_limit_bytes"] > module_body_limit()
    assert {t["tag_name"] for t in boot["stats_config"]["stats_tags"]} >= {"gen_ai_token_type", "llm_consumer"}
    validate(tmp_path, boot, monkeypatch)


def test_envoy_gateway_patches_refuse_an_unexpected_chain(wasm_path):
    """The `test` operations stop the patch when another policy changed the filter chain."""
    listener, _ = eg_listener(wasm_path)
    hcm_of(listener)["http_filters"].insert(0, {"name": "envoy.filters.http.jwt_authn"})
    (policy,) = [p for p in kinds("envoy-gateway", "EnvoyPatchPolicy") if p["metadata"]["name"].endswith("native-filters")]
    with pytest.raises(AssertionError, match="JSON patch test"):
        for patch in policy["spec"]["jsonPatches"]:
            json_patch(listener, patch["operation"])


def test_envoy_gateway_env_keys_come_from_the_secret():
    (proxy,) = kinds("envoy-gateway", "EnvoyProxy")
    env = proxy["spec"]["provider"]["kubernetes"]["envoyDeployment"]["container"]["env"]
    from_secret = {e["name"] for e in env if e["valueFrom"]["secretKeyRef"]["name"] == "llm-provider-keys"}
    for subfolders in ((), ("optional",)):
        (policy,) = kinds("envoy-gateway", "EnvoyExtensionPolicy", *subfolders)
        for wasm in policy["spec"]["wasm"]:
            wanted = set(wasm.get("env", {}).get("hostKeys", []))
            assert wanted <= from_secret
            assert provider_env_names(wasm["config"]) <= wanted


# ---------------------------------------------------------------- fleet-wide budgets

FLEET_DESCRIPTOR_KEYS = {"llm_consumer", "llm_plan", "llm_model"}  # src/quota/fleet.rs
H2_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
# What an HTTP/2 :authority may hold (RFC 3986 reg-name, port): the module sends the cluster
# name as the calls' :authority, and Limitador's HTTP/2 server (Rust h2 and its `http`
# crate) resets a stream whose authority has anything else, such as the `|` of Istio's
# `outbound|8081||host` cluster names.
AUTHORITY = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=:@-]+")


def rendered_module_config(listener: dict) -> dict:
    """The plugin config of the first module filter of the rendered chain, as Envoy gets it."""
    module = next(f for f in hcm_of(listener)["http_filters"] if f["name"] in (MODULE_FILTERS[0], EG_WASM.format(0)))
    return json.loads(module["typed_config"]["config"]["configuration"]["value"])


def check_fleet_cluster(mesh: str, subfolders: tuple, listener: dict, boot: dict) -> None:
    """With optional/: the module's quota.fleet.cluster is in the rendered config, speaks HTTP/2
    to the Limitador Service's gRPC port, and is a valid :authority. Without: no fleet at all."""
    config = rendered_module_config(listener)
    clusters = {c["name"]: c for c in boot["static_resources"]["clusters"]}
    if "optional" not in subfolders:
        assert "fleet" not in config.get("quota", {})
        assert not [name for name in clusters if "limitador" in name]
        return
    fleet = config["quota"]["fleet"]
    assert fleet["cluster"] in clusters, f"quota.fleet.cluster {fleet['cluster']!r} not in {sorted(clusters)}"
    assert AUTHORITY.fullmatch(fleet["cluster"])
    cluster = clusters[fleet["cluster"]]
    options = cluster["typed_extension_protocol_options"][H2_OPTIONS]
    assert "http2_protocol_options" in options["explicit_http_config"]
    (locality,) = cluster["load_assignment"]["endpoints"]
    (endpoint,) = locality["lb_endpoints"]
    address = endpoint["endpoint"]["address"]["socket_address"]
    (service,) = [s for s in kinds(mesh, "Service", "optional") if s["metadata"]["name"] == "limitador"]
    (grpc,) = [p for p in service["spec"]["ports"] if p.get("appProtocol") == "grpc"]
    assert grpc["name"] == "grpc"
    assert address == {"address": f"limitador.{service['metadata']['namespace']}.svc.cluster.local",
                       "port_value": grpc["port"]}
    (limits,) = kinds(mesh, "ConfigMap", "optional")
    assert {limit["namespace"] for limit in yaml.safe_load(limits["data"]["limits.yaml"])} == {fleet["domain"]}


@pytest.mark.parametrize("mesh", ["istio", "envoy-gateway"])
def test_the_fleet_step_adds_quota_fleet_to_the_module_and_changes_nothing_else(mesh):
    """optional/05-fleet-budgets.yaml repeats the module object of step 2 (so that applying it
    replaces that object): the two must not drift apart."""
    kind = "WasmPlugin" if mesh == "istio" else "EnvoyExtensionPolicy"
    before = {object_key(d): d for d in kinds(mesh, kind)}
    after = {object_key(d): d for d in kinds(mesh, kind, "optional")}
    changed = [key for key in after if after[key] is not before[key]]
    assert len(changed) == 1, changed
    (key,) = changed
    expected = copy.deepcopy(before[key])
    config = expected["spec"]["pluginConfig"] if kind == "WasmPlugin" else expected["spec"]["wasm"][0]["config"]
    actual = after[key]["spec"]["pluginConfig"] if kind == "WasmPlugin" else after[key]["spec"]["wasm"][0]["config"]
    config.setdefault("quota", {})["fleet"] = actual["quota"]["fleet"]
    assert after[key] == expected


@pytest.mark.parametrize("mesh", ["istio", "envoy-gateway"])
def test_the_limitador_limits_read_what_the_module_sends(mesh):
    """Each limit of the ConfigMap reads only descriptor entries the module sends, in the
    namespace the module asks for; a typo there would make a limit that never matches."""
    (limits,) = kinds(mesh, "ConfigMap", "optional")
    entries = yaml.safe_load(limits["data"]["limits.yaml"])
    assert entries
    for limit in entries:
        assert set(limit) <= {"namespace", "name", "max_value", "seconds", "conditions", "variables"}
        assert isinstance(limit["max_value"], int) and limit["max_value"] > 0
        assert isinstance(limit["seconds"], int) and limit["seconds"] > 0
        read = [key for text in limit["conditions"] + limit["variables"]
                for key in re.findall(r"descriptors\[0\]\['([^']+)'\]", text)]
        assert read and set(read) <= FLEET_DESCRIPTOR_KEYS, limit
    assert len({limit["name"] for limit in entries}) == len(entries)


@pytest.mark.parametrize("mesh", ["istio", "envoy-gateway"])
def test_limitador_and_redis_are_wired_together(mesh):
    """Limitador's Service selects its pods and serves the port it listens on; it reads the
    ConfigMap's limits file and the Redis Service's address."""
    services = {s["metadata"]["name"]: s for s in kinds(mesh, "Service", "optional")}
    deployments = {d["metadata"]["name"]: d for d in kinds(mesh, "Deployment", "optional")}
    for name in ("limitador", "redis"):
        pod = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert services[name]["spec"]["selector"].items() <= pod.items()
        assert deployments[name]["spec"]["selector"]["matchLabels"].items() <= pod.items()
    (limitador,) = deployments["limitador"]["spec"]["template"]["spec"]["containers"]
    command = limitador["command"] + limitador.get("args", [])
    assert command[0] == "limitador-server"
    grpc_port = int(command[command.index("-p") + 1])
    assert grpc_port in {p["targetPort"] for p in services["limitador"]["spec"]["ports"] if p["name"] == "grpc"}
    assert grpc_port in {p["containerPort"] for p in limitador["ports"]}
    (mount,) = limitador["volumeMounts"]
    (volume,) = deployments["limitador"]["spec"]["template"]["spec"]["volumes"]
    (config_map,) = kinds(mesh, "ConfigMap", "optional")
    assert volume["name"] == mount["name"] and volume["configMap"]["name"] == config_map["metadata"]["name"]
    limits_file = next(a for a in command if a.endswith(".yaml"))
    assert Path(limits_file).parent == Path(mount["mountPath"])
    assert Path(limits_file).name in config_map["data"]
    storage = command[command.index(limits_file) + 1:]
    assert storage[0] == "redis"
    (redis_port,) = services["redis"]["spec"]["ports"]
    assert storage[1] == f"redis://redis:{redis_port['port']}"


# ---------------------------------------------------------------- shared facts


def provider_env_names(plugin_config: dict) -> set[str]:
    names = set()
    for provider in plugin_config.get("providers", {}).values():
        auth = provider["auth"]
        names.update(v for k, v in auth.items() if k == "env" or k.endswith("_env"))
    return names


def module_body_limit() -> int:
    """The module's default limits.max_request_body_bytes (src/config), 8 MiB."""
    return 8 * 1024 * 1024


# ---------------------------------------------------------------- the stock Envoy configs


@pytest.mark.parametrize("name", ["demo.yaml", "minimal.yaml", "ratelimit-example.yaml"])
def test_stock_envoy_config_routes_by_header_match_and_validates(name, wasm_path, tmp_path, monkeypatch):
    """envoy/*.yaml use the same header-matched routes as deploy/ (no cluster_header), and load
    in `envoy --mode validate` with the module (validate mode binds no port)."""
    text = (REPO_ROOT / "envoy" / name).read_text()
    config = yaml.safe_load(text)
    (listener,) = config["static_resources"]["listeners"]
    routes = [r for vh in hcm_of(listener)["route_config"]["virtual_hosts"] for r in vh["routes"]]
    clusters = {c["name"] for c in config["static_resources"]["clusters"]}
    assert routes
    for route in routes:
        assert "cluster_header" not in route["route"]
        (header,) = route["match"]["headers"]
        assert header["name"] == "x-llm-gateway-cluster"
        assert header["string_match"]["exact"] == route["route"]["cluster"] in clusters
    for original in ("target/wasm32-wasip1/release/llm_gateway.wasm", "/etc/envoy/llm_gateway.wasm"):
        text = text.replace(f"filename: {original}", f"filename: {wasm_path}")
    assert str(wasm_path) in text
    path = tmp_path / name
    path.write_text(text)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-validate-openai")
    code, output = harness.validate_envoy_config(path)
    assert code == 0, f"envoy --mode validate refused envoy/{name}:\n{output[-4000:]}"
