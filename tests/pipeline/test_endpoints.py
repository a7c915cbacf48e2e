"""Endpoints are declared by the operator; runs name them. No key is ever sent to a URL no operator
declared, whether the run comes from the command or from the UI: a listening server on another
port proves it by recording every Authorization header it receives."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from relabel.config import ConfigError, load_config
from relabel.llm.client import Endpoint
from relabel.llm.offline_server import start_in_thread
from relabel.models import LLMCall, Run
from relabel.runs import prepare_config
from tests.conftest import ROOT
from tests.factories import make_dataset, make_trajectory

pytestmark = pytest.mark.django_db

DEFAULT_KEY = "sk-the-servers-default-key"
VLLM_KEY = "sk-the-vllm-key"


@pytest.fixture
def keys(llm_server, settings, monkeypatch):
    """The default endpoint is the test server; the server has two real keys."""
    settings.OPENAI_API_KEY = DEFAULT_KEY
    monkeypatch.setenv("OPENAI_API_KEY", DEFAULT_KEY)
    monkeypatch.setenv("VLLM_API_KEY", VLLM_KEY)
    return llm_server


@pytest.fixture
def listener():
    """A server on another port that nobody declared: it must never see a key."""
    server = start_in_thread()
    yield server
    server.shutdown()
    server.server_close()


def sent_keys(server) -> set[str]:
    return {header.removeprefix("Bearer ") for header in server.behaviour.authorizations}


def dataset(name: str = "d"):
    data = make_dataset(name)
    make_trajectory(data, goal="Find copper wire suppliers", steps=None)
    return data


@pytest.fixture
def relabel_command(django_capture_on_commit_callbacks):
    """The relabel command, with the work it enqueues on commit done before it returns."""

    def run(*args: str) -> str:
        out = io.StringIO()
        with django_capture_on_commit_callbacks(execute=True):
            call_command("relabel", *args, "--json", stdout=out, stderr=io.StringIO())
        return out.getvalue()

    return run


# -- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["judges", "stages"])
def test_a_config_naming_a_key_variable_is_refused_and_told_to_declare_an_endpoint(where):
    entry = {"model": "m", "base_url": "http://127.0.0.1:1/v1", "api_key_env": "OPENAI_API_KEY"}
    table = {"judges": [{"name": "j", **entry}]} if where == "judges" else {}
    table = table or {"stages": {"relabel": entry}}
    with pytest.raises(ConfigError, match="api_key_env.*declare an endpoint") as error:
        load_config(overrides=table)
    assert "AGENTHER_ENDPOINTS" in str(error.value)


def test_an_undeclared_base_url_is_refused_unless_the_operator_allows_it(keys, listener, settings):
    judges = [{"name": "j", "model": "m", "base_url": listener.base_url}]
    with pytest.raises(ConfigError, match=r"judges\[0\].base_url .* no operator declared"):
        prepare_config("openai", {"judges": judges})
    settings.AGENTHER_ALLOW_UNDECLARED_URLS = True
    config = prepare_config("openai", {"judges": judges})
    assert config["judges"][0]["endpoint"] == "" and config["judges"][0]["base_url"] == (
        listener.base_url
    )


def test_an_unknown_endpoint_name_is_refused_naming_the_declared_ones(keys, settings):
    settings.AGENTHER_ENDPOINTS = {"vllm": {"base_url": "http://127.0.0.1:2/v1"}}
    with pytest.raises(ConfigError, match=r"stages.detect.endpoint 'nope' .*default, vllm"):
        prepare_config("openai", {"stages": {"detect": {"endpoint": "nope"}}})


def test_the_frozen_config_names_each_endpoint_and_its_url_never_a_key(keys, settings):
    settings.AGENTHER_ENDPOINTS = {
        "vllm": {"base_url": "http://127.0.0.1:2/v1", "api_key_env": "VLLM_API_KEY"}
    }
    config = prepare_config(
        "openai", {"judges": [{"name": "a"}, {"name": "q", "model": "Qwen", "endpoint": "vllm"}]}
    )
    assert config["stages"]["detect"]["endpoint"] == "default"
    assert config["stages"]["detect"]["base_url"] == keys.base_url
    assert config["judges"][1]["endpoint"] == "vllm"
    assert config["judges"][1]["base_url"] == "http://127.0.0.1:2/v1"
    text = json.dumps(config)
    assert DEFAULT_KEY not in text and VLLM_KEY not in text and "api_key" not in text


def test_a_declared_endpoint_gets_its_key_and_only_at_its_declared_url(keys, settings):
    settings.AGENTHER_ENDPOINTS = {
        "vllm": {"base_url": "http://vllm-host:8000/v1", "api_key_env": "VLLM_API_KEY"}
    }
    assert Endpoint("m", keys.base_url, name="default").api_key == DEFAULT_KEY
    assert Endpoint("m", "http://vllm-host:8000/v1", name="vllm").api_key == VLLM_KEY
    # A run frozen before the operator moved the endpoint: its old URL gets no key.
    assert Endpoint("m", "http://old-host:8000/v1", name="vllm").api_key == "no-key"
    assert Endpoint("m", "http://elsewhere:1/v1", name="").api_key == "no-key"


# -- from the command --------------------------------------------------------------------------


def test_the_command_sends_no_key_to_a_judge_on_an_undeclared_url(
    keys, listener, tmp_path, relabel_command
):
    dataset("cmd")
    config = tmp_path / "run.toml"
    config.write_text(
        f'backend = "openai"\nconcurrency = 1\n[[judges]]\nname = "elsewhere"\nmodel = "m"\n'
        f'base_url = "{listener.base_url}"\napi_key_env = "OPENAI_API_KEY"\n'
    )
    with pytest.raises(CommandError, match="declare an endpoint"):
        relabel_command("--dataset", "cmd", "--config", str(config))
    assert not Run.objects.exists() and listener.behaviour.requests == 0


def test_the_command_sends_an_allowed_undeclared_url_no_key(
    keys, listener, tmp_path, settings, relabel_command
):
    settings.AGENTHER_ALLOW_UNDECLARED_URLS = True
    dataset("cmd")
    config = tmp_path / "run.toml"
    config.write_text(
        f'backend = "openai"\nconcurrency = 1\nretry_backoff = 0.001\n[[judges]]\nname = "x"\n'
        f'model = "gpt-4o-mini"\nbase_url = "{listener.base_url}"\n'
    )
    relabel_command("--dataset", "cmd", "--config", str(config))
    assert listener.behaviour.requests > 0  # the judge did run there
    assert sent_keys(listener) == {"no-key"}
    assert sent_keys(keys) == {DEFAULT_KEY}  # the default endpoint keeps its own key


def test_a_declared_endpoint_from_a_file_gets_its_own_key_and_no_other(
    keys, listener, tmp_path, monkeypatch, relabel_command
):
    endpoints = tmp_path / "endpoints.toml"
    endpoints.write_text(
        f'[vllm]\nbase_url = "{listener.base_url}"\napi_key_env = "VLLM_API_KEY"\n'
    )
    config = tmp_path / "run.toml"
    config.write_text(
        'backend = "openai"\nconcurrency = 1\n[[judges]]\nname = "q"\nmodel = "gpt-4o-mini"\n'
        'endpoint = "vllm"\n'
    )
    env = {**os.environ, "AGENTHER_ENDPOINTS_FILE": str(endpoints), "DEBUG": "1"}
    env.pop("PYTEST_CURRENT_TEST", None)
    script = (
        "from django.conf import settings; import json; "
        "print(json.dumps(settings.AGENTHER_ENDPOINTS))"
    )
    shown = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    declared = json.loads(shown.stdout.strip().splitlines()[-1])
    assert declared == {"vllm": {"base_url": listener.base_url, "api_key_env": "VLLM_API_KEY"}}
    monkeypatch.setattr("django.conf.settings.AGENTHER_ENDPOINTS", declared)
    dataset("cmd")
    relabel_command("--dataset", "cmd", "--config", str(config))
    assert sent_keys(listener) == {VLLM_KEY}
    assert LLMCall.objects.filter(stage="judge:q", endpoint=listener.base_url).exists()


# -- from the UI -------------------------------------------------------------------------------


def run_form(data, **fields):
    """The home page's start-run form as posted (its fields carry the form's prefix)."""
    values = {
        "dataset": data.pk, "backend": "openai", "accept_threshold": 0.5,
        "reject_threshold": 0.2, "raters_per_candidate": 1, "second_rater_share": 0,
        "audit_share": 0.1, "extra": "", **fields,
    }  # fmt: skip
    return {f"run-{name}": value for name, value in values.items()}


def test_the_ui_refuses_a_judge_that_names_a_key_variable(keys, listener, admin_client_):
    extra = {
        "concurrency": 1,
        "judges": [
            {
                "name": "x",
                "model": "m",
                "base_url": listener.base_url,
                "api_key_env": "OPENAI_API_KEY",
            }
        ],
    }
    response = admin_client_.post(
        reverse("run_start"), run_form(dataset(), extra=json.dumps(extra)), follow=True
    )
    assert "declare an endpoint" in response.content.decode()
    assert not Run.objects.exists() and listener.behaviour.requests == 0


def test_the_ui_sends_no_key_to_an_allowed_undeclared_url(
    keys, listener, admin_client_, settings, django_capture_on_commit_callbacks
):
    settings.AGENTHER_ALLOW_UNDECLARED_URLS = True
    extra = {
        "concurrency": 1,
        "judges": [{"name": "x", "model": "m", "base_url": listener.base_url}],
    }
    with django_capture_on_commit_callbacks(execute=True):
        admin_client_.post(reverse("run_start"), run_form(dataset(), extra=json.dumps(extra)))
    assert Run.objects.get().status == "finished"
    assert listener.behaviour.requests > 0 and sent_keys(listener) == {"no-key"}


def test_the_run_form_picks_the_runs_endpoint_from_the_declared_ones(
    keys, listener, admin_client_, settings, django_capture_on_commit_callbacks
):
    settings.AGENTHER_ENDPOINTS = {
        "vllm": {"base_url": listener.base_url, "api_key_env": "VLLM_API_KEY"}
    }
    page = admin_client_.get(reverse("home")).content.decode()
    assert '<select name="run-endpoint"' in page
    assert '<option value="vllm">' in page and '<option value="default"' in page
    with django_capture_on_commit_callbacks(execute=True):
        admin_client_.post(
            reverse("run_start"), run_form(dataset(), endpoint="vllm", extra='{"concurrency": 1}')
        )
    run = Run.objects.get()
    assert {e["endpoint"] for e in [*run.config["stages"].values(), *run.config["judges"]]} == {
        "vllm"
    }
    assert run.config["stages"]["detect"]["base_url"] == listener.base_url
    assert sent_keys(listener) == {VLLM_KEY} and keys.behaviour.requests == 0
    response = admin_client_.post(
        reverse("run_start"), run_form(dataset("e"), endpoint="http://evil:1/v1"), follow=True
    )
    assert "Select a valid choice" in response.content.decode()


def test_a_run_frozen_before_endpoints_were_declared_resumes_with_the_key_of_its_url(keys):
    legacy = {"model": "m", "base_url": keys.base_url, "api_key_env": "", "concurrency": 1}
    assert Endpoint.from_config(legacy).api_key == DEFAULT_KEY
    elsewhere = {**legacy, "base_url": "http://elsewhere:1/v1", "api_key_env": "OPENAI_API_KEY"}
    assert Endpoint.from_config(elsewhere).api_key == "no-key"
