"""A throwaway project for judge tests: prompt repo with a rubric, platform repo with judges.yaml
(both real git repos), a calibration set and an oncall-ai.yaml."""

from __future__ import annotations

import json
from pathlib import Path

import git
import yaml

RUBRIC_V1 = "You grade helpfulness from 1 to 5. Be fair.\n"
RUBRIC_V2 = "You grade helpfulness from 1 to 5. Be strict: deduct for any omission.\n"


def commit_file(repo: git.Repo, rel: str, text: str, message: str) -> str:
    path = Path(repo.working_tree_dir) / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    repo.index.add([rel])
    return repo.index.commit(message).hexsha


def items_for(n: int, *, metric: str = "helpfulness", scores=None) -> list[dict]:
    scores = scores or [1 + (i * 7) % 5 for i in range(n)]
    return [{"id": f"item-{i}", "metric": metric, "input": f"question item-{i}", "output": f"answer {i}",
             "human_score": scores[i]} for i in range(n)]


def build_project(root: Path, *, api: dict | None, items: list[dict], judges: dict | None = None,
                  metrics: dict | None = None, store: str = "oncall-ai.db") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    prompts = git.Repo.init(root / "prompts")
    commit_file(prompts, "judges/helpfulness.md", RUBRIC_V1, "judge rubric v1")
    platform = git.Repo.init(root / "platform")
    judges = judges if judges is not None else {
        "helpfulness": {"model": "judge-model-1", "prompt": "judges/helpfulness.md"}}
    commit_file(platform, "judges.yaml", yaml.safe_dump(judges), "judges")
    cal = root / "calibration" / "set.jsonl"
    cal.parent.mkdir(parents=True, exist_ok=True)
    cal.write_text("".join(json.dumps(it) + "\n" for it in items), encoding="utf-8")
    cfg = {
        "store": store,
        "prompt_repo": "prompts",
        "judges": {"repo": "platform", "file": "judges.yaml"},
        "metrics": metrics or {"helpfulness": {"source": "judge", "good": ">= 4", "scale": [1, 5]}},
        "calibration": "calibration/set.jsonl",
    }
    if api is not None:
        cfg["judge_api"] = api
    path = root / "oncall-ai.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


def fast_api(base_url: str, style: str = "openai", **over) -> dict:
    api = {"base_url": base_url, "style": style, "api_key_env": "JUDGE_TEST_KEY", "concurrency": 4,
           "timeout": 0.4, "max_retries": 3, "backoff": 0.01, "backoff_max": 0.05}
    api.update(over)
    return api
