"""kubernetes/: the files `mlflow run kubernetes --backend kubernetes` reads, checked offline.

No cluster and no Docker engine: MLflow's own loaders read the MLproject, the backend
config and the Job template, and MLflow's own functions render the Job each entry point
would submit (mlflow.projects.kubernetes; its `kubernetes` client import is stubbed
where that package is not installed, since mlflow does not depend on it).
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import json
import os
import re
import shlex
import stat
import subprocess
import sys
import types
from pathlib import Path

import pytest
import yaml
from mlflow.projects import _parse_kubernetes_config
from mlflow.projects._project_spec import load_project
from mlflow.projects.utils import get_entry_point_command, get_run_env_vars

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "kubernetes"
LAUNCHER = K8S / "gdlab-exec"
IMAGE_TAG = "registry.example.com/gdlab/gdlab:0123456"
IMAGE_DIGEST = "sha256:" + "ab" * 32
IN_CLUSTER_URI = "http://mlflow.mlflow.svc.cluster.local:5000"
# A Job name must be a DNS label: lower case letters, digits and dashes, at most 63 characters.
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

TOP = load_project(str(ROOT))
PROJECT = load_project(str(K8S))
ENTRY_POINTS = sorted(TOP._entry_points)


def _render_module():
    # By path: `import kubernetes.render` would make kubernetes/ shadow the `kubernetes` client.
    spec = importlib.util.spec_from_file_location("gdlab_kubernetes_render", K8S / "render.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def kb(monkeypatch):
    """mlflow.projects.kubernetes. It imports the `kubernetes` client at the top, though the
    functions tested here do not use it; without that package, a stub stands in for it."""
    try:
        importlib.import_module("kubernetes.config.config_exception")
    except ImportError:
        # Run from the checkout, `import kubernetes` may have found the kubernetes/ folder.
        sys.modules.pop("kubernetes", None)
        client = types.ModuleType("kubernetes")
        client.config = types.ModuleType("kubernetes.config")
        client.config.config_exception = types.ModuleType("kubernetes.config.config_exception")
        client.config.config_exception.ConfigException = type("ConfigException", (Exception,), {})
        for module in (client, client.config, client.config.config_exception):
            monkeypatch.setitem(sys.modules, module.__name__, module)
        path = Path(importlib.util.find_spec("mlflow.projects").submodule_search_locations[0]) / "kubernetes.py"
        spec = importlib.util.spec_from_file_location("gdlab_test_mlflow_kubernetes", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # a private copy: sys.modules keeps no module made from the stub
        return module
    return importlib.import_module("mlflow.projects.kubernetes")


@pytest.fixture
def config(monkeypatch):
    """The backend config as `mlflow run` parses it (from the repository root, as the README says)."""
    monkeypatch.chdir(ROOT)
    with open(K8S / "kubernetes_config.json") as f:
        return _parse_kubernetes_config(json.load(f))


def render_job(kb, config, tmp_path, entry_point, parameters=None):
    """The Job MLflow would submit: what mlflow.projects._run and run_kubernetes_job do, minus the API call."""
    command = get_entry_point_command(PROJECT, entry_point, parameters or {}, str(tmp_path))
    env_vars = get_run_env_vars(run_id="0" * 32, experiment_id="7")
    template = copy.deepcopy(config["kube-job-template"])  # it is edited in place
    job = kb._get_kubernetes_job_definition(
        PROJECT.name, IMAGE_TAG, IMAGE_DIGEST, kb._get_run_command(command), env_vars, template
    )
    return job, command


def container(job) -> dict:
    return job["spec"]["template"]["spec"]["containers"][0]


def unquoted(argv, tmp_path, quoted=True) -> list[str]:
    """The argv `python` gets when the container runs ``argv`` (gdlab-exec first), with a stand-in
    `python` that prints its arguments."""
    assert argv[0] == "gdlab-exec"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "python"
    fake.write_text(f"#!/bin/sh\nexec {sys.executable} -c 'import json, sys; print(json.dumps(sys.argv[1:]))' \"$@\"\n")
    fake.chmod(0o755)
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    if quoted:
        env["GDLAB_ARGV_QUOTED"] = "1"
    proc = subprocess.run(["sh", str(LAUNCHER), *argv[1:]], env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_kubernetes_mlproject_is_current():
    render = _render_module()
    assert render.FILE.read_text() == render.render(), "run: python kubernetes/render.py > kubernetes/MLproject"


def test_mlflow_loads_it_as_a_docker_project_with_the_top_level_entry_points():
    from mlflow.projects import env_type
    from mlflow.projects.docker import validate_docker_env

    assert PROJECT.env_type == env_type.DOCKER
    assert PROJECT.docker_env == {"image": "gdlab:latest"}
    validate_docker_env(PROJECT)
    assert PROJECT.name == TOP.name
    assert DNS_LABEL.match(PROJECT.name)
    assert len(PROJECT.name) + len("-2026-11-27-03-15-55-123456") <= 63  # the Job name MLflow makes
    assert {"main", "sgd", "adam", "l1", "l2", "train", "compare"} <= set(ENTRY_POINTS)
    assert sorted(PROJECT._entry_points) == ENTRY_POINTS
    for name in ENTRY_POINTS:
        ours, top = PROJECT.get_entry_point(name), TOP.get_entry_point(name)
        assert {p: (v.type, v.default) for p, v in ours.parameters.items()} == {
            p: (v.type, v.default) for p, v in top.parameters.items()
        }, name
        assert ours.command == f"gdlab-exec {top.command}"


def test_mlflow_accepts_the_backend_config(config):
    assert config["repository-uri"]
    assert config["kube-context"]
    job = config["kube-job-template"]
    assert job["kind"] == "Job"
    assert job["apiVersion"] == "batch/v1"
    assert job["metadata"]["namespace"]  # run_kubernetes_job reads it
    spec = job["spec"]
    assert spec["backoffLimit"] == 0
    assert spec["ttlSecondsAfterFinished"] > 0
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    (c,) = spec["template"]["spec"]["containers"]
    resources = c["resources"]
    assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_mlflow_renders_a_job_for_every_entry_point(kb, config, tmp_path, monkeypatch, entry_point):
    monkeypatch.setenv("KUBE_MLFLOW_TRACKING_URI", IN_CLUSTER_URI)
    pristine = copy.deepcopy(config["kube-job-template"])
    job, command = render_job(kb, config, tmp_path, entry_point)

    assert config["kube-job-template"] == pristine  # the copy was edited, not the template
    name = job["metadata"]["name"]
    assert name.startswith("gdlab-")
    assert DNS_LABEL.match(name), name
    assert len(name) <= 63
    c = container(job)
    assert DNS_LABEL.match(c["name"])
    assert c["image"] == f"{IMAGE_TAG}@{IMAGE_DIGEST}"
    # The entry point's command, parameters filled in, word by word (MLflow quotes each word again).
    (line,) = command
    assert c["command"] == [shlex.quote(w) for w in shlex.split(line)]
    assert c["command"][:4] == ["gdlab-exec", "python", "-m", f"steps.{entry_point}"]
    for param in PROJECT.get_entry_point(entry_point).parameters:
        assert f"--{param.replace('_', '-')}" in c["command"]
    env = c["env"]
    assert all(set(e) == {"name", "value"} and isinstance(e["value"], str) for e in env), env
    names = [e["name"] for e in env]
    assert len(names) == len(set(names)), names
    values = {e["name"]: e["value"] for e in env}
    assert values["MLFLOW_TRACKING_URI"] == IN_CLUSTER_URI
    assert values["MLFLOW_RUN_ID"] == "0" * 32
    assert values["MLFLOW_EXPERIMENT_ID"] == "7"
    assert values["GDLAB_ARGV_QUOTED"] == "1"
    assert "{replaced" not in yaml.safe_dump(job)


def test_without_kube_mlflow_tracking_uri_the_pod_gets_the_submitters_tracking_uri(kb, config, tmp_path, monkeypatch):
    import mlflow

    monkeypatch.delenv("KUBE_MLFLOW_TRACKING_URI", raising=False)
    job, _ = render_job(kb, config, tmp_path, "adam")
    values = {e["name"]: e["value"] for e in container(job)["env"]}
    assert values["MLFLOW_TRACKING_URI"] == mlflow.get_tracking_uri()


def test_mlflow_edits_the_template_in_place(kb, config, monkeypatch):
    """Why every Job is rendered from a copy: a second Job from the same dict repeats the env."""
    monkeypatch.setenv("KUBE_MLFLOW_TRACKING_URI", IN_CLUSTER_URI)
    template = copy.deepcopy(config["kube-job-template"])
    env_vars = get_run_env_vars(run_id="0" * 32, experiment_id="7")
    for _ in range(2):
        job = kb._get_kubernetes_job_definition("gdlab", IMAGE_TAG, IMAGE_DIGEST, ["true"], dict(env_vars), template)
    assert job is template
    names = [e["name"] for e in container(job)["env"]]
    assert names.count("MLFLOW_RUN_ID") == 2


@pytest.mark.parametrize(
    ("entry_point", "parameters"),
    [(ep, {}) for ep in ENTRY_POINTS]
    + [
        ("compare", {"filter": "params.optimizer = 'adam' and metrics.final_loss < 0.1", "experiment_name": "a b"}),
        ("train", {"optimizer": "adam", "epsilon": "1e-7", "learning_rate": "1e-2"}),  # epsilon is appended
    ],
)
def test_gdlab_exec_gives_python_the_words_a_local_run_gives_it(kb, config, tmp_path, entry_point, parameters):
    job, command = render_job(kb, config, tmp_path, entry_point, parameters)
    argv = unquoted(container(job)["command"], tmp_path)
    local = shlex.split(command[0])  # what the local backend's shell passes
    assert local[0] == "gdlab-exec"
    assert argv == local[2:]  # python's arguments: -m steps.X --option value ...
    assert argv[:2] == ["-m", f"steps.{entry_point}"]
    cmd = getattr(importlib.import_module(f"steps.{entry_point}"), entry_point)
    ctx = cmd.make_context(entry_point, argv[2:])  # Click accepts them
    if entry_point == "compare":
        assert ctx.params["experiment_id"] == ""
        assert ctx.params["filter_string"] == parameters.get("filter", "")
        assert ctx.params["experiment_name"] == parameters.get("experiment_name", "")


def test_without_gdlab_exec_the_container_would_get_quoted_words(kb, config, tmp_path):
    """MLflow 3.17.2 quotes each word twice; if this fails, MLflow stopped doing so: drop the
    unquoting (GDLAB_ARGV_QUOTED in the Job template, eval in gdlab-exec)."""
    filt = "params.optimizer = 'adam'"
    job, _ = render_job(kb, config, tmp_path, "compare", {"filter": filt})
    raw = unquoted(container(job)["command"], tmp_path, quoted=False)
    assert raw[raw.index("--experiment-name") + 1] == "''"
    assert raw[raw.index("--filter") + 1] == shlex.quote(filt)
    ctx = importlib.import_module("steps.compare").compare.make_context("compare", raw[2:])
    assert ctx.params["experiment_name"] == "''"  # compare would look for an experiment named ''


def test_gdlab_exec_is_executable_and_runs_commands_as_given_elsewhere(tmp_path):
    assert os.stat(LAUNCHER).st_mode & stat.S_IXUSR
    assert LAUNCHER.read_text().startswith("#!/bin/sh\n")
    argv = ["gdlab-exec", "python", "-m", "steps.compare", "--filter", "a = 'b'", "--experiment-name", ""]
    assert unquoted(argv, tmp_path, quoted=False) == argv[2:]


def test_dockerfile_installs_the_python_env_pins_and_gdlab():
    env = yaml.safe_load((ROOT / "python_env.yaml").read_text())
    dockerfile = (K8S / "Dockerfile").read_text()
    lines = [ln.strip() for ln in dockerfile.splitlines() if ln.strip() and not ln.startswith("#")]
    assert lines[0] == f"FROM python:{env['python']}-slim"
    (pins,) = [ln for ln in lines if ln.startswith("RUN pip install") and "==" in ln]
    assert sorted(pins.split()[3:]) == sorted(env["dependencies"])
    copies = " ".join(ln for ln in lines if ln.startswith("COPY"))
    for needed in ("core/", "steps/", "MLproject", "pyproject.toml", "README.md", "kubernetes/gdlab-exec"):
        assert needed in copies
    assert "pip install --no-deps -e ." in dockerfile
    template = yaml.safe_load((K8S / "kubernetes_job_template.yaml").read_text())
    user = template["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
    assert f"USER {user}" in lines


@pytest.mark.parametrize("workflow", ["main", "sweep"])
def test_with_launcher_mlflow_each_child_becomes_a_job_that_trains_the_planned_config(
    kb, config, tmp_path, monkeypatch, workflow
):
    """`main`/`sweep --launcher mlflow --backend kubernetes`: every child is a Job of its own,
    launched from kubernetes/, whose container gets the options that rebuild the child's config."""
    from steps.cli.workflow import launch_of
    from steps.flow.launch import project_uri
    from steps.main import main as main_command
    from steps.run.runner import make_config
    from steps.sweep import sweep as sweep_command

    monkeypatch.setenv("KUBE_MLFLOW_TRACKING_URI", IN_CLUSTER_URI)
    command = main_command if workflow == "main" else sweep_command
    args = ["--launcher", "mlflow", "--backend", "kubernetes", "--backend-config", str(K8S / "kubernetes_config.json")]
    planned = []
    monkeypatch.setattr(
        f"steps.{workflow}.workflow", lambda _t, children, *a, **k: planned.extend(children) or ({}, None)
    )
    assert command.main([*args, "--epochs", "7"], standalone_mode=False) is None
    assert len(planned) == (4 if workflow == "main" else 9)
    assert launch_of("mlflow", 0, "kubernetes", str(K8S / "kubernetes_config.json")).backend == "kubernetes"
    assert project_uri("kubernetes") == str(K8S)
    for child in planned:
        job, _ = render_job(kb, config, tmp_path, child.entry_point, child.parameters)
        argv = unquoted(container(job)["command"], tmp_path)
        assert argv[:2] == ["-m", f"steps.{child.entry_point}"]
        cmd = getattr(importlib.import_module(f"steps.{child.entry_point}"), child.entry_point)
        ctx = cmd.make_context(child.entry_point, argv[2:])
        assert make_config(child.entry_point, **ctx.params) == child.config
        assert child.config.epochs == 7
