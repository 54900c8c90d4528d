"""The body of each `alls` command, one module per command, each with ``run(args) -> int``.

`alls.cli` parses the options and hands the `argparse.Namespace` to the command's `run`; what the
commands share (exit codes, reading scripts and models from the options, rendering diagnostics for
the command line) is in `common`. Like the CLI, they use only the public API (`alls`,
`alls.runtime`), and load the runtime only when a command needs it.
"""
