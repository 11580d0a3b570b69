"""``python -m midprobe.runner`` is the ``midprobe`` command (handy inside ``ip netns exec``)."""

from midprobe.runner.cli import main

main()
