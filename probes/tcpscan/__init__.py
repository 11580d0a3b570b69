"""TCP port scan engines for Shazzam: an unprivileged connect scanner and a raw-socket SYN scanner."""
