"""`python -m autovmap`: the command line of `autovmap._cli`. Importing this module runs nothing
(`python -m mypy.stubtest autovmap` imports every submodule)."""

if __name__ == "__main__":
    import sys

    from ._cli import main

    sys.exit(main())
