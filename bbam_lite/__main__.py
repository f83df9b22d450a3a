"""``python -m bbam_lite``: the same as the ``bbam-lite`` command."""

from bbam_lite.cli import main

raise SystemExit(main())
