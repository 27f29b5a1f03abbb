"""`dvc plots show`: only the intended plots, one colour per model, and a page that renders offline.

The plots are the top-level `plots` of dvc.yaml (no stage-level `plots:` entries, whose files
DVC would draw against a made-up "step" axis); the templates in .dvc/plots/ colour each model
with the model registry's colour; the page template (`plots.html_template` in .dvc/config) has
Vega, Vega-Lite and Vega-Embed inlined, so the rendered page loads nothing from the network.
"""

from __future__ import annotations

import configparser
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from musicrec.models import MODELS
from tests.support.pipeline import dvc

ROOT = Path(__file__).resolve().parents[2]
DVC_YAML = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))
TEMPLATES = sorted((ROOT / ".dvc/plots").glob("*.json"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
URL = re.compile(r"^\s*(https?:)?//", re.I)


def html_template() -> Path:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / ".dvc/config")
    return ROOT / ".dvc" / cfg["plots"]["html_template"].strip()


def test_only_the_top_level_plots_are_plots() -> None:
    for name, spec in DVC_YAML["stages"].items():
        assert "plots" not in spec.get("do", spec), f"stage {name} declares plots: DVC would draw them against 'step'"
    plots = [next(iter(p)) for p in DVC_YAML["plots"]]
    assert {"ndcg_at_k", "ndcg_by_experiment", "coverage_vs_ndcg"} <= set(plots)
    for p in DVC_YAML["plots"]:
        (name, spec), = p.items()
        assert spec.get("x") and spec.get("y"), f"plot {name}: x and y must be given"
        assert (ROOT / ".dvc/plots" / f"{spec['template']}.json").is_file(), name


def colour_scales() -> dict[str, dict[str, list[str]]]:
    out = {}
    for t in TEMPLATES:
        scale = json.loads(t.read_text(encoding="utf-8"))["encoding"]["color"]["scale"]
        out[t.name] = {"domain": scale["domain"], "range": scale["range"]}
    return out


def test_every_template_colours_every_registered_model_the_same_way() -> None:
    scales = colour_scales()
    assert scales, "no template in .dvc/plots"
    for name, scale in scales.items():
        assert scale["domain"] == list(MODELS), \
            f"{name}: the colour domain is not the model registry's names (run python mk/plot_templates.py)"
        assert len(scale["range"]) == len(scale["domain"]) == len(set(scale["range"])), name
    assert len({json.dumps(s) for s in scales.values()}) == 1, "the templates' colour scales differ"


def test_template_colours_are_the_registry_colours() -> None:
    colours = {name: spec.color for name, spec in MODELS.items()}
    for name, scale in colour_scales().items():
        assert dict(zip(scale["domain"], scale["range"])) == colours, f"{name} (run python mk/plot_templates.py)"


def test_the_page_template_inlines_vega() -> None:
    page = html_template().read_text(encoding="utf-8")
    assert "{plot_divs}" in page
    assert "{scripts}" not in page, "DVC would insert its CDN <script> tags there"
    for lib in ("vega@5", "vega-lite@5", "vega-embed@6"):
        assert f"/* {lib}" in page, lib
    for lic in ("LICENSE-vega", "LICENSE-vega-lite", "LICENSE-vega-embed"):  # BSD-3-Clause: keep the notices
        assert "Redistribution and use in source and binary forms" in (html_template().parent / lic).read_text(), lic


class _Refs(HTMLParser):
    """Every URL an element of the page loads or links (src, href, ...), and the number of plot divs."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.refs += [v for k, v in attrs if k in ("src", "href", "srcset", "data", "action") and v]


def rendered(tmp_path: Path) -> Path:
    out = tmp_path / "dvc_plots"
    dvc(["plots", "show", "-o", str(out)], ROOT)
    return out / "index.html"


def test_the_rendered_page_references_no_url(tmp_path: Path) -> None:
    page = rendered(tmp_path)
    text = page.read_text(encoding="utf-8")
    refs = _Refs()
    refs.feed(text)
    remote = [r for r in refs.refs if URL.match(r)]
    assert not remote, f"the page loads from the network: {remote}"
    assert "cdn.jsdelivr.net" not in text
    assert text.count("vegaEmbed(") == len(DVC_YAML["plots"])


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium (/usr/bin/chromium) is not installed")
def test_the_rendered_page_draws_every_plot_without_a_network(tmp_path: Path) -> None:
    page = rendered(tmp_path)
    # every request goes to a proxy that does not exist: only inlined code can draw the plots
    dom = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--proxy-server=127.0.0.1:9",
         "--proxy-bypass-list=<-loopback>", f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000",
         "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120, check=True).stdout
    assert dom.count("<canvas") + dom.count("<svg") >= len(DVC_YAML["plots"]), dom[:2000]
