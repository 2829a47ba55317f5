"""``python -m gensample`` / ``gensample``: command line entry point."""
from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gensample", description="Fused samplers for generative models.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_info = sub.add_parser("info", help="versions, device and which backends are available (and why not)")
    p_info.add_argument("--json", action="store_true", help="print JSON")
    p_demo = sub.add_parser("demo", help="train a VAE on the bundled digits with the fused reparameterize-KL")
    p_demo.add_argument("--epochs", type=int, default=30)
    p_demo.add_argument("--seed", type=int, default=0)
    p_demo.add_argument("--backend", default=None, choices=["triton", "cuda", "cpu", "torch"])
    p_demo.add_argument("--quick", action="store_true", help="a few epochs only (for tests)")
    args = parser.parse_args(argv)

    if args.command == "info":
        import gensample

        if args.json:
            print(json.dumps(gensample.info(), indent=2))
        else:
            print(gensample.format_info())
        return 0
    if args.command == "demo":
        from . import demo

        try:
            demo.run(epochs=args.epochs, seed=args.seed, backend=args.backend, quick=args.quick)
        except Exception as exc:  # one line, no traceback, for expected failures
            from ._backend import BackendUnavailableError

            if isinstance(exc, (BackendUnavailableError, ValueError)):
                print(f"gensample demo: error: {exc}", file=sys.stderr)
                return 2
            raise
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
