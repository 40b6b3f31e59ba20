"""The ``coursekit`` command: ``info``, ``train``, ``release`` and ``grade``.

Errors in the arguments or the input are reported on one line (``coursekit: error: ...``) with exit
code 2; nothing prints a traceback unless ``--debug`` is given.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys

from coursekit.train import CheckpointError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage block
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _info(args: argparse.Namespace) -> int:
    from coursekit.device import get_device, quick_mode
    from coursekit.train import library_versions

    info = {"device": str(get_device()), "quick_mode": quick_mode(), **library_versions()}
    print(json.dumps(info) if args.json else "\n".join(f"{k:12s} {v}" for k, v in info.items()))
    return 0


def _train(args: argparse.Namespace) -> int:
    from coursekit.device import get_device, seed_everything
    from coursekit.recipes import RECIPES, TrainConfig
    from coursekit.train import save_checkpoint

    get_device(args.device)  # fail early, with a clear message, on a device this machine lacks
    seed_everything(args.seed)
    config = TrainConfig(quick=args.quick, epochs=args.epochs, code_size=args.code_size,
                         seed=args.seed, device=args.device, batch_size=args.batch_size, lr=args.lr,
                         data=args.data, data_root=args.data_root, progress=not args.no_progress)
    result = RECIPES[args.name].run(config)
    if args.out:
        command = "coursekit " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        path = save_checkpoint(args.out, result.model, name=args.name, config=result.config,
                               seed=args.seed, metrics=result.metrics, command=command,
                               history=result.history)
        print(f"saved {path} and {path.with_suffix('.json')}", file=sys.stderr)
    if args.json:
        print(json.dumps({"model": args.name, **result.metrics}))
    else:
        for key, value in result.metrics.items():
            print(f"{key:20s} {value:.6g}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from coursekit import __version__
    from coursekit.recipes import RECIPES

    parser = _Parser(prog="coursekit", description=(
        "Encoder-Decoder Models course toolkit: train the course's models, release exercises, "
        "grade submissions."))
    parser.add_argument("--version", action="version", version=f"coursekit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("info", help="show the device, quick mode and library versions")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_info)

    names = "\n".join(f"  {r.name:16s} {r.help}" for r in RECIPES.values())
    p = sub.add_parser(
        "train", help="train one of the course's models on its default data",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=f"Train a model and report its test metrics.\n\nmodels:\n{names}",
        epilog="Progress goes to standard error; with --json the last line of standard output is one "
               "JSON object of final metrics. --out also writes a JSON sidecar with the exact command, "
               "seed, library versions and metrics.")
    p.add_argument("name", choices=sorted(RECIPES), metavar="NAME", help="model to train (listed above)")
    p.add_argument("--quick", action="store_true", help="tiny data and one or two epochs (seconds)")
    p.add_argument("--epochs", type=int, help="training epochs (default: the recipe's)")
    p.add_argument("--code-size", type=int, help="code (bottleneck) size for autoencoders")
    p.add_argument("--batch-size", type=int, help="mini-batch size")
    p.add_argument("--lr", type=float, help="learning rate")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--device", help="cpu, cuda, cuda:N, mps or auto (default: $COURSEKIT_DEVICE or auto)")
    p.add_argument("--data", default="default",
                   help="dataset: 'default' (digits / shapes), or mnist / fashion for Part I with --data-root")
    p.add_argument("--data-root", help="folder holding a real dataset (nothing is downloaded)")
    p.add_argument("--out", metavar="CHECKPOINT", help="save weights here (+ a .json sidecar)")
    p.add_argument("--json", action="store_true", help="print final metrics as one JSON line")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, NotADirectoryError, CheckpointError, RuntimeError) as err:
        if args.debug:
            raise
        print(f"coursekit: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("coursekit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
