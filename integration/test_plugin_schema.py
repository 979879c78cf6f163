"""schema/plugin-config.schema.json (JSON Schema 2020-12) agrees with the module's parser.

- Every plugin config we ship or test with validates: the `configuration` of each wasm filter in
  envoy/*.yaml, the ```json snippets of examples/*/README.md (complete configs, `prompts`
  sections, and member fragments merged into the complete config as tests/examples.rs does),
  the configs of the integration tests, and (test_manifests.py) the ones in deploy/.
- Configs the module refuses (real Envoy, `envoy --mode validate`, which runs the module's
  on_configure) are refused by the schema too, where JSON Schema can say it: unknown fields
  (the Rust types use deny_unknown_fields), unknown enum values, malformed key digests.
"""
from __future__ import annotations

import copy
import importlib
import inspect
import json

import jsonschema
import pytest
import yaml

import harness

REPO_ROOT = harness.REPO_ROOT
SCHEMA_PATH = REPO_ROOT / "schema" / "plugin-config.schema.json"


@pytest.fixture(scope="module")
def validator():
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def errors(validator, config) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(config)]


# ---------------------------------------------------------------- configs we ship or test with


def wasm_configurations(node):
    """Every `configuration.value` of an envoy.filters.http.wasm filter in a parsed Envoy config."""
    if isinstance(node, dict):
        config = node.get("config") if node.get("@type", "").endswith("wasm.v3.Wasm") else None
        if config and "configuration" in config:
            yield config["configuration"]["value"]
        for value in node.values():
            yield from wasm_configurations(value)
    elif isinstance(node, list):
        for value in node:
            yield from wasm_configurations(value)


def envoy_configs() -> list[tuple[str, object]]:
    found = []
    for path in sorted((REPO_ROOT / "envoy").glob("*.yaml")):
        for index, text in enumerate(wasm_configurations(yaml.safe_load(path.read_text()))):
            found.append((f"envoy/{path.name}#{index}", json.loads(text)))
    return found


def json_blocks(readme: str) -> list[str]:
    return [block.split("```")[0] for block in readme.split("```json\n")[1:]]


def schema_members(*path: str) -> set[str]:
    node = json.loads(SCHEMA_PATH.read_text())["$defs"]["gateway"]
    for name in path:
        node = node["properties"][name]
    return set(node["properties"])


def example_configs() -> list[tuple[str, object]]:
    """Complete configs, `prompts` sections (wrapped as {"prompts": ...} in a complete config),
    and fragments ("consumers": {...}, or a `prompts` member such as "forced_templates": [...])
    merged into the README's complete config. Fragments of request bodies are not configs."""
    top, prompts = schema_members(), schema_members("prompts")
    found = []
    for readme in sorted((REPO_ROOT / "examples").glob("*/README.md")):
        name = readme.parent.name
        blocks = json_blocks(readme.read_text())
        parsed = []
        for block in blocks:
            try:
                parsed.append(json.loads(block))
            except json.JSONDecodeError:
                parsed.append(None)
        full = next((v for v in parsed if isinstance(v, dict) and "providers" in v), None)
        for index, (block, value) in enumerate(zip(blocks, parsed)):
            label = f"examples/{name}#{index}"
            if isinstance(value, dict) and "providers" in value:
                found.append((label, value))
            elif isinstance(value, dict) and "prompts" in value:
                found.append((label, {**(full or MINIMAL), **value}))
            elif value is None and full is not None:
                fragment = json.loads("{" + block + "}")
                merged = copy.deepcopy(full)
                if set(fragment) <= prompts - top:
                    merged.setdefault("prompts", {}).update(fragment)
                    found.append((label, merged))
                    continue
                if not set(fragment) <= top:
                    continue
                for key, add in fragment.items():
                    if isinstance(merged.get(key), dict) and isinstance(add, dict):
                        merged[key].update(add)
                    else:
                        merged[key] = add
                found.append((label, merged))
    return found


MINIMAL = {"providers": {"p": {"kind": "openai", "cluster": "c", "auth": {"type": "bearer", "env": "K"}}},
           "models": {"m": {"provider": "p", "model": "gpt-4o-mini"}}}

INTEGRATION_MODULES = ["test_admission", "test_budgets", "test_faults", "test_fleet_budget", "test_gateway",
                       "test_identity", "test_prompts", "test_protocols", "test_translation", "test_fallback",
                       "test_fallback_error", "test_fallback_skip",
                       "test_fallback_first_event"]


def integration_configs() -> list[tuple[str, object]]:
    """Module-level *CONFIG dicts and config()-style builders (int parameters get 1000) of the
    integration tests."""
    found = []
    for module_name in INTEGRATION_MODULES:
        module = importlib.import_module(module_name)
        for name, value in vars(module).items():
            if name.endswith("CONFIG") and isinstance(value, dict) and "providers" in value:
                found.append((f"{module_name}.{name}", value))
            elif (name == "config" or name.endswith("_config")) and inspect.isfunction(value) \
                    and value.__module__ == module_name:
                params = inspect.signature(value).parameters.values()
                required = [p for p in params if p.default is inspect.Parameter.empty]
                if all(p.annotation in (int, "int") for p in required):
                    built = value(**{p.name: 1000 for p in required})
                    if isinstance(built, dict) and "providers" in built:
                        found.append((f"{module_name}.{name}()", built))
    return found


def test_every_source_of_configs_is_found():
    assert len(envoy_configs()) == 4, "demo (module + signer), minimal, ratelimit-example"
    assert len(example_configs()) >= 6
    assert len(integration_configs()) >= 10


@pytest.mark.parametrize("label, config", envoy_configs() + example_configs(),
                         ids=[label for label, _ in envoy_configs() + example_configs()])
def test_shipped_config_validates(validator, label, config):
    assert not errors(validator, config)


def test_every_integration_test_config_validates(validator):
    bad = {label: errors(validator, config) for label, config in integration_configs()}
    assert not {k: v for k, v in bad.items() if v}


# ---------------------------------------------------------------- configs the module refuses

BASE = {
    "providers": {"fake": {"kind": "openai", "cluster": "fake_openai", "auth": {"type": "bearer", "env": "TEST_OPENAI_KEY"}}},
    "models": {"gpt": {"provider": "fake", "model": "gpt-4o-mini"}},
    "consumers": {"team": {"api_keys": ["4d2e171bc8fca533a8af98f8a179884e4f010cb96ceeee71482d9e5af3c97475"],
                           "plan": "p"}},
    "plans": {"p": {"limits": [{"name": "tpm", "window": "minute", "tokens": 1000}]}},
}


def mutated(change):
    config = copy.deepcopy(BASE)
    change(config)
    return config


REFUSED = {
    # An inline secret where the module only takes the name of an environment variable.
    "inline-provider-key": mutated(lambda c: c["providers"]["fake"].__setitem__("api_key", "sk-live-123")),
    "auth-value-not-env": mutated(lambda c: c["providers"]["fake"].__setitem__("auth", {"type": "bearer", "value": "sk"})),
    "unknown-top-level": mutated(lambda c: c.__setitem__("provider", {})),
    "unknown-kind": mutated(lambda c: c["providers"]["fake"].__setitem__("kind", "openai2")),
    "unknown-window": mutated(lambda c: c["plans"]["p"]["limits"][0].__setitem__("window", "week")),
    "two-metrics-in-a-limit": mutated(lambda c: c["plans"]["p"]["limits"][0].__setitem__("requests", 5)),
    "uppercase-key-digest": mutated(lambda c: c["consumers"]["team"]["api_keys"].__setitem__(0, "4D" + "0" * 62)),
    "unknown-prompts-member": mutated(lambda c: c.__setitem__("prompts", {"guardz": {}})),
    "fallback-weighted-target": mutated(lambda c: c.update(
        providers={**c["providers"], "fake2": dict(c["providers"]["fake"])},
        models={"gpt": {"targets": [{"provider": "fake", "model": "a", "weight": 1}, {"provider": "fake2", "model": "b"}],
                        "fallback": {"cluster": "chain"}}})),
    "fallback-unknown-member": mutated(lambda c: c.update(
        providers={**c["providers"], "fake2": dict(c["providers"]["fake"])},
        models={"gpt": {"targets": [{"provider": "fake", "model": "a"}, {"provider": "fake2", "model": "b"}],
                        "fallback": {"cluster": "chain", "retries": 2}}})),
    "fallback-on-error-with-space": mutated(lambda c: c.update(
        providers={**c["providers"], "fake2": dict(c["providers"]["fake"])},
        models={"gpt": {"targets": [{"provider": "fake", "model": "a"}, {"provider": "fake2", "model": "b"}],
                        "fallback": {"cluster": "chain", "on_error": ["context length"]}}})),
    "fallback-on-error-timeout-zero": mutated(lambda c: c.update(
        providers={**c["providers"], "fake2": dict(c["providers"]["fake"])},
        models={"gpt": {"targets": [{"provider": "fake", "model": "a"}, {"provider": "fake2", "model": "b"}],
                        "fallback": {"cluster": "chain", "on_error": ["x"], "on_error_timeout_ms": 0}}})),
    "key-pool-not-a-list": mutated(lambda c: c["providers"]["fake"]["auth"].__setitem__("pool", "TEST_OPENAI_KEY")),
    "fallback-without-targets": mutated(lambda c: c["models"]["gpt"].__setitem__("fallback", {"cluster": "chain"})),
    "bedrock-without-region": mutated(lambda c: c["providers"]["fake"].update(
        kind="bedrock", auth={"type": "aws-sigv4", "access_key_env": "TEST_OPENAI_KEY", "secret_key_env": "TEST_OPENAI_KEY"})),
    # quota.fleet (src/quota/fleet.rs): the cluster is required and not blank, the domain not
    # empty, the timeout 1..60000 ms, failure_mode deny or allow, nothing else.
    "fleet-without-cluster": mutated(lambda c: c.__setitem__("quota", {"fleet": {"domain": "llm-gateway"}})),
    "fleet-blank-cluster": mutated(lambda c: c.__setitem__("quota", {"fleet": {"cluster": " "}})),
    "fleet-empty-domain": mutated(lambda c: c.__setitem__("quota", {"fleet": {"cluster": "rls", "domain": ""}})),
    "fleet-zero-timeout": mutated(lambda c: c.__setitem__("quota", {"fleet": {"cluster": "rls", "timeout_ms": 0}})),
    "fleet-timeout-over-a-minute": mutated(lambda c: c.__setitem__("quota", {"fleet": {"cluster": "rls", "timeout_ms": 60001}})),
    "fleet-unknown-failure-mode": mutated(lambda c: c.__setitem__("quota", {"fleet": {"cluster": "rls", "failure_mode": "open"}})),
    "fleet-unknown-member": mutated(lambda c: c.__setitem__("quota", {"fleet": {"cluster": "rls", "hits_addend": 1}})),
    "fleet-authority-not-a-host": mutated(lambda c: c.__setitem__("quota", {"fleet": {"cluster": "rls", "authority": "a|b"}})),
}


@pytest.fixture(scope="module")
def rejects(wasm_path, tmp_path_factory):
    factory = harness.GatewayFactory(harness.free_port(), wasm_path, tmp_path_factory.mktemp("schema"))
    return lambda config: factory.rejects(config, mode="validate")


def test_the_base_of_the_refused_configs_is_accepted(validator, rejects):
    """The control: BASE itself passes both the schema and the module, so each refusal below
    is due to its one change."""
    assert not errors(validator, BASE)
    code, log = rejects(BASE)
    assert code == 0, log[-3000:]


FLEET_ACCEPTED = {
    "fleet-cluster-only": {"cluster": "rls"},
    "fleet-complete-deny": {"cluster": "llm-gateway-limitador", "domain": "llm-gateway", "timeout_ms": 60000,
                            "failure_mode": "deny"},
    "fleet-complete-allow": {"cluster": "rls", "domain": "d", "timeout_ms": 1, "failure_mode": "allow"},
    "fleet-istio-cluster-with-authority": {"cluster": "outbound|8081||limitador.llm-gateway.svc.cluster.local",
                                           "authority": "limitador.llm-gateway.svc.cluster.local:8081"},
}


@pytest.mark.parametrize("name", FLEET_ACCEPTED)
def test_a_fleet_config_the_module_accepts_the_schema_accepts(validator, rejects, name):
    """The edges of quota.fleet (timeout 1 and 60000, both failure modes, only the cluster)
    pass both, so the refusals below are not the schema being stricter than the module."""
    config = mutated(lambda c: c.__setitem__("quota", {"fleet": FLEET_ACCEPTED[name]}))
    assert not errors(validator, config)
    code, log = rejects(config)
    assert code == 0, log[-3000:]


@pytest.mark.parametrize("name", REFUSED)
def test_what_the_module_refuses_the_schema_refuses(validator, rejects, name):
    config = REFUSED[name]
    code, log = rejects(config)
    assert code != 0 and "invalid plugin configuration" in log, log[-3000:]
    assert errors(validator, config), f"the schema accepts {name}, which the module refuses"


def test_the_signer_instance_config_validates(validator):
    assert not errors(validator, {"role": "apply-deferred-headers"})
    assert errors(validator, {"role": "sign-everything"})


def test_the_first_event_watcher_config_validates(validator, rejects):
    assert not errors(validator, {"role": "first-event"})
    code, log = rejects({"role": "first-event"})
    assert code == 0, log[-3000:]
    assert errors(validator, {"role": "first-event", "gateway": {}})


def test_the_attempt_instance_config_validates(validator, rejects):
    """The per-attempt instance's configuration wraps the gateway's; the module accepts a
    fallback chain there and the schema does too."""
    chain = copy.deepcopy(BASE)
    chain["providers"]["fake2"] = dict(chain["providers"]["fake"])
    chain["models"]["gpt"] = {"targets": [{"provider": "fake", "model": "a"}, {"provider": "fake2", "model": "b"}],
                              "fallback": {"cluster": "chain", "on_status": [429, 503]}}
    assert not errors(validator, chain)
    attempt = {"role": "attempt", "gateway": chain}
    assert not errors(validator, attempt)
    code, log = rejects(attempt)
    assert code == 0, log[-3000:]
    pooled = copy.deepcopy(chain)
    pooled["providers"]["fake"]["auth"]["pool"] = ["TEST_OPENAI_KEY"]
    assert not errors(validator, {"role": "attempt", "gateway": pooled})
    assert errors(validator, {"role": "attempt"})
    assert errors(validator, {"role": "attempt", "gateway": chain, "extra": 1})
