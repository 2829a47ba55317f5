"""The ``gensample`` command line (also ``python -m gensample``).

Commands (``gensample <command> --help`` for every option)::

    gensample info [--json]                       versions, devices, backends (and why not)
    gensample demo [--quick]                      the guided tour: RBM, VAE, MALA, speed table, report
    gensample train rbm|grbm|vae|ebm --data D     train with checkpoints each epoch, --resume CKPT
    gensample sample CKPT --n N --steps K         samples.npy + samples.png from a checkpoint
    gensample bench [--ops ...] [--quick]         benchmark suites, one merged JSON

Every command takes ``--device cpu|cuda|cuda:N``, ``--backend triton|cuda|cpu|torch``,
``--seed``, ``--out DIR``, ``--quiet`` (no progress bars) and ``--debug`` (tracebacks).

Errors a user can fix (bad data, device, backend, checkpoint, arguments) print ONE line,
``gensample <cmd>: error: <what> (fix: <how>)``, and exit with status 2. Output files are
written atomically (temporary file, then ``os.replace``): a file in ``--out`` is complete
or absent, and a command that fails before its results exist leaves nothing behind
(``train`` keeps the checkpoint of the last finished epoch, for ``--resume``).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time

from ._fileio import atomic_write

PROG = "gensample"

__all__ = ["CLIError", "main", "build_parser"]


class CLIError(Exception):
    """A mistake the user can fix: printed as one line with the fix, exit status 2."""

    def __init__(self, message: str, fix: str | None = None):
        super().__init__(message)
        self.fix = fix


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``prog: error: ... (fix: ...)``), exit status 2."""

    def error(self, message):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message} (fix: see `{self.prog} --help`)\n")


# ---------------------------------------------------------------------------------------------
# argument types
# ---------------------------------------------------------------------------------------------


def _number(conv, ok, what: str, in_range: str, show_value: bool = False):
    """An argparse ``type``: ``conv(s)`` (else "expected <what>"), then ``ok(v)`` (else
    "expected <in_range>", quoting the parsed value if ``show_value``, else the text)."""
    def parse(s: str):
        try:
            v = conv(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {s!r}") from None
        if not ok(v):
            raise argparse.ArgumentTypeError(f"expected {in_range}, got {v if show_value else s}")
        return v
    return parse


_pos_int = _number(int, lambda v: v >= 1, "a positive integer", "a positive integer", show_value=True)
_nonneg_int = _number(int, lambda v: v >= 0, "an integer >= 0", "an integer >= 0", show_value=True)
_pos_float = _number(float, lambda v: math.isfinite(v) and v > 0, "a positive number", "a positive number")
_nonneg_float = _number(float, lambda v: math.isfinite(v) and v >= 0, "a number >= 0", "a number >= 0")
_finite_float = _number(float, math.isfinite, "a number", "a finite number")


# ---------------------------------------------------------------------------------------------
# shared: device, backend, output directory, printing
# ---------------------------------------------------------------------------------------------


def resolve_device(spec: str):
    """``cpu``, ``cuda`` or ``cuda:N`` -> ``torch.device``; unavailable ones are a :class:`CLIError`."""
    import torch

    m = re.fullmatch(r"(cpu|cuda)(?::(\d+))?", spec.strip().lower())
    if not m or (m.group(1) == "cpu" and m.group(2) is not None):
        raise CLIError(f"unknown device {spec!r}", "use --device cpu, cuda or cuda:N")
    if m.group(1) == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        why = "this torch is a CPU-only build" if torch.version.cuda is None else "no CUDA GPU is visible"
        raise CLIError(f"--device {spec}: CUDA is not available here ({why}, torch {torch.__version__})",
                       "use --device cpu")
    idx = int(m.group(2) or 0)
    n = torch.cuda.device_count()
    if idx >= n:
        raise CLIError(f"--device {spec}: there {'is' if n == 1 else 'are'} only {n} CUDA device{'s' * (n != 1)}",
                       f"use --device cuda:0{f' .. cuda:{n - 1}' if n > 1 else ''}")
    return torch.device("cuda", idx)


def resolve_backend(name: str | None, device) -> str | None:
    """Check ``--backend`` against :data:`gensample.BACKENDS` and what can run on ``device``
    here (the reason comes from ``gensample.info()``'s table)."""
    from . import _backend

    if name is None:
        return None
    if name not in _backend.BACKENDS:
        raise CLIError(f"unknown backend {name!r}",
                       f"use one of {', '.join(_backend.BACKENDS)}, or leave --backend out (automatic)")
    table = _backend.available(device.type)
    reason = table[name]
    if reason is not None:
        ok = [b for b, r in table.items() if r is None]
        raise CLIError(f"backend {name!r} is unavailable for {device.type} tensors: {reason}",
                       f"use --backend {' or '.join(ok)}, or leave --backend out (automatic)")
    return name


class OutDir:
    """The ``--out`` directory. Created on the first write (so an early error leaves no
    directory); every file is written to a temporary name beside it and ``os.replace``d."""

    def __init__(self, path: str):
        self.path = os.path.abspath(path)
        self.created = False
        self.written: list[str] = []
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise CLIError(f"--out {path} exists and is not a directory", "pick another --out DIR")

    def ensure(self) -> str:
        if not os.path.isdir(self.path):
            os.makedirs(self.path)
            self.created = True
        return self.path

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def atomic(self, name: str, writer) -> str:
        """``writer(tmp_path)`` writes the content; it then replaces ``name``."""
        self.ensure()
        final = self.file(name)
        suffix = os.path.splitext(name)[1]
        atomic_write(final, writer, prefix=f".{name}.", suffix=f".tmp{suffix}")
        if final not in self.written:
            self.written.append(final)
        return final

    def write_json(self, name: str, obj) -> str:
        def w(p):
            with open(p, "w") as f:
                json.dump(obj, f, indent=1, default=_json_default)
                f.write("\n")

        return self.atomic(name, w)

    def cleanup_failed(self) -> None:
        """After a failure: drop the directory again if this run created it and left it empty."""
        if self.created and os.path.isdir(self.path) and not os.listdir(self.path):
            os.rmdir(self.path)


def _json_default(o):
    try:
        import torch

        if isinstance(o, torch.Tensor):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    return str(o)


class _UI:
    """Where text goes: results to stdout (rich tables when rich is importable), notes and
    progress to stderr; ``quiet`` silences notes and bars."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.progress = not quiet and sys.stderr.isatty()
        try:
            from rich.console import Console

            self.console = Console(highlight=False, soft_wrap=True)
        except ImportError:  # pragma: no cover - rich is optional
            self.console = None

    def note(self, msg: str) -> None:
        if not self.quiet:
            print(msg, file=sys.stderr, flush=True)

    def out(self, msg: str = "") -> None:
        print(msg, flush=True)

    def table(self, title: str, rows: list[tuple], header: tuple | None = None) -> None:
        rows = [tuple("" if v is None else str(v) for v in r) for r in rows]
        if self.console is not None:
            from rich.table import Table

            t = Table(title=title, show_header=header is not None, title_justify="left")
            ncol = len(header) if header else max((len(r) for r in rows), default=2)
            for i in range(ncol):
                t.add_column(header[i] if header else "", justify="right" if i else "left")
            for r in rows:
                t.add_row(*r)
            self.console.print(t)
            return
        self.out(title)
        width = [max(len(r[i]) for r in rows + ([header] if header else [])) for i in range(len(rows[0]))] if rows else []
        for r in ([header] if header else []) + rows:
            self.out("  " + "  ".join(v.ljust(w) for v, w in zip(r, width)))


def _fmt(v, digits: int = 4) -> str:
    if isinstance(v, float):
        return f"{v:.{digits}g}" if abs(v) < 1e5 else f"{v:.4e}"
    return str(v)


# ---------------------------------------------------------------------------------------------
# parser
# ---------------------------------------------------------------------------------------------

_TRAIN_DEFAULTS = {
    "rbm": {"data": "digits", "epochs": 10, "batch_size": 20, "lr": 0.02, "hidden": 16},
    "grbm": {"data": "digits", "epochs": 10, "batch_size": 20, "lr": 0.005, "hidden": 16},
    "vae": {"data": "digits", "epochs": 10, "batch_size": 128, "lr": 2e-3, "hidden": 128},
    "ebm": {"data": "gmm", "epochs": 10, "batch_size": 128, "lr": 2e-3, "hidden": 64},
}


def _common(out_help: str) -> argparse.ArgumentParser:
    p = _Parser(add_help=False)
    g = p.add_argument_group("common options")
    g.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    g.add_argument("--backend", default=None,
                   help="gensample kernels: triton, cuda, cpu or torch (default: the fastest available)")
    g.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    g.add_argument("--out", default=None, metavar="DIR", help=out_help)
    g.add_argument("--threads", type=_pos_int, default=None,
                   help="CPU threads for torch (default: torch's; 1 is often fastest for tiny models on busy machines)")
    g.add_argument("--quiet", action="store_true", help="no progress bars or notes")
    g.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="gensample: fused, hardware-accelerated samplers for generative models.",
                     epilog="Run `gensample <command> --help` for the options of a command.")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"gensample {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("info", parents=[_common("also write info.json here")],
                       help="versions, devices, which backends are available and why not",
                       description="Versions, devices, and which backends can run here (and why not).")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("demo", parents=[_common("where the report and pictures go (default: gensample-demo)")],
                       help="the guided tour on the bundled digits: RBM, VAE, MALA, a speed table, report.md",
                       description="Train an RBM (fused PCD, AIS log-likelihood) and a VAE (fused reparameterize-KL) "
                                   "on scikit-learn's digits, sample a 2-D target with MALA, time gensample against "
                                   "the eager reference, and write report.md, report.json and PNGs.")
    p.add_argument("--quick", action="store_true", help="reduced sizes (about half a minute; for tests)")

    p = sub.add_parser("train", help="train an rbm, grbm, vae or ebm on your data (checkpoints, --resume)",
                       description="Train a model; a checkpoint is written (atomically) after every epoch.")
    tsub = p.add_subparsers(dest="kind", metavar="MODEL", required=True)
    for kind, desc in (("rbm", "Bernoulli RBM (binary data; --binarize T), fused (P)CD-k"),
                       ("grbm", "Gaussian-Bernoulli RBM (real-valued data), fused (P)CD-k"),
                       ("vae", "VAE with the fused reparameterize-KL (data in [0, 1])"),
                       ("ebm", "MLP energy model: contrastive divergence, Langevin negatives, replay buffer")):
        d = _TRAIN_DEFAULTS[kind]
        tp = tsub.add_parser(kind, parents=[_common(f"run directory (default: gensample-runs/{kind}; with "
                                                    "--resume: the checkpoint's directory)")],
                             help=desc, description=f"Train a {desc}.")
        g = tp.add_argument_group("data")
        g.add_argument("--data", default=None, metavar="SRC",
                       help=f"FILE.npy, FILE.pt or a built-in set: digits, gmm, ring, banana (default: {d['data']}; "
                            "with --resume: the checkpoint's)")
        g.add_argument("--binarize", type=_finite_float, default=None, metavar="T",
                       help="map values >= T to 1 and others to 0 (Bernoulli models; digits use 0.5 for rbm)")
        g.add_argument("--test-fraction", type=float, default=0.2, help="held-out share for the metrics (default 0.2)")
        g = tp.add_argument_group("training")
        g.add_argument("--epochs", type=_nonneg_int, default=d["epochs"],
                       help=f"total epochs (with --resume: up to this many in all; default {d['epochs']})")
        g.add_argument("--batch-size", type=_pos_int, default=d["batch_size"], help=f"default {d['batch_size']}")
        g.add_argument("--lr", type=_pos_float, default=d["lr"], help=f"learning rate (default {d['lr']})")
        g.add_argument("--resume", default=None, metavar="CKPT", help="continue from this checkpoint.pt")
        if kind in ("rbm", "grbm"):
            g.add_argument("--hidden", type=_pos_int, default=d["hidden"],
                           help="hidden units (<= 20: exact log-likelihood; default 16)")
            g.add_argument("--k", type=_pos_int, default=1, help="Gibbs sweeps per update (default 1)")
            m = g.add_mutually_exclusive_group()
            m.add_argument("--pcd", dest="method", action="store_const", const="pcd",
                           help="persistent chains (default)")
            m.add_argument("--cd", dest="method", action="store_const", const="cd", help="chains restart at the data")
            g.add_argument("--n-chains", type=_pos_int, default=None, help="persistent chains (default: batch size)")
            g.add_argument("--momentum", type=_nonneg_float, default=0.5, help="default 0.5")
            g.add_argument("--weight-decay", type=_nonneg_float, default=0.0, help="default 0")
            g.add_argument("--ll", choices=("auto", "exact", "ais", "none"), default="auto",
                           help="test log-likelihood: exact (n_hidden <= 20), ais (annealed importance sampling, "
                                "with an interval), auto (exact when possible, else AIS), none")
            g.add_argument("--ais-chains", type=_pos_int, default=100, help="AIS chains (default 100)")
            g.add_argument("--ais-betas", type=_pos_int, default=1000, help="AIS temperatures (default 1000)")
            if kind == "grbm":
                g.add_argument("--sigma", type=_pos_float, default=1.0, help="visible std (default 1)")
                g.add_argument("--learn-sigma", action="store_true", help="train sigma too")
        elif kind == "vae":
            g.add_argument("--hidden", type=_pos_int, default=d["hidden"], help="hidden width (default 128)")
            g.add_argument("--latent", type=_pos_int, default=8, help="latent dimension (default 8)")
        else:
            g.add_argument("--hidden", type=_pos_int, default=d["hidden"], help="MLP width (default 64)")
            g.add_argument("--depth", type=_pos_int, default=2, help="hidden layers (default 2)")
            g.add_argument("--langevin-steps", type=_pos_int, default=20, help="Langevin steps per negative (default 20)")
            g.add_argument("--step-size", type=_pos_float, default=0.005, help="Langevin step size (default 0.005)")
            g.add_argument("--noise-scale", type=_nonneg_float, default=None,
                           help="Langevin noise (default sqrt(2 * step size))")
            g.add_argument("--alpha", type=_nonneg_float, default=0.1, help="energy-squared regularizer (default 0.1)")
            g.add_argument("--buffer", type=_pos_int, default=10000, help="replay buffer capacity (default 10000)")
            g.add_argument("--reinit", type=_nonneg_float, default=0.05, help="buffer reinit probability (default 0.05)")

    p = sub.add_parser("sample", parents=[_common("where samples.npy and samples.png go (default: the checkpoint's "
                                                  "directory)")],
                       help="draw samples from a trained checkpoint (samples.npy, samples.png)",
                       description="Draw samples from a checkpoint written by `gensample train`: RBMs run --steps "
                                   "Gibbs sweeps from noise, EBMs --steps Langevin steps, the VAE decodes prior draws.")
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="a checkpoint.pt from `gensample train`")
    p.add_argument("--n", type=int, default=64, help="number of samples (default 64)")
    p.add_argument("--steps", type=int, default=None,
                   help="Gibbs sweeps (rbm, grbm; default 1000) or Langevin steps (ebm; default 500); unused by vae")

    from .bench import OPS

    p = sub.add_parser("bench", parents=[_common("also write bench.json here")],
                       help="run the benchmark suites (gensample vs eager / torch.compile references)",
                       description="Run benchmarks/bench_<op>.py for each op (in a subprocess), print their tables "
                                   "and merge the results, with the device and versions, into one JSON.")
    p.add_argument("--ops", default=",".join(OPS),
                   help=f"comma list of {', '.join(OPS)} (default: all; a suite whose script is not in this build "
                        "is skipped with a note)")
    p.add_argument("--quick", action="store_true", help="small sizes and short timing blocks (a smoke test)")
    p.add_argument("--json", default=None, metavar="FILE", help="write the merged results here")
    p.add_argument("--suite-args", default="", metavar="ARGS",
                   help="extra arguments for every suite script, e.g. \"--no-compile\"")
    p.add_argument("--timeout", type=_pos_float, default=None, help="seconds per suite (default: none)")
    return parser


# ---------------------------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------------------------


def cmd_info(args, ui: _UI) -> int:
    import gensample

    resolve_device(args.device)
    d = gensample.info()
    if args.out:
        OutDir(args.out).write_json("info.json", d)
    if args.json:
        ui.out(json.dumps(d, indent=2))
        return 0
    if ui.console is None:
        ui.out(gensample.format_info(d))
        return 0
    rows = [("gensample", d["gensample"]), ("torch", d["torch"]), ("triton", d["triton"] or "not installed"),
            ("python", d["python"]), ("CUDA device", d["cuda_device"] or "none"),
            ("torch threads", d["torch_threads"]),
            ("extension gensample._C", ("loaded" + (f" (cuda kernels: {d['extension'].get('cuda')})")) if
             d["extension"]["loaded"] else f"not loaded: {d['extension']['error']}")]
    ui.table("gensample info", rows)
    for dev, table in d["backends"].items():
        default = d["default_backend"].get(dev)
        ui.table(f"backends for {dev} tensors" + (f" (default: {default})" if default else " (no such device here)"),
                 [(b, "available" if r is None else f"unavailable: {r}") for b, r in table.items()],
                 header=("backend", "status"))
    return 0


def cmd_demo(args, ui: _UI) -> int:
    from . import demo

    device = resolve_device(args.device)
    backend = resolve_backend(args.backend, device)
    out_dir = args.out or "gensample-demo"
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise CLIError(f"--out {out_dir} exists and is not a directory", "pick another --out DIR")
    demo.run(out_dir=out_dir, quick=args.quick, device=str(device), backend=backend, seed=args.seed,
             progress=not args.quiet)  # prints its own summary and total time
    for name in ("report.md", "report.json"):
        p = os.path.join(out_dir, name)
        if os.path.exists(p):
            ui.out(f"wrote {p}")
    return 0


# -- train ---------------------------------------------------------------------------------------


def _ais_available() -> bool:
    try:
        from . import evaluation  # noqa: F401
    except ImportError:
        return False
    return hasattr(evaluation, "evaluate_log_likelihood")


def _load_data(args, kind: str, ckpt: dict | None):
    from . import data as gdata

    dmeta = (ckpt or {}).get("data", {})
    source = args.data or dmeta.get("source") or _TRAIN_DEFAULTS[kind]["data"]
    binarize = args.binarize if args.binarize is not None else dmeta.get("binarize")
    if binarize is None and kind == "rbm" and source == "digits" and ckpt is None:
        binarize = 0.5  # the convention of the examples and the demo: pixel / 16 >= 0.5
    if binarize is not None and kind in ("grbm", "ebm"):
        raise CLIError(f"--binarize is for Bernoulli models (rbm, vae), not {kind}", "drop --binarize")
    split_seed = dmeta.get("split_seed", args.seed)
    test_fraction = dmeta.get("test_fraction", args.test_fraction)
    ds = gdata.load(source, seed=split_seed, binarize=binarize)
    n_feat = None
    if ckpt is not None:
        cfg = ckpt["config"]
        n_feat = cfg.get("n_visible", cfg.get("n_inputs"))
    gdata.check_for_model(ds, kind, n_features=n_feat)
    train, test = gdata.split(ds.x, test_fraction, split_seed)
    meta = {**ds.describe(), "split_seed": split_seed, "test_fraction": test_fraction,
            "n_train": int(train.shape[0]), "n_test": int(test.shape[0])}
    if ckpt is not None and dmeta.get("image_shape") and not meta.get("image_shape"):
        meta["image_shape"] = dmeta["image_shape"]
    return ds, train, test, meta


def cmd_train(args, ui: _UI) -> int:
    import torch

    from . import checkpoint as ckpt_mod

    kind = args.kind
    device = resolve_device(args.device)
    backend = resolve_backend(args.backend, device)
    ckpt = None
    if args.resume:
        ckpt = ckpt_mod.load(args.resume, kind=kind)
    out = OutDir(args.out or (os.path.dirname(os.path.abspath(args.resume)) if args.resume
                             else os.path.join("gensample-runs", kind)))
    if kind in ("rbm", "grbm"):
        hidden = ckpt["config"]["n_hidden"] if ckpt else args.hidden
        ll = args.ll
        if ll == "ais" and not _ais_available():
            raise CLIError("--ll ais needs gensample.evaluation (AIS), which is not in this build",
                           "use --ll exact (n_hidden <= 20) or --ll none")
    _, train, test, dmeta = _load_data(args, kind, ckpt)
    n_features = train.shape[1]
    if kind in ("rbm", "grbm"):
        n_enum = hidden if kind == "grbm" else min(n_features, hidden)
        if ll == "exact" and n_enum > 20:
            raise CLIError(f"--ll exact enumerates 2^{n_enum} states (n_hidden={hidden}); at most 2^20 are supported",
                           "use --hidden 20 or fewer, or --ll ais")
    if kind == "ebm" and "range" not in dmeta:  # the box the buffer and the sampler start from
        lo, hi = train.min(0).values, train.max(0).values
        pad = 0.1 * (hi - lo) + 1e-3
        dmeta["range"] = [(lo - pad).tolist(), (hi + pad).tolist()]
    torch.manual_seed(args.seed)
    if ckpt is not None:
        ui.note(f"resuming {kind} from {args.resume} (epoch {ckpt['training'].get('epoch', 0)}); model and training "
                "options come from the checkpoint")
    trainer = {"rbm": _RBMRun, "grbm": _RBMRun, "vae": _VAERun, "ebm": _EBMRun}[kind](args, ui, device, backend,
                                                                                    n_features, dmeta, ckpt)

    def save():
        out.ensure()
        ckpt_mod.save(out.file("checkpoint.pt"), kind=kind, config=trainer.config, state=trainer.model.state_dict(),
                      training=trainer.training_state(), data=dmeta, metrics=trainer.history)

    try:
        start = trainer.epoch
        if start >= args.epochs:
            ui.note(f"the checkpoint is at epoch {start} already (--epochs {args.epochs}): nothing to train")
        t0 = time.perf_counter()
        for _ in range(start, args.epochs):
            rec = trainer.train_epoch(train, test)
            save()
            if not (ui.progress and kind in ("rbm", "grbm")):  # RBMTrainer prints its own line under a bar
                ui.note(f"epoch {rec['epoch']}/{args.epochs}: " +
                        ", ".join(f"{k} {_fmt(v)}" for k, v in rec.items() if k not in ("epoch", "steps", "train_s")))
        train_s = time.perf_counter() - t0
        final = trainer.final_metrics(train, test)
        if start >= args.epochs:  # still leave a complete run directory
            save()
        metrics = {"kind": kind, "config": trainer.config, "hyper": trainer.hyper, "data": dmeta,
                   "device": str(device), "backend": trainer.backend_used, "seed": args.seed,
                   "epochs": trainer.epoch, "train_seconds_this_run": train_s, "final": final,
                   "history": trainer.history}
        out.write_json("metrics.json", metrics)
    except BaseException:
        out.cleanup_failed()
        raise
    ui.table(f"gensample train {kind}: {trainer.epoch} epochs on {dmeta['source']} "
             f"({dmeta['n_train']} train / {dmeta['n_test']} test)",
             [(k, _fmt(v)) for k, v in final.items()] +
             [("checkpoint", out.file("checkpoint.pt")), ("metrics", out.file("metrics.json"))])
    return 0


def _batches(n: int, batch_size: int, g):
    import torch

    perm = torch.randperm(n, generator=g)
    for s in range(0, n, batch_size):
        yield perm[s:s + batch_size]


def _bar(total: int, desc: str, ui: _UI):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not ui.progress, leave=False, file=sys.stderr)


class _RBMRun:
    """rbm / grbm through :class:`gensample.train.RBMTrainer` (its state_dict holds the
    chains, momentum and generator state: a resumed run continues bit for bit)."""

    def __init__(self, args, ui, device, backend, n_features, dmeta, ckpt):
        import torch

        from . import _backend
        from .checkpoint import build_model, load_weights
        from .train import RBMTrainer

        self.args, self.ui, self.kind = args, ui, args.kind
        if ckpt is not None:
            self.config = dict(ckpt["config"])
        else:
            self.config = {"n_visible": n_features, "n_hidden": args.hidden}
            if self.kind == "grbm":
                self.config.update(sigma=args.sigma, learn_sigma=args.learn_sigma)
        self.model = build_model(self.kind, self.config, device=device, backend=backend)
        g = torch.Generator().manual_seed(args.seed)
        if ckpt is not None:
            h = ckpt["training"]["hyper"]
        else:
            h = {"batch_size": args.batch_size, "lr": args.lr, "k": args.k, "method": args.method or "pcd",
                 "momentum": args.momentum, "weight_decay": args.weight_decay, "n_chains": args.n_chains}
        self.hyper = dict(h)
        self.trainer = RBMTrainer(self.model, generator=g, backend=backend, **h)
        if ckpt is not None:
            load_weights(self.model, ckpt)  # checks the weights fit; the trainer loads them again
            self.trainer.load_state_dict({**ckpt["training"], "model": ckpt["state"]})
        self.backend = backend
        self.backend_used = _backend.resolve(backend, device)
        self.metrics = ["reconstruction_error"] + (["pseudo_likelihood"] if self.kind == "rbm" else [])
        if args.ll in ("auto", "exact"):
            self.metrics.append("log_likelihood")

    @property
    def epoch(self) -> int:
        return self.trainer.epoch

    @property
    def history(self) -> list:
        return self.trainer.history

    def train_epoch(self, train, test):
        dev, dt = self.model.weight.device, self.model.weight.dtype
        ev = (test if test.shape[0] else train).to(dev, dt)
        return self.trainer.train_epoch(train.to(dev, dt), progress=self.ui.progress, metrics=tuple(self.metrics),
                                        eval_data=ev)

    def training_state(self) -> dict:
        st = self.trainer.state_dict()
        st.pop("model")  # saved once, as the checkpoint's "state"
        return st

    def final_metrics(self, train, test) -> dict:
        dev, dt = self.model.weight.device, self.model.weight.dtype
        ev = (test if test.shape[0] else train).to(dev, dt)
        out = self.trainer.evaluate(ev, metrics=tuple(self.metrics))
        n_enum = self.model.n_hidden if self.kind == "grbm" else min(self.model.n_visible, self.model.n_hidden)
        ll = self.args.ll
        if "log_likelihood" in out:
            out["log_likelihood_method"] = "exact"
        want_ais = ll == "ais" or (ll == "auto" and n_enum > self.trainer.exact_max_units)
        if want_ais:
            if _ais_available():
                import torch

                from . import evaluation

                g = torch.Generator().manual_seed(self.args.seed + 7919)  # metric-only stream
                kw = {"data": train.to(dev, dt)} if self.kind == "rbm" else {}  # base-rate base model
                est = self.model.log_partition(method="ais", n_chains=self.args.ais_chains,
                                               n_betas=self.args.ais_betas, generator=g, backend=self.backend, **kw)
                res = evaluation.evaluate_log_likelihood(self.model, ev, log_z=est)
                out.update({"log_likelihood_ais": float(res.mean), "log_likelihood_ais_ci_low": float(res.ci_low),
                            "log_likelihood_ais_ci_high": float(res.ci_high), "log_partition_ais": float(est.log_z),
                            "log_partition_ais_stderr": float(est.stderr),
                            "ais": f"{self.args.ais_chains} chains x {self.args.ais_betas} temperatures"})
                if "log_likelihood" not in out and n_enum <= self.trainer.exact_max_units:
                    ex = self.trainer.evaluate(ev, ("log_likelihood",))  # cheap here: report both
                    out.update({"log_likelihood": ex["log_likelihood"], "log_partition": ex["log_partition"],
                                "log_likelihood_method": "exact"})
            else:
                out["log_likelihood_ais"] = "AIS not in this build (gensample.evaluation missing)"
        return out


class _VAERun:
    """VAE with the fused reparameterize-KL; one CPU generator drives batch order and the
    latent noise, saved with Adam's state so a resumed run continues bit for bit."""

    def __init__(self, args, ui, device, backend, n_features, dmeta, ckpt):
        import torch

        from . import _backend
        from .checkpoint import build_model, load_weights

        self.args, self.ui, self.device = args, ui, device
        self.config = dict(ckpt["config"]) if ckpt else {"n_inputs": n_features, "latent_dim": args.latent,
                                                          "hidden": args.hidden}
        self.hyper = dict(ckpt["training"]["hyper"]) if ckpt else {"lr": args.lr, "batch_size": args.batch_size}
        self.model = build_model("vae", self.config, device=device, backend=backend)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=self.hyper["lr"])
        self.g = torch.Generator().manual_seed(args.seed)
        self.epoch, self.history = 0, []
        if ckpt is not None:
            t = ckpt["training"]
            load_weights(self.model, ckpt)
            self.opt.load_state_dict(t["optimizer"])
            self.g.set_state(t["generator"])
            self.epoch, self.history = int(t["epoch"]), [dict(h) for h in ckpt["metrics"]]
        self.backend_used = _backend.resolve(backend, device)

    def train_epoch(self, train, test):
        t0 = time.perf_counter()
        model, bs = self.model, self.hyper["batch_size"]
        model.train()
        total, n = 0.0, train.shape[0]
        bar = _bar(math.ceil(n / bs), f"epoch {self.epoch + 1}", self.ui)
        for idx in _batches(n, bs, self.g):
            x = train[idx].to(self.device)
            loss = model.loss(x, generator=self.g)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            total += float(loss.detach()) * x.shape[0]
            bar.update(1)
        bar.close()
        self.epoch += 1
        rec = {"epoch": self.epoch, "train_elbo": -total / n, **self._evaluate(test if test.shape[0] else train),
               "train_s": time.perf_counter() - t0}
        self.history.append(rec)
        return rec

    def _evaluate(self, x) -> dict:
        import torch

        self.model.eval()
        with torch.no_grad():  # a metric-only generator: evaluation never moves the training stream
            elbo = self.model.elbo(x.to(self.device), generator=torch.Generator().manual_seed(self.epoch)).mean()
        return {"test_elbo": float(elbo)}

    def training_state(self) -> dict:
        return {"optimizer": self.opt.state_dict(), "generator": self.g.get_state(), "epoch": self.epoch,
                "hyper": self.hyper}

    def final_metrics(self, train, test) -> dict:
        out = self._evaluate(test if test.shape[0] else train)
        if self.history:
            out["train_elbo"] = self.history[-1]["train_elbo"]
        return out


class _EBMRun:
    """MLP energy trained by contrastive divergence (gensample.ebm) with Langevin negatives
    from a replay buffer; one CPU generator for batches, buffer and sampler."""

    def __init__(self, args, ui, device, backend, n_features, dmeta, ckpt):
        import torch

        from . import _backend
        from .buffer import ReplayBuffer
        from .checkpoint import build_model, load_weights
        from .ebm import ContrastiveDivergence
        from .samplers import LangevinSampler

        self.args, self.ui, self.device = args, ui, device
        self.config = dict(ckpt["config"]) if ckpt else {"n_inputs": n_features, "width": args.hidden,
                                                          "depth": args.depth}
        if ckpt is not None:
            self.hyper = dict(ckpt["training"]["hyper"])
        else:
            lo, hi = dmeta["range"] if "range" in dmeta else (None, None)
            self.hyper = {"lr": args.lr, "batch_size": args.batch_size, "langevin_steps": args.langevin_steps,
                          "step_size": args.step_size, "noise_scale": args.noise_scale, "alpha": args.alpha,
                          "buffer": args.buffer, "reinit": args.reinit, "init_low": lo, "init_high": hi}
        self.model = build_model("ebm", self.config, device=device, backend=backend)
        self.g = torch.Generator().manual_seed(args.seed)
        h = self.hyper
        self.sampler = LangevinSampler(self.model, step_size=h["step_size"], n_steps=h["langevin_steps"],
                                       noise_scale=h["noise_scale"], generator=self.g, backend=backend)
        self.buffer = ReplayBuffer(h["buffer"], (self.config["n_inputs"],), reinit_prob=h["reinit"],
                                   init=self._init, device=device, generator=self.g, backend=backend)
        self.cd = ContrastiveDivergence(self.model, self.sampler, self.buffer, alpha=h["alpha"])
        self.opt = torch.optim.Adam(self.model.parameters(), lr=h["lr"], betas=(0.0, 0.999))
        self.epoch, self.history = 0, []
        if ckpt is not None:
            t = ckpt["training"]
            load_weights(self.model, ckpt)
            self.opt.load_state_dict(t["optimizer"])
            self.cd.load_state_dict(t["cd"])
            self.g.set_state(t["generator"])
            self.epoch, self.history = int(t["epoch"]), [dict(x) for x in ckpt["metrics"]]
        self.backend_used = _backend.resolve(backend, device)

    def _init(self, n: int):
        import torch

        lo = torch.tensor(self.hyper["init_low"], dtype=torch.float32)
        hi = torch.tensor(self.hyper["init_high"], dtype=torch.float32)
        return lo + (hi - lo) * torch.rand(n, self.config["n_inputs"], generator=self.g)

    def train_epoch(self, train, test):
        t0 = time.perf_counter()
        bs, n = self.hyper["batch_size"], train.shape[0]
        self.model.train()
        tot = {"cd_loss": 0.0, "energy_data": 0.0, "energy_neg": 0.0}
        nb = 0
        bar = _bar(math.ceil(n / bs), f"epoch {self.epoch + 1}", self.ui)
        for idx in _batches(n, bs, self.g):
            x = train[idx].to(self.device)
            loss, st = self.cd.loss(x)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            tot["cd_loss"] += float(loss.detach())
            tot["energy_data"] += float(st.energy_pos)
            tot["energy_neg"] += float(st.energy_neg)
            nb += 1
            bar.update(1)
        bar.close()
        self.epoch += 1
        rec = {"epoch": self.epoch, **{k: v / nb for k, v in tot.items()},
               **self._evaluate(test if test.shape[0] else train), "train_s": time.perf_counter() - t0}
        self.history.append(rec)
        return rec

    def _evaluate(self, x) -> dict:
        import torch

        self.model.eval()
        g = torch.Generator().manual_seed(self.epoch)
        lo = torch.tensor(self.hyper["init_low"], dtype=torch.float32)
        hi = torch.tensor(self.hyper["init_high"], dtype=torch.float32)
        noise = lo + (hi - lo) * torch.rand(x.shape[0], x.shape[1], generator=g)
        with torch.no_grad():
            return {"energy_test": float(self.model(x.to(self.device)).mean()),
                    "energy_uniform_noise": float(self.model(noise.to(self.device)).mean())}

    def training_state(self) -> dict:
        return {"optimizer": self.opt.state_dict(), "cd": self.cd.state_dict(), "generator": self.g.get_state(),
                "epoch": self.epoch, "hyper": self.hyper}

    def final_metrics(self, train, test) -> dict:
        out = self._evaluate(test if test.shape[0] else train)
        if self.history:
            out["cd_loss"] = self.history[-1]["cd_loss"]
        return out


# -- sample --------------------------------------------------------------------------------------


def _save_png(path: str, x, image_shape, kind: str) -> bool:
    """Grid of images (square-sized rows) or a 2-D scatter; False when neither applies or
    matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    import numpy as np

    x = np.asarray(x, dtype=np.float32)
    if image_shape:
        h, w = image_shape
        n = x.shape[0]
        cols = max(1, math.ceil(math.sqrt(n)))
        rows = math.ceil(n / cols)
        grid = np.full((rows * (h + 1) + 1, cols * (w + 1) + 1), np.nan, dtype=np.float32)
        for i in range(n):
            r, c = divmod(i, cols)
            grid[1 + r * (h + 1):1 + r * (h + 1) + h, 1 + c * (w + 1):1 + c * (w + 1) + w] = x[i].reshape(h, w)
        fig, ax = plt.subplots(figsize=(min(12, 0.5 + cols * w / 8), min(12, 0.5 + rows * h / 8)))
        lo, hi = (0.0, 1.0) if kind in ("rbm", "vae") else (float(np.nanmin(grid)), float(np.nanmax(grid)))
        cmap = plt.get_cmap("gray").with_extremes(bad="#404040")
        ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
        ax.set_axis_off()
    elif x.shape[1] == 2:
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.scatter(x[:, 0], x[:, 1], s=4, alpha=0.6)
        ax.set_aspect("equal")
    else:
        return False
    ax.set_title(f"{x.shape[0]} samples ({kind})")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)
    return True


def cmd_sample(args, ui: _UI) -> int:
    import numpy as np
    import torch

    from . import checkpoint as ckpt_mod

    if args.n < 1:
        raise CLIError(f"--n must be a positive number of samples, got {args.n}", "e.g. --n 64")
    if args.steps is not None and args.steps < 1:
        raise CLIError(f"--steps must be a positive number of sampler steps, got {args.steps}", "e.g. --steps 1000")
    device = resolve_device(args.device)
    backend = resolve_backend(args.backend, device)
    ck = ckpt_mod.load(args.checkpoint)
    kind = ck["kind"]
    out = OutDir(args.out or os.path.dirname(os.path.abspath(args.checkpoint)))
    model = ckpt_mod.load_model(ck, device=device, backend=backend)
    model.eval()
    g = torch.Generator().manual_seed(args.seed)
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    if kind in ("rbm", "grbm"):
        steps = args.steps or 1000
        with torch.no_grad():
            x = model.sample(args.n, k=steps, generator=g, backend=backend)
        what = f"{steps} Gibbs sweeps from noise"
    elif kind == "vae":
        if args.steps is not None:
            ui.note("note: --steps is unused for a vae (samples are decoder means of prior draws)")
        x = model.sample(args.n, generator=g)
        what = "decoder means of N(0, I) latent draws"
    else:
        from .samplers import LangevinSampler

        h = ck["training"]["hyper"]
        steps = args.steps or 500
        for p in model.parameters():
            p.requires_grad_(False)
        lo = torch.tensor(h["init_low"], dtype=torch.float32)
        hi = torch.tensor(h["init_high"], dtype=torch.float32)
        x0 = (lo + (hi - lo) * torch.rand(args.n, ck["config"]["n_inputs"], generator=g)).to(device)
        sampler = LangevinSampler(model, step_size=h["step_size"], n_steps=steps, noise_scale=h["noise_scale"],
                                  generator=g, backend=backend)
        x, _ = sampler.sample(x0)
        what = f"{steps} Langevin steps (step {h['step_size']}) from uniform noise"
    sample_s = time.perf_counter() - t0
    arr = x.detach().float().cpu().numpy()
    image_shape = ck["data"].get("image_shape")
    try:
        out.atomic("samples.npy", lambda p: np.save(open(p, "wb"), arr))
        png = out.atomic("samples.png", lambda p: _check_png(_save_png(p, arr, image_shape, kind)))
    except _NoPNG:
        png = None
        ui.note(f"note: no samples.png (samples have {arr.shape[1]} features: not an image of square size nor 2-D, "
                "or matplotlib is not installed)")
    except BaseException:
        out.cleanup_failed()
        raise
    ui.table(f"gensample sample: {args.n} samples from a {kind} ({what})",
             [("samples", out.file("samples.npy")), ("picture", png or "none"),
              ("mean", _fmt(float(arr.mean()))), ("std", _fmt(float(arr.std()))),
              ("seconds", _fmt(sample_s))])
    return 0


class _NoPNG(Exception):
    pass


def _check_png(ok: bool) -> None:
    if not ok:
        raise _NoPNG()


# -- bench ---------------------------------------------------------------------------------------


def cmd_bench(args, ui: _UI) -> int:
    import shlex

    from . import bench

    device = resolve_device(args.device)
    if args.backend is not None:
        resolve_backend(args.backend, device)
        ui.note("note: the suites compare every available backend; --backend only checks that one is available")
    ops = [o.strip() for o in args.ops.split(",") if o.strip()]
    bad = [o for o in ops if o not in bench.OPS]
    if not ops or bad:
        raise CLIError(f"unknown benchmark op{'s' * (len(bad) > 1)} {', '.join(bad) or '(none given)'}",
                       f"use --ops with a comma list of {', '.join(bench.OPS)}")
    out = OutDir(args.out) if args.out else None
    try:
        extra = shlex.split(args.suite_args)
    except ValueError as exc:
        raise CLIError(f"--suite-args cannot be parsed ({exc})", "quote it as one shell string") from None
    meta = bench.metadata(str(device), sys.argv[1:] if args._argv is None else args._argv)
    merged = bench.run_suites(ops, quick=args.quick, device=str(device), extra_args=extra, timeout=args.timeout,
                              echo=ui.out, progress=ui.progress)
    result = {"schema": "gensample-bench-merged/1", "meta": meta, **merged}
    written = []
    if args.json:
        bench.write_json(args.json, result)
        written.append(args.json)
    if out is not None:
        written.append(out.write_json("bench.json", result))
    ok = list(merged["suites"])
    ui.out(f"suites run: {', '.join(ok) or 'none'}" +
           (f"; skipped: {', '.join(merged['skipped'])}" if merged["skipped"] else "") +
           (f"; FAILED: {', '.join(merged['failed'])}" if merged["failed"] else ""))
    for p in written:
        ui.out(f"wrote {p}")
    return 1 if merged["failed"] else 0


# ---------------------------------------------------------------------------------------------
# entry point
# ---------------------------------------------------------------------------------------------

_COMMANDS = {"info": cmd_info, "demo": cmd_demo, "train": cmd_train, "sample": cmd_sample, "bench": cmd_bench}


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a one-line usage error (status 2)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    args._argv = list(argv) if argv is not None else None
    name = f"{PROG} {args.command}" + (f" {args.kind}" if getattr(args, "kind", None) else "")
    ui = _UI(args.quiet)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from ._backend import BackendUnavailableError
    from .bench import BenchError
    from .checkpoint import CheckpointError
    from .data import DataError

    try:
        return _COMMANDS[args.command](args, ui)
    except (CLIError, DataError, CheckpointError, BenchError, BackendUnavailableError) as exc:
        if args.debug:
            raise
        fix = getattr(exc, "fix", None)
        if isinstance(exc, BackendUnavailableError):
            fix = "pick another --backend (see `gensample info`), or leave it out"
        msg = " ".join(str(exc).split())
        print(f"{name}: error: {msg}" + (f" (fix: {fix})" if fix else ""), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        msg = " ".join(str(exc).split())
        print(f"{name}: error: {type(exc).__name__}: {msg} (fix: rerun with --debug for the traceback)",
              file=sys.stderr)
        return 1


def console_main() -> None:  # pragma: no cover - exercised through the console script
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
