"""`python -m penchant`: the command line, as the `penchant` console script runs it."""

from penchant.cli.app import main

if __name__ == "__main__":
    main()
