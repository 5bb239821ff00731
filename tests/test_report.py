"""gradlab.report end to end: files, embedded figures, tables, and the page in a real browser."""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from analysis_datasets import partial
from PIL import Image

from gradlab import analysis, report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SPEC = 'steps = 6\noptimizers = ["sgd", "clip_by_global_norm|sgd"]\n[grid]\nseed = [0, 1]\n'


def make_dataset(grid: dict[str, list], chains=("sgd", "clip_by_global_norm|sgd"), diverge=0.3):
    """A small synthetic result Dataset (divergence semantics as the engine's)."""
    rng = np.random.default_rng(1)
    dims = ("optimizer", *grid)
    shape = (len(chains), *(len(v) for v in grid.values()))
    steps, layers = 6, 4
    at = np.where(rng.random(shape) < diverge, rng.integers(0, steps, shape), -1)
    step = np.arange(steps)
    live = (at[..., None] < 0) | (step <= at[..., None])
    draws = 1 + rng.random((*shape, steps))
    draws[..., 0] = draws[:1, ..., 0]  # step 0, before any update: the same network in every chain
    noisy = np.where(live, draws, np.nan)
    per_layer = np.where(
        live[..., None], 1.5 ** -np.arange(layers) * (1 + noisy[..., None]), np.nan
    )
    return xr.Dataset(
        {
            "loss": ((*dims, "step"), 2 * noisy),
            "grad_norm": ((*dims, "step"), noisy),
            "clipped": ((*dims, "step"), live & (noisy > 1.5)),
            "delta_rms_layer": ((*dims, "step", "layer"), per_layer),
            "grad_norm_layer": ((*dims, "step", "layer"), 2 * per_layer),
            "diverged": (dims, at >= 0),
            "diverged_at": (dims, at.astype(np.int32)),
            "final_loss": (dims, np.where(at >= 0, np.nan, rng.random(shape))),
            "test_accuracy": (dims, np.where(at >= 0, np.nan, rng.random(shape))),
        },
        coords={
            "optimizer": list(chains),
            **grid,
            "step": step,
            "layer": np.arange(layers),
            "layer_width": ("layer", np.full(layers, 16)),
            "layer_size": ("layer", [16 * 16 + 16] * (layers - 1) + [16 * 10 + 10]),
        },
        attrs={"spec": SPEC, "gradlab_version": "0.1.0", "jax_version": "0.0", "devices": 1,
               "wall_time_s": 12.5, "compile_time_s": 3.25},
    )  # fmt: skip


GRID = {"seed": [0, 1], "learning_rate": [0.01, 0.1, 1.0], "init_scale": [0.5, 1.0, 2.0]}


class Page(HTMLParser):
    """Collects <img> sources and alts and the text of the page."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs))

    def handle_data(self, data):
        self.text.append(data)


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> tuple[Path, xr.Dataset]:
    ds = make_dataset(GRID)
    return report.write_report(ds, tmp_path_factory.mktemp("report"), dpi=60), ds


def decode_png(src: str) -> bytes:
    prefix = "data:image/png;base64,"
    assert src.startswith(prefix)
    return base64.b64decode(src[len(prefix) :], validate=True)


def test_report_files_and_embedded_figures(written):
    index, ds = written
    out = index.parent
    assert index.name == "index.html" and index.is_file()
    pngs = sorted((out / "figures").glob("*.png"))
    names = {p.stem for p in pngs}
    expected = {"comparison", "phase_divergence", "phase_final_loss", "divergence_curve"}
    expected |= {"trajectory_loss", "trajectory_grad_norm", "layer_delta_rms_layer", "chi1"}
    expected |= {"layer_grad_norm_layer"}
    expected |= {"performance_profiles"} | ({"survival"} if ds["diverged"].any() else set())
    assert names == expected
    page = parse(index)
    assert len(page.images) == len(pngs)
    for img in page.images:
        data = decode_png(img["src"] or "")  # embedded: the page stands alone
        with Image.open(io.BytesIO(data)) as im:
            im.verify()  # a valid PNG, not a broken image
        pixels = matplotlib.image.imread(io.BytesIO(data), format="png")
        assert pixels.shape[0] > 100 and pixels.shape[1] > 100
        assert pixels.std() > 0  # not blank
        assert img["alt"]
    # the embedded figures are the files alongside, byte for byte
    embedded = {decode_png(img["src"] or "") for img in page.images}
    assert embedded == {p.read_bytes() for p in pngs}


def test_report_figures_in_page_order(written):
    """Overview first, then the grid, training, depth, curvature and the profiles."""
    index, ds = written
    ids = re.findall(r'<figure id="fig-([a-z0-9_]+)">', index.read_text(encoding="utf-8"))
    expected = ["comparison", "phase_divergence", "phase_final_loss", "divergence_curve"]
    expected += ["trajectory_loss", "trajectory_grad_norm"]
    expected += ["survival"] if ds["diverged"].any() else []
    expected += ["layer_grad_norm_layer", "layer_delta_rms_layer", "chi1", "performance_profiles"]
    assert ids == expected


def test_report_draws_the_step_0_profiles_once_not_once_per_chain(written):
    """Before any update every chain has the same network: one panel, whatever the chains."""
    index, ds = written
    assert ds.sizes["optimizer"] == 2
    for name in ("layer_delta_rms_layer", "layer_grad_norm_layer"):
        width = Image.open(index.parent / "figures" / f"{name}.png").size[0]
        assert width == round((3.6 + 1.4) * 60)  # one 3.6-inch panel and the margin, at 60 dpi
    captions = "".join(parse(index).text)
    assert "Per-layer gradient RMS per parameter (‖g_l‖/√n_l" in captions


def test_report_draws_sharpness_where_it_was_measured(tmp_path):
    ds = make_dataset({"seed": [0, 1], "learning_rate": [0.1, 1.0]}, chains=("sgd",))
    ds["sharpness"] = 10 * ds["grad_norm"]
    ds["sharpness_bound"] = (2 / ds["learning_rate"]).broadcast_like(ds["grad_norm"])
    index = report.write_report(ds, tmp_path / "out", dpi=50)
    ids = re.findall(r'<figure id="fig-([a-z0-9_]+)">', index.read_text(encoding="utf-8"))
    assert ids[-1] == "sharpness"  # one chain: no performance profiles after it
    assert (tmp_path / "out" / "figures" / "sharpness.png").is_file()


def test_report_tables_spec_and_metadata(written):
    index, ds = written
    html = index.read_text(encoding="utf-8")
    text = "".join(parse(index).text)
    assert "clip_by_global_norm|sgd" in text
    assert 'optimizers = ["sgd", "clip_by_global_norm|sgd"]' in text  # the spec, unescaped text
    assert "optimizers = [&quot;sgd&quot;" in html  # escaped in the source
    df = analysis.compare_optimizers(ds)
    # one naming: the page's headers are the DataFrame's columns (and summary.csv's)
    comparison = re.search(r"<h2>Optimizer comparison</h2>\s*<table>(.*?)</thead>", html, re.S)
    best = re.search(r"<h2>Best learning rate</h2>\s*<table>(.*?)</thead>", html, re.S)
    assert comparison is not None and best is not None
    shown = re.findall(r"<th>(.*?)</th>", comparison.group(1))
    shown_best = re.findall(r"<th>(.*?)</th>", best.group(1))
    assert shown[0] == shown_best[0] == "optimizer"
    assert sorted(shown[1:] + shown_best[1:]) == sorted(df.columns)  # every column, once
    assert {"max_trained_lr", "trained"} <= set(shown)
    assert {"best_lr", "best_final_loss_lower", "best_test_accuracy"} <= set(shown_best)
    assert "partial:" not in text  # a complete Dataset
    # the environment table has a header, not a row of empty cells
    env = re.search(r"<h2>Environment</h2>\s*<table>(.*?)</thead>", html, re.S)
    assert env is not None and re.findall(r"<th>(.*?)</th>", env.group(1)) == ["attribute", "value"]
    assert "<th></th>" not in html
    assert "12.5 s" in text and "gradlab_version" in text
    assert "https://" not in html and "http://" not in html  # nothing fetched from outside
    csv = pd.read_csv(index.parent / "summary.csv", index_col="optimizer")
    pd.testing.assert_frame_equal(csv, df, check_dtype=False)
    md = (index.parent / "summary.md").read_text(encoding="utf-8")
    assert md == analysis.markdown_table(df)


@pytest.mark.parametrize(
    "ds",
    [
        # 1-D, no seed, one chain, no per-layer or clip variables
        make_dataset({"learning_rate": [0.1, 1.0]}, chains=("sgd",)).drop_vars(
            ["delta_rms_layer", "clipped"]
        ),
        make_dataset({"seed": [0, 1], "init_scale": [1.0, 2.0]}, diverge=1.0),  # all diverged
    ],
    ids=["1d_minimal", "all_diverged"],
)
def test_report_for_other_shapes(ds, tmp_path):
    index = report.write_report(ds, tmp_path / "out", title="A <small> sweep", dpi=50)
    page = parse(index)
    assert page.images and all(decode_png(i["src"] or "") for i in page.images)
    assert "A &lt;small&gt; sweep" in index.read_text(encoding="utf-8")
    assert len(list((tmp_path / "out" / "figures").glob("*.png"))) == len(page.images)


def test_report_reads_run_directories_and_netcdf(tmp_path, monkeypatch):
    ds = make_dataset({"seed": [0, 1], "learning_rate": [0.1, 1.0]}, chains=("sgd",))
    seen = []

    def fake_load(path, partial=False):
        seen.append((Path(path), partial))
        return ds

    import gradlab.store

    monkeypatch.setattr(gradlab.store, "load", fake_load)
    run_dir = tmp_path / "runs" / "demo"
    run_dir.mkdir(parents=True)
    index = report.write_report(run_dir, tmp_path / "rep", dpi=50)
    assert seen == [(run_dir, True)]  # a sweep still running is reported from its finished runs
    assert "gradlab sweep: demo" in index.read_text(encoding="utf-8")
    pytest.importorskip("h5py", reason="h5netcdf needs h5py to write netCDF files")
    nc = tmp_path / "result.nc"
    ds.to_netcdf(nc, engine="h5netcdf")
    xr.testing.assert_identical(report.as_dataset(nc), ds)


CHECK_IMAGES = """<script>
window.addEventListener("load", () => {
  const imgs = Array.from(document.images);
  const ok = imgs.filter((i) => i.complete && i.naturalWidth > 0).length;
  const marker = document.createElement("p");
  marker.id = "image-check";
  marker.textContent = "IMAGES-LOADED " + ok + "/" + imgs.length;
  document.body.appendChild(marker);
});
</script>
"""


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
    ]
    return subprocess.run(
        [CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_report_in_headless_chromium(written, tmp_path):
    """The page loads in a real browser and every figure decodes there (naturalWidth > 0)."""
    index, _ = written
    probe = tmp_path / "probe"
    shutil.copytree(index.parent, probe)
    page = probe / "index.html"
    html = page.read_text(encoding="utf-8")
    page.write_text(html.replace("</body>", CHECK_IMAGES + "</body>"), encoding="utf-8")
    n_images = len(parse(index).images)

    dom = chromium(
        "--virtual-time-budget=10000", "--dump-dom", page.as_uri(), profile=tmp_path / "p1"
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert f"IMAGES-LOADED {n_images}/{n_images}" in dom.stdout
    assert "Optimizer comparison" in dom.stdout

    shot = tmp_path / "shot.png"
    run = chromium(
        "--window-size=1200,1600", "--hide-scrollbars", f"--screenshot={shot}", index.as_uri(),
        profile=tmp_path / "p2",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    with Image.open(shot) as im:
        assert im.size == (1200, 1600)
        assert len(im.convert("L").getcolors(maxcolors=1 << 16) or range(1 << 16)) > 10


def test_report_of_a_partial_dataset_says_so_and_counts_finished_runs(tmp_path):
    """gl.load(dir, partial=True): unfinished runs hold NaN, False and -1 and are marked by
    ``finished``; the page says how many finished and counts only those."""
    ds = make_dataset({"seed": [0, 1], "learning_rate": [0.1, 1.0]}, diverge=0.0)
    done = np.ones(ds["diverged"].shape, bool)
    done[:, 1] = False  # seed 1 has not finished for either chain
    ds = partial(ds, done)
    index = report.write_report(ds, tmp_path / "out", dpi=40)
    text = " ".join("".join(parse(index).text).split())
    assert "partial: 4 of 8 runs finished; figures and tables use the finished runs" in text
    assert "4 runs, 0 diverged" in text
    csv = pd.read_csv(index.parent / "summary.csv", index_col="optimizer")
    assert list(csv["runs"]) == [2, 2]
