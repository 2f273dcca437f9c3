"""What every layer stands on: user errors, paths anywhere, atomic writes, memory."""
