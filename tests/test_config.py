from pathlib import Path

import pytest

from oncall_ai.config import GoodRule, load_config
from oncall_ai.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_example_config_loads_and_explains_every_key():
    cfg = load_config(ROOT / "config.example.yaml")
    assert cfg.store.endswith("oncall-ai.db") and Path(cfg.store).is_absolute()
    assert cfg.prompt_repo == ROOT / "prompts"
    assert cfg.features["support"].indexes == ("kb-docs",)
    assert cfg.pins.file == "models.yaml" and cfg.pins.repo == ROOT / "platform"
    assert cfg.metrics["helpfulness"].good == GoodRule(">=", 4.0)
    assert cfg.metrics["helpfulness"].scale == (1.0, 5.0)
    assert cfg.metrics["thumbs_down"].higher_is_better is False
    assert cfg.metrics["schema_valid"].higher_is_better is True
    assert [s.name for s in cfg.slos] == ["summarizer-helpfulness", "support-schema"]
    assert cfg.slos[0].window_ms == 24 * 3600 * 1000
    assert cfg.slices == ("persona", "language", "shape")


def test_discovery_order(tmp_path, monkeypatch):
    a = tmp_path / "a.yaml"
    a.write_text("store: a.db\n")
    b = tmp_path / "b.yaml"
    b.write_text("store: b.db\n")
    (Path.cwd() / "oncall-ai.yaml").write_text("store: c.db\n")
    assert load_config().store.endswith("c.db")
    monkeypatch.setenv("ONCALL_AI_CONFIG", str(b))
    assert load_config().store == str(tmp_path / "b.db")
    assert load_config(a).store == str(tmp_path / "a.db")


@pytest.mark.parametrize("text, where", [
    ("slos:\n  - {name: x, feature: f, metric: m, objective: 1.5, window: 24h}\n", "slos[0].objective"),
    ("slos:\n  - {name: x, feature: f, metric: m, objective: 0.9, window: soon}\n", "slos[0].window"),
    ("metrics:\n  helpfulness: {good: 'at least 4'}\n", "metrics.helpfulness.good"),
    ("metrics:\n  helpfulness: {source: robot}\n", "metrics.helpfulness.source"),
    ("metrics:\n  helpfulness: {scale: [5, 1]}\n", "metrics.helpfulness.scale"),
    ("featurs: {}\n", "featurs: unknown key (did you mean 'features'?)"),
    ("features:\n  s: {prompt: [a]}\n", "features.s.prompt"),
    ("pins: models.yaml\n", "pins"),
    ("store: [1]\n", "store"),
    ("metrics:\n  m: {good: '>= 4'}\nfeatures:\n  f: {prompts: [a.md]}\nslices: [language, persona]\n"
     "slos:\n  - {name: x, feature: f, metric: m, objective: 0.9, window: 24h, where: {langauge: de}}\n",
     "slos[0].where.langauge: is not a slice key declared under `slices:` (did you mean 'language'?)"),
    ("a: [\n", "invalid YAML"),
    ("- 1\n", "top level must be a mapping"),
])
def test_bad_config_names_file_and_key(tmp_path, text, where):
    p = tmp_path / "oncall-ai.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert str(p) in e.value.message
    assert where in e.value.message
    assert e.value.exit_code == 2


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize("rule, value, good", [
    (">= 4", 4, True), (">= 4", 3.9, False), ("== 1", 1, True), ("== 0", 1, False),
    ("< 0.5", 0.2, True), ("!= 0", 0, False), ("> 3", 3, False), ("<= 2", 2, True),
])
def test_good_rule(rule, value, good):
    assert GoodRule.parse(rule, "x").is_good(value) is good


def test_config_check_cli(run_cli, tmp_path):
    p = tmp_path / "oncall-ai.yaml"
    p.write_text("store: s.db\nmetrics:\n  helpfulness: {good: '>= 4'}\n")
    r = run_cli("--config", p, "config", "check")
    assert r.exit_code == 0, r.stderr
    assert "helpfulness" in r.stdout and "valid" in r.stderr
    p.write_text("store: s.db\nprompt_repo: nowhere\n")
    r = run_cli("--config", p, "config", "check", "--json")
    assert r.exit_code == 1
    import json

    assert "prompt_repo" in json.loads(r.stdout)["problems"][0]
    p.write_text("slos: 3\n")
    r = run_cli("--config", p, "config", "check")
    assert r.exit_code == 2 and "slos" in r.stderr and "Traceback" not in r.stderr


def test_store_override_is_relative_to_the_working_folder(tmp_path, monkeypatch):
    """`--store mine.db` and $ONCALL_AI_STORE are typed where the command runs; `store:` in the file
    is relative to the file's folder."""
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "oncall-ai.yaml").write_text("store: data/s.db\n")
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    assert load_config(proj / "oncall-ai.yaml").store == str(proj / "data" / "s.db")
    assert load_config(proj / "oncall-ai.yaml", store_override="mine.db").store == str(here / "mine.db")
    monkeypatch.setenv("ONCALL_AI_STORE", "env.db")
    assert load_config(proj / "oncall-ai.yaml").store == str(here / "env.db")
    assert load_config(proj / "oncall-ai.yaml", store_override="/abs/x.db").store == "/abs/x.db"
