"""``liteprof diff BASE NEW``: how one run differs from another, with a noise check."""

from __future__ import annotations

import argparse
import sys

from .common import one_line, percent, refuse_overwriting_inputs, require_numpy
from .report import check_output, output

HELP = "compare two runs scope by scope"
DESCRIPTION = (
    "How NEW differs from BASE, scope by scope. A change is 'same' unless it is "
    "statistically significant and larger than --threshold percent."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..renderers import formats

    parser.add_argument("base", metavar="BASE")
    parser.add_argument("new", metavar="NEW")
    parser.add_argument("--format", choices=formats("diff"), default="table")
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="write to FILE instead of stdout ('-': stdout; html: needed)",
    )
    parser.add_argument(
        "--threshold",
        type=percent,
        default=5.0,
        metavar="PCT",
        help="smallest relative change of the mean that counts (default 5)",
    )
    parser.add_argument(
        "--fail-above",
        type=percent,
        default=None,
        metavar="PCT",
        help="exit 1 when a scope is slower by more than PCT percent",
    )


def main(args: argparse.Namespace) -> int:
    check_output(args.format, args.output)
    require_numpy()
    refuse_overwriting_inputs([args.base, args.new], args.output)
    from ..analysis.diff import build_diff, regressions
    from ..log.reader import read_logs

    base = read_logs([args.base])
    new = read_logs([args.new])
    result = build_diff(base, new, threshold=args.threshold)
    output(result, args.format, "diff", args.output, base=base, new=new)
    if args.fail_above is not None:
        worse = regressions(result, args.fail_above)
        if worse:
            sys.stderr.write(
                f"liteprof: {len(worse)} scope(s) slower by more than {args.fail_above:g}%: "
                + ", ".join(one_line(w) for w in worse[:5])
                + ("" if len(worse) <= 5 else ", ...")
                + "\n"
            )
            return 1
    return 0
