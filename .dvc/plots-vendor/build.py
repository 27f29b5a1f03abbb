"""Rebuild offline.html, the `dvc plots show` page template with Vega inlined (no CDN).

DVC's default page loads Vega, Vega-Lite and Vega-Embed from cdn.jsdelivr.net, so offline it
is blank. `.dvc/config` sets `plots.html_template = plots-vendor/offline.html` instead: the
page below with the three libraries' minified builds inlined. To update them: change
PACKAGES, run `python .dvc/plots-vendor/build.py` (it runs `npm pack`, so it needs the npm
registry), check `dvc plots show` and commit offline.html with the LICENSE files.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
# name -> (version, the file of the package that defines the browser global)
PACKAGES = {
    "vega": ("5.33.1", "build/vega.min.js"),
    "vega-lite": ("5.23.0", "build/vega-lite.min.js"),
    "vega-embed": ("6.29.0", "build/vega-embed.min.js"),
}
PAGE = """<!DOCTYPE html>
<html>
<head>
    {{refresh_tag}}
    <meta charset="utf-8">
    <title>musicrec: DVC plots</title>
    <!-- {versions}: BSD-3-Clause, see .dvc/plots-vendor/LICENSE-* -->
{scripts}
    <style>
        body {{ font-family: sans-serif; }}
        table {{ border-spacing: 15px; }}
    </style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""


def inline(name: str, js: str) -> str:
    if "</script" in js.lower():
        raise SystemExit(f"{name}: its build contains '</script': it cannot be inlined as it is")
    return f'    <script type="text/javascript">/* {name} */\n{js}\n    </script>'


def main() -> None:
    scripts, versions = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (version, member) in PACKAGES.items():
            out = subprocess.run(["npm", "pack", "--json", f"{name}@{version}"], cwd=tmp, check=True,
                                 capture_output=True, text=True).stdout
            tgz = Path(tmp) / json.loads(out)[0]["filename"]
            with tarfile.open(tgz) as tar:
                js = tar.extractfile(f"package/{member}").read().decode("utf-8")
                meta = json.loads(tar.extractfile("package/package.json").read())
            if meta.get("license") != "BSD-3-Clause":
                raise SystemExit(f"{name}@{version}: license {meta.get('license')!r}, expected BSD-3-Clause")
            scripts.append(inline(f"{name}@{version} ({member})", js))
            versions.append(f"{name}@{version}")
    (HERE / "offline.html").write_text(PAGE.format(versions=", ".join(versions), scripts="\n".join(scripts)),
                                       encoding="utf-8")
    print(f"wrote {HERE / 'offline.html'} ({', '.join(versions)})", file=sys.stderr)


if __name__ == "__main__":
    main()
