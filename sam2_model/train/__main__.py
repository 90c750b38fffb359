import sys

from .cli import main

# Guarded, although multiprocessing's spawn does not re-run a package's __main__ in the
# --data-workers processes: importing this module must never start a training run.
if __name__ == "__main__":
    sys.exit(main())
