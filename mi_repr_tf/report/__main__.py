"""The report's command line: python -m mi_repr_tf.report --runs=DIR --out=DIR.

Prints table.md and a line per skipped run or manifest (with its reason); a bad command line
or an unusable --runs is one `error:` line on stderr and exit status 2.
"""

import argparse
import sys

from mi_repr_tf import report as report_lib


class _Parser(argparse.ArgumentParser):
  """An argument parser whose errors are one 'error: ...' line and exit status 2."""

  def error(self, message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def parse(argv):
  parser = _Parser(prog="python -m mi_repr_tf.report",
                   description="Figures, evaluations.csv and table.md of the runs under a "
                   "folder.")
  parser.add_argument("--runs", required=True,
                      help="Folder holding run directories (e.g. a sweep folder).")
  parser.add_argument("--out", required=True,
                      help="Where to write the figures, evaluations.csv and table.md.")
  return parser.parse_args(argv)


def main(argv=None):
  """Runs the report; returns the exit status."""
  args = parse(sys.argv[1:] if argv is None else argv)
  try:
    result = report_lib.report(args.runs, args.out)
  except OSError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(result.text)
  for name, why in result.loaded.skipped:
    print(f"warning: skipped {name}: {why}", file=sys.stderr)
  for name, what in result.loaded.warnings:
    print(f"warning: {name}: {what}", file=sys.stderr)
  print(f"wrote {len(result.figures)} figure(s), evaluations.csv ({result.csv_rows} rows) "
        f"and table.md to {args.out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
