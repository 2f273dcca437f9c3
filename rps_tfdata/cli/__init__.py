"""What the command-line entry points share: flag definitions, config from flags, and
one-line reporting of errors a user can fix. Only entry points import this package."""
