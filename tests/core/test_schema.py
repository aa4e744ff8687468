"""The published JSON Schema: current, valid, and in agreement with the parser."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

import jsonschema
import pytest
import yaml

from executor.config import schema as schema_module
from executor.config.fields import FIELDS, REQUIRED
from executor.config.parse import parse_config
from executor.config.schema import SCHEMA_FILE, build_schema, load_schema, schema_text
from executor.model.problems import ConfigError

from .conftest import RESOURCES, ROOT, one_task
from .test_parse import LONGEST_KEY, TOO_LONG_KEYS


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_shipped_file_is_the_generated_one() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema_text(), (
        "executor/config/job-config.schema.json is stale: "
        "run python -m executor.config.schema > executor/config/job-config.schema.json"
    )


def test_module_prints_the_schema() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "executor.config.schema"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout) == build_schema()


def test_every_field_of_the_parser_is_in_the_schema_with_a_description() -> None:
    schema = build_schema()
    objects = {
        "config": schema,
        **{kind: schema["$defs"][title] for kind, title in schema_module.DEFINITIONS.items()},
    }
    assert set(objects) == set(FIELDS)
    for kind, obj in objects.items():
        assert list(obj["properties"]) == list(FIELDS[kind])
        assert obj.get("required", []) == list(REQUIRED.get(kind, ()))
        assert obj["additionalProperties"] is False
        assert obj["description"]
        for name, prop in obj["properties"].items():
            assert prop["description"], f"{kind}.{name} has no description"


def test_a_field_missing_from_the_schema_tables_fails_the_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(FIELDS, "env", (*FIELDS["env"], "fromFile"))
    with pytest.raises(RuntimeError, match="fromFile"):
        build_schema()


def test_every_sample_config_validates(validator: jsonschema.Draft202012Validator) -> None:
    found = sorted(RESOURCES.rglob("job/config.yaml"))
    assert found
    for path in found:
        errors = [e.message for e in validator.iter_errors(yaml.safe_load(path.read_text()))]
        assert errors == [], f"{path}: {errors}"


def load(text: str) -> Any:
    return yaml.safe_load(textwrap.dedent(text))


INVALID = {
    "unknown field": one_task("image: alpine\nimagePulPolicy: Always"),
    "unknown root field": "apiVersion: v2\nkind: Job\nactions: [{name: a, events: [{name: e}], tasks: [{name: t, image: i}]}]\n",
    "wrong type of cmd": one_task("image: alpine\ncmd: echo"),
    "wrong type of maxPollDuration": one_task("image: alpine\nmaxPollDuration: '300'"),
    "zero maxPollDuration": one_task("image: alpine\nmaxPollDuration: 0"),
    "bad valueFrom": one_task("image: alpine\nenv: [{name: X, valueFrom: env, value: x}]"),
    "event value missing": one_task("image: alpine\nenv: [{name: X, valueFrom: event}]"),
    "as for a secret": one_task("image: alpine\nenv: [{name: s, valueFrom: secret, as: json}]"),
    "bad secret name": one_task("image: alpine\nenv: [{name: S_1, valueFrom: secret}]"),
    "bad env name": one_task("image: alpine\nenv: [{name: 'A=B', valueFrom: string, value: x}]"),
    "bad as": one_task("image: alpine\nenv: [{name: X, valueFrom: event, value: $, as: xml}]"),
    "other apiVersion": "apiVersion: v1\nactions: [{name: a, events: [{name: e}], tasks: [{name: t, image: i}]}]\n",
    "missing apiVersion": "actions: [{name: a, events: [{name: e}], tasks: [{name: t, image: i}]}]\n",
    "bad quantity": one_task("image: alpine\nresources: {limits: {cpu: lots}}"),
    "bad pull policy": one_task("image: alpine\nimagePullPolicy: always"),
    "relative workingDir": one_task("image: alpine\nworkingDir: keptn"),
    "bad namespace": one_task("image: alpine\nnamespace: Carts"),
    "security context typo": one_task("image: alpine\nsecurityContext: {runAsUsr: 1}"),
    "security context type": one_task("image: alpine\nsecurityContext: {runAsUser: root}"),
    "actions a mapping": "apiVersion: v2\nactions: {}\n",
    "empty silent": "apiVersion: v2\nactions: [{name: a, silent: null, events: [{name: e}], tasks: [{name: t, image: i}]}]\n",
    "missing image": "apiVersion: v2\nactions: [{name: a, events: [{name: e}], tasks: [{name: t}]}]\n",
    "image with spaces": one_task("image: two words"),
    "jsonpath without property": "apiVersion: v2\nactions: [{name: a, events: [{name: e, jsonpath: {match: x}}], tasks: [{name: t, image: i}]}]\n",
    "annotation value a list": one_task("image: alpine\nannotations: {k: [1]}"),
    "negative ttl": one_task("image: alpine\nttlSecondsAfterFinished: -1"),
    "relative secret mountPath": one_task("image: alpine\nsecretFiles: [{name: k, mountPath: etc/k}]"),
    "secret mountPath in /keptn": one_task("image: alpine\nsecretFiles: [{name: k, mountPath: /keptn/k}]"),
    "secret mountPath /keptn": one_task("image: alpine\nsecretFiles: [{name: k, mountPath: /keptn}]"),
    "secret file without mountPath": one_task("image: alpine\nsecretFiles: [{name: k}]"),
    "bad secret file name": one_task("image: alpine\nsecretFiles: [{name: K_1, mountPath: /etc/k}]"),
    "empty continueOnError": one_task("image: alpine\ncontinueOnError:"),
    "continueOnError a string": one_task("image: alpine\ncontinueOnError: 'yes'"),
}

VALID = {
    "minimal": one_task("image: alpine"),
    "empty resources": one_task("image: alpine\nresources:"),
    "empty resources mapping": one_task("image: alpine\nresources: {}"),
    "numeric quantities": one_task(
        "image: alpine\nresources: {limits: {cpu: 1, memory: 512Mi}, requests: {cpu: 0.5}}"
    ),
    "annotations as list": one_task("image: alpine\nannotations: [{a: b}, {c: d}]"),
    "number as literal": one_task("image: alpine\nenv: [{name: N, valueFrom: string, value: 3}]"),
    "nulls as absent": one_task("image: alpine\ncmd:\nenv:\nnamespace:\nmaxPollDuration:"),
    "boolean match": "apiVersion: v2\nactions: [{name: a, events: [{name: e, jsonpath: {property: $.x, match: true}}], tasks: [{name: t, image: i}]}]\n",
    "secret": one_task("image: alpine\nenv: [{name: locust-secret, valueFrom: secret}]"),
    "secret files": one_task(
        "image: alpine\nsecretFiles: [{name: kube, mountPath: /etc/kube}, {name: k2, mountPath: /keptnx}]"
    ),
    "optional task": one_task("image: alpine\ncontinueOnError: true"),
}


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_configs_fail_both_the_schema_and_the_parser(
    name: str, validator: jsonschema.Draft202012Validator
) -> None:
    text = INVALID[name]
    assert list(validator.iter_errors(load(text))), f"the schema accepts {name}"
    with pytest.raises(ConfigError):
        parse_config(text)


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_configs_pass_both(name: str, validator: jsonschema.Draft202012Validator) -> None:
    text = VALID[name]
    assert [e.message for e in validator.iter_errors(load(text))] == []
    parse_config(text)


@pytest.mark.parametrize("layout", ["map", "list"])
def test_annotation_keys_at_the_kubernetes_bounds_agree_with_the_parser(
    layout: str, validator: jsonschema.Draft202012Validator
) -> None:
    def annotated(key: str) -> Any:
        value = {key: "x"}
        return load(
            one_task(f"image: alpine\nannotations: {json.dumps(value if layout == 'map' else [value])}")
        )

    assert [e.message for e in validator.iter_errors(annotated(LONGEST_KEY))] == []
    for name, key in TOO_LONG_KEYS.items():
        assert list(validator.iter_errors(annotated(key))), f"the schema accepts a key with a {name}"
